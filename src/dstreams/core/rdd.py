"""RDD: an immutable, partitioned dataset that only *describes* how to compute itself.

An RDD knows its partitions, its dependencies, an optional partitioner and how to compute one
partition from its parents' iterators (``compute(split, task_context)``). Nothing here executes:
actions hand the final RDD to ``Context.runJob``, which the scheduler splits into stages.

The operator surface is PySpark's. It is composed from the few primitive RDDs of
``core/primitives.py`` (``MapPartitionsRDD``, ``ShuffledRDD``, unions, coalesce, cartesian).
Element-wise operators are defined here; key-value operators live in ``core/pairs.py``, actions
in ``core/actions.py`` and numeric actions in ``core/numeric.py``, as mixins of :class:`RDD`.
"""

from __future__ import annotations

import itertools
import random
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dstreams.core.actions import ActionsMixin
from dstreams.core.dependency import (
    Dependency,
    Partitioner,
    ShuffleDependency,
)
from dstreams.core.numeric import NumericMixin
from dstreams.core.pairs import PairsMixin
from dstreams.core.sampling import RangeSampler, Sampler
from dstreams.storage.level import StorageLevel

if TYPE_CHECKING:
    from dstreams.core.context import Context
    from dstreams.scheduler.task import TaskContext

__all__ = ["RDD"]

T = TypeVar("T")  #: element type of an RDD
U = TypeVar("U")  #: element type after a transformation


class RDD(ActionsMixin, NumericMixin, PairsMixin, Generic[T]):
    """A Resilient Distributed Dataset (PySpark's ``pyspark.RDD``).

    Subclasses implement :meth:`compute`. The driver never calls ``compute``; worker processes do,
    through :meth:`iterator`, which adds caching and checkpoint reads.

    Example:
        >>> from dstreams import Context
        >>> with Context("local[2]") as sc:
        ...     sc.parallelize([1, 2, 3, 4], 2).map(lambda x: x * 10).glom().collect()
        [[10, 20], [30, 40]]
    """

    def __init__(
        self,
        ctx: Context,
        deps: list[Dependency],
        num_partitions: int,
        partitioner: Partitioner | None = None,
    ) -> None:
        self.ctx = ctx
        self._id = ctx._new_rdd_id() if ctx is not None else -1
        self._deps = deps
        self._num_partitions = num_partitions
        self.partitioner = partitioner
        self._storage_level: StorageLevel | None = None
        self.is_cached = False
        self.is_checkpointed = False
        self._checkpoint_requested = False
        self._checkpoint_searched = False  # see core/checkpoint.pending_checkpoints
        self._checkpoint_rdd: RDD[T] | None = None
        self._name: str | None = None

    #: True for sources whose partitions live on the driver and travel with each task
    ships_partition_data = False

    # -- the contract subclasses implement ------------------------------------------------
    def compute(self, split: int, tctx: TaskContext) -> Iterator[T]:
        """Yield the records of partition ``split`` (runs in a worker)."""
        raise NotImplementedError

    def partition_data(self, split: int) -> Any:
        """Driver-held records of ``split`` (only when ``ships_partition_data``)."""
        raise NotImplementedError

    def preferred_executors(self, split: int) -> list[str]:
        """Executors where ``split``'s input already lives (received blocks); [] for none."""
        return []

    def dependencies(self) -> list[Dependency]:
        """The parent edges; empty once the RDD is checkpointed (lineage truncated)."""
        return self._deps

    def iterator(self, split: int, tctx: TaskContext) -> Iterator[T]:
        """Records of ``split``: from the cache, from a checkpoint, or computed (Spark's order).

        A persisted RDD that misses its cache reads its checkpoint (if written) or computes,
        and caches the result.
        """
        if tctx.materialized:
            ahead = tctx.materialized.get((self._id, split))
            if ahead is not None:
                return iter(ahead)
        if self._storage_level is not None:
            data = tctx.get_cached(self._id, split)
            if data is None:
                data = list(self._compute_or_read_checkpoint(split, tctx))
                tctx.put_cached(self._id, split, data, self._storage_level)
            return iter(data)
        return self._compute_or_read_checkpoint(split, tctx)

    def _compute_or_read_checkpoint(self, split: int, tctx: TaskContext) -> Iterator[T]:
        if self._checkpoint_rdd is not None:
            return self._checkpoint_rdd.compute(split, tctx)
        return self.compute(split, tctx)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["ctx"] = NO_CONTEXT  # the driver's Context never travels to workers
        state.pop("_fallback_deps", None)  # the driver's alone
        return state

    # -- introspection ------------------------------------------------------------------------
    def id(self) -> int:
        """A unique id for this RDD within its Context."""
        return self._id

    @property
    def context(self) -> Context:
        """The :class:`~dstreams.Context` this RDD was created on."""
        return self.ctx

    def getNumPartitions(self) -> int:
        return self._num_partitions

    def name(self) -> str | None:
        return self._name

    def setName(self, name: str) -> RDD[T]:
        self._name = name
        return self

    def __repr__(self) -> str:
        return f"{self._name or type(self).__name__}[{self._id}]"

    def toDebugString(self) -> bytes:
        """The lineage in Spark's layout (bytes, as PySpark): ``|`` for narrow dependencies,
        ``+-`` and deeper indentation at each shuffle.

        Example:
            >>> print(sc.parallelize([1, 2], 2).map(lambda x: (x, 1)).toDebugString().decode())
            (2) MapPartitionsRDD[...] []
             |  ParallelCollectionRDD[...] []
        """
        return "\n".join(_debug_first(self)).encode("utf-8")

    # -- persistence --------------------------------------------------------------------------
    def cache(self) -> RDD[T]:
        """Keep computed partitions in executor memory (MEMORY_ONLY)."""
        return self.persist(StorageLevel.MEMORY_ONLY)

    def persist(self, storageLevel: StorageLevel = StorageLevel.MEMORY_ONLY) -> RDD[T]:
        """Keep partitions on the executors that compute them, once the first job runs."""
        if not isinstance(storageLevel, StorageLevel):
            raise TypeError(f"storageLevel must be a StorageLevel, got {storageLevel!r}")
        if self._storage_level is None and self.ctx is not None:
            weakref.finalize(self, self.ctx._unpersist_rdd_id, self._id)
        self._storage_level = storageLevel
        self.is_cached = True
        return self

    def unpersist(self, blocking: bool = False) -> RDD[T]:
        """Drop the cached partitions from every executor."""
        if self._storage_level is not None:
            self.ctx._unpersist_rdd_id(self._id)
        self._storage_level = None
        self.is_cached = False
        return self

    def getStorageLevel(self) -> StorageLevel:
        return self._storage_level or StorageLevel(False, False, False, False, 1)

    def checkpoint(self) -> None:
        """Save this RDD reliably (through fsspec) after the next job that computes it.

        The checkpoint directory must be set with ``Context.setCheckpointDir``. Once written,
        the lineage is truncated: the RDD reads its partitions from the files. Persist the RDD
        first to avoid computing it twice.
        """
        if self.ctx._checkpoint_dir is None:
            raise ValueError(
                "Checkpoint directory has not been set in the Context; "
                "call sc.setCheckpointDir(path) first"
            )
        self._checkpoint_requested = True

    def isCheckpointed(self) -> bool:
        return self.is_checkpointed

    def getCheckpointFile(self) -> str | None:
        rdd = self._checkpoint_rdd
        return getattr(rdd, "path", None)

    def _mark_checkpointed(self, checkpoint_rdd: RDD[T], keep_lineage: bool = False) -> None:
        """Read from ``checkpoint_rdd`` from now on; the lineage is dropped (truncated).

        With ``keep_lineage`` it is kept aside (``_fallback_deps``, not shipped to workers) so
        that an unreadable checkpoint file can be recomputed; ``release_lineage`` drops it.
        """
        if keep_lineage:
            self._fallback_deps: list[Dependency] | None = self._deps
        self._checkpoint_rdd = checkpoint_rdd
        self._deps = []
        self.is_checkpointed = True
        self._checkpoint_requested = False

    def _restore_lineage(self) -> bool:
        """Undo the truncation (a checkpoint file was unreadable); False if nothing was kept."""
        deps = getattr(self, "_fallback_deps", None)
        if deps is None:
            return False
        self._deps = deps
        self._checkpoint_rdd = None
        self.is_checkpointed = False
        self._fallback_deps = None
        return True

    def release_lineage(self) -> None:
        """Drop the lineage kept by ``_mark_checkpointed(keep_lineage=True)``."""
        self._fallback_deps = None

    # -- element-wise transformations -----------------------------------------------------
    def mapPartitionsWithIndex(
        self,
        f: Callable[[int, Iterator[T]], Iterable[U]],
        preservesPartitioning: bool = False,
    ) -> RDD[U]:
        """Apply ``f(partitionIndex, iterator)`` to each partition.

        Example:
            >>> sc.parallelize([1, 2, 3, 4], 4).mapPartitionsWithIndex(lambda i, it: [i]).sum()
            6
        """
        _check_callable(f, "mapPartitionsWithIndex")
        return _prim.MapPartitionsRDD(self, f, preservesPartitioning)

    def mapPartitionsWithSplit(
        self,
        f: Callable[[int, Iterator[T]], Iterable[U]],
        preservesPartitioning: bool = False,
    ) -> RDD[U]:
        """Deprecated alias of :meth:`mapPartitionsWithIndex` (as in PySpark)."""
        return self.mapPartitionsWithIndex(f, preservesPartitioning)

    def mapPartitions(
        self, f: Callable[[Iterator[T]], Iterable[U]], preservesPartitioning: bool = False
    ) -> RDD[U]:
        """Apply ``f(iterator)`` to each partition.

        Example:
            >>> sc.parallelize([1, 2, 3, 4], 2).mapPartitions(lambda it: [sum(it)]).collect()
            [3, 7]
        """
        _check_callable(f, "mapPartitions")
        return _prim.MapPartitionsRDD(self, lambda _, it: f(it), preservesPartitioning)

    def map(self, f: Callable[[T], U], preservesPartitioning: bool = False) -> RDD[U]:
        """Apply ``f`` to every element.

        Example:
            >>> sc.parallelize(["b", "a", "c"]).map(lambda x: (x, 1)).collect()
            [('b', 1), ('a', 1), ('c', 1)]
        """
        _check_callable(f, "map")
        return _prim.MapPartitionsRDD(self, lambda _, it: map(f, it), preservesPartitioning)

    def flatMap(self, f: Callable[[T], Iterable[U]], preservesPartitioning: bool = False) -> RDD[U]:
        """Apply ``f`` to every element and flatten the results.

        Example:
            >>> sc.parallelize(["a b", "c"]).flatMap(lambda s: s.split()).collect()
            ['a', 'b', 'c']
        """
        _check_callable(f, "flatMap")
        chain = itertools.chain.from_iterable
        return _prim.MapPartitionsRDD(self, lambda _, it: chain(map(f, it)), preservesPartitioning)

    def filter(self, f: Callable[[T], bool]) -> RDD[T]:
        """Keep the elements for which ``f`` is true.

        Example:
            >>> sc.parallelize([1, 2, 3, 4, 5]).filter(lambda x: x % 2 == 0).collect()
            [2, 4]
        """
        _check_callable(f, "filter")
        return _prim.MapPartitionsRDD(self, lambda _, it: filter(f, it), True)

    def glom(self) -> RDD[list[T]]:
        """One list per partition.

        Example:
            >>> sc.parallelize([1, 2, 3, 4], 2).glom().collect()
            [[1, 2], [3, 4]]
        """
        return _prim.MapPartitionsRDD(self, lambda _, it: [list(it)], False)

    def keyBy(self, f: Callable[[T], Any]) -> RDD[tuple[Any, T]]:
        """Pair each element with a key: ``(f(x), x)``.

        Example:
            >>> sc.parallelize(range(3)).keyBy(lambda x: x * x).collect()
            [(0, 0), (1, 1), (4, 2)]
        """
        _check_callable(f, "keyBy")
        return self.map(lambda x: (f(x), x))

    def union(self, other: RDD[U]) -> RDD[T | U]:
        """Concatenate the partitions of both RDDs (no deduplication).

        Example:
            >>> sc.parallelize([1, 1, 2], 1).union(sc.parallelize([3], 1)).collect()
            [1, 1, 2, 3]
        """
        if not isinstance(other, RDD):
            raise TypeError(f"union expects an RDD, got {other!r}")
        return self.ctx.union([self, other])

    def __add__(self, other: RDD[U]) -> RDD[T | U]:
        return self.union(other)

    def distinct(self, numPartitions: int | None = None) -> RDD[T]:
        """The distinct elements (shuffles).

        Example:
            >>> sorted(sc.parallelize([1, 1, 2, 3]).distinct().collect())
            [1, 2, 3]
        """
        return (
            self.map(lambda x: (x, None))
            .reduceByKey(lambda x, _: x, numPartitions)
            .map(lambda x: x[0])
        )

    def cartesian(self, other: RDD[U]) -> RDD[tuple[T, U]]:
        """All pairs ``(a, b)``; partition ``i * other.n + j`` pairs partitions i and j.

        Example:
            >>> sorted(sc.parallelize([1, 2]).cartesian(sc.parallelize(['a'])).collect())
            [(1, 'a'), (2, 'a')]
        """
        if not isinstance(other, RDD):
            raise TypeError(f"cartesian expects an RDD, got {other!r}")
        return _prim.CartesianRDD(self, other)

    def groupBy(
        self, f: Callable[[T], Any], numPartitions: int | None = None, partitionFunc: Any = None
    ) -> RDD[tuple[Any, Any]]:
        _check_callable(f, "groupBy")
        kwargs = {} if partitionFunc is None else {"partitionFunc": partitionFunc}
        return self.map(lambda x: (f(x), x)).groupByKey(numPartitions, **kwargs)

    def sample(self, withReplacement: bool, fraction: float, seed: int | None = None) -> RDD[T]:
        """A sample: the same elements as PySpark's for a seed (see ``core/sampling.py``).

        Example:
            >>> sc.parallelize(range(100), 4).sample(False, 0.1, 3).collect()
            [11, 15, 61, 63, 99]
        """
        if fraction < 0.0:
            raise ValueError(f"fraction={fraction!r} must be >= 0")
        if not withReplacement and fraction > 1.0:
            raise ValueError(f"fraction={fraction!r} must be in [0, 1] without replacement")
        return self.mapPartitionsWithIndex(Sampler(withReplacement, fraction, seed).func, True)

    def randomSplit(self, weights: list[float], seed: int | None = None) -> list[RDD[T]]:
        """Split by weights; deterministic for a seed."""
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights={weights!r} must be non-negative with a positive sum")
        s = float(sum(weights))
        bounds = [0.0]
        for w in weights:
            bounds.append(bounds[-1] + w / s)
        if seed is None:
            seed = random.randint(0, 2**32 - 1)
        return [
            self.mapPartitionsWithIndex(RangeSampler(lb, ub, seed).func, True)
            for lb, ub in zip(bounds, bounds[1:])
        ]

    def zipWithIndex(self) -> RDD[tuple[T, int]]:
        """Pair each element with its index; runs a job to count the partitions first.

        Example:
            >>> sc.parallelize(["a", "b", "c", "d"], 3).zipWithIndex().collect()
            [('a', 0), ('b', 1), ('c', 2), ('d', 3)]
        """
        starts = [0]
        n = self.getNumPartitions()
        if n > 1:
            counts = self.mapPartitions(lambda it: [sum(1 for _ in it)]).collect()
            for c in counts[:-1]:
                starts.append(starts[-1] + c)

        def func(k: int, it: Iterator[T]) -> Iterator[tuple[T, int]]:
            return zip(it, itertools.count(starts[k]))

        return self.mapPartitionsWithIndex(func)

    def zipWithUniqueId(self) -> RDD[tuple[T, int]]:
        """Pair elements with ids ``k, n+k, 2n+k, ...`` in partition k (no job needed).

        Example:
            >>> sc.parallelize(["a", "b", "c", "d", "e"], 3).zipWithUniqueId().collect()
            [('a', 0), ('b', 1), ('c', 4), ('d', 2), ('e', 5)]
        """
        n = self.getNumPartitions()

        def func(k: int, it: Iterator[T]) -> Iterator[tuple[T, int]]:
            return zip(it, itertools.count(k, n))

        return self.mapPartitionsWithIndex(func)

    def zip(self, other: RDD[U]) -> RDD[tuple[T, U]]:
        """Pair elements position by position; both RDDs need the same partition sizes.

        Example:
            >>> x = sc.parallelize(range(3), 2)
            >>> x.zip(x.map(lambda v: v * 10)).collect()
            [(0, 0), (1, 10), (2, 20)]
        """
        if self.getNumPartitions() != other.getNumPartitions():
            raise ValueError(
                f"Can only zip RDDs with the same number of partitions: "
                f"{self.getNumPartitions()} != {other.getNumPartitions()}"
            )
        return _prim.ZippedRDD(self, other)

    def coalesce(self, numPartitions: int, shuffle: bool = False) -> RDD[T]:
        """Fewer partitions by merging neighbours; with ``shuffle=True``, redistribute evenly.

        Example:
            >>> sc.parallelize([1, 2, 3, 4, 5], 3).coalesce(1).glom().collect()
            [[1, 2, 3, 4, 5]]
        """
        _check_positive(numPartitions, "numPartitions")
        if shuffle:
            return self.repartition(numPartitions)
        if numPartitions >= self.getNumPartitions():
            return self
        return _prim.CoalescedRDD(self, numPartitions)

    def repartition(self, numPartitions: int) -> RDD[T]:
        """Exactly ``numPartitions`` partitions, records spread round-robin (shuffles).

        Example:
            >>> sc.parallelize(range(10), 2).repartition(4).getNumPartitions()
            4
        """
        _check_positive(numPartitions, "numPartitions")

        def add_keys(split: int, it: Iterator[T]) -> Iterator[tuple[int, T]]:
            return zip(itertools.count(split), it)

        return (
            self.mapPartitionsWithIndex(add_keys)
            .partitionBy(numPartitions, _identity_hash)
            .values()
        )

    def pipe(self, command: str, env: dict[str, str] | None = None) -> RDD[str]:
        """Pipe each partition through an external command (one process per partition)."""
        import shlex
        import subprocess

        def func(it: Iterator[Any]) -> Iterator[str]:
            data = "".join(f"{x}\n" for x in it).encode("utf-8")
            out = subprocess.run(
                shlex.split(command), input=data, capture_output=True, env=env, check=True
            )
            return iter(out.stdout.decode("utf-8").splitlines())

        return self.mapPartitions(func)


def _debug_self(rdd: RDD[Any]) -> str:
    level = rdd._storage_level
    extra = f" [{level}]" if level is not None else " []"
    if rdd.is_checkpointed:
        extra += " (checkpointed)"
    return f"{rdd!r}{extra}"


def _debug_children(rdd: RDD[Any], prefix: str) -> list[str]:
    deps = rdd.dependencies()
    out: list[str] = []
    for i, d in enumerate(deps):
        shuffle = isinstance(d, ShuffleDependency)
        out += _debug(d.rdd, prefix, shuffle, i == len(deps) - 1)
    return out


def _next_prefix(rdd: RDD[Any]) -> tuple[str, str]:
    parts = f"({rdd.getNumPartitions()})"
    left = (len(parts) - 1) // 2
    return parts, " " * left + "|" + " " * (len(parts) - left)


def _debug_first(rdd: RDD[Any]) -> list[str]:
    parts, nxt = _next_prefix(rdd)
    return [f"{parts} {_debug_self(rdd)}", *_debug_children(rdd, nxt)]


def _debug(rdd: RDD[Any], prefix: str, shuffle: bool, last: bool) -> list[str]:
    if not shuffle:
        return [prefix + _debug_self(rdd), *_debug_children(rdd, prefix)]
    parts, tail = _next_prefix(rdd)
    this = prefix.rstrip(" ").removesuffix("|")
    nxt = this + ("  " if last else "| ") + tail
    return [f"{this}+-{parts} {_debug_self(rdd)}", *_debug_children(rdd, nxt)]


class _NoContext:
    """Stands in for the Context in RDDs shipped to workers: using it there is a user error."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(
            "It appears that you are attempting to use an RDD inside a transformation or "
            "action (for example rdd1.map(lambda x: rdd2.count())). RDD transformations and "
            "actions can only be invoked by the driver; compute rdd2's result first, or join "
            "the two RDDs."
        )

    def __reduce__(self) -> str:
        return "NO_CONTEXT"

    def __bool__(self) -> bool:
        return False


NO_CONTEXT: Any = _NoContext()


def _identity_hash(x: int) -> int:
    return x


def _check_callable(f: Any, op: str) -> None:
    if not callable(f):
        raise TypeError(f"{op} expects a function, got {f!r} ({type(f).__name__})")


def _check_positive(n: Any, what: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{what}={n!r} must be a positive integer")


# The primitives subclass RDD, so this module refers to them through their module (imported
# here, after RDD exists), whichever of the two modules is imported first.
from dstreams.core import primitives as _prim  # noqa: E402
