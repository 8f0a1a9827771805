"""Numeric actions of :class:`~dstreams.RDD` and :class:`StatCounter` (PySpark's).

``stats`` merges one :class:`StatCounter` per partition; ``histogram`` follows PySpark's bucket
rules exactly (evenly spaced buckets found from the min and max, the last bucket closed).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from functools import reduce as _reduce
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dstreams.core.rdd import RDD

__all__ = ["NumericMixin", "StatCounter"]


class StatCounter:
    """Count, mean, variance, min and max in one pass (PySpark's ``StatCounter``)."""

    def __init__(self, values: Any = ()) -> None:
        self.n = 0
        self.mu = 0.0
        self.m2 = 0.0
        self.maxValue = float("-inf")
        self.minValue = float("inf")
        for v in values:
            self.merge(v)

    def merge(self, value: Any) -> StatCounter:
        delta = value - self.mu
        self.n += 1
        self.mu += delta / self.n
        self.m2 += delta * (value - self.mu)
        self.maxValue = max(self.maxValue, value)
        self.minValue = min(self.minValue, value)
        return self

    def mergeStats(self, other: StatCounter) -> StatCounter:
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mu, self.m2 = other.n, other.mu, other.m2
            self.maxValue, self.minValue = other.maxValue, other.minValue
            return self
        delta = other.mu - self.mu
        n = self.n + other.n
        self.mu = (self.mu * self.n + other.mu * other.n) / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n
        self.maxValue = max(self.maxValue, other.maxValue)
        self.minValue = min(self.minValue, other.minValue)
        return self

    def count(self) -> int:
        return self.n

    def mean(self) -> float:
        """The mean of the elements.

        Example:
            >>> sc.parallelize([1, 2, 3]).mean()
            2.0
        """
        return float(self.mu) if self.n else float("nan")

    def sum(self) -> float:
        """The sum of the elements.

        Example:
            >>> sc.parallelize([1.0, 2.0, 3.0]).sum()
            6.0
        """
        return self.n * self.mu

    def min(self) -> Any:
        """The smallest element (by ``key`` if given).

        Example:
            >>> sc.parallelize([2.0, 5.0, 43.0, 10.0]).min()
            2.0
        """
        return self.minValue

    def max(self) -> Any:
        """The largest element (by ``key`` if given).

        Example:
            >>> sc.parallelize([1.0, 5.0, 43.0, 10.0]).max()
            43.0
        """
        return self.maxValue

    def variance(self) -> float:
        """The population variance.

        Example:
            >>> sc.parallelize([1, 2, 3]).variance()
            0.6666666666666666
        """
        return self.m2 / self.n if self.n else float("nan")

    def sampleVariance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else float("nan")

    def stdev(self) -> float:
        """The population standard deviation.

        Example:
            >>> sc.parallelize([1, 2, 3]).stdev()
            0.816496580927726
        """
        return math.sqrt(self.variance())

    def sampleStdev(self) -> float:
        return math.sqrt(self.sampleVariance())

    def __repr__(self) -> str:
        return (
            f"(count: {self.count()}, mean: {self.mean()}, stdev: {self.stdev()}, "
            f"max: {self.max()}, min: {self.min()})"
        )


class NumericMixin:
    """PySpark's numeric RDD actions."""

    def sum(self: RDD[Any]) -> Any:
        """The sum of the elements.

        Example:
            >>> sc.parallelize([1.0, 2.0, 3.0]).sum()
            6.0
        """
        return sum(self.ctx._run_job_per_partition(self, sum))

    def max(self: RDD[Any], key: Callable[[Any], Any] | None = None) -> Any:
        """The largest element (by ``key`` if given).

        Example:
            >>> sc.parallelize([1.0, 5.0, 43.0, 10.0]).max()
            43.0
        """
        return self.reduce(max if key is None else (lambda a, b: max(a, b, key=key)))

    def min(self: RDD[Any], key: Callable[[Any], Any] | None = None) -> Any:
        """The smallest element (by ``key`` if given).

        Example:
            >>> sc.parallelize([2.0, 5.0, 43.0, 10.0]).min()
            2.0
        """
        return self.reduce(min if key is None else (lambda a, b: min(a, b, key=key)))

    def stats(self: RDD[Any]) -> StatCounter:
        """Count, mean, variance, min and max in one job (a :class:`StatCounter`).

        Example:
            >>> sc.parallelize([1, 2, 3]).stats().count()
            3
        """
        parts = self.ctx._run_job_per_partition(self, StatCounter)
        return _reduce(StatCounter.mergeStats, parts, StatCounter())

    def mean(self: RDD[Any]) -> float:
        """The mean of the elements.

        Example:
            >>> sc.parallelize([1, 2, 3]).mean()
            2.0
        """
        return self.stats().mean()

    def variance(self: RDD[Any]) -> float:
        """The population variance.

        Example:
            >>> sc.parallelize([1, 2, 3]).variance()
            0.6666666666666666
        """
        return self.stats().variance()

    def stdev(self: RDD[Any]) -> float:
        """The population standard deviation.

        Example:
            >>> sc.parallelize([1, 2, 3]).stdev()
            0.816496580927726
        """
        return self.stats().stdev()

    def sampleVariance(self: RDD[Any]) -> float:
        return self.stats().sampleVariance()

    def sampleStdev(self: RDD[Any]) -> float:
        return self.stats().sampleStdev()

    def sumApprox(self: RDD[Any], timeout: int, confidence: float = 0.95) -> float:
        """The exact sum (dstreams computes it fully within any timeout)."""
        return float(self.sum())

    def meanApprox(self: RDD[Any], timeout: int, confidence: float = 0.95) -> float:
        """The exact mean (dstreams computes it fully within any timeout)."""
        return self.mean()

    def histogram(self: RDD[Any], buckets: Any) -> tuple[list[Any], list[int]]:
        """Bucket boundaries and counts, as PySpark's ``histogram``.

        ``buckets`` is a number of evenly spaced buckets between the min and the max, or a
        sorted list of boundaries ``[1, 10, 20]`` meaning ``[1, 10)`` and ``[10, 20]``.
        None and NaN elements are ignored.

        Example:
            >>> sc.parallelize(range(51)).histogram(2)
            ([0, 25, 50], [25, 26])
        """
        if isinstance(buckets, int) and not isinstance(buckets, bool):
            if buckets < 1:
                raise ValueError(f"number of buckets must be >= 1, got {buckets}")
            filtered = self.filter(_comparable)

            def minmax(a: Any, b: Any) -> Any:
                return (min(a[0], b[0]), max(a[1], b[1]))

            if filtered.isEmpty():
                raise ValueError("can not generate buckets from an empty RDD")
            minv, maxv = filtered.map(lambda x: (x, x)).reduce(minmax)
            if minv == maxv or buckets == 1:
                return [minv, maxv], [filtered.count()]
            try:
                inc = (maxv - minv) / buckets
            except TypeError:
                raise TypeError("can not generate buckets with non-numbers in the RDD") from None
            if math.isinf(inc):
                raise ValueError("can not generate buckets with an infinite value")
            inc = int(inc)  # keep integer boundaries when they are exact
            if inc * buckets != maxv - minv:
                inc = (maxv - minv) * 1.0 / buckets
            bounds = [i * inc + minv for i in range(buckets)]
            bounds.append(maxv)
            even = True
        elif isinstance(buckets, (list, tuple)):
            if len(buckets) < 2:
                raise ValueError(f"buckets {buckets!r} should have more than one value")
            if any(not _comparable(b) for b in buckets):
                raise ValueError(f"buckets {buckets!r} can not contain None or NaN")
            if sorted(buckets) != list(buckets):
                raise ValueError(f"buckets {buckets!r} should be sorted")
            if len(set(buckets)) != len(buckets):
                raise ValueError(f"buckets {buckets!r} should not contain duplicates")
            bounds = list(buckets)
            minv, maxv = bounds[0], bounds[-1]
            even, inc = False, None
            try:
                steps = [bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1)]
            except TypeError:
                pass  # boundaries that do not support '-'
            else:
                if max(steps) - min(steps) < 1e-10:
                    even = True
                    inc = (maxv - minv) / (len(bounds) - 1)
        else:
            raise TypeError(
                f"buckets should be a list or tuple of boundaries or a number, got {buckets!r}"
            )

        def count_part(it: Iterator[Any]) -> list[int]:
            counters = [0] * len(bounds)
            for x in it:
                if not _comparable(x) or x > maxv or x < minv:
                    continue
                t = int((x - minv) / inc) if even else bisect.bisect_right(bounds, x) - 1
                counters[t] += 1
            last = counters.pop()  # the last bucket is closed on the right
            counters[-1] += last
            return counters

        parts = self.ctx._run_job_per_partition(self, count_part)
        counts = _reduce(lambda a, b: [i + j for i, j in zip(a, b)], parts)
        return (bounds if isinstance(buckets, int) else buckets), counts


def _comparable(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))
