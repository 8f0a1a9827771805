"""Dependencies between RDDs, and the partitioners that shuffles use.

A narrow dependency maps each child partition to a few parent partitions, so the child is
computed in the same task as its parents (pipelining). A :class:`ShuffleDependency` is a stage
boundary: its map side writes one bucket per reduce partition, keyed by ``Partitioner``.
The scheduler (``scheduler/dag.py``) reads these objects; it never looks inside an RDD's compute.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dstreams.hashing import portable_hash

if TYPE_CHECKING:
    from dstreams.core.rdd import RDD

__all__ = [
    "Dependency",
    "NarrowDependency",
    "OneToOneDependency",
    "RangeDependency",
    "ManyToOneDependency",
    "ShuffleDependency",
    "Partitioner",
]

_shuffle_ids = itertools.count()


class Partitioner:
    """Sends key ``k`` to partition ``partitionFunc(k) % numPartitions`` (PySpark's rule)."""

    def __init__(self, numPartitions: int, partitionFunc: Callable[[Any], int] = portable_hash):
        if not isinstance(numPartitions, int) or numPartitions < 1:
            raise ValueError(f"numPartitions={numPartitions!r} must be a positive integer")
        self.numPartitions = numPartitions
        self.partitionFunc = partitionFunc

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Partitioner)
            and self.numPartitions == other.numPartitions
            and self.partitionFunc == other.partitionFunc
        )

    def __hash__(self) -> int:
        return hash((self.numPartitions, id(self.partitionFunc)))

    def __call__(self, k: Any) -> int:
        return self.partitionFunc(k) % self.numPartitions

    def __repr__(self) -> str:
        name = getattr(self.partitionFunc, "__name__", repr(self.partitionFunc))
        return f"Partitioner({self.numPartitions}, {name})"


class Dependency:
    """An edge from a child RDD to one parent."""

    def __init__(self, rdd: RDD[Any]) -> None:
        self.rdd = rdd


class NarrowDependency(Dependency):
    """Each child partition depends on a known, small set of parent partitions."""

    def get_parents(self, partition: int) -> list[int]:
        raise NotImplementedError


class OneToOneDependency(NarrowDependency):
    def get_parents(self, partition: int) -> list[int]:
        return [partition]


class RangeDependency(NarrowDependency):
    """Child partitions ``[out_start, out_start+length)`` are parent ``[in_start, ...)``."""

    def __init__(self, rdd: RDD[Any], in_start: int, out_start: int, length: int) -> None:
        super().__init__(rdd)
        self.in_start, self.out_start, self.length = in_start, out_start, length

    def get_parents(self, partition: int) -> list[int]:
        if self.out_start <= partition < self.out_start + self.length:
            return [partition - self.out_start + self.in_start]
        return []


class ManyToOneDependency(NarrowDependency):
    """An explicit child -> parents table (coalesce, cartesian)."""

    def __init__(self, rdd: RDD[Any], parents: list[list[int]]) -> None:
        super().__init__(rdd)
        self.parents = parents

    def get_parents(self, partition: int) -> list[int]:
        return self.parents[partition]


class ShuffleDependency(Dependency):
    """A stage boundary: the parent's records are bucketed by ``partitioner`` on the map side."""

    def __init__(self, rdd: RDD[Any], partitioner: Partitioner) -> None:
        super().__init__(rdd)
        self.partitioner = partitioner
        self.shuffle_id = next(_shuffle_ids)
