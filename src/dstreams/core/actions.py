"""Actions of :class:`~dstreams.RDD`: the operators that run a job and return to the driver.

Each action is a per-partition function handed to ``Context.runJob`` plus a small merge on the
driver, following PySpark's definitions so that results (and their order) match.
"""

from __future__ import annotations

import copy
import heapq
import math
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from functools import reduce as _reduce
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dstreams.core.rdd import RDD

__all__ = ["ActionsMixin"]


class ActionsMixin:
    """PySpark's RDD actions."""

    def collect(self: RDD[Any]) -> list[Any]:
        """All elements, in partition order.

        Example:
            >>> sc.parallelize([1, 2, 3], 2).collect()
            [1, 2, 3]
        """
        return self.ctx.runJob(self, list)

    def count(self: RDD[Any]) -> int:
        """The number of elements.

        Example:
            >>> sc.parallelize([2, 3, 4]).count()
            3
        """
        return sum(self.ctx._run_job_per_partition(self, _count))

    def first(self: RDD[Any]) -> Any:
        """The first element; ValueError if the RDD is empty.

        Example:
            >>> sc.parallelize([2, 3, 4]).first()
            2
        """
        rs = self.take(1)
        if rs:
            return rs[0]
        raise ValueError("RDD is empty")

    def take(self: RDD[Any], num: int) -> list[Any]:
        """The first ``num`` elements, scanning as few partitions as possible (as PySpark).

        Example:
            >>> sc.parallelize([2, 3, 4, 5, 6]).take(2)
            [2, 3]
        """
        items: list[Any] = []
        total_parts = self.getNumPartitions()
        parts_scanned = 0
        while len(items) < num and parts_scanned < total_parts:
            num_parts_to_try = 1
            if parts_scanned > 0:
                if len(items) == 0:
                    num_parts_to_try = parts_scanned * 4
                else:
                    num_parts_to_try = int(1.5 * num * parts_scanned / len(items)) - parts_scanned
                    num_parts_to_try = min(max(num_parts_to_try, 1), parts_scanned * 4)
            left = num - len(items)

            def take_up_to(it: Iterator[Any], left: int = left) -> list[Any]:
                out = []
                for x in it:
                    out.append(x)
                    if len(out) >= left:
                        break
                return out

            p = range(parts_scanned, min(parts_scanned + num_parts_to_try, total_parts))
            items += self.ctx.runJob(self, take_up_to, list(p))
            parts_scanned += num_parts_to_try
        return items[:num]

    def isEmpty(self: RDD[Any]) -> bool:
        """True if the RDD has no elements (looks at as few partitions as possible).

        Example:
            >>> sc.parallelize([]).isEmpty()
            True
        """
        return self.getNumPartitions() == 0 or len(self.take(1)) == 0

    def top(self: RDD[Any], num: int, key: Callable[[Any], Any] | None = None) -> list[Any]:
        """The ``num`` largest elements, largest first.

        Example:
            >>> sc.parallelize([10, 4, 2, 12, 3]).top(2)
            [12, 10]
        """
        parts = self.ctx._run_job_per_partition(self, lambda it: heapq.nlargest(num, it, key=key))
        return heapq.nlargest(num, (x for p in parts for x in p), key=key)

    def takeOrdered(self: RDD[Any], num: int, key: Callable[[Any], Any] | None = None) -> list[Any]:
        """The ``num`` smallest elements, in ascending order.

        Example:
            >>> sc.parallelize([10, 1, 2, 9, 3, 4, 5, 6, 7]).takeOrdered(3)
            [1, 2, 3]
        """
        parts = self.ctx._run_job_per_partition(self, lambda it: heapq.nsmallest(num, it, key=key))
        return heapq.nsmallest(num, (x for p in parts for x in p), key=key)

    def takeSample(
        self: RDD[Any], withReplacement: bool, num: int, seed: int | None = None
    ) -> list[Any]:
        """A sample of exactly ``num`` elements (fewer if the RDD is smaller), as PySpark's.

        With the same seed and partitioning it draws the same elements as PySpark, since the
        per-partition sampler and the driver-side shuffle use the same generators.
        """
        import random
        import sys

        max_sample_size = sys.maxsize - int(10.0 * math.sqrt(sys.maxsize))
        if num < 0:
            raise ValueError("Sample size cannot be negative.")
        if num > max_sample_size:
            raise ValueError(f"Sample size cannot be greater than {max_sample_size}.")
        if num == 0 or self.getNumPartitions() == 0:
            return []
        initial_count = self.count()
        if initial_count == 0:
            return []
        rand = random.Random(seed)
        if not withReplacement and num >= initial_count:
            samples = self.collect()
            rand.shuffle(samples)
            return samples
        fraction = _fraction_for_sample_size(num, initial_count, withReplacement)
        samples = self.sample(withReplacement, fraction, seed).collect()
        while len(samples) < num:  # rare: the fraction has a large safety margin
            seed = rand.randint(0, sys.maxsize)
            samples = self.sample(withReplacement, fraction, seed).collect()
        rand.shuffle(samples)
        return samples[0:num]

    # -- folding -------------------------------------------------------------------------------
    def reduce(self: RDD[Any], f: Callable[[Any, Any], Any]) -> Any:
        """Reduce all elements with a commutative, associative ``f``.

        Example:
            >>> from operator import add
            >>> sc.parallelize([1, 2, 3, 4, 5]).reduce(add)
            15
        """
        if not callable(f):
            raise TypeError(f"reduce expects a function, got {f!r}")

        def func(it: Iterator[Any]) -> list[Any]:
            it = iter(it)
            for first in it:
                return [_reduce(f, it, first)]
            return []  # an empty partition contributes nothing

        vals = [v for part in self.ctx._run_job_per_partition(self, func) for v in part]
        if vals:
            return _reduce(f, vals)
        raise ValueError("Can not reduce() empty RDD")

    def treeReduce(self: RDD[Any], f: Callable[[Any, Any], Any], depth: int = 2) -> Any:
        return self.reduce(f)

    def fold(self: RDD[Any], zeroValue: Any, op: Callable[[Any, Any], Any]) -> Any:
        """Fold each partition from ``zeroValue``, then fold the partition results.

        Example:
            >>> from operator import add
            >>> sc.parallelize([1, 2, 3, 4, 5]).fold(0, add)
            15
        """

        def func(it: Iterator[Any]) -> Any:
            acc = copy.deepcopy(zeroValue)
            for obj in it:
                acc = op(acc, obj)
            return acc

        vals = self.ctx._run_job_per_partition(self, func)
        return _reduce(op, vals, zeroValue)

    def aggregate(
        self: RDD[Any],
        zeroValue: Any,
        seqOp: Callable[[Any, Any], Any],
        combOp: Callable[[Any, Any], Any],
    ) -> Any:
        """Aggregate each partition with ``seqOp``, then combine with ``combOp``.

        Example:
            >>> seq = lambda acc, x: (acc[0] + x, acc[1] + 1)
            >>> comb = lambda a, b: (a[0] + b[0], a[1] + b[1])
            >>> sc.parallelize([1, 2, 3, 4]).aggregate((0, 0), seq, comb)
            (10, 4)
        """

        def func(it: Iterator[Any]) -> Any:
            acc = copy.deepcopy(zeroValue)
            for obj in it:
                acc = seqOp(acc, obj)
            return acc

        vals = self.ctx._run_job_per_partition(self, func)
        return _reduce(combOp, vals, zeroValue)

    def treeAggregate(
        self: RDD[Any],
        zeroValue: Any,
        seqOp: Callable[[Any, Any], Any],
        combOp: Callable[[Any, Any], Any],
        depth: int = 2,
    ) -> Any:
        return self.aggregate(zeroValue, seqOp, combOp)

    def toLocalIterator(self: RDD[Any], prefetchPartitions: bool = False) -> Iterator[Any]:
        """All elements, fetched one partition (one job) at a time."""
        for p in range(self.getNumPartitions()):
            yield from self.ctx.runJob(self, list, [p])

    def countApprox(self: RDD[Any], timeout: int, confidence: float = 0.95) -> int:
        """The exact count (dstreams computes it fully within any timeout it is given)."""
        return self.count()

    def countApproxDistinct(self: RDD[Any], relativeSD: float = 0.05) -> int:
        """The number of distinct elements, computed exactly (error 0 <= ``relativeSD``)."""
        if relativeSD < 0.000017:
            raise ValueError(f"relativeSD={relativeSD} should be greater than 0.000017")
        return self.distinct().count()

    # -- side effects --------------------------------------------------------------------------
    def foreach(self: RDD[Any], f: Callable[[Any], Any]) -> None:
        """Run ``f`` on every element, in the workers.

        Example:
            >>> sc.parallelize([1, 2, 3]).foreach(print)  # prints in the workers
        """

        def func(it: Iterator[Any]) -> int:
            for x in it:
                f(x)
            return 0

        self.ctx._run_job_per_partition(self, func)

    def foreachPartition(self: RDD[Any], f: Callable[[Iterator[Any]], Any]) -> None:
        """Run ``f`` on each partition's iterator, in the workers."""

        def func(it: Iterator[Any]) -> int:
            r = f(it)
            if r is not None and hasattr(r, "__next__"):
                for _ in r:
                    pass
            return 0

        self.ctx._run_job_per_partition(self, func)

    # -- counting and lookup -------------------------------------------------------------------
    def countByValue(self: RDD[Any]) -> dict[Any, int]:
        """How many times each element occurs (a defaultdict(int), as PySpark).

        Example:
            >>> sorted(sc.parallelize([1, 2, 1, 2, 2], 2).countByValue().items())
            [(1, 2), (2, 3)]
        """
        from collections import Counter

        parts = self.ctx._run_job_per_partition(self, lambda it: dict(Counter(it)))
        out: defaultdict[Any, int] = defaultdict(int)
        for d in parts:
            for k, v in d.items():
                out[k] += v
        return out

    def countByKey(self: RDD[Any]) -> dict[Any, int]:
        """How many pairs each key has (a defaultdict(int)).

        Example:
            >>> sorted(sc.parallelize([("a", 1), ("b", 1), ("a", 1)]).countByKey().items())
            [('a', 2), ('b', 1)]
        """
        return self.map(lambda kv: kv[0]).countByValue()

    def collectAsMap(self: RDD[Any]) -> dict[Any, Any]:
        """The pairs as a dict on the driver (a later pair wins for a repeated key).

        Example:
            >>> sc.parallelize([(1, 2), (3, 4)]).collectAsMap()
            {1: 2, 3: 4}
        """
        return dict(self.collect())

    def lookup(self: RDD[Any], key: Any) -> list[Any]:
        """The values for ``key``; scans one partition when the RDD has a partitioner.

        Example:
            >>> sc.parallelize([("a", 1), ("b", 2), ("a", 3)]).lookup("a")
            [1, 3]
        """
        values = self.filter(lambda kv: kv[0] == key).values()
        if self.partitioner is not None:
            return self.ctx.runJob(values, list, [self.partitioner(key)])
        return values.collect()

    # -- output ----------------------------------------------------------------------------------
    def saveAsTextFile(self: RDD[Any], path: str, compressionCodecClass: str | None = None) -> None:
        """Write ``str(x)`` lines to ``path/part-NNNNN`` (any fsspec URL), then ``_SUCCESS``."""
        from dstreams.core.io import save_as_text_file

        save_as_text_file(self, path, compressionCodecClass)

    def saveAsPickleFile(self: RDD[Any], path: str, batchSize: int = 10) -> None:
        """Write pickled partitions to ``path/part-NNNNN`` (read back with ``pickleFile``)."""
        from dstreams.core.io import save_as_pickle_file

        save_as_pickle_file(self, path)


def _fraction_for_sample_size(lower_bound: int, total: int, with_replacement: bool) -> float:
    """A sampling fraction that yields at least ``lower_bound`` elements with high probability."""
    fraction = float(lower_bound) / total
    if with_replacement:
        num_stdev = 9 if lower_bound < 12 else 5
        return fraction + num_stdev * math.sqrt(fraction / total)
    delta = 0.00005
    gamma = -math.log(delta) / total
    return min(1, fraction + gamma + math.sqrt(gamma * gamma + 2 * gamma * fraction))


def _count(it: Iterator[Any]) -> int:
    last = deque(enumerate(it, 1), maxlen=1)  # counts at C speed
    return last[0][0] if last else 0
