"""The primitive RDDs that every operator of :class:`~dstreams.RDD` is composed from.

* :class:`MapPartitionsRDD`: ``f(split, parent iterator)``; every element-wise operator, the
  map-side combine and the reduce-side merge (narrow, pipelined in one task);
* :class:`ShuffledRDD`: ``partitionBy``; the only wide dependency (a stage boundary);
* :class:`UnionRDD` and :class:`PartitionerAwareUnionRDD`: unions (the second, internal, lines
  up co-partitioned inputs so that a following grouping needs no shuffle);
* :class:`CoalescedRDD`, :class:`CartesianRDD`, :class:`ZippedRDD`: narrow many-to-one.

Source RDDs (parallelized collections and files) live in ``core/io.py``.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from dstreams.core.dependency import (
    Dependency,
    ManyToOneDependency,
    NarrowDependency,
    OneToOneDependency,
    Partitioner,
    RangeDependency,
    ShuffleDependency,
)
from dstreams.core.rdd import RDD

if TYPE_CHECKING:
    from dstreams.core.context import Context
    from dstreams.scheduler.task import TaskContext

__all__ = [
    "MapPartitionsRDD",
    "ShuffledRDD",
    "UnionRDD",
    "PartitionerAwareUnionRDD",
    "CoalescedRDD",
    "CartesianRDD",
    "ZippedRDD",
    "union_for_grouping",
]

T = TypeVar("T")
U = TypeVar("U")


class MapPartitionsRDD(RDD[U]):
    """``f(split, parent_iterator)`` over each parent partition: every narrow operator."""

    def __init__(
        self,
        prev: RDD[Any],
        f: Callable[[int, Iterator[Any]], Iterable[U]],
        preservesPartitioning: bool = False,
    ) -> None:
        super().__init__(
            prev.ctx,
            [OneToOneDependency(prev)],
            prev.getNumPartitions(),
            prev.partitioner if preservesPartitioning else None,
        )
        self.func = f

    def compute(self, split: int, tctx: TaskContext) -> Iterator[U]:
        return iter(self.func(split, self._deps[0].rdd.iterator(split, tctx)))


class ShuffledRDD(RDD[tuple[Any, Any]]):
    """The records of a pair RDD, moved so that key ``k`` lands in ``partitioner(k)``.

    The map side (``scheduler``) buckets each parent partition; this RDD's ``compute`` reads
    bucket ``split`` of every map output, in map-partition order.
    """

    def __init__(self, prev: RDD[Any], partitioner: Partitioner) -> None:
        dep = ShuffleDependency(prev, partitioner)
        super().__init__(prev.ctx, [dep], partitioner.numPartitions, partitioner)
        self.shuffle_id = dep.shuffle_id
        if prev.ctx is not None:
            weakref.finalize(dep, prev.ctx._remove_shuffle, dep.shuffle_id)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_deps"] = []  # the worker reads map outputs; it never needs the parent
        return state

    def compute(self, split: int, tctx: TaskContext) -> Iterator[tuple[Any, Any]]:
        return tctx.fetch_shuffle(self.shuffle_id, split)


class UnionRDD(RDD[T]):
    """The partitions of several RDDs, one after the other."""

    def __init__(self, ctx: Context, rdds: list[RDD[Any]]) -> None:
        deps: list[Dependency] = []
        pos = 0
        for r in rdds:
            deps.append(RangeDependency(r, 0, pos, r.getNumPartitions()))
            pos += r.getNumPartitions()
        super().__init__(ctx, deps, pos)

    def compute(self, split: int, tctx: TaskContext) -> Iterator[T]:
        for dep in self._deps:
            assert isinstance(dep, RangeDependency)
            parents = dep.get_parents(split)
            if parents:
                return dep.rdd.iterator(parents[0], tctx)
        raise IndexError(f"partition {split} out of range for {self!r}")


def union_for_grouping(ctx: Context, rdds: list[RDD[Any]], numPartitions: int | None) -> RDD[Any]:
    """A union for an operator that next groups by key into ``numPartitions`` partitions.

    When every input already has the same partitioner with ``numPartitions`` partitions, the
    union lines their partitions up (Spark's PartitionerAwareUnionRDD) and keeps the
    partitioner, so the grouping that follows needs no shuffle. The grouped result is
    identical, order included: after a shuffle, reduce partition ``i`` would receive exactly
    partition ``i`` of each input, in input order. Otherwise it is ``ctx.union``. Internal: the
    public ``union`` keeps PySpark's concatenation.
    """
    first = rdds[0].partitioner
    if (
        numPartitions is not None
        and first is not None
        and first.numPartitions == numPartitions
        and all(r.partitioner == first for r in rdds)
    ):
        return PartitionerAwareUnionRDD(ctx, rdds)
    return ctx.union(rdds)


class PartitionerAwareUnionRDD(RDD[T]):
    """Partition ``i`` is partition ``i`` of every input (all share one partitioner)."""

    def __init__(self, ctx: Context, rdds: list[RDD[Any]]) -> None:
        deps: list[Dependency] = [OneToOneDependency(r) for r in rdds]
        super().__init__(ctx, deps, rdds[0].getNumPartitions(), rdds[0].partitioner)

    def compute(self, split: int, tctx: TaskContext) -> Iterator[T]:
        return itertools.chain.from_iterable(d.rdd.iterator(split, tctx) for d in self._deps)


class CoalescedRDD(RDD[T]):
    """``n`` partitions, each the concatenation of a contiguous run of parent partitions."""

    def __init__(self, prev: RDD[T], n: int) -> None:
        m = prev.getNumPartitions()
        groups = [list(range(i * m // n, (i + 1) * m // n)) for i in range(n)]
        super().__init__(prev.ctx, [ManyToOneDependency(prev, groups)], n)

    def compute(self, split: int, tctx: TaskContext) -> Iterator[T]:
        dep = self._deps[0]
        assert isinstance(dep, NarrowDependency)
        return itertools.chain.from_iterable(
            dep.rdd.iterator(p, tctx) for p in dep.get_parents(split)
        )


class CartesianRDD(RDD[tuple[Any, Any]]):
    def __init__(self, a: RDD[Any], b: RDD[Any]) -> None:
        na, nb = a.getNumPartitions(), b.getNumPartitions()
        deps: list[Dependency] = [
            ManyToOneDependency(a, [[i // nb] for i in range(na * nb)]),
            ManyToOneDependency(b, [[i % nb] for i in range(na * nb)]),
        ]
        super().__init__(a.ctx, deps, na * nb)
        self._nb = nb

    def compute(self, split: int, tctx: TaskContext) -> Iterator[tuple[Any, Any]]:
        left = self._deps[0].rdd.iterator(split // self._nb, tctx)
        right = list(self._deps[1].rdd.iterator(split % self._nb, tctx))
        return ((x, y) for x in left for y in right)


class ZippedRDD(RDD[tuple[Any, Any]]):
    def __init__(self, a: RDD[Any], b: RDD[Any]) -> None:
        super().__init__(
            a.ctx, [OneToOneDependency(a), OneToOneDependency(b)], a.getNumPartitions()
        )

    def compute(self, split: int, tctx: TaskContext) -> Iterator[tuple[Any, Any]]:
        left = list(self._deps[0].rdd.iterator(split, tctx))
        right = list(self._deps[1].rdd.iterator(split, tctx))
        if len(left) != len(right):
            raise ValueError(
                f"Can only zip RDDs with the same number of elements in each partition: "
                f"partition {split} has {len(left)} and {len(right)}"
            )
        return zip(left, right)
