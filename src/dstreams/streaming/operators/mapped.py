"""Per-batch operators: every stateless DStream method reduces to one of these.

* :class:`TransformedDStream`: RDD at t = ``func(t, parentRDD)``.  Chains of
  transforms fold into one function, as in PySpark, so ``map().filter().map()``
  costs one DStream and one RDD lineage per batch.
* :class:`TransformedDStreamWithTwo`: ``func(t, a, b)`` over two parents.
* :class:`MultiTransformedDStream`: ``StreamingContext.transform``.
* :class:`UnionDStream`: ``StreamingContext.union``.

Each computes its RDD from the parents' RDDs at the same time; none touches records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dstreams.streaming._util import fmt_ms, to_datetime
from dstreams.streaming.dstream import DStream

__all__ = [
    "MultiTransformedDStream",
    "TransformedDStream",
    "TransformedDStreamWithTwo",
    "UnionDStream",
]


def _check_rdd(result: Any, func: Callable[..., Any]) -> Any:
    if result is not None and not hasattr(result, "mapPartitions"):
        raise TypeError(
            f"transform function {func!r} must return an RDD (or None), "
            f"got {type(result).__name__}: {result!r:.80}"
        )
    return result


class TransformedDStream(DStream[Any]):
    """RDD at t = ``func(datetime(t), parent RDD at t)``; no RDD if the parent has none."""

    def __init__(self, prev: DStream[Any], func: Callable[[Any, Any], Any]) -> None:
        super().__init__(prev._ssc)
        if type(prev) is TransformedDStream and not prev.is_cached and not prev.is_checkpointed:
            prev_func = prev.func

            def composed(t: Any, rdd: Any) -> Any:
                inner = prev_func(t, rdd)
                return None if inner is None else func(t, inner)

            self.func: Callable[[Any, Any], Any] = composed
            self.prev: DStream[Any] = prev.prev
        else:
            self.prev = prev
            self.func = func

    @property
    def _slide_ms(self) -> int:
        return self.prev._slide_ms

    @property
    def _dependencies(self) -> list[DStream[Any]]:
        return [self.prev]

    def _compute(self, time_ms: int) -> Any:
        rdd = self.prev._get_or_compute(time_ms)
        if rdd is None:
            return None
        return _check_rdd(self.func(to_datetime(time_ms), rdd), self.func)


class TransformedDStreamWithTwo(DStream[Any]):
    """RDD at t = ``func(t, a, b)``; a parent without an RDD contributes an empty RDD."""

    def __init__(self, prev: DStream[Any], other: DStream[Any], func: Callable[..., Any]) -> None:
        super().__init__(prev._ssc)
        if other._ssc is not prev._ssc:
            raise ValueError(
                "transformWith/union/join need two DStreams of the same StreamingContext"
            )
        self.prev, self.other, self.func = prev, other, func

    @property
    def _slide_ms(self) -> int:
        return self.prev._slide_ms

    @property
    def _dependencies(self) -> list[DStream[Any]]:
        return [self.prev, self.other]

    def _compute(self, time_ms: int) -> Any:
        a = self.prev._get_or_compute(time_ms)
        b = self.other._get_or_compute(time_ms)
        a = a if a is not None else self._sc.emptyRDD()
        b = b if b is not None else self._sc.emptyRDD()
        return _check_rdd(self.func(to_datetime(time_ms), a, b), self.func)


class _MultiParentDStream(DStream[Any]):
    """A stream whose RDD at t combines the RDDs of several same-slide parents at t."""

    _what = ""

    def __init__(self, parents: list[DStream[Any]]) -> None:
        if not parents:
            raise ValueError(f"StreamingContext.{self._what} needs at least one DStream")
        super().__init__(parents[0]._ssc)
        _same_slide(parents, self._what)
        self.parents = list(parents)

    @property
    def _slide_ms(self) -> int:
        return self.parents[0]._slide_ms

    @property
    def _dependencies(self) -> list[DStream[Any]]:
        return list(self.parents)

    def _parent_rdds(self, time_ms: int) -> list[Any]:
        rdds = []
        for parent in self.parents:
            rdd = parent._get_or_compute(time_ms)
            if rdd is None:
                raise RuntimeError(
                    f"could not generate an RDD from parent {parent!r} at time "
                    f"{time_ms} ms for StreamingContext.{self._what}"
                )
            rdds.append(rdd)
        return rdds


class MultiTransformedDStream(_MultiParentDStream):
    """``StreamingContext.transform``: RDD at t = ``func([parent RDDs at t])``."""

    _what = "transform"

    def __init__(self, parents: list[DStream[Any]], func: Callable[[list[Any]], Any]) -> None:
        super().__init__(parents)
        self.func = func

    def _compute(self, time_ms: int) -> Any:
        result = self.func(self._parent_rdds(time_ms))
        if result is None:
            raise TypeError(
                f"StreamingContext.transform function {self.func!r} returned None "
                f"at time {time_ms} ms; it must return an RDD"
            )
        return _check_rdd(result, self.func)


class UnionDStream(_MultiParentDStream):
    """``StreamingContext.union``: RDD at t = union of the parents' RDDs at t."""

    _what = "union"

    def _compute(self, time_ms: int) -> Any:
        rdds = self._parent_rdds(time_ms)
        return self._sc.union(rdds) if rdds else None


def _same_slide(parents: list[DStream[Any]], what: str) -> None:
    slides = sorted({p._slide_ms for p in parents})
    if len(slides) > 1:
        raise ValueError(
            f"all DStreams given to {what} should have the same slide duration, got "
            f"{', '.join(fmt_ms(s) for s in slides)}"
        )
