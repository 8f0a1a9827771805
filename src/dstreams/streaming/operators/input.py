"""Input streams: where each batch's data enters the graph.

* :class:`InputDStream`: base; registers with the graph, emits every batch.
* :class:`QueueInputDStream`: ``queueStream`` (one queued RDD per batch, or all of
  them at once; then ``default`` or an empty one-partition RDD).
* :class:`ReceiverInputDStream`: the blocks a receiver (``receiver.py``) stored
  during the batch, one partition per block.
* :class:`FileInputDStream`: ``textFileStream`` / ``binaryRecordsStream``; new
  files in a directory (fsspec), read lazily inside tasks, one partition per file.

Input streams are the graph's leaves; they are started and stopped by the
StreamingContext through the graph.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

from dstreams.streaming.dstream import DStream
from dstreams.streaming.listener import StreamInputInfo

__all__ = [
    "FileInputDStream",
    "InputDStream",
    "QueueInputDStream",
    "ReceiverInputDStream",
    "read_fixed_records",
    "read_text_lines",
]


class InputDStream(DStream[Any]):
    """A leaf stream producing one RDD per batch interval."""

    def __init__(self, ssc: Any) -> None:
        super().__init__(ssc)
        self.id: int = ssc._graph.addInputStream(self)
        self.name = f"{type(self).__name__}-{self.id}"

    @property
    def _slide_ms(self) -> int:
        return self._ssc._batch_ms

    @property
    def _dependencies(self) -> list[DStream[Any]]:
        return []

    def _start(self) -> None:
        """Called once when the context starts."""

    def _stop(self) -> None:
        """Called once when the context stops."""

    def _input_info(self, time_ms: int) -> StreamInputInfo | None:
        """What this stream reports for batch ``time_ms`` in ``BatchInfo.streamIdToInputInfo``.

        As Spark: receiver streams report their records, file streams report their files
        (with 0 records, since files are read inside tasks), and queue streams report nothing.
        """
        return None


class QueueInputDStream(InputDStream):
    """``queueStream``: dequeues one RDD (or all) per batch."""

    def __init__(self, ssc: Any, rdds: list[Any], oneAtATime: bool, default: Any) -> None:
        super().__init__(ssc)
        self._queue: deque[Any] = deque(rdds)
        self._lock = threading.Lock()
        self.oneAtATime = oneAtATime
        self.default = default if default is not None else self._sc.parallelize([], 1)

    def __getstate__(self) -> dict[str, Any]:
        # queued RDDs live on this driver only: a recovered queue stream starts empty (Spark
        # refuses queueStream with checkpointing; dstreams allows it, without recovery)
        state = super().__getstate__()
        state.update(_queue=deque(), _lock=None, default=None)
        return state

    def _attach(self, ssc: Any) -> None:
        super()._attach(ssc)
        self._lock = threading.Lock()
        if self.default is None:
            self.default = self._sc.parallelize([], 1)

    def _push(self, rdd: Any) -> None:
        """Append ``rdd`` to the queue (used by ``dstreams.testing.TestSource``)."""
        with self._lock:
            self._queue.append(rdd)

    def _compute(self, time_ms: int) -> Any:
        with self._lock:
            if self.oneAtATime and self._queue:
                buffer = [self._queue.popleft()]
            else:
                buffer = list(self._queue)
                self._queue.clear()
        if buffer:
            return buffer[0] if self.oneAtATime else self._sc.union(buffer)
        return self.default

    def _clear_metadata(self, time_ms: int) -> None:
        # Never unpersist the reused default RDD.
        keep = self.default
        assert self._remember_ms is not None
        old = [t for t in self._generated if t <= time_ms - self._remember_ms]
        for t in old:
            rdd = self._generated.pop(t)
            if rdd is not keep and self._storage_level is not None:
                rdd.unpersist()


class ReceiverInputDStream(InputDStream):
    """A stream fed by a receiver running on an executor (``receiver_host.py``).

    Its RDD at ``t`` reads the blocks the receiver tracker allocated to batch ``t``: one
    partition per block, each preferring the executors that hold its block.
    """

    def __init__(self, ssc: Any, receiver: Any) -> None:
        super().__init__(ssc)
        self.receiver = receiver
        receiver.streamId = self.id

    def _compute(self, time_ms: int) -> Any:
        from dstreams.streaming.blocks import ReceivedBlockRDD

        blocks = self._ssc._receiver_tracker.blocks_of_batch(time_ms, self.id)
        if not blocks:
            return self._sc.emptyRDD()
        return ReceivedBlockRDD(self._sc, blocks)

    def _input_info(self, time_ms: int) -> StreamInputInfo | None:
        blocks = self._ssc._receiver_tracker.blocks_of_batch(time_ms, self.id)
        return StreamInputInfo(self.id, sum(b.num_records for b in blocks))

    def _clear_metadata(self, time_ms: int) -> None:
        super()._clear_metadata(time_ms)
        assert self._remember_ms is not None
        self._ssc._receiver_tracker.cleanup_old_batches(time_ms - self._remember_ms, self.id)


class FileInputDStream(InputDStream):
    """New files of a directory, one partition per file; hidden files are skipped.

    A file counts as new if it was not listed before (the files present at a fresh
    ``start()`` are ignored).  Names starting with ``.`` or ``_`` are skipped.
    Write files elsewhere and move them in, so a batch never sees a partial file.

    Each batch's files are its plan, recorded with the batch: after a driver restart a
    re-run batch reads exactly the same files, and files that arrived while the driver
    was down are new, so the next batch takes them, each exactly once.
    """

    def __init__(self, ssc: Any, directory: str, recordLength: int | None = None) -> None:
        import fsspec.core

        super().__init__(ssc)
        self.directory = directory
        self.recordLength = recordLength
        self._fs, self._root = fsspec.core.url_to_fs(directory)
        self._seen: set[str] = set()
        self._names: dict[int, list[str]] = {}  # batch time -> its files' URLs (its plan)
        self._recovered = False

    def _list(self) -> dict[str, str]:
        try:
            self._fs.invalidate_cache()
            entries = self._fs.ls(self._root, detail=True)
        except FileNotFoundError:
            return {}
        out = {}
        for e in entries:
            name = e["name"]
            base = name.rstrip("/").rsplit("/", 1)[-1]
            if e.get("type") != "file" or base.startswith((".", "_")):
                continue
            out[name] = self._fs.unstrip_protocol(name)
        return out

    def _start(self) -> None:
        if not self._recovered:
            self._seen = set(self._list())  # a fresh start ignores the files already there

    def _plan(self, time_ms: int) -> list[str]:
        """The files of batch ``time_ms``: recorded (a re-run), or the new ones listed now."""
        if time_ms in self._names:
            return self._names[time_ms]
        listing = self._list()
        new = sorted(n for n in listing if n not in self._seen)
        self._seen = set(listing)  # forget deleted files: bounded by the directory's size
        urls = [listing[n] for n in new]
        self._names[time_ms] = urls
        return urls

    def _compute(self, time_ms: int) -> Any:
        urls = self._plan(time_ms)
        if not urls:
            return self._sc.emptyRDD()
        parts = self._sc._parallelize_partitions([[u] for u in urls])
        if self.recordLength is None:
            return parts.flatMap(read_text_lines)
        length = self.recordLength
        return parts.flatMap(lambda url: read_fixed_records(url, length))

    def _checkpoint_data(self) -> Any:
        return {"files": dict(self._names), "seen": sorted(self._seen)}

    def _restore_checkpoint(self, data: Any) -> None:
        if data is not None:
            self._names = {int(t): list(f) for t, f in data["files"].items()}
            self._seen = set(data["seen"])
            self._recovered = True

    def _input_info(self, time_ms: int) -> StreamInputInfo | None:
        files = list(self._names.get(time_ms, []))
        return StreamInputInfo(
            self.id,
            0,
            "\n".join(files),
            {"files": files, StreamInputInfo.METADATA_KEY_DESCRIPTION: "\n".join(files)},
        )

    def _clear_metadata(self, time_ms: int) -> None:
        super()._clear_metadata(time_ms)
        assert self._remember_ms is not None
        for t in [t for t in self._names if t <= time_ms - self._remember_ms]:
            del self._names[t]


def read_text_lines(url: str) -> Iterator[str]:
    """Yield the UTF-8 lines of the file at ``url`` (without line terminators)."""
    import fsspec

    with fsspec.open(url, "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        yield line.removesuffix("\r")


def read_fixed_records(url: str, length: int) -> Iterator[bytes]:
    """Yield the ``length``-byte records of the file at ``url``."""
    import fsspec

    with fsspec.open(url, "rb") as f:
        data = f.read()
    if len(data) % length:
        raise ValueError(
            f"file {url} has {len(data)} bytes, not a multiple of the record "
            f"length {length}; binaryRecordsStream needs fixed-length records"
        )
    for i in range(0, len(data), length):
        yield data[i : i + length]
