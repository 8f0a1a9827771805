"""Window operators: ``window`` and the window reductions with an inverse function.

Window semantics (Spark's): the window at time t covers (t - window, t], i.e. the
parent's RDDs at t - window + parentSlide, ..., t; windowed streams emit only on
their own slide grid anchored at the zero time.

:class:`ReducedWindowedDStream` ports Spark's ``PythonReducedWindowedDStream``
together with the ``reduceFunc`` / ``invReduceFunc`` closures of PySpark's
``reduceByKeyAndWindow``: when the window spans at least five slides and the
previous window exists, the new window is the previous one, minus the batches
that left (``leftOuterJoin`` + ``invFunc``), plus the batches that entered;
otherwise the whole window is reduced again.  Its RDDs chain on each other, so
they are persisted and must be checkpointed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dstreams.core.primitives import union_for_grouping
from dstreams.streaming.dstream import DStream

__all__ = ["ReducedWindowedDStream", "WindowedDStream"]


def _memory_only() -> Any:
    from dstreams import StorageLevel

    return StorageLevel.MEMORY_ONLY


class _WindowBase(DStream[Any]):
    """A stream over a window of its parent: slides every ``slide_ms``, remembers the window."""

    def __init__(self, parent: DStream[Any], window_ms: int, slide_ms: int) -> None:
        super().__init__(parent._ssc)
        self.parent, self.window_ms, self.slide_ms_ = parent, window_ms, slide_ms
        # Every parent RDD is read by window/slide windows: keep it in memory.
        if parent._storage_level is None:
            parent._storage_level = _memory_only()

    @property
    def _slide_ms(self) -> int:
        return self.slide_ms_

    @property
    def _dependencies(self) -> list[DStream[Any]]:
        return [self.parent]

    @property
    def _parent_remember_ms(self) -> int:
        return super()._parent_remember_ms + self.window_ms


class WindowedDStream(_WindowBase):
    """RDD at t = union of the parent's RDDs in (t - window, t]; emits every ``slide``."""

    def _compute(self, time_ms: int) -> Any:
        rdds = self.parent._slice(time_ms - self.window_ms + self.parent._slide_ms, time_ms)
        return self._sc.union(rdds) if rdds else self._sc.emptyRDD()


class ReducedWindowedDStream(_WindowBase):
    """Incremental ``reduceByKeyAndWindow`` over an already per-batch-reduced parent."""

    _must_checkpoint = True

    def __init__(
        self,
        reduced: DStream[Any],
        func: Callable[[Any, Any], Any],
        invFunc: Callable[[Any, Any], Any],
        window_ms: int,
        slide_ms: int,
        numPartitions: int,
        filterFunc: Callable[[Any], bool] | None,
    ) -> None:
        super().__init__(reduced, window_ms, slide_ms)
        self.func, self.invFunc = func, invFunc
        self.numPartitions, self.filterFunc = numPartitions, filterFunc
        self._created_by = "reduceByKeyAndWindow with an inverse function"
        self._storage_level = _memory_only()

    def _reduce(self, a: Any, b: Any) -> Any:
        func, n, filter_func = self.func, self.numPartitions, self.filterFunc
        b = b.reduceByKey(func, n)
        # a and b are both reduced into n hash partitions: a co-partitioned union lets the
        # reduceByKey skip its shuffle (same result as PySpark's a.union(b).reduceByKey)
        r = union_for_grouping(self._sc, [a, b], n).reduceByKey(func, n) if a is not None else b
        if filter_func:
            r = r.filter(filter_func)
        return r

    def _inv_reduce(self, a: Any, b: Any) -> Any:
        func, inv, n = self.func, self.invFunc, self.numPartitions
        b = b.reduceByKey(func, n)
        joined = a.leftOuterJoin(b, n)
        return joined.mapValues(lambda kv: inv(kv[0], kv[1]) if kv[1] is not None else kv[0])

    def _compute(self, time_ms: int) -> Any:
        window, slide, ps = self.window_ms, self.slide_ms_, self.parent._slide_ms
        previous = self._get_or_compute(time_ms - slide)
        union = self._sc.union
        if previous is not None and window >= slide * 5:
            old = self.parent._slice(time_ms - slide - window + ps, time_ms - window)
            subtracted = self._inv_reduce(previous, union(old)) if old else previous
            new = self.parent._slice(time_ms - slide + ps, time_ms)
            return self._reduce(subtracted, union(new)) if new else subtracted
        current = self.parent._slice(time_ms - window + ps, time_ms)
        return self._reduce(None, union(current)) if current else None
