"""Key-value operators of :class:`~dstreams.RDD` (PySpark's pair-RDD surface), as a mixin.

Everything here composes three primitives: ``mapPartitions`` (map-side combine and merge),
``partitionBy`` (the shuffle) and ``union`` (joins and cogroup tag each side's values, union the
sides and group, exactly as PySpark's ``join.py`` does, so results and partition counts match).
"""

from __future__ import annotations

import bisect
import copy
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from dstreams.core.dependency import Partitioner
from dstreams.hashing import portable_hash

if TYPE_CHECKING:
    from dstreams.core.rdd import RDD

__all__ = ["PairsMixin", "ResultIterable", "not_a_pair"]


class ResultIterable(list):  # type: ignore[type-arg]
    """The values of one key after ``groupByKey``/``cogroup``: a list-like iterable.

    PySpark's ``ResultIterable`` is iterable and has ``len``; this one is a ``list`` subclass, so
    it also supports indexing and compares equal to a list with the same items.
    """

    @property
    def data(self) -> list[Any]:
        return list(self)

    @property
    def maxindex(self) -> int:
        return len(self)


def not_a_pair(record: Any, op: str) -> TypeError:
    """The error for a record that is not a (key, value) pair, naming it and the fix."""
    text = repr(record)
    if len(text) > 60:
        text = text[:57] + "..."
    return TypeError(
        f"{op} needs an RDD of (key, value) pairs, but got the record {text} "
        f"({type(record).__name__}); map each record to a 2-tuple first, "
        f"e.g. rdd.map(lambda x: (x, 1))"
    )


def _reduce_locally(func: Callable[[Any, Any], Any], op: str) -> Callable[[Iterator[Any]], Any]:
    """Merge the values of each key with ``func`` (one dict per partition)."""
    if func is operator.add:
        return _add_locally(op)
    return _combine_locally(_identity, func, op)  # create runs once per key, not per record


def _identity(v: Any) -> Any:
    return v


def _add_locally(op: str) -> Callable[[Iterator[Any]], Any]:
    """``_reduce_locally(operator.add)`` with the addition inlined: the word-count hot loop,
    about 10% faster per record than calling ``operator.add``."""

    def combine(iterator: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
        d: dict[Any, Any] = {}
        for kv in iterator:
            try:
                k, v = kv
            except (TypeError, ValueError):
                raise not_a_pair(kv, op) from None
            if k in d:
                d[k] = d[k] + v
            else:
                d[k] = v
        return iter(d.items())

    return combine


def _combine_locally(
    create: Callable[[Any], Any], merge: Callable[[Any, Any], Any], op: str
) -> Callable[[Iterator[Any]], Iterator[tuple[Any, Any]]]:
    def combine(iterator: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
        d: dict[Any, Any] = {}
        for kv in iterator:
            try:
                k, v = kv
            except (TypeError, ValueError):
                raise not_a_pair(kv, op) from None
            if k in d:
                d[k] = merge(d[k], v)
            else:
                d[k] = create(v)
        return iter(d.items())

    return combine


def _group_locally(op: str) -> Callable[[Iterator[Any]], Iterator[tuple[Any, Any]]]:
    def group(iterator: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
        d: dict[Any, list[Any]] = {}
        for kv in iterator:
            try:
                k, v = kv
            except (TypeError, ValueError):
                raise not_a_pair(kv, op) from None
            lst = d.get(k)
            if lst is None:
                d[k] = [v]
            else:
                lst.append(v)
        return iter(d.items())

    return group


def _merge_groups(iterator: Iterator[tuple[Any, list[Any]]]) -> Iterator[tuple[Any, Any]]:
    d: dict[Any, list[Any]] = {}
    for k, vs in iterator:
        lst = d.get(k)
        if lst is None:
            d[k] = ResultIterable(vs)
        else:
            lst.extend(vs)
    return iter(d.items())


def _pairs_of(
    fill_left: bool, fill_right: bool
) -> Callable[[Iterable[tuple[int, Any]]], list[tuple[Any, Any]]]:
    """PySpark's join dispatch: split tagged values into both sides, pad an empty side with
    None when that side is outer, and pair every left value with every right value."""

    def dispatch(seq: Iterable[tuple[int, Any]]) -> list[tuple[Any, Any]]:
        vbuf: list[Any] = []
        wbuf: list[Any] = []
        for n, v in seq:
            (vbuf if n == 0 else wbuf).append(v)
        if fill_left and not vbuf:
            vbuf.append(None)
        if fill_right and not wbuf:
            wbuf.append(None)
        return [(v, w) for v in vbuf for w in wbuf]

    return dispatch


class PairsMixin:
    """PySpark's operators on RDDs of ``(key, value)`` pairs."""

    # -- value-side maps -------------------------------------------------------------------
    def mapValues(self: RDD[Any], f: Callable[[Any], Any]) -> RDD[Any]:
        """Apply ``f`` to each value, keeping keys and partitioning.

        Example:
            >>> sc.parallelize([("a", ["x", "y"]), ("b", ["p"])]).mapValues(len).collect()
            [('a', 2), ('b', 1)]
        """
        return self.map(lambda kv: (kv[0], f(kv[1])), preservesPartitioning=True)

    def flatMapValues(self: RDD[Any], f: Callable[[Any], Iterable[Any]]) -> RDD[Any]:
        """Apply ``f`` to each value and emit one pair per produced value.

        Example:
            >>> sc.parallelize([("a", [1, 2]), ("b", [3])]).flatMapValues(lambda v: v).collect()
            [('a', 1), ('a', 2), ('b', 3)]
        """
        return self.flatMap(lambda kv: ((kv[0], x) for x in f(kv[1])), preservesPartitioning=True)

    def keys(self: RDD[Any]) -> RDD[Any]:
        """The key of each pair.

        Example:
            >>> sc.parallelize([(1, 2), (3, 4)]).keys().collect()
            [1, 3]
        """
        return self.map(lambda kv: kv[0])

    def values(self: RDD[Any]) -> RDD[Any]:
        """The value of each pair.

        Example:
            >>> sc.parallelize([(1, 2), (3, 4)]).values().collect()
            [2, 4]
        """
        return self.map(lambda kv: kv[1])

    # -- the shuffle ---------------------------------------------------------------------------
    def partitionBy(
        self: RDD[Any],
        numPartitions: int | None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD[Any]:
        """Move each pair to partition ``partitionFunc(key) % numPartitions``.

        Example:
            >>> sc.parallelize([(k, None) for k in range(6)]).partitionBy(2).keys().glom().collect()
            [[0, 2, 4], [1, 3, 5]]
        """
        from dstreams.core.primitives import ShuffledRDD

        if numPartitions is None:
            numPartitions = self._defaultReducePartitions()
        partitioner = Partitioner(numPartitions, partitionFunc)
        if self.partitioner == partitioner:
            return self
        return ShuffledRDD(self, partitioner)

    def _defaultReducePartitions(self: RDD[Any]) -> int:
        if self.ctx._conf.contains("dstreams.default.parallelism"):
            return self.ctx.defaultParallelism
        return self.getNumPartitions()

    def combineByKey(
        self: RDD[Any],
        createCombiner: Callable[[Any], Any],
        mergeValue: Callable[[Any, Any], Any],
        mergeCombiners: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD[Any]:
        """Combine values per key: on the map side first, then across partitions.

        Example:
            >>> pairs = sc.parallelize([("a", 1), ("b", 1), ("a", 2)])
            >>> lists = pairs.combineByKey(lambda v: [v], lambda c, v: c + [v], lambda a, b: a + b)
            >>> sorted(lists.collect())
            [('a', [1, 2]), ('b', [1])]
        """
        for fn, name in (
            (createCombiner, "createCombiner"),
            (mergeValue, "mergeValue"),
            (mergeCombiners, "mergeCombiners"),
        ):
            if not callable(fn):
                raise TypeError(f"combineByKey: {name} must be a function, got {fn!r}")
        return self._combine_and_shuffle(
            _combine_locally(createCombiner, mergeValue, "combineByKey"),
            _reduce_locally(mergeCombiners, "combineByKey"),
            numPartitions,
            partitionFunc,
        )

    def _combine_and_shuffle(
        self: RDD[Any],
        local: Callable[[Iterator[Any]], Iterator[Any]],
        merge: Callable[[Iterator[Any]], Iterator[Any]],
        numPartitions: int | None,
        partitionFunc: Callable[[Any], int],
    ) -> RDD[Any]:
        """Combine each partition with ``local``, shuffle by key, then ``merge`` per partition.

        The local combine keeps the partitioner, so input already partitioned this way skips
        the shuffle (as PySpark's ``combineByKey``).
        """
        if numPartitions is None:
            numPartitions = self._defaultReducePartitions()
        shuffled = self.mapPartitions(local, True).partitionBy(numPartitions, partitionFunc)
        return shuffled.mapPartitions(merge, True)

    def reduceByKey(
        self: RDD[Any],
        func: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD[Any]:
        """Merge the values of each key with ``func`` (combining on the map side).

        Example:
            >>> from operator import add
            >>> sorted(sc.parallelize([("a", 1), ("b", 1), ("a", 1)]).reduceByKey(add).collect())
            [('a', 2), ('b', 1)]
        """
        if not callable(func):
            raise TypeError(f"reduceByKey expects a function, got {func!r}")
        combine = _reduce_locally(func, "reduceByKey")
        return self._combine_and_shuffle(combine, combine, numPartitions, partitionFunc)

    def reduceByKeyLocally(self: RDD[Any], func: Callable[[Any, Any], Any]) -> dict[Any, Any]:
        """Merge values per key and return the result to the driver as a dict."""
        combine = _reduce_locally(func, "reduceByKeyLocally")
        parts = self.mapPartitions(lambda it: [dict(combine(it))]).collect()
        return dict(combine(kv for d in parts for kv in d.items()))

    def groupByKey(
        self: RDD[Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD[Any]:
        """Group the values of each key into one list-like :class:`ResultIterable`.

        Example:
            >>> pairs = sc.parallelize([("a", 1), ("b", 1), ("a", 1)])
            >>> sorted(pairs.groupByKey().mapValues(len).collect())
            [('a', 2), ('b', 1)]
        """
        return self._combine_and_shuffle(
            _group_locally("groupByKey"), _merge_groups, numPartitions, partitionFunc
        )

    def aggregateByKey(
        self: RDD[Any],
        zeroValue: Any,
        seqFunc: Callable[[Any, Any], Any],
        combFunc: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD[Any]:
        """Aggregate values per key from a fresh copy of ``zeroValue``.

        Example:
            >>> pairs = sc.parallelize([("a", 1), ("b", 1), ("a", 2)])
            >>> sums = pairs.aggregateByKey(0, lambda acc, v: acc + v, lambda a, b: a + b)
            >>> sorted(sums.collect())
            [('a', 3), ('b', 1)]
        """

        def create(v: Any) -> Any:
            return seqFunc(copy.deepcopy(zeroValue), v)

        return self.combineByKey(create, seqFunc, combFunc, numPartitions, partitionFunc)

    def foldByKey(
        self: RDD[Any],
        zeroValue: Any,
        func: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD[Any]:
        """Fold values per key, starting from a fresh copy of ``zeroValue``.

        Example:
            >>> from operator import add
            >>> sorted(sc.parallelize([("a", 1), ("b", 1), ("a", 1)]).foldByKey(0, add).collect())
            [('a', 2), ('b', 1)]
        """
        return self.aggregateByKey(zeroValue, func, func, numPartitions, partitionFunc)

    # -- ordering ------------------------------------------------------------------------------
    def sortByKey(
        self: RDD[Any],
        ascending: bool = True,
        numPartitions: int | None = None,
        keyfunc: Callable[[Any], Any] = lambda x: x,
    ) -> RDD[Any]:
        """Sort by key with range partitioning (PySpark's sampling of the bounds).

        Example:
            >>> sc.parallelize([("b", 2), ("a", 1), ("c", 3)]).sortByKey().first()
            ('a', 1)
        """
        if numPartitions is None:
            numPartitions = self._defaultReducePartitions()

        def sort_partition(it: Iterator[Any]) -> Iterator[Any]:
            return iter(sorted(it, key=lambda kv: keyfunc(kv[0]), reverse=not ascending))

        if numPartitions == 1:
            if self.getNumPartitions() > 1:
                self = self.coalesce(1)
            return self.mapPartitions(sort_partition, True)
        rdd_size = self.count()
        if not rdd_size:
            return self
        max_sample_size = numPartitions * 20.0
        fraction = min(max_sample_size / max(rdd_size, 1), 1.0)
        samples = self.sample(False, fraction, 1).map(lambda kv: kv[0]).collect()
        samples = sorted(samples, key=keyfunc)
        bounds = [
            samples[int(len(samples) * (i + 1) / numPartitions)] for i in range(numPartitions - 1)
        ]
        n = numPartitions

        def range_partitioner(k: Any) -> int:
            p = bisect.bisect_left(bounds, keyfunc(k))
            return p if ascending else n - 1 - p

        return self.partitionBy(numPartitions, range_partitioner).mapPartitions(
            sort_partition, True
        )

    def repartitionAndSortWithinPartitions(
        self: RDD[Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
        ascending: bool = True,
        keyfunc: Callable[[Any], Any] = lambda x: x,
    ) -> RDD[Any]:
        """Partition by key, then sort each partition by key (one shuffle)."""
        if numPartitions is None:
            numPartitions = self._defaultReducePartitions()

        def sort_partition(it: Iterator[Any]) -> Iterator[Any]:
            return iter(sorted(it, key=lambda kv: keyfunc(kv[0]), reverse=not ascending))

        return self.partitionBy(numPartitions, partitionFunc).mapPartitions(sort_partition, True)

    def sampleByKey(
        self: RDD[Any],
        withReplacement: bool,
        fractions: dict[Any, float],
        seed: int | None = None,
    ) -> RDD[Any]:
        """A sample with a fraction per key (PySpark's sampler, see ``core/sampling.py``)."""
        for key, frac in fractions.items():
            if frac < 0.0:
                raise ValueError(f"fraction {frac!r} for key {key!r} must be >= 0")
            if not withReplacement and frac > 1.0:
                raise ValueError(
                    f"fraction {frac!r} for key {key!r} must be in [0, 1] without replacement"
                )
        from dstreams.core.sampling import StratifiedSampler

        sampler = StratifiedSampler(withReplacement, fractions, seed)
        return self.mapPartitionsWithIndex(sampler.func, True)

    def sortBy(
        self: RDD[Any],
        keyfunc: Callable[[Any], Any],
        ascending: bool = True,
        numPartitions: int | None = None,
    ) -> RDD[Any]:
        """Sort by ``keyfunc(x)``.

        Example:
            >>> sc.parallelize([3, 1, 2]).sortBy(lambda x: -x).collect()
            [3, 2, 1]
        """
        return self.keyBy(keyfunc).sortByKey(ascending, numPartitions).values()

    # -- joins ---------------------------------------------------------------------------------
    def _tagged_group(self: RDD[Any], others: list[RDD[Any]], numPartitions: int | None) -> Any:
        tagged = []
        for i, rdd in enumerate([self, *others]):
            tagged.append(rdd.mapValues(lambda v, i=i: (i, v)))
        if numPartitions is None and self.ctx._conf.contains("dstreams.default.parallelism"):
            numPartitions = self.ctx.defaultParallelism
        from dstreams.core.primitives import union_for_grouping

        return union_for_grouping(self.ctx, tagged, numPartitions).groupByKey(numPartitions)

    def join(self: RDD[Any], other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        """Inner join: ``(k, (v, w))`` for every matching pair.

        Example:
            >>> x = sc.parallelize([("a", 1), ("b", 4)])
            >>> sorted(x.join(sc.parallelize([("a", 2), ("a", 3)])).collect())
            [('a', (1, 2)), ('a', (1, 3))]
        """
        return self._tagged_group([other], numPartitions).flatMapValues(_pairs_of(False, False))

    def leftOuterJoin(
        self: RDD[Any], other: RDD[Any], numPartitions: int | None = None
    ) -> RDD[Any]:
        """``(k, (v, w))``, with ``w`` None when ``other`` lacks the key.

        Example:
            >>> x = sc.parallelize([("a", 1), ("b", 4)])
            >>> sorted(x.leftOuterJoin(sc.parallelize([("a", 2)])).collect())
            [('a', (1, 2)), ('b', (4, None))]
        """
        return self._tagged_group([other], numPartitions).flatMapValues(_pairs_of(False, True))

    def rightOuterJoin(
        self: RDD[Any], other: RDD[Any], numPartitions: int | None = None
    ) -> RDD[Any]:
        """``(k, (v, w))``, with ``v`` None when ``self`` lacks the key.

        Example:
            >>> x = sc.parallelize([("a", 1), ("b", 4)])
            >>> sorted(sc.parallelize([("a", 2)]).rightOuterJoin(x).collect())
            [('a', (2, 1)), ('b', (None, 4))]
        """
        return self._tagged_group([other], numPartitions).flatMapValues(_pairs_of(True, False))

    def fullOuterJoin(
        self: RDD[Any], other: RDD[Any], numPartitions: int | None = None
    ) -> RDD[Any]:
        """``(k, (v, w))`` for every key of either side, None for the missing side.

        Example:
            >>> x = sc.parallelize([("a", 1), ("b", 4)])
            >>> sorted(x.fullOuterJoin(sc.parallelize([("a", 2), ("c", 8)])).collect())
            [('a', (1, 2)), ('b', (4, None)), ('c', (None, 8))]
        """
        return self._tagged_group([other], numPartitions).flatMapValues(_pairs_of(True, True))

    def cogroup(self: RDD[Any], other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        """``(k, (values in self, values in other))`` for every key of either side.

        Example:
            >>> x = sc.parallelize([("a", 1), ("b", 4)])
            >>> grouped = x.cogroup(sc.parallelize([("a", 2)]))
            >>> [(k, tuple(map(list, v))) for k, v in sorted(grouped.collect())]
            [('a', ([1], [2])), ('b', ([4], []))]
        """
        return self.groupWith(other, numPartitions=numPartitions)

    def groupWith(self: RDD[Any], *others: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        """Cogroup with any number of RDDs: one ResultIterable per RDD."""
        n = 1 + len(others)

        def dispatch(seq: Iterable[tuple[int, Any]]) -> tuple[ResultIterable, ...]:
            bufs: list[ResultIterable] = [ResultIterable() for _ in range(n)]
            for i, v in seq:
                bufs[i].append(v)
            return tuple(bufs)

        return self._tagged_group(list(others), numPartitions).mapValues(dispatch)

    def subtractByKey(
        self: RDD[Any], other: RDD[Any], numPartitions: int | None = None
    ) -> RDD[Any]:
        """Pairs of ``self`` whose key is not in ``other``.

        Example:
            >>> x = sc.parallelize([("a", 1), ("b", 4), ("b", 5)])
            >>> sorted(x.subtractByKey(sc.parallelize([("a", 3)])).collect())
            [('b', 4), ('b', 5)]
        """

        def filter_func(pair: tuple[Any, Any]) -> bool:
            _, (val1, val2) = pair
            return bool(val1) and not val2

        return self.cogroup(other, numPartitions).filter(filter_func).flatMapValues(lambda x: x[0])

    def subtract(self: RDD[Any], other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        """Elements of ``self`` not in ``other``.

        Example:
            >>> sorted(sc.parallelize([1, 2, 3, 4]).subtract(sc.parallelize([2, 4])).collect())
            [1, 3]
        """
        rdd = other.map(lambda x: (x, True))
        return self.map(lambda x: (x, True)).subtractByKey(rdd, numPartitions).keys()

    def intersection(self: RDD[Any], other: RDD[Any]) -> RDD[Any]:
        """Distinct elements present in both RDDs.

        Example:
            >>> both = sc.parallelize([1, 2, 3, 3]).intersection(sc.parallelize([3, 1, 5]))
            >>> sorted(both.collect())
            [1, 3]
        """
        return (
            self.map(lambda v: (v, None))
            .cogroup(other.map(lambda v: (v, None)))
            .filter(lambda k_vs: all(k_vs[1]))
            .keys()
        )
