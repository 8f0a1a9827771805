"""The direct approach to broker input, written once for every broker.

A direct stream has no receiver. When the driver generates batch t, it plans the batch: for
each broker partition (a Redis stream, a Kafka topic partition) the range of records after the
position the previous batch ended at, up to the rate limit. The plan is recorded with the batch
and goes into the metadata checkpoint. The batch's tasks read their ranges from the broker. So
a batch that runs again (a retried task, a recomputed partition, a batch re-run after the
driver restarts) reads exactly the same records. A range that can no longer be read in full
(trimmed away) fails the batch with :class:`~dstreams.errors.OffsetRangeUnavailableError`.
It is never skipped.

What is written here, once:

* :func:`allot`: the per-batch record limit (``maxRecordsPerBatch``, and the backpressure
  rate times the batch interval) shared among partitions in proportion to their backlog, as
  Spark's direct Kafka stream does. It is a pure function.
* :func:`cut`: a partition's range cut into tasks of at most ``splitRecords`` records.
* :class:`DirectInputDStream`: the plans, their checkpointing and restore, the batch RDD
  (:class:`RangeRDD`, with ``offsetRanges()``), each batch's input info (records, ranges,
  lag), the rate controller, and committing the positions to the broker after a batch's
  output succeeded (for monitoring and ``startFrom="committed"``, never for recovery: the
  checkpoint is what recovery reads).

A broker supplies an :class:`Adapter`. It lists its partitions, resolves a starting position,
measures a backlog, fixes a range's end (and its cut points), reads a range in a task, and
commits positions. Positions are the adapter's own values (a Redis entry ID, a Kafka offset). A
range ``(start, end]`` holds the records after ``start`` up to ``end``. The next range
starts at ``end``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from dstreams.core.rdd import RDD
from dstreams.streaming.listener import StreamingListener, StreamInputInfo
from dstreams.streaming.operators.input import InputDStream

__all__ = ["Adapter", "DirectInputDStream", "Range", "RangeRDD", "allot", "cut"]

_log = logging.getLogger("dstreams.connectors")


@dataclass(frozen=True)
class Range:
    """The records of ``partition`` after position ``start`` up to ``end``; ``count`` of them."""

    partition: Any
    start: Any
    end: Any
    count: int


class Adapter(Protocol):
    """What a broker supplies to :class:`DirectInputDStream` (see the module docstring).

    The adapter is pickled into the tasks that read, so it must hold no open connection
    when pickled: connect lazily, and drop connections in ``__getstate__``.
    """

    #: the source's name in errors and logs (a URL without credentials, and the topics)
    name: str

    def partitions(self) -> list[Any]:
        """The partitions to read (fixed when the stream starts)."""
        ...

    def resolve(self, partition: Any, start_from: Any) -> Any:
        """The position to start after, for the program's ``startFrom`` (driver)."""
        ...

    def backlog(self, partition: Any, position: Any) -> int:
        """How many records are after ``position`` now (driver; lag and rate sharing)."""
        ...

    def span(
        self, partition: Any, position: Any, limit: int | None, split: int | None
    ) -> tuple[int, Any, list[Any]]:
        """``(count, end, cuts)``: the range after ``position`` of at most ``limit`` records.

        ``cuts`` are the positions after every ``split``-th record (before ``end``) when
        ``split`` is given. Records after ``end`` may arrive later: the range itself never
        changes (driver).
        """
        ...

    def read(self, r: Range) -> Iterator[Any]:
        """The range's records, in order; raise OffsetRangeUnavailableError if any is gone."""
        ...

    def commit(self, ends: dict[Any, Any]) -> None:
        """Record that everything up to ``ends[partition]`` was output (driver)."""
        ...

    def describe(self, r: Range) -> dict[str, Any]:
        """The range as JSON-friendly values (batch metadata, the UI)."""
        ...

    def offset_range(self, r: Range) -> Any:
        """The range as the broker API's users know it (``OffsetRange`` for Kafka)."""
        ...


def allot(backlogs: dict[Any, int], cap: int | None) -> dict[Any, int | None]:
    """Each partition's limit: ``cap`` shared in proportion to the backlogs (None: no limit).

    The shares are whole records that add up to ``min(cap, total backlog)``; the largest
    remainders get the leftover records, ties broken by the partitions' order. A partition
    with no backlog gets 0.
    """
    if cap is None:
        return {p: (None if b > 0 else 0) for p, b in backlogs.items()}
    total = sum(max(0, b) for b in backlogs.values())
    if total <= cap:
        return {p: max(0, b) for p, b in backlogs.items()}
    shares: dict[Any, int] = {}
    remainders = []
    for i, (p, b) in enumerate(backlogs.items()):
        exact = cap * max(0, b) / total
        shares[p] = int(exact)
        remainders.append((-(exact - int(exact)), i, p))
    left = cap - sum(shares.values())
    for _, _, p in sorted(remainders)[:left]:
        shares[p] += 1
    return dict(shares)


def cut(
    partition: Any, start: Any, end: Any, count: int, cuts: list[Any], split: int | None
) -> list[Range]:
    """The range ``(start, end]`` of ``count`` records as tasks of at most ``split`` records."""
    if count <= 0:
        return []
    if not split or not cuts:
        return [Range(partition, start, end, count)]
    bounds = [start, *cuts, end]
    out = []
    left = count
    for a, b in zip(bounds, bounds[1:]):
        n = min(split, left)
        out.append(Range(partition, a, b, n))
        left -= n
    if left:
        raise AssertionError(f"cut points of {partition} do not match its {count} records")
    return out


class RangeRDD(RDD[Any]):
    """One batch of a direct stream: a partition per planned range (a task each)."""

    def __init__(self, ctx: Any, adapter: Adapter, splits: list[Range], ranges: list[Range]):
        super().__init__(ctx, [], len(splits))
        self._adapter = adapter
        self._splits = splits
        self._ranges = ranges

    def compute(self, split: int, tctx: Any) -> Iterator[Any]:
        return iter(self._adapter.read(self._splits[split]))

    def offsetRanges(self) -> list[Any]:
        """The batch's range of every partition, including empty ones (PySpark's ``KafkaRDD``)."""
        return [self._adapter.offset_range(r) for r in self._ranges]


def _positive(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive whole number of records, or None")
    return value


class DirectInputDStream(InputDStream):
    """A receiver-less input stream over a broker :class:`Adapter` (module docstring)."""

    def __init__(
        self,
        ssc: Any,
        adapter: Adapter,
        start_from: Any,
        max_records_per_batch: int | None = None,
        split_records: int | None = None,
        commit: bool = True,
    ) -> None:
        # checked before the stream joins the graph: a bad argument leaves no half-made stream
        self._max = _positive("maxRecordsPerBatch", max_records_per_batch)
        self._split = _positive("splitRecords", split_records)
        super().__init__(ssc)
        self._adapter = adapter
        self._start_from = start_from
        self._commit = commit
        self._positions: dict[Any, Any] | None = None
        #: batch time -> the batch's ranges (one per partition, empty ones included) and its
        #: tasks (the ranges cut at ``splitRecords``): its plan
        self._plans: dict[int, list[Range]] = {}
        self._tasks: dict[int, list[Range]] = {}
        self._lags: dict[int, dict[Any, int]] = {}
        self._rate: float | None = None
        self._recovered = False
        self.name = f"{type(self).__name__}-{self.id} ({adapter.name})"

    # -- lifecycle --------------------------------------------------------------------------
    def _start(self) -> None:
        ssc = self._ssc
        if not self._recovered or self._positions is None:
            self._positions = {
                p: self._adapter.resolve(p, self._start_from) for p in self._adapter.partitions()
            }
        rates = ssc._rates
        if rates.enabled:
            from dstreams.events import RateUpdate, now_ms
            from dstreams.streaming.ratecontrol import RateController

            self._rate = rates.starting_rate()
            bus = ssc._sc._runner.bus

            def publish(rate: float) -> None:
                self._rate = rate
                bus.post(RateUpdate(now_ms(), self.id, rate))

            estimator = rates.estimator(ssc._batch_ms)
            ssc._bus.addListener(RateController(self.id, estimator, publish, rates))
        if self._commit:
            ssc._bus.addListener(_CommitAfterOutput(self))

    def _stop(self) -> None:
        close = getattr(self._adapter, "close", None)
        if close is not None:
            close()

    # -- the plan ---------------------------------------------------------------------------
    def _cap(self) -> int | None:
        cap = self._max
        if self._rate is not None:
            by_rate = max(1, int(self._rate * self._ssc._batch_ms / 1000))
            cap = by_rate if cap is None else min(cap, by_rate)
        return cap

    def _plan(self, time_ms: int) -> list[Range]:
        """The ranges of batch ``time_ms``: recorded (a re-run), or planned now."""
        known = self._plans.get(time_ms)
        if known is not None:
            return known
        assert self._positions is not None, "the stream was not started"
        # all or nothing: a broker error midway leaves the positions as they were, so the
        # next batch plans the same records again (none is skipped)
        adapter, positions = self._adapter, dict(self._positions)
        ranges, tasks, lags = [], [], {}
        try:
            backlogs = {p: adapter.backlog(p, pos) for p, pos in positions.items()}
            limits = allot(backlogs, self._cap())
            for p, pos in positions.items():
                count, end, cuts = 0, pos, list[Any]()
                if limits[p] != 0:
                    count, end, cuts = adapter.span(p, pos, limits[p], self._split)
                ranges.append(Range(p, pos, end, count))
                tasks += cut(p, pos, end, count, cuts, self._split)
                lags[p] = max(0, backlogs[p] - count)
                positions[p] = end
        except Exception as e:
            raise RuntimeError(
                f"{adapter.name}: planning the batch of {time_ms} ms failed ({type(e).__name__}: "
                f"{e}); the next batch plans the same records again"
            ) from e
        self._plans[time_ms] = ranges
        self._tasks[time_ms] = tasks
        self._lags[time_ms] = lags
        self._positions = positions
        return ranges

    def _compute(self, time_ms: int) -> Any:
        ranges = self._plan(time_ms)
        return RangeRDD(self._sc, self._adapter, self._tasks[time_ms], ranges)

    # -- checkpoint -------------------------------------------------------------------------
    def _checkpoint_data(self) -> Any:
        return {
            "plans": {
                t: [(r.partition, r.start, r.end, r.count) for r in rs]
                for t, rs in self._plans.items()
            },
            "tasks": {
                t: [(r.partition, r.start, r.end, r.count) for r in rs]
                for t, rs in self._tasks.items()
            },
            "positions": dict(self._positions or {}),
        }

    def _restore_checkpoint(self, data: Any) -> None:
        if data is not None:
            self._plans = {int(t): [Range(*r) for r in rs] for t, rs in data["plans"].items()}
            self._tasks = {int(t): [Range(*r) for r in rs] for t, rs in data["tasks"].items()}
            self._positions = dict(data["positions"])
            self._recovered = True

    # -- reporting --------------------------------------------------------------------------
    def _input_info(self, time_ms: int) -> StreamInputInfo | None:
        ranges = self._plans.get(time_ms, [])
        described = [self._adapter.describe(r) for r in ranges]
        lags = self._lags.get(time_ms)
        meta: dict[str, Any] = {
            "offsets": described,
            StreamInputInfo.METADATA_KEY_DESCRIPTION: "\n".join(
                f"{d['partition']}: {d['from']} .. {d['until']} ({d['count']})" for d in described
            ),
        }
        if lags is not None:  # a re-run after a restart knows its ranges, not the lag then
            meta["lag"] = sum(lags.values())
        return StreamInputInfo(self.id, sum(r.count for r in ranges), "", meta)

    def _clear_metadata(self, time_ms: int) -> None:
        super()._clear_metadata(time_ms)
        assert self._remember_ms is not None
        for t in [t for t in self._plans if t <= time_ms - self._remember_ms]:
            del self._plans[t]
            self._tasks.pop(t, None)
            self._lags.pop(t, None)

    def _committed(self, time_ms: int) -> None:
        """Batch ``time_ms``'s output succeeded: commit the ends of its ranges."""
        ranges = self._plans.get(time_ms)
        if not ranges:
            return
        try:
            self._adapter.commit({r.partition: r.end for r in ranges})
        except Exception as e:  # noqa: BLE001 - monitoring only: the checkpoint is the truth
            _log.warning("%s: committing the offsets of batch %d failed: %s", self.name, time_ms, e)


class _CommitAfterOutput(StreamingListener):
    """Commits a direct stream's positions once a batch's output operations all succeeded."""

    def __init__(self, stream: DirectInputDStream) -> None:
        self._stream = stream

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        if any(o.failureReason() for o in info.outputOperationInfos().values()):
            return
        self._stream._committed(info.batchTime().milliseconds())
