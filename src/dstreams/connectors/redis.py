"""Redis Streams as a direct source: each batch is an entry-ID range per stream.

:func:`createDirectStream` returns a :class:`~dstreams.connectors.direct.DirectInputDStream`
over a :class:`RedisStreamsAdapter`. Its records are ``(stream, entry_id, fields)`` tuples,
with ``fields`` a dict, decoded as UTF-8 unless ``decode=False``.

How the adapter does its part:

* A range is ``(after, until]`` in entry IDs. The driver fixes ``until`` and the cut points
  with one server-side script that walks the IDs after ``after`` (``XRANGE`` in chunks) and
  returns only IDs, never the entries. Entry IDs only grow, so the range never changes, unless
  entries are trimmed or deleted.
* A task reads its range with ``XRANGE`` in pages. If it gets fewer entries than planned
  (``XTRIM``, ``MAXLEN``, ``XDEL`` removed some), the task fails with
  :class:`~dstreams.errors.OffsetRangeUnavailableError`. The error names the stream and the
  range.
* The backlog (the lag) uses ``XINFO STREAM``'s ``entries-added`` (Redis 7). The position's
  sequence number is counted once per stream when the stream starts, then advanced by each
  range's count.
* After a batch's output succeeded, its ends are written to the hash ``offsetsKey`` (field:
  the stream). With ``consumerGroup``, the group's last-delivered ID is set too, so
  ``XINFO GROUPS`` shows the lag. ``startFrom="committed"`` starts from them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dstreams.connectors.direct import DirectInputDStream, Range
from dstreams.errors import OffsetRangeUnavailableError

__all__ = ["RedisStreamsAdapter", "StreamRange", "createDirectStream"]


@dataclass(frozen=True)
class StreamRange:
    """One stream's entries in a batch: after ``fromId`` up to ``untilId`` (``offsetRanges()``)."""

    stream: str
    fromId: str
    untilId: str
    count: int


#: entries per XRANGE call (tasks) and per scan step (the planning script)
PAGE = 10_000
#: IDs one call of the planning script walks at most: it blocks the server for about 50 ms
STEP = 100_000

# KEYS[1] the stream; ARGV: after (exclusive), limit (> 0), split (0: none), page, and the
# entries counted before this call (so the cut points fall on the whole range's multiples).
# Returns {count, end or "", cut IDs...}: IDs only, so no entry leaves the server.
_SPAN = """
local key, after = KEYS[1], ARGV[1]
local limit, split, page = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local before = tonumber(ARGV[5])
local n, cuts, last, cursor = 0, {}, '', '(' .. after
while n < limit do
  local want = math.min(page, limit - n)
  local r = redis.call('XRANGE', key, cursor, '+', 'COUNT', want)
  for i = 1, #r do
    n = n + 1
    if split > 0 and (before + n) % split == 0 then cuts[#cuts + 1] = r[i][1] end
  end
  if #r == 0 then break end
  last = r[#r][1]
  cursor = '(' .. last
  if #r < want then break end
end
local out = {n, last}
for i = 1, #cuts do out[#out + 1] = cuts[i] end
return out
"""

_CLIENTS: dict[str, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(url: str) -> Any:
    """One connection pool per URL and process (tasks of a worker share it)."""
    import redis

    with _CLIENTS_LOCK:
        c = _CLIENTS.get(url)
        if c is None:
            c = _CLIENTS[url] = redis.Redis.from_url(url, decode_responses=False)
        return c


def _id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class RedisStreamsAdapter:
    """The Redis Streams :class:`~dstreams.connectors.direct.Adapter` (module docstring)."""

    def __init__(
        self,
        url: str,
        streams: list[str],
        decode: bool = True,
        offsetsKey: str | None = None,
        consumerGroup: str | None = None,
    ) -> None:
        self.url = url
        self.streams = list(streams)
        self.decode = decode
        self.offsets_key = offsetsKey
        self.group = consumerGroup
        self.name = f"redis {_safe(url)} {','.join(self.streams)}"
        #: stream -> (position, entries added up to it), advanced as ranges are planned
        self._seq: dict[str, tuple[str, int]] = {}
        self._span_sha: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_seq"] = {}
        return state

    @property
    def _r(self) -> Any:
        return _client(self.url)

    # -- driver -------------------------------------------------------------------------------
    def partitions(self) -> list[str]:
        return list(self.streams)

    def resolve(self, partition: str, start_from: Any) -> str:
        where = start_from.get(partition, "$") if isinstance(start_from, dict) else start_from
        if where == "$":
            info = self._info(partition)
            if info is None:
                return "0-0"
            last = _id(info["last-generated-id"])
            self._seq[partition] = (last, self._added(info))  # nothing after it yet
            return last
        if where in ("0", "0-0", 0):
            info = self._info(partition)
            if info is not None:  # everything left in the stream is after 0-0
                self._seq[partition] = ("0-0", self._added(info) - int(info["length"]))
            return "0-0"
        if where == "committed":
            got = self._committed(partition)
            if got is None:
                raise ValueError(
                    f"{self.name}: startFrom='committed' but nothing was committed for stream "
                    f"{partition!r} (in {self._where_committed()}); start it once with "
                    "startFrom='0' or '$'"
                )
            return got
        text = str(where)
        try:
            _id_key(text)
        except ValueError:
            raise ValueError(
                f"{self.name}: startFrom {where!r} for stream {partition!r} is not '$', '0', "
                "'committed' or an entry ID like '1700000000000-0'"
            ) from None
        return text

    def _where_committed(self) -> str:
        return f"the hash {self.offsets_key!r}" if self.offsets_key else f"group {self.group!r}"

    def _committed(self, stream: str) -> str | None:
        if self.offsets_key:
            got = self._r.hget(self.offsets_key, stream)
            if got is not None:
                return _id(got)
        if self.group:
            import redis

            try:
                for g in self._r.xinfo_groups(stream):
                    if _id(g["name"]) == self.group:
                        return _id(g["last-delivered-id"])
            except redis.ResponseError:
                return None
        return None

    def _info(self, stream: str) -> dict[str, Any] | None:
        import redis

        try:
            raw = self._r.xinfo_stream(stream)
        except redis.ResponseError as e:
            if "no such key" in str(e).lower():
                return None
            raise
        return {_id(k): v for k, v in raw.items()}

    def _added(self, info: dict[str, Any]) -> int:
        if "entries-added" not in info:
            raise RuntimeError(f"{self.name}: the Redis Streams source needs Redis 7 or newer")
        return int(info["entries-added"])

    def _run_span(self, stream: str, after: str, limit: int, split: int, before: int) -> list[Any]:
        import redis

        args = (1, stream, after, limit, split, PAGE, before)
        if self._span_sha is None:
            self._span_sha = self._r.script_load(_SPAN)
        try:
            return list(self._r.evalsha(self._span_sha, *args))
        except redis.exceptions.NoScriptError:  # the server restarted: load it again
            self._span_sha = self._r.script_load(_SPAN)
            return list(self._r.evalsha(self._span_sha, *args))

    def _walk(
        self, stream: str, after: str, limit: int | None, split: int | None
    ) -> tuple[int, str, list[str]]:
        """Count the IDs after ``after`` (at most ``limit``), ``STEP`` at a time."""
        total, end, cuts = 0, after, []
        while True:
            step = STEP if limit is None else min(STEP, limit - total)
            if step <= 0:
                break
            out = self._run_span(stream, end, step, split or 0, total)
            n = int(out[0])
            cuts += [_id(c) for c in out[2:]]
            if n:
                total, end = total + n, _id(out[1])
            if n < step:
                break
        if cuts and cuts[-1] == end:
            cuts.pop()
        return total, end, cuts

    def backlog(self, partition: str, position: str) -> int:
        info = self._info(partition)
        if info is None:
            return 0
        added = self._added(info)
        known = self._seq.get(partition)
        if known is None or known[0] != position:
            # a position not from resolve() or the previous range (an ID given, a recovered
            # checkpoint): counted once, in steps that each block the server briefly
            after = self._walk(partition, position, None, None)[0]
            known = (position, added - after)
            self._seq[partition] = known
        return max(0, added - known[1])

    def span(
        self, partition: str, position: str, limit: int | None, split: int | None
    ) -> tuple[int, str, list[str]]:
        count, end, cuts = self._walk(partition, position, limit, split)
        known = self._seq.get(partition)
        if known is not None and known[0] == position:
            self._seq[partition] = (end, known[1] + count)
        return count, end, cuts

    def commit(self, ends: dict[str, str]) -> None:
        import redis

        if self.offsets_key:
            self._r.hset(self.offsets_key, mapping={k: v for k, v in ends.items()})
        if self.group:
            for stream, end in ends.items():
                try:
                    self._r.xgroup_setid(stream, self.group, end)
                except redis.ResponseError:  # no such group yet
                    self._r.xgroup_create(stream, self.group, id=end, mkstream=True)

    def describe(self, r: Range) -> dict[str, Any]:
        return {"partition": r.partition, "from": r.start, "until": r.end, "count": r.count}

    def offset_range(self, r: Range) -> StreamRange:
        return StreamRange(r.partition, r.start, r.end, r.count)

    # -- tasks --------------------------------------------------------------------------------
    def read(self, r: Range) -> Iterator[Any]:
        client, stream, decode = self._r, r.partition, self.decode
        cursor, got = "(" + str(r.start), 0
        while got < r.count:
            page = client.xrange(stream, cursor, r.end, count=min(PAGE, r.count - got))
            if not page:
                break
            for entry_id, fields in page:
                eid = _id(entry_id)
                if decode:
                    fields = {k.decode(): v.decode() for k, v in fields.items()}
                yield (stream, eid, fields)
            got += len(page)
            cursor = "(" + _id(page[-1][0])
        if got != r.count:
            raise OffsetRangeUnavailableError(
                f"{self.name}: stream {stream!r} range ({r.start}, {r.end}] held {r.count} "
                f"entries when the batch was planned, {got} are left: entries were trimmed "
                "(XTRIM, MAXLEN) or deleted before the batch read them. Keep the stream longer "
                "than the batches take to run (and to re-run after a restart)."
            )


def _safe(url: str) -> str:
    """``url`` without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
            f":{parts.port}" if parts.port else ""
        )
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def createDirectStream(
    ssc: Any,
    url: str,
    streams: str | list[str],
    startFrom: Any = "$",
    maxRecordsPerBatch: int | None = None,
    splitRecords: int | None = None,
    decode: bool = True,
    offsetsKey: str | None = None,
    consumerGroup: str | None = None,
    commitOffsets: bool = True,
) -> DirectInputDStream:
    """A direct stream of the Redis streams ``streams`` at ``url`` (``redis://host:port/db``).

    Args:
        startFrom: ``"$"`` (entries added after the start), ``"0"`` (everything), an entry ID,
            ``"committed"`` (where the last run's output got to), or a dict of these per stream.
            After a driver restart from a checkpoint, the checkpoint's positions win.
        maxRecordsPerBatch: at most this many entries per batch, shared among the streams by
            their backlog (backpressure lowers it further when enabled).
        splitRecords: cut each stream's range into tasks of at most this many entries (default:
            one task per stream and batch).
        decode: decode field names and values as UTF-8 (else bytes).
        offsetsKey: the hash where each batch's end IDs are written after its output (default:
            ``dstreams:offsets:<app name>``).
        consumerGroup: also move this consumer group's last-delivered ID (created if missing).
        commitOffsets: False: commit nothing to Redis (recovery never needs it; the checkpoint
            holds the positions).

    Records are ``(stream, entry_id, fields)``.
    """
    names = [streams] if isinstance(streams, str) else list(streams)
    if not names or not all(isinstance(s, str) and s for s in names):
        raise ValueError(f"streams={streams!r} must name one or more Redis stream keys")
    if len(set(names)) != len(names):
        raise ValueError(f"streams={streams!r} names a stream twice")
    if isinstance(startFrom, dict):
        unknown = sorted(set(startFrom) - set(names))
        if unknown:
            raise ValueError(f"startFrom names streams that are not read: {unknown}")
    elif not isinstance(startFrom, (str, int)):
        raise ValueError(f"startFrom={startFrom!r}: use '$', '0', 'committed', an ID or a dict")
    try:
        import redis  # noqa: F401
    except ImportError:
        raise ImportError(
            "the Redis Streams source needs the redis package: pip install 'dstreams[redis]'"
        ) from None
    if offsetsKey is None:
        offsetsKey = f"dstreams:offsets:{ssc.sparkContext.appName}"
    if not commitOffsets:
        offsetsKey, consumerGroup = None, None
        if startFrom == "committed":
            raise ValueError("startFrom='committed' needs commitOffsets=True")
    adapter = RedisStreamsAdapter(url, names, decode, offsetsKey, consumerGroup)
    return DirectInputDStream(
        ssc, adapter, startFrom, maxRecordsPerBatch, splitRecords, commitOffsets
    )
