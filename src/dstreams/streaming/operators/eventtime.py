"""Event-time windows with a watermark: ``windowByEventTime(...)`` then a reduction.

Records carry their own time (``timestampFunc(record)``, in seconds, or a ``datetime``),
arrive out of order, and are windowed by when they happened. This is the D-Stream way of
doing it:

* **The state is a stream of RDDs**, as ``updateStateByKey``'s is. Each batch's state RDD has
  one record per partition: a :class:`WindowState` with the open windows' aggregates, keyed
  by ``(key, window start)``, and the largest event time the partition has seen. It is
  computed from the previous batch's state and the batch's records (partitioned by key), and
  it is checkpointed like every state stream.
* **The watermark** that batch t applies is the largest event time seen in the batches before
  t, minus ``watermarkDelay``. The driver reads it from the previous state RDD when it
  generates batch t (a tiny job over the cached state). It is a function of that state, so a
  batch re-run after a recovery, whose previous state comes back from the checkpoint and
  lineage, applies exactly the same watermark and drops exactly the same records.
* A record older than the watermark is **late**: it is dropped, and counted in the batch's
  ``BatchInfo.extras().numLateRecords()``. With ``lateRecordsPath``, the late records of
  batch t, partition p are also written to ``<path>/batch-<t>/part-<p>`` (one ``repr`` per
  line, replaced if the batch runs again). That is separate from the record-error dead
  letters.
* A window is **final** once the watermark passes its end. Its state is then purged, so
  memory follows the windows still open, not the length of the stream. ``outputMode="append"``
  emits each window once, when it is final. ``"update"`` emits every window that changed in
  the batch, with its value so far.

The output records are ``((key, EventWindow(start, end)), value)``, with ``start`` and
``end`` in epoch seconds.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from dstreams.core.dependency import Partitioner
from dstreams.core.rdd import RDD
from dstreams.streaming.dstream import DerivedDStream, DStream
from dstreams.streaming.operators.mapwithstate import StateStepRDD

__all__ = ["EventTimeWindows", "EventWindow", "WindowState", "window_starts"]


class EventWindow(NamedTuple):
    """An event-time window ``[start, end)`` in epoch seconds."""

    start: float
    end: float


def window_starts(ts: float, length: float, slide: float) -> list[float]:
    """The starts of every window ``[s, s + length)`` (``s`` a multiple of ``slide``) holding ts."""
    last = math.floor(ts / slide) * slide
    out = []
    s = last
    while s > ts - length:
        out.append(round(s, 9))
        s -= slide
    return out[::-1]


def _seconds(value: Any) -> float:
    if isinstance(value, _dt.datetime):
        return value.timestamp()  # naive: local time, as datetime.timestamp reads it
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"timestampFunc must return epoch seconds (a number) or a datetime, got {value!r}"
        )
    return float(value)


class WindowState:
    """One partition's open windows: ``{(key, start): value}``, and what the batch did."""

    def __init__(self, entries: dict[tuple[Any, float], Any], max_ts: float) -> None:
        self.entries = entries
        self.max_ts = max_ts
        self.changed: list[tuple[Any, float]] = []
        self.final: list[tuple[tuple[Any, float], Any]] = []
        self.late = 0


class _WindowRDD(StateStepRDD):
    """Batch t's window state: the previous state advanced by batch t's records."""

    def __init__(
        self,
        prev: RDD[WindowState],
        data: RDD[Any],
        spec: EventTimeWindows,
        watermark: float,
        time_ms: int,
    ) -> None:
        super().__init__(prev, data)
        # only what the tasks need travels with them (not the stream graph)
        self._params = (
            spec._func,
            spec._timestamp,
            spec._length,
            spec._slide,
            spec._value,
            spec._late_path,
        )
        self._watermark, self._time_ms = watermark, time_ms

    def compute(self, split: int, tctx: Any) -> Iterator[WindowState]:
        func, tsf, length, slide, as_value, late_path = self._params
        wm = self._watermark
        prev = next(iter(self._deps[0].rdd.iterator(split, tctx)))
        entries = dict(prev.entries)
        max_ts = prev.max_ts
        changed: dict[tuple[Any, float], None] = {}
        late: list[Any] = []
        for record in self._deps[1].rdd.iterator(split, tctx):
            ts = _seconds(tsf(record))
            if ts > max_ts:
                max_ts = ts
            if ts < wm:
                late.append(record)
                continue
            key = record[0]
            value = record[1] if as_value is None else as_value(record)
            for start in window_starts(ts, length, slide):
                k = (key, start)
                entries[k] = func(entries[k], value) if k in entries else value
                changed[k] = None
        final = sorted(
            ((k, v) for k, v in entries.items() if k[1] + length <= wm), key=lambda kv: repr(kv[0])
        )
        for k, _ in final:
            del entries[k]
        state = WindowState(entries, max_ts)
        state.changed = list(changed)
        state.final = final
        state.late = len(late)
        if late and late_path:
            _write_late(late_path, self._time_ms, split, late)
        return iter([state])


def _write_late(root: str, time_ms: int, split: int, records: list[Any]) -> None:
    import fsspec

    directory = f"{root.rstrip('/')}/batch-{time_ms}"
    fs, path = fsspec.core.url_to_fs(directory)
    fs.makedirs(path, exist_ok=True)
    tmp = f"{path}/.part-{split}-{os.getpid()}"
    with fs.open(tmp, "w") as fh:
        fh.write("".join(repr(r) + "\n" for r in records))
    fs.mv(tmp, f"{path}/part-{split}")


class _WindowStates(DerivedDStream[WindowState]):
    """The window-state RDDs of one event-time windowed reduction."""

    _must_checkpoint = True

    def __init__(self, parent: DStream[Any], spec: EventTimeWindows) -> None:
        from dstreams import StorageLevel

        super().__init__(parent)
        self.spec = spec
        self.partitioner = Partitioner(spec._num_partitions or parent._sc.defaultParallelism)
        self._storage_level = StorageLevel.MEMORY_ONLY
        self._created_by = "windowByEventTime"
        #: batch time -> the watermark it applied (epoch seconds; -inf before any record)
        self.watermarks: dict[int, float] = {}

    def _compute(self, time_ms: int) -> Any:
        p = self.partitioner
        prev = self._get_or_compute(time_ms - self._slide_ms)
        if prev is None:
            prev = (
                self._sc.emptyRDD()
                .partitionBy(p.numPartitions)
                .mapPartitions(lambda it: [WindowState({}, -math.inf)], preservesPartitioning=True)
            )
            seen = -math.inf
        else:
            # the largest event time of the batches before this one: from their state
            seen = max(prev.map(lambda s: s.max_ts).collect(), default=-math.inf)
        watermark = seen - self.spec._delay
        self.watermarks[time_ms] = watermark
        data = self.parent._get_or_compute(time_ms)
        if data is None:
            data = self._sc.emptyRDD()
        data = data.partitionBy(p.numPartitions, p.partitionFunc)
        return _WindowRDD(prev, data, self.spec, watermark, time_ms)

    def _clear_metadata(self, time_ms: int) -> None:
        super()._clear_metadata(time_ms)
        for t in [t for t in self.watermarks if t < time_ms - 10 * self._slide_ms]:
            del self.watermarks[t]


class EventTimeWindows:
    """``stream.windowByEventTime(...)``: pick the reduction (``reduceByKey``, ``countByKey``)."""

    def __init__(
        self,
        parent: DStream[Any],
        timestampFunc: Callable[[Any], Any],
        windowDuration: float,
        slideDuration: float | None,
        watermarkDelay: float,
        outputMode: str,
        lateRecordsPath: str | None,
        valueFunc: Callable[[Any], Any] | None = None,
    ) -> None:
        if not callable(timestampFunc):
            raise TypeError(
                f"timestampFunc must be a function of the record, got {timestampFunc!r}"
            )
        for name, value in (("windowDuration", windowDuration), ("watermarkDelay", watermarkDelay)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name}={value!r} must be a number of seconds, at least 0")
        if windowDuration <= 0:
            raise ValueError(f"windowDuration={windowDuration!r} must be positive (seconds)")
        slide = windowDuration if slideDuration is None else slideDuration
        if isinstance(slide, bool) or not isinstance(slide, (int, float)) or slide <= 0:
            raise ValueError(f"slideDuration={slideDuration!r} must be positive (seconds)")
        if slide > windowDuration:
            raise ValueError(
                f"slideDuration={slide} is longer than windowDuration={windowDuration}: "
                "records between windows would belong to none"
            )
        if outputMode not in ("update", "append"):
            raise ValueError(f"outputMode={outputMode!r} must be 'update' or 'append'")
        self._parent = parent
        self._timestamp = timestampFunc
        self._length, self._slide = float(windowDuration), float(slide)
        self._delay = float(watermarkDelay)
        self._mode = outputMode
        self._late_path = lateRecordsPath
        self._func: Callable[[Any, Any], Any] = lambda a, b: a + b
        if valueFunc is not None and not callable(valueFunc):
            raise TypeError(f"valueFunc must be a function of the record, got {valueFunc!r}")
        #: what a record contributes (default: its value; countByKey: 1)
        self._value: Callable[[Any], Any] | None = valueFunc
        self._num_partitions: int | None = None

    def reduceByKey(
        self, func: Callable[[Any, Any], Any], numPartitions: int | None = None
    ) -> DStream[Any]:
        """``((key, EventWindow), value)`` of each window, reduced with ``func``."""
        from dstreams.streaming._util import check_function

        check_function(func, "windowByEventTime(...).reduceByKey", "func")
        self._func, self._num_partitions = func, numPartitions
        states = _WindowStates(self._parent, self)
        length, mode = self._length, self._mode

        def emit(state: WindowState) -> list[Any]:
            if mode == "append":
                return [((k[0], EventWindow(k[1], k[1] + length)), v) for k, v in state.final]
            return [
                ((k[0], EventWindow(k[1], k[1] + length)), state.entries[k])
                for k in sorted(state.changed, key=repr)
            ]

        out = states.flatMap(emit)
        out._event_time_states = states  # type: ignore[attr-defined]
        return out

    def countByKey(self, numPartitions: int | None = None) -> DStream[Any]:
        """``((key, EventWindow), count)`` of each window."""
        out = self.reduceByKey(lambda a, b: a + b, numPartitions)
        self._value = lambda _record: 1
        return out
