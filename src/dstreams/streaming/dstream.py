"""DStream: the base class of every stream, and PySpark's complete DStream API.

A DStream describes a sequence of RDDs, one per slide interval.  This module owns:

* the base contract every operator implements (``_slide_ms``, ``_dependencies``,
  ``_compute(time)``), and the shared machinery around it: ``_get_or_compute``
  (memoises one RDD per valid time, persists and marks checkpoints), ``_slice``,
  ``_initialize`` / ``_remember`` (zero time, remember durations, default
  checkpoint interval) and ``_clear_metadata`` (forgets old RDDs);
* the public operator surface, a line or two per method, built from a few
  primitives in ``operators/``: ``transform`` (``TransformedDStream``),
  ``transformWith``, windows (``WindowedDStream``, ``ReducedWindowedDStream``),
  state (``StateDStream``) and outputs (``ForEachDStream``).

It follows PySpark's ``python/pyspark/streaming/dstream.py`` (method names,
signatures, defaults and composition) and Spark's ``DStream.scala`` (time
validity, slicing, remembering, checkpoint interval).

Threading: DStreams are built on the user's thread before ``start()``.  After
start, ``_get_or_compute`` and ``_clear_metadata`` run on the job generator's
thread, and ``slice`` may run on a user thread; all of them hold the graph's lock.

Times and durations are integer milliseconds inside; users pass seconds.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dstreams.streaming._util import (
    check_function,
    fmt_ms,
    positional_arity,
    time_arg_to_ms,
    to_ms,
)

if TYPE_CHECKING:
    from datetime import datetime

    from dstreams.streaming.context import StreamingContext

__all__ = ["DStream", "DerivedDStream"]

_log = logging.getLogger(__name__)

T = TypeVar("T")  # element type of this stream
U = TypeVar("U")  # element type of a derived stream
K = TypeVar("K")  # key type of a pair stream
V = TypeVar("V")  # value type of a pair stream


class DStream(Generic[T]):
    """A discretized stream: a sequence of RDDs of ``T``, one per slide interval.

    Subclasses implement ``_slide_ms`` (property), ``_dependencies`` (property)
    and ``_compute(time_ms) -> RDD | None``.  They may set ``_must_checkpoint``
    (state that must be checkpointed periodically) and override
    ``_parent_remember_ms`` (how long parents must keep their RDDs).

    Example:
        >>> ssc.queueStream([[1, 2], [3]]).map(lambda x: x * 10).pprint()  # doctest: +SKIP
    """

    _must_checkpoint = False

    def __init__(self, ssc: StreamingContext) -> None:
        ssc._check_can_add_stream()
        self._ssc = ssc
        self._sc = ssc._sc
        self._zero_ms: int | None = None
        self._remember_ms: int | None = None
        self._checkpoint_ms: int | None = None
        self._storage_level: Any = None
        self._generated: dict[int, Any] = {}
        self.is_cached = False
        self.is_checkpointed = False
        #: the stream's position in its graph: stable across runs of the same program
        self._stream_id = ssc._graph.next_stream_id()
        #: batch time -> (RDD, its checkpoint path, partitions, partitioner): the newest two
        self._ckpt_rdds: dict[int, tuple[Any, str, int, Any]] = {}

    # ------------------------------------------------------------ metadata checkpoints

    def __getstate__(self) -> dict[str, Any]:
        """What a metadata checkpoint keeps: the description, never the generated RDDs."""
        state = self.__dict__.copy()
        state.update(_ssc=None, _sc=None, _generated={}, _ckpt_rdds={})
        return state

    def _attach(self, ssc: StreamingContext) -> None:
        """Bind a stream read back from a checkpoint to its new StreamingContext."""
        self._ssc, self._sc = ssc, ssc._sc
        self._generated, self._ckpt_rdds = {}, {}

    def _record_checkpoint(self, time_ms: int) -> None:
        """After batch ``time_ms``: note its RDD if it was checkpointed (keep the newest two).

        The newest keeps its lineage (back to the previous one) so an unreadable file can be
        recomputed; the previous one is kept, without lineage, for a recovery that finds the
        newest unreadable. Older ones are deleted once nothing refers to them.
        """
        from dstreams.core.checkpoint import remove_when_unused

        rdd = self._generated.get(time_ms)
        if rdd is None or not rdd.isCheckpointed() or time_ms in self._ckpt_rdds:
            return
        self._ckpt_rdds[time_ms] = (
            rdd,
            rdd.getCheckpointFile(),
            rdd.getNumPartitions(),
            rdd.partitioner,
        )
        for t in sorted(self._ckpt_rdds)[:-1]:
            self._ckpt_rdds[t][0].release_lineage()
        while len(self._ckpt_rdds) > 2:
            remove_when_unused(self._ckpt_rdds.pop(min(self._ckpt_rdds))[0])

    def _checkpoint_data(self) -> Any:
        """This stream's part of a metadata checkpoint (None: nothing to keep)."""
        if not self._ckpt_rdds:
            return None
        return {"rdds": {t: info[1:] for t, info in self._ckpt_rdds.items()}}

    def _restore_checkpoint(self, data: Any) -> None:
        """Put back what ``_checkpoint_data`` kept: the newest intact RDD checkpoint."""
        from dstreams.core.checkpoint import CheckpointRDD, verify_checkpoint

        rdds = (data or {}).get("rdds", {})
        for t in sorted(rdds, reverse=True):
            path, n, partitioner = rdds[t]
            problem = verify_checkpoint(path, n)
            if problem is not None:
                _log.warning(
                    "%s: the checkpoint of batch %d ms cannot be read (%s); using an older one",
                    self._op_name(),
                    t,
                    problem,
                )
                continue
            restored = CheckpointRDD(self._sc, path, n, partitioner)
            if self._storage_level is not None:
                restored.persist(self._storage_level)
            self._generated[t] = restored
            self._ckpt_rdds[t] = (restored, path, n, partitioner)
            return
        if rdds:
            raise RuntimeError(
                f"{self._op_name()}: none of its checkpoints ({sorted(rdds)}) can be read; "
                "the state cannot be recovered"
            )

    # ------------------------------------------------------------------ contract

    @property
    def _slide_ms(self) -> int:
        """The interval (ms) at which this stream generates an RDD."""
        raise NotImplementedError

    @property
    def _dependencies(self) -> list[DStream[Any]]:
        """The streams this stream's RDDs are computed from."""
        raise NotImplementedError

    def _compute(self, time_ms: int) -> Any:
        """Return the RDD for ``time_ms`` (a valid time), or None for no RDD."""
        raise NotImplementedError

    @property
    def _parent_remember_ms(self) -> int:
        """How long (ms) the parents must remember their RDDs.

        A stream whose RDDs are checkpointed needs its parents' RDDs back to its own
        second-to-last checkpoint: a lost partition (or an unreadable checkpoint file) is
        recomputed from there, so the input those batches read must still be at hand (received
        blocks on the executors, file lists, write-ahead-log records).
        """
        assert self._remember_ms is not None
        if self._checkpoint_ms is not None:
            return self._remember_ms + 2 * self._checkpoint_ms
        return self._remember_ms

    @property
    def _slideDuration(self) -> float:
        """The slide duration in seconds (PySpark's attribute)."""
        return self._slide_ms / 1000.0

    # ------------------------------------------------------------ engine support

    def _initialize(self, zero_ms: int) -> None:
        """Set the zero time, default checkpoint interval and remember duration (Spark's rules)."""
        if self._zero_ms is not None and self._zero_ms != zero_ms:
            raise ValueError(
                f"{self!r} was initialized with zero time {self._zero_ms} ms "
                f"and cannot be re-initialized with {zero_ms} ms"
            )
        self._zero_ms = zero_ms
        slide = self._slide_ms
        if self._must_checkpoint and self._checkpoint_ms is None:
            interval = self._ssc._conf_int("dstreams.streaming.checkpointInterval", 10000)
            self._checkpoint_ms = slide * max(1, -(-interval // slide))
        # Unlike Spark (twice the checkpoint interval), a stream remembers only what its
        # children and remember() ask for: at 10 ms batches, Spark's rule keeps 2,000 state
        # copies. Recovery does not need them: a lost partition is recomputed from lineage,
        # which reaches back to the last checkpoint whether or not the RDDs are remembered.
        min_remember = slide
        if self._remember_ms is None or self._remember_ms < min_remember:
            self._remember_ms = min_remember
        for dep in self._dependencies:
            dep._initialize(zero_ms)

    def _remember(self, duration_ms: int | None) -> None:
        """Keep generated RDDs for at least ``duration_ms``; propagate to parents."""
        if duration_ms is not None and (
            self._remember_ms is None or duration_ms > self._remember_ms
        ):
            self._remember_ms = duration_ms
        for dep in self._dependencies:
            dep._remember(self._parent_remember_ms)

    def _validate_at_start(self) -> None:
        """Fail early if this stream needs a checkpoint directory and none is set.

        As Spark's ``DStream.validateAtStart``, the Context's directory counts:
        ``ssc.checkpoint(dir)`` sets it, and so does ``sc.setCheckpointDir(dir)``.
        """
        if self._checkpoint_ms is not None and not self._sc.getCheckpointDir():
            raise ValueError(
                f"{type(self).__name__} (created by {self._op_name()}) checkpoints its RDDs every "
                f"{fmt_ms(self._checkpoint_ms)}, but the checkpoint directory has not been set. "
                "Please set it by StreamingContext.checkpoint(directory) "
                "(or SparkContext.setCheckpointDir(directory))."
            )
        for dep in self._dependencies:
            dep._validate_at_start()

    def _op_name(self) -> str:
        return getattr(self, "_created_by", type(self).__name__)

    def _is_time_valid(self, time_ms: int) -> bool:
        if self._zero_ms is None:
            raise RuntimeError(
                f"{self!r} has not been initialized; start the StreamingContext first"
            )
        return time_ms > self._zero_ms and (time_ms - self._zero_ms) % self._slide_ms == 0

    def _get_or_compute(self, time_ms: int) -> Any:
        """Return this stream's RDD at ``time_ms``, computing and memoising it once."""
        rdd = self._generated.get(time_ms)
        if rdd is not None or time_ms in self._generated:
            return rdd
        if not self._is_time_valid(time_ms):
            return None
        rdd = self._compute(time_ms)
        if rdd is not None:
            if self._storage_level is not None:
                rdd.persist(self._storage_level)
            zero = self._zero_ms
            assert zero is not None
            if self._checkpoint_ms is not None and (time_ms - zero) % self._checkpoint_ms == 0:
                rdd.checkpoint()
                rdd._engine_checkpoint = True  # its files go when nothing can read them
                self._ssc._graph._mark_checkpointed(time_ms, rdd)
            self._generated[time_ms] = rdd
        return rdd

    def _slice(self, from_ms: int, to_ms_: int) -> list[Any]:
        """Return the RDDs at every valid time in ``[from_ms, to_ms_]`` (aligned down)."""
        zero, slide = self._zero_ms, self._slide_ms
        if zero is None:
            raise RuntimeError(
                f"{self!r} has not been initialized; slice() needs a started context"
            )
        to_aligned = to_ms_ - (to_ms_ - zero) % slide
        from_aligned = from_ms - (from_ms - zero) % slide
        out = []
        for t in range(from_aligned, to_aligned + 1, slide):
            if t >= zero:
                rdd = self._get_or_compute(t)
                if rdd is not None:
                    out.append(rdd)
        return out

    def _clear_metadata(self, time_ms: int) -> None:
        """Forget (and unpersist) RDDs older than ``time_ms - remember``; recurse."""
        assert self._remember_ms is not None
        old = [t for t in self._generated if t <= time_ms - self._remember_ms]
        unpersist = self._ssc._conf_bool("dstreams.streaming.unpersist", True)
        for t in old:
            rdd = self._generated.pop(t)
            if unpersist and rdd is not None and self._storage_level is not None:
                rdd.unpersist()
        for dep in self._dependencies:
            dep._clear_metadata(time_ms)

    def _validate_window_param(self, window: float, slide: float | None) -> tuple[int, int | None]:
        # PySpark's checks, in PySpark's order and wording (window, then slide; a falsy slide
        # is not checked), with the value and the fix added
        parent = self._slide_ms
        window_ms = to_ms(window, "windowDuration")
        if window_ms % parent != 0:
            raise ValueError(
                "windowDuration must be multiple of the parent dstream's slide (batch) "
                f"duration ({parent} ms): got {fmt_ms(window_ms)}; pick a window that is a "
                f"whole number of {fmt_ms(parent)} intervals"
            )
        slide_ms = None
        if slide:
            slide_ms = to_ms(slide, "slideDuration")
            if slide_ms % parent != 0:
                raise ValueError(
                    "slideDuration must be multiple of the parent dstream's slide (batch) "
                    f"duration ({parent} ms): got {fmt_ms(slide_ms)}; pick a slide that is a "
                    f"whole number of {fmt_ms(parent)} intervals"
                )
        return window_ms, slide_ms

    def _register_output(self, func: Callable[[datetime, Any], Any], name: str) -> None:
        from dstreams.streaming.operators.output import ForEachDStream

        self._ssc._graph.addOutputStream(ForEachDStream(self, func, name))

    # ------------------------------------------------------------ stateless ops

    def context(self) -> StreamingContext:
        """Return the StreamingContext of this DStream."""
        return self._ssc

    def count(self) -> DStream[int]:
        """Return a stream whose RDDs hold one element: the count of each batch's RDD."""
        return self.mapPartitions(lambda it: [sum(1 for _ in it)]).reduce(operator.add)

    def _guarded(self, op: str) -> Callable[[Any], Any] | None:
        """Under ``recordErrors=deadLetter``: ``time -> guard`` for operator ``op``, else None."""
        letters = self._ssc._dead_letters()
        if letters is None:
            return None
        stream = str(self._ssc._graph.peek_stream_id())

        def guard(t: datetime) -> Any:
            return letters.guard(op, stream, time_arg_to_ms(t))

        return guard

    def filter(self, f: Callable[[T], bool]) -> DStream[T]:
        """Return a stream of the elements that satisfy ``f``."""
        check_function(f, "filter", "f")
        guard = self._guarded("filter")
        if guard is not None:
            return self.transform(lambda t, rdd: rdd.filter(guard(t).predicate(f)))

        def func(iterator: Iterable[T]) -> Iterator[T]:
            return filter(f, iterator)

        return self.mapPartitions(func, True)

    def flatMap(
        self, f: Callable[[T], Iterable[U]], preservesPartitioning: bool = False
    ) -> DStream[U]:
        """Apply ``f`` to every element and flatten the results."""
        return self._flat_map(f, preservesPartitioning, "flatMap")

    def _flat_map(self, f: Callable[[T], Iterable[U]], keep: bool, op: str) -> DStream[U]:
        check_function(f, op, "f")
        guard = self._guarded(op)
        if guard is not None:
            return self.transform(lambda t, rdd: rdd.flatMap(guard(t).flat_map(f), keep))

        def func(s: int, iterator: Iterable[T]) -> Iterator[U]:
            return chain.from_iterable(map(f, iterator))

        return self.mapPartitionsWithIndex(func, keep)

    def map(self, f: Callable[[T], U], preservesPartitioning: bool = False) -> DStream[U]:
        """Apply ``f`` to every element.

        Example:
            >>> ssc.queueStream([[1, 2]]).map(lambda x: x + 1)  # doctest: +SKIP
        """
        return self._map(f, preservesPartitioning, "map")

    def _map(self, f: Callable[[T], U], keep: bool, op: str) -> DStream[U]:
        check_function(f, op, "f")
        guard = self._guarded(op)
        if guard is not None:
            return self.transform(lambda t, rdd: rdd.mapPartitions(guard(t).map(f), keep))

        def func(iterator: Iterable[T]) -> Iterator[U]:
            return map(f, iterator)

        return self.mapPartitions(func, keep)

    def mapPartitions(
        self, f: Callable[[Iterable[T]], Iterable[U]], preservesPartitioning: bool = False
    ) -> DStream[U]:
        """Apply ``f`` to each partition of each RDD."""
        check_function(f, "mapPartitions", "f")

        def func(s: int, iterator: Iterable[T]) -> Iterable[U]:
            return f(iterator)

        return self.mapPartitionsWithIndex(func, preservesPartitioning)

    def mapPartitionsWithIndex(
        self, f: Callable[[int, Iterable[T]], Iterable[U]], preservesPartitioning: bool = False
    ) -> DStream[U]:
        """Apply ``f(partitionIndex, iterator)`` to each partition of each RDD."""
        check_function(f, "mapPartitionsWithIndex", "f")
        return self.transform(lambda rdd: rdd.mapPartitionsWithIndex(f, preservesPartitioning))

    def glom(self) -> DStream[list[T]]:
        """Turn each partition into a single list."""

        def func(iterator: Iterable[T]) -> Iterator[list[T]]:
            yield list(iterator)

        return self.mapPartitions(func)

    def reduce(self, func: Callable[[T, T], T]) -> DStream[T]:
        """Reduce each RDD to at most one element with ``func`` (empty RDD -> no element)."""
        check_function(func, "reduce", "func")
        keyed: DStream[Any] = self.map(lambda x: (None, x))
        return keyed.reduceByKey(func, 1).map(lambda x: x[1])

    def reduceByKey(
        self, func: Callable[[Any, Any], Any], numPartitions: int | None = None
    ) -> DStream[Any]:
        """Merge the values of each key in each batch with ``func``."""
        check_function(func, "reduceByKey", "func")
        if numPartitions is None:
            numPartitions = self._sc.defaultParallelism
        n = numPartitions
        guard = self._guarded("reduceByKey")
        if guard is not None:
            return self.transform(lambda t, rdd: rdd.reduceByKey(guard(t).reducer(func), n))
        # Same result as PySpark's combineByKey(identity, func, func); the RDD's own
        # reduceByKey is its fastest shuffle path.
        return self.transform(lambda rdd: rdd.reduceByKey(func, n))

    def combineByKey(
        self,
        createCombiner: Callable[[Any], Any],
        mergeValue: Callable[[Any, Any], Any],
        mergeCombiners: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
    ) -> DStream[Any]:
        """Combine the values of each key in each batch (``RDD.combineByKey``)."""
        check_function(createCombiner, "combineByKey", "createCombiner")
        check_function(mergeValue, "combineByKey", "mergeValue")
        check_function(mergeCombiners, "combineByKey", "mergeCombiners")
        if numPartitions is None:
            numPartitions = self._sc.defaultParallelism

        def func(rdd: Any) -> Any:
            return rdd.combineByKey(createCombiner, mergeValue, mergeCombiners, numPartitions)

        return self.transform(func)

    def partitionBy(
        self, numPartitions: int, partitionFunc: Callable[[Any], int] | None = None
    ) -> DStream[T]:
        """Partition each RDD by key into ``numPartitions`` partitions."""
        if partitionFunc is None:
            from dstreams.hashing import portable_hash

            partitionFunc = portable_hash
        pf = partitionFunc
        return self.transform(lambda rdd: rdd.partitionBy(numPartitions, pf))

    def mapValues(self, f: Callable[[V], U]) -> DStream[tuple[Any, U]]:
        """Apply ``f`` to the value of every (key, value) pair, keeping the key."""
        check_function(f, "mapValues", "f")

        def map_values_fn(kv: Any) -> tuple[Any, U]:
            return kv[0], f(kv[1])

        return self._map(map_values_fn, True, "mapValues")

    def flatMapValues(self, f: Callable[[V], Iterable[U]]) -> DStream[tuple[Any, U]]:
        """Apply ``f`` to every value and pair each result with the key."""
        check_function(f, "flatMapValues", "f")

        def flat_map_fn(kv: Any) -> Iterator[tuple[Any, U]]:
            return ((kv[0], x) for x in f(kv[1]))

        return self._flat_map(flat_map_fn, True, "flatMapValues")

    def groupByKey(self, numPartitions: int | None = None) -> DStream[tuple[Any, Iterable[Any]]]:
        """Group the values of each key in each batch."""
        if numPartitions is None:
            numPartitions = self._sc.defaultParallelism
        return self.transform(lambda rdd: rdd.groupByKey(numPartitions))

    def countByValue(self) -> DStream[tuple[T, int]]:
        """Count each distinct element of each batch: a stream of (element, count)."""
        pairs: DStream[Any] = self.map(lambda x: (x, 1))
        return pairs.reduceByKey(lambda x, y: x + y)

    # ---------------------------------------------- persistence / transformation

    def cache(self) -> DStream[T]:
        """Persist every generated RDD at the default level (MEMORY_ONLY)."""
        from dstreams import StorageLevel

        self.is_cached = True
        self.persist(StorageLevel.MEMORY_ONLY)
        return self

    def persist(self, storageLevel: Any) -> DStream[T]:
        """Persist every generated RDD at ``storageLevel``."""
        self._ssc._check_can_add_stream()
        self.is_cached = True
        self._storage_level = storageLevel
        return self

    def checkpoint(self, interval: float) -> DStream[T]:
        """Checkpoint this stream's RDDs every ``interval`` seconds (needs a checkpoint dir)."""
        self._ssc._check_can_add_stream()
        self.is_checkpointed = True
        self._checkpoint_ms = to_ms(interval, "checkpoint interval")
        return self

    def transform(self, func: Callable[..., Any]) -> DStream[Any]:
        """Return a stream whose RDD at each time is ``func(rdd)`` or ``func(time, rdd)``.

        ``time`` is a ``datetime``.  If ``func`` returns None the batch has no RDD.

        Example:
            >>> stream.transform(lambda rdd: rdd.join(model))  # doctest: +SKIP
        """
        check_function(func, "transform", "func")
        from dstreams.streaming.operators.mapped import TransformedDStream

        arity = positional_arity(func)
        if arity == 1:
            old = func

            def func(_t: datetime, rdd: Any) -> Any:
                return old(rdd)
        elif arity not in (2, -1):
            raise ValueError(
                f"transform() takes func(rdd) or func(time, rdd); {func!r} takes "
                f"{arity} positional arguments"
            )
        return TransformedDStream(self, func)

    def transformWith(
        self, func: Callable[..., Any], other: DStream[Any], keepSerializer: bool = False
    ) -> DStream[Any]:
        """Combine this stream with ``other``: ``func(rdd_a, rdd_b)`` or ``func(time, a, b)``."""
        check_function(func, "transformWith", "func")
        from dstreams.streaming.operators.mapped import TransformedDStreamWithTwo

        arity = positional_arity(func)
        if arity == 2:
            old = func

            def func(_t: datetime, a: Any, b: Any) -> Any:
                return old(a, b)
        elif arity not in (3, -1):
            raise ValueError(
                f"transformWith() takes func(a, b) or func(time, a, b); {func!r} "
                f"takes {arity} positional arguments"
            )
        return TransformedDStreamWithTwo(self, other, func)

    def repartition(self, numPartitions: int) -> DStream[T]:
        """Return a stream with each RDD repartitioned into ``numPartitions`` partitions."""
        return self.transform(lambda rdd: rdd.repartition(numPartitions))

    # ------------------------------------------------------------------ combining

    def union(self, other: DStream[U]) -> DStream[T | U]:
        """Union each batch of this stream with the same batch of ``other``."""
        if self._slide_ms != other._slide_ms:
            raise ValueError(
                f"the two DStreams should have the same slide duration, got "
                f"{fmt_ms(self._slide_ms)} and {fmt_ms(other._slide_ms)}; "
                "window one of them so the slides match"
            )
        return self.transformWith(lambda a, b: a.union(b), other, True)

    def cogroup(self, other: DStream[Any], numPartitions: int | None = None) -> DStream[Any]:
        """Cogroup each batch with the same batch of ``other``."""
        if numPartitions is None:
            numPartitions = self._sc.defaultParallelism
        return self.transformWith(lambda a, b: a.cogroup(b, numPartitions), other)

    def join(self, other: DStream[Any], numPartitions: int | None = None) -> DStream[Any]:
        """Inner-join each batch with the same batch of ``other``."""
        if numPartitions is None:
            numPartitions = self._sc.defaultParallelism
        return self.transformWith(lambda a, b: a.join(b, numPartitions), other)

    def leftOuterJoin(self, other: DStream[Any], numPartitions: int | None = None) -> DStream[Any]:
        """Left-outer-join each batch with the same batch of ``other``."""
        if numPartitions is None:
            numPartitions = self._sc.defaultParallelism
        return self.transformWith(lambda a, b: a.leftOuterJoin(b, numPartitions), other)

    def rightOuterJoin(self, other: DStream[Any], numPartitions: int | None = None) -> DStream[Any]:
        """Right-outer-join each batch with the same batch of ``other``."""
        if numPartitions is None:
            numPartitions = self._sc.defaultParallelism
        return self.transformWith(lambda a, b: a.rightOuterJoin(b, numPartitions), other)

    def fullOuterJoin(self, other: DStream[Any], numPartitions: int | None = None) -> DStream[Any]:
        """Full-outer-join each batch with the same batch of ``other``."""
        if numPartitions is None:
            numPartitions = self._sc.defaultParallelism
        return self.transformWith(lambda a, b: a.fullOuterJoin(b, numPartitions), other)

    # --------------------------------------------------------------------- output

    def foreachRDD(self, func: Callable[..., Any]) -> None:
        """Run ``func(rdd)`` or ``func(time, rdd)`` on the driver for every batch."""
        check_function(func, "foreachRDD", "func")
        arity = positional_arity(func)
        if arity == 1:
            old = func

            def func(_t: datetime, rdd: Any) -> Any:
                return old(rdd)

        self._register_output(func, "foreachRDD")

    def pprint(self, num: int = 10) -> None:
        """Print the first ``num`` elements of every batch, in PySpark's exact format."""
        from dstreams.streaming.operators.output import take_and_print

        def func(time: datetime, rdd: Any) -> None:
            take_and_print(time, rdd, num)

        self._register_output(func, "pprint")

    def saveAsTextFiles(self, prefix: str, suffix: str | None = None) -> None:
        """Save every batch as text files in ``prefix-<time_ms>[.suffix]``, atomically.

        Each batch is written into a temporary directory, renamed into place once complete: a
        re-run (after a failure or a driver restart) leaves one complete copy, never a partial
        or doubled one, and a batch already written is kept, as in PySpark.
        """
        from dstreams.streaming.operators.output import rdd_to_file_name, save_atomically

        def save(t: datetime, rdd: Any) -> None:
            save_atomically(rdd, rdd_to_file_name(prefix, suffix, t))

        self._register_output(save, "saveAsTextFiles")

    def writeToSink(self, sink: Any) -> None:
        """Write every batch to a transactional ``sink``, each partition exactly once.

        ``sink`` follows ``dstreams.streaming.sinks.Sink`` (``open``, ``write``, ``commit``,
        ``abort``, a stable ``name``): every (sink name, batch time, partition) is committed
        once, whatever is retried, speculated or re-run after a restart.

        Example:
            >>> sink = SQLiteSink("out.db", "counts", "wc", ["word", "n"])  # doctest: +SKIP
            >>> counts.writeToSink(sink)  # doctest: +SKIP
        """
        from dstreams.streaming.sinks import Sink, partition_writer

        if not isinstance(sink, Sink):
            raise TypeError(
                f"writeToSink needs a sink with name, open, write, commit and abort (see "
                f"dstreams.streaming.sinks.Sink), got {sink!r}"
            )

        def job(t: datetime, rdd: Any) -> None:
            rdd.mapPartitionsWithIndex(partition_writer(sink, time_arg_to_ms(t))).count()

        self._register_output(job, f"writeToSink({sink.name})")

    def foreachBatch(self, func: Callable[[Any, int], Any], name: str | None = None) -> None:
        """Run ``func(rdd, batchId)`` on the driver once per batch (Structured Streaming's).

        ``batchId`` is the batch time in ms. A marker in the checkpoint directory records each
        batch once ``func`` returns, so a batch re-run after a restart is skipped when it
        already ran. A crash between ``func`` and its marker runs it again with the same
        ``batchId``: make what it writes idempotent on it. ``name`` (default: derived from the
        stream's position in the program) keys the markers and must stay stable.
        """
        check_function(func, "foreachBatch", "func")
        from dstreams.streaming.operators.output import BatchCommits

        commits = BatchCommits(self, name or f"foreachBatch-{self._stream_id}")

        def job(t: datetime, rdd: Any) -> None:
            commits.run_once(time_arg_to_ms(t), lambda batch_id: func(rdd, batch_id))

        self._register_output(job, "foreachBatch")

    # ------------------------------------------------------------------ over time

    def slice(self, begin: datetime | float, end: datetime | float) -> list[Any]:
        """Return the RDDs generated between ``begin`` and ``end`` (datetimes or epoch seconds)."""
        with self._ssc._graph._lock:
            return self._slice(time_arg_to_ms(begin), time_arg_to_ms(end))

    def window(self, windowDuration: float, slideDuration: float | None = None) -> DStream[T]:
        """Return a stream whose RDD at time t unions this stream's RDDs in (t - window, t].

        Args:
            windowDuration: Window length in seconds; a multiple of this stream's slide.
            slideDuration: Emit every this many seconds (default: this stream's slide).
        """
        from dstreams.streaming.operators.windowed import WindowedDStream

        window_ms, slide_ms = self._validate_window_param(windowDuration, slideDuration)
        return WindowedDStream(self, window_ms, slide_ms or self._slide_ms)

    def reduceByWindow(
        self,
        reduceFunc: Callable[[T, T], T],
        invReduceFunc: Callable[[T, T], T] | None,
        windowDuration: float,
        slideDuration: float,
    ) -> DStream[T]:
        """Reduce each window to one element (incrementally when ``invReduceFunc`` is given)."""
        self._validate_window_param(windowDuration, slideDuration)  # first, as PySpark
        check_function(reduceFunc, "reduceByWindow", "reduceFunc")
        keyed = self.map(lambda x: (1, x))
        reduced = keyed.reduceByKeyAndWindow(
            reduceFunc, invReduceFunc, windowDuration, slideDuration, 1
        )
        return reduced.map(lambda kv: kv[1])

    def countByWindow(self, windowDuration: float, slideDuration: float) -> DStream[int]:
        """Count the elements in each window (needs a checkpoint directory)."""
        return self.map(lambda x: 1).reduceByWindow(
            operator.add, operator.sub, windowDuration, slideDuration
        )

    def countByValueAndWindow(
        self, windowDuration: float, slideDuration: float, numPartitions: int | None = None
    ) -> DStream[tuple[T, int]]:
        """Count each distinct element in each window (needs a checkpoint directory)."""
        keyed = self.map(lambda x: (x, 1))
        counted = keyed.reduceByKeyAndWindow(
            operator.add, operator.sub, windowDuration, slideDuration, numPartitions
        )
        return counted.filter(lambda kv: kv[1] > 0)

    def groupByKeyAndWindow(
        self, windowDuration: float, slideDuration: float, numPartitions: int | None = None
    ) -> DStream[Any]:
        """Group the values of each key in each window (needs a checkpoint directory)."""
        ls: DStream[Any] = self.mapValues(lambda x: [x])
        grouped = ls.reduceByKeyAndWindow(
            lambda a, b: a.extend(b) or a,
            lambda a, b: a[len(b) :],
            windowDuration,
            slideDuration,
            numPartitions,
        )
        from dstreams.core.pairs import ResultIterable

        return grouped.mapValues(ResultIterable)

    def reduceByKeyAndWindow(
        self,
        func: Callable[[V, V], V],
        invFunc: Callable[[V, V], V] | None,
        windowDuration: float,
        slideDuration: float | None = None,
        numPartitions: int | None = None,
        filterFunc: Callable[[tuple[Any, V]], bool] | None = None,
    ) -> DStream[Any]:
        """Reduce the values of each key over a sliding window.

        With ``invFunc`` the window is updated incrementally when it spans at least
        five slides (previous window, minus the batches that left, plus those that
        entered); keys reduced to a "zero" value stay unless ``filterFunc`` drops
        them.  This path needs a checkpoint directory.

        Example:
            >>> pairs.reduceByKeyAndWindow(operator.add, operator.sub, 30, 10)  # doctest: +SKIP
        """
        window_ms, slide_ms = self._validate_window_param(windowDuration, slideDuration)
        check_function(func, "reduceByKeyAndWindow", "func")
        if invFunc is not None:
            check_function(invFunc, "reduceByKeyAndWindow", "invFunc")
        if numPartitions is None:
            numPartitions = self._sc.defaultParallelism
        reduced: DStream[Any] = self.reduceByKey(func, numPartitions)
        if invFunc:
            from dstreams.streaming.operators.windowed import ReducedWindowedDStream

            return ReducedWindowedDStream(
                reduced,
                func,
                invFunc,
                window_ms,
                slide_ms or self._slide_ms,
                numPartitions,
                filterFunc,
            )
        return reduced.window(windowDuration, slideDuration).reduceByKey(func, numPartitions)

    def updateStateByKey(
        self,
        updateFunc: Callable[[list[Any], Any], Any],
        numPartitions: int | None = None,
        initialRDD: Any = None,
    ) -> DStream[Any]:
        """Keep per-key state: ``updateFunc(newValues, oldState) -> newState or None``.

        ``updateFunc`` runs every batch for every key with state or new values
        (``newValues`` is ``[]`` when there are none; ``oldState`` is None for a new
        key).  Returning None deletes the key.  Needs a checkpoint directory.

        Example:
            >>> pairs.updateStateByKey(lambda vs, s: sum(vs) + (s or 0))  # doctest: +SKIP
        """
        check_function(updateFunc, "updateStateByKey", "updateFunc")
        from dstreams.streaming.operators.stateful import StateDStream

        if numPartitions is None:
            numPartitions = self._sc.defaultParallelism
        if initialRDD is not None and not hasattr(initialRDD, "mapPartitions"):
            initialRDD = self._sc.parallelize(list(initialRDD)) if initialRDD else None
        guard = self._guarded("updateStateByKey")
        return StateDStream(self, updateFunc, numPartitions, initialRDD, guard)

    def registerView(self, name: str) -> None:
        """Keep this stream's newest RDD queryable as ``ssc.view(name)`` (any thread).

        After each batch's other outputs, the batch's RDD is materialized, cached and
        published: a query sees a whole batch, never half of one. ``ssc.view(name, at=t)``
        reads an older batch while it is kept (``dstreams.streaming.views.retainedBatches``).

        Example:
            >>> totals.registerView("totals")  # doctest: +SKIP
            >>> ssc.view("totals").lookup("card-17")  # doctest: +SKIP
        """
        from dstreams import StorageLevel

        self._ssc._views.declare(name)
        stream = self

        def publish(t: datetime, rdd: Any) -> None:
            materialize = getattr(rdd, "_materialize", None)
            owned = materialize is None and rdd._storage_level is None
            if materialize is not None:
                materialize()  # a view over cached live state (mapWithState's snapshots)
            else:
                if owned:
                    rdd.persist(StorageLevel.MEMORY_ONLY)
                rdd.count()  # materialized (and cached) before anyone can see it
            # the context's registry at call time: after a recovery, the new context's
            stream._ssc._views.publish(name, time_arg_to_ms(t), rdd, owned)

        self._register_output(publish, f"registerView({name})")

    def windowByEventTime(
        self,
        timestampFunc: Callable[[Any], Any],
        windowDuration: float,
        slideDuration: float | None = None,
        watermarkDelay: float = 0.0,
        outputMode: str = "update",
        lateRecordsPath: str | None = None,
        valueFunc: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Window ``(key, value)`` records by their own time; follow with ``.reduceByKey(f)``.

        ``timestampFunc(record)`` gives the record's event time (epoch seconds or a
        ``datetime``). Windows are ``windowDuration`` long and start every ``slideDuration``
        (default: tumbling). Batch t drops records older than its watermark: the largest event
        time of the batches before it, minus ``watermarkDelay``. ``outputMode="update"`` emits
        the windows a batch changed; ``"append"`` emits each window once, when the watermark
        passes its end. ``valueFunc(record)`` is what a record contributes (default: its
        value). The result's records are ``((key, EventWindow(start, end)), value)``.
        Needs a checkpoint directory (see ``docs/streaming.md``).

        Example:
            >>> clicks.windowByEventTime(lambda kv: kv[1]["ts"], 60, watermarkDelay=30,
            ...                          outputMode="append").countByKey()  # doctest: +SKIP
        """
        from dstreams.streaming.operators.eventtime import EventTimeWindows

        return EventTimeWindows(
            self,
            timestampFunc,
            windowDuration,
            slideDuration,
            watermarkDelay,
            outputMode,
            lateRecordsPath,
            valueFunc,
        )

    def mapWithState(self, spec: Any) -> Any:
        """Keep per-key state, touching only the keys with new records (Spark's Scala API).

        ``spec`` is a :class:`dstreams.StateSpec`: ``StateSpec.function(f)`` with optional
        ``.initialState(rdd)``, ``.numPartitions(n)``, ``.partitioner(p)`` and
        ``.timeout(seconds)``. ``f(key, value, state)`` runs for each record of the batch, and
        with ``value=None`` for each key timing out; the returned values form the stream.
        ``.stateSnapshots()`` of the result is every ``(key, state)``. Needs a checkpoint
        directory (the state is checkpointed every 10 batch intervals).

        Example:
            >>> def count(word, one, state):  # doctest: +SKIP
            ...     n = (state.getOption() or 0) + (one or 0)
            ...     if not state.isTimingOut():
            ...         state.update(n)
            ...     return (word, n)
            >>> spec = StateSpec.function(count).timeout(60)  # doctest: +SKIP
            >>> words.map(lambda w: (w, 1)).mapWithState(spec)  # doctest: +SKIP
        """
        from dstreams.streaming.operators.mapwithstate import MapWithStateDStream, StateSpec

        if not isinstance(spec, StateSpec):
            raise TypeError(f"mapWithState needs a StateSpec (StateSpec.function(f)), got {spec!r}")
        check_function(spec._func, "mapWithState", "mappingFunction")
        return MapWithStateDStream(self, spec)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} slide={fmt_ms(self._slide_ms)}>"


class DerivedDStream(DStream[T]):
    """A stream computed from one parent, at the parent's slide (``self.parent``)."""

    def __init__(self, parent: DStream[Any]) -> None:
        super().__init__(parent._ssc)
        self.parent = parent

    @property
    def _slide_ms(self) -> int:
        return self.parent._slide_ms

    @property
    def _dependencies(self) -> list[DStream[Any]]:
        return [self.parent]
