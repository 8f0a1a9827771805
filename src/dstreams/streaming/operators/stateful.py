"""``updateStateByKey``: per-key state carried from batch to batch.

Ports Spark's ``PythonStateDStream`` with the ``reduceFunc`` closure of PySpark's
``updateStateByKey``: state at t = cogroup(state at t - slide, batch at t), then
``updateFunc(newValues, oldState)`` for every key, dropping keys whose new state
is None.  With no previous state the initial RDD (if any) stands in for it; when
the parent has no RDD at t, the previous state is carried over unchanged.

State RDDs chain on each other, so they are persisted and checkpointed every
checkpoint interval (at least 10 s by default), which keeps lineage bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dstreams.streaming._util import to_datetime
from dstreams.streaming.dstream import DerivedDStream, DStream

__all__ = ["StateDStream"]


class StateDStream(DerivedDStream[Any]):
    """The state stream behind ``updateStateByKey``."""

    _must_checkpoint = True

    def __init__(
        self,
        parent: DStream[Any],
        updateFunc: Callable[[list[Any], Any], Any],
        numPartitions: int,
        initialRDD: Any = None,
        guard: Callable[[Any], Any] | None = None,
    ) -> None:
        from dstreams import StorageLevel

        super().__init__(parent)
        self._guard = guard  # recordErrors=deadLetter: a failed update keeps the old state
        self.updateFunc = updateFunc
        self.numPartitions, self.initialRDD = numPartitions, initialRDD
        self._created_by = "updateStateByKey"
        self._storage_level = StorageLevel.MEMORY_ONLY

    def _update(self, a: Any, b: Any, time_ms: int) -> Any:
        update, n = self.updateFunc, self.numPartitions
        if a is None:
            g = b.groupByKey(n).mapValues(lambda vs: (list(vs), None))
        else:
            g = a.cogroup(b.partitionBy(n), n)
            g = g.mapValues(lambda ab: (list(ab[1]), next(iter(ab[0])) if len(ab[0]) else None))
        if self._guard is not None:
            guarded = self._guard(to_datetime(time_ms)).state_update(update)
            state = g.map(lambda kv: (kv[0], guarded(kv)), preservesPartitioning=True)
        else:
            state = g.mapValues(lambda vs_s: update(vs_s[0], vs_s[1]))
        return state.filter(lambda k_v: k_v[1] is not None)

    def _compute(self, time_ms: int) -> Any:
        last = self._get_or_compute(time_ms - self._slide_ms)
        rdd = self.parent._get_or_compute(time_ms)
        if rdd is not None:
            return self._update(last if last is not None else self.initialRDD, rdd, time_ms)
        return last
