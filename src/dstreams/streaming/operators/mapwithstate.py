"""``mapWithState``: per-key state whose work per batch follows the keys with new data.

Spark's Scala ``mapWithState``, in Python names. ``StateSpec.function(f)`` describes it;
``f(key, value, state)`` runs for every record of the batch (``value`` is its value) and for
every key timing out (``value`` is None), and its results form the mapped stream.

How the state is kept (this module):

* A state RDD per batch, one record per partition: a :class:`StateRecord` that names its
  batch and holds the partition's :class:`PartitionState`, with the batch's mapped records.
  It is computed from the previous batch's state RDD (a narrow dependency) and the batch's
  records partitioned the same way, as Spark's ``MapWithStateRDD`` is.
* A :class:`PartitionState` is a dict from key to ``[state, last update (ms)]``, updated **in
  place** by the next batch. An undo log per batch keeps the last ``KEEP`` versions: a task
  that runs again (a retry, a speculative copy, a re-run after a failure) rolls the dict back
  to the version it needs. A batch touches only its records' keys and the keys timing out,
  which are found through an index of keys by last-update time.
* The state RDD is cached as a live object in the worker's memory (``StateRecord`` asks the
  block store to keep the object, not a pickled copy), so the next batch's task on that worker
  continues from it without copying. The scheduler sends that task to the worker that holds
  it, through the cached-block tracker. Another worker that needs it fetches a pickled copy.
  A worker that is gone makes the partition recompute from lineage, back to the last
  checkpoint.
* It is checkpointed every 10 batch intervals by default, as Spark's ``MapWithStateDStream``
  is. A checkpoint pickles the whole partition state (the only full copy there is).

Timeouts are checked every batch (Spark checks them only in its full-scan batches, the
checkpoint batches): a key with no record for ``timeout`` seconds is called with
``value=None`` and ``state.isTimingOut()`` true in the first batch after that, then removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dstreams.core.dependency import OneToOneDependency, Partitioner
from dstreams.core.rdd import RDD
from dstreams.errors import CacheMissingError
from dstreams.streaming.dstream import DerivedDStream, DStream

__all__ = [
    "MapWithStateDStream",
    "MapWithStateRDD",
    "PartitionState",
    "State",
    "StateRecord",
    "StateSnapshotRDD",
    "StateSpec",
    "StateStepRDD",
]

_MISSING: Any = object()


class State:
    """A key's state inside the mapping function (Spark's ``State``)."""

    __slots__ = ("_exists", "_removed", "_timing_out", "_updated", "_value")

    def __init__(self) -> None:
        self._wrap(_MISSING, False)

    def _wrap(self, value: Any, timing_out: bool) -> None:
        self._value = value
        self._exists = value is not _MISSING
        self._timing_out = timing_out
        self._updated = self._removed = False

    def exists(self) -> bool:
        """Whether the key has a state."""
        return self._exists

    def get(self) -> Any:
        """The state; raises ``KeyError`` when there is none (Spark: ``NoSuchElementException``)."""
        if not self._exists:
            raise KeyError("State is not set")
        return self._value

    def getOption(self) -> Any:
        """The state, or None when there is none."""
        return self._value if self._exists else None

    def update(self, newState: Any) -> None:
        """Set the state (not allowed while timing out, or after ``remove``)."""
        if self._removed:
            raise ValueError("Cannot update the state after it has been removed")
        if self._timing_out:
            raise ValueError("Cannot update the state that is timing out")
        self._value, self._exists, self._updated = newState, True, True

    def remove(self) -> None:
        """Remove the key's state (not allowed while timing out: it is removed anyway)."""
        if self._timing_out:
            raise ValueError("Cannot remove the state when it is timing out")
        if self._removed:
            raise ValueError("Cannot remove the state that has already been removed")
        self._exists, self._removed, self._value = False, True, _MISSING

    def isTimingOut(self) -> bool:
        """Whether the key is timing out (the call has ``value=None`` and is its last)."""
        return self._timing_out

    def __repr__(self) -> str:
        return f"State({self._value!r})" if self._exists else "State(<none>)"


class StateSpec:
    """What ``mapWithState`` does: its function, initial state, partitioning and timeout."""

    def __init__(self, mappingFunction: Callable[[Any, Any, State], Any]) -> None:
        if not callable(mappingFunction):
            raise TypeError(
                f"StateSpec.function needs a function (key, value, state) -> mapped record, "
                f"got {mappingFunction!r}"
            )
        self._func = mappingFunction
        self._initial: Any = None
        self._num_partitions: int | None = None
        self._partitioner: Partitioner | None = None
        self._timeout_ms: int | None = None

    @staticmethod
    def function(mappingFunction: Callable[[Any, Any, State], Any]) -> StateSpec:
        """A spec of ``mappingFunction(key, value, state) -> mapped record``."""
        return StateSpec(mappingFunction)

    def initialState(self, rdd: Any) -> StateSpec:
        """Start from these ``(key, state)`` pairs (an RDD or a list)."""
        self._initial = rdd
        return self

    def numPartitions(self, numPartitions: int) -> StateSpec:
        """Hash-partition the state into ``numPartitions`` partitions."""
        n = numPartitions
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"numPartitions={numPartitions!r} must be a positive integer")
        self._num_partitions, self._partitioner = numPartitions, None
        return self

    def partitioner(self, partitioner: Partitioner) -> StateSpec:
        """Partition the state with ``partitioner``."""
        if not isinstance(partitioner, Partitioner):
            raise TypeError(f"partitioner must be a dstreams.Partitioner, got {partitioner!r}")
        self._partitioner, self._num_partitions = partitioner, None
        return self

    def timeout(self, idleDuration: float) -> StateSpec:
        """Time out keys that get no record for ``idleDuration`` seconds."""
        from dstreams.streaming._util import to_ms

        ms = to_ms(idleDuration, "timeout")
        if ms <= 0:
            raise ValueError(f"timeout={idleDuration!r} must be positive (seconds)")
        self._timeout_ms = ms
        return self


class PartitionState:
    """One partition's keys and states, versioned by batch (see the module docstring)."""

    #: versions a partition state can be rolled back to
    KEEP = 8

    def __init__(self, version: int, timeouts: bool) -> None:
        self.version = version
        self.data: dict[Any, list[Any]] = {}  # key -> [state, last update ms]
        self.by_time: dict[int, set[Any]] | None = {} if timeouts else None
        self.undo: dict[int, tuple[int, list[tuple[Any, Any]]]] = {}
        #: entries read or written by the last batch (the work it did)
        self.visited = 0

    @classmethod
    def from_pairs(cls, pairs: Iterable[Any], version: int, timeouts: bool) -> PartitionState:
        ps = cls(version, timeouts)
        for k, s in pairs:
            ps._put(k, [s, version])
        return ps

    def _put(self, key: Any, entry: list[Any] | None) -> Any:
        old = self.data.get(key, _MISSING)
        idx = self.by_time
        if idx is not None and old is not _MISSING:
            keys = idx.get(old[1])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del idx[old[1]]
        if entry is None:
            if old is not _MISSING:
                del self.data[key]
        else:
            self.data[key] = entry
            if idx is not None:
                idx.setdefault(entry[1], set()).add(key)
        return old

    def rollback(self, version: int) -> bool:
        """Undo batches back to ``version``; False if that version is no longer known."""
        while self.version > version:
            step = self.undo.pop(self.version, None)
            if step is None:
                return False
            previous, log = step
            for key, old in reversed(log):
                self._put(key, None if old is _MISSING else old)
            self.version = previous
        return self.version == version

    def advance(
        self,
        version: int,
        records: Iterator[Any],
        func: Callable[[Any, Any, State], Any],
        timeout_ms: int | None,
    ) -> list[Any]:
        """Apply batch ``version``'s records and timeouts in place; the mapped records."""
        log: list[tuple[Any, Any]] = []
        mapped: list[Any] = []
        state = State()
        visited = 0
        data = self.data
        for key, value in records:
            visited += 1
            entry = data.get(key)
            state._wrap(_MISSING if entry is None else entry[0], False)
            mapped.append(func(key, value, state))
            if state._removed:
                if entry is not None:
                    log.append((key, self._put(key, None)))
            elif state._updated or (state._exists and timeout_ms is not None):
                log.append((key, self._put(key, [state._value, version])))
        if timeout_ms is not None and self.by_time is not None:
            threshold = version - timeout_ms
            for t in [t for t in self.by_time if t < threshold]:
                for key in sorted(self.by_time.get(t, ()), key=repr):
                    visited += 1
                    state._wrap(data[key][0], True)
                    mapped.append(func(key, None, state))
                    log.append((key, self._put(key, None)))
        self.undo[version] = (self.version, log)
        self.version = version
        while len(self.undo) > self.KEEP:
            del self.undo[min(self.undo)]
        self.visited = visited
        return mapped

    def entries_at(self, version: int) -> dict[Any, list[Any]]:
        """A copy of the entries as of ``version`` (this object is left as it is)."""
        data = dict(self.data)
        v = self.version
        while v > version:
            step = self.undo.get(v)
            if step is None:
                raise LookupError(f"version {version} is no longer kept")
            previous, log = step
            for key, old in reversed(log):
                if old is _MISSING:
                    data.pop(key, None)
                else:
                    data[key] = old
            v = previous
        if v != version:
            raise LookupError(f"version {version} is newer than this state ({v})")
        return data


def _rebuild(
    version: int, entries: dict[Any, list[Any]], timeouts: bool, mapped: list[Any], visited: int
) -> StateRecord:
    ps = PartitionState(version, timeouts)
    for k, e in entries.items():
        ps._put(k, list(e))
    ps.visited = visited
    return StateRecord(ps, version, mapped)


class StateRecord:
    """A state RDD's one record per partition: the state as of batch ``version``, and the
    records the batch's mapping calls returned."""

    #: the block store keeps this object itself in memory (not a pickled copy)
    _keep_live = True

    def __init__(self, state: PartitionState, version: int, mapped: list[Any]) -> None:
        self.state, self.version, self.mapped = state, version, mapped
        self.visited = state.visited

    def entries(self) -> dict[Any, list[Any]]:
        if self.state.version == self.version:
            return self.state.data
        return self.state.entries_at(self.version)

    def _live_size(self) -> int:
        """A rough size for the cache's memory budget: what this version adds.

        Every batch's record shares one state object. A batch's record accounts for its undo
        log; a record without one (the first, or a copy rebuilt from a checkpoint or a fetch)
        accounts for the whole state.
        """
        step = self.state.undo.get(self.version)
        n = len(self.state.data) if step is None else len(step[1])
        return 64 + 200 * n

    def __reduce__(self) -> tuple[Any, ...]:
        # a checkpoint or a fetch by another worker: the state as of this record's batch
        return (
            _rebuild,
            (
                self.version,
                self.entries(),
                self.state.by_time is not None,
                self.mapped,
                self.visited,
            ),
        )


class StateStepRDD(RDD[Any]):
    """A batch's state: partition p from partition p of the previous batch's state RDD and of
    the batch's records, partitioned the same way (``mapWithState``, event-time windows)."""

    def __init__(self, prev: RDD[Any], data: RDD[Any]) -> None:
        super().__init__(
            prev.ctx,
            [OneToOneDependency(prev), OneToOneDependency(data)],
            prev.getNumPartitions(),
            prev.partitioner,
        )


class MapWithStateRDD(StateStepRDD):
    """Batch t's state: the previous state RDD, advanced by batch t's partitioned records."""

    def __init__(
        self,
        prev: RDD[StateRecord],
        data: RDD[Any],
        func: Callable[[Any, Any, State], Any],
        version: int,
        timeout_ms: int | None,
    ) -> None:
        super().__init__(prev, data)
        self._func, self._version, self._timeout_ms = func, version, timeout_ms

    def compute(self, split: int, tctx: Any) -> Iterator[StateRecord]:
        prev_rdd = self._deps[0].rdd
        prev = next(iter(prev_rdd.iterator(split, tctx)))
        state = prev.state
        if state.version != prev.version and not state.rollback(prev.version):
            # the live state moved past what this task needs and cannot go back: recompute
            # the previous partition from lineage
            raise CacheMissingError(prev_rdd._id, split)
        records = self._deps[1].rdd.iterator(split, tctx)
        mapped = state.advance(self._version, records, self._func, self._timeout_ms)
        return iter([StateRecord(state, self._version, mapped)])


class _StateRecords(DerivedDStream[StateRecord]):
    """The state RDDs of a ``mapWithState`` (Spark's ``InternalMapWithStateDStream``)."""

    _must_checkpoint = True

    def __init__(self, parent: DStream[Any], spec: StateSpec) -> None:
        from dstreams import StorageLevel

        super().__init__(parent)
        self.spec = spec
        n = spec._num_partitions or parent._sc.defaultParallelism
        self.partitioner = spec._partitioner or Partitioner(n)
        self._created_by = "mapWithState"
        self._storage_level = StorageLevel.MEMORY_ONLY
        # Spark's default for mapWithState: every 10 batch intervals
        self._checkpoint_ms = 10 * parent._slide_ms

    def _initial(self, time_ms: int) -> RDD[StateRecord]:
        spec, p = self.spec, self.partitioner
        timeouts = spec._timeout_ms is not None
        init = spec._initial
        if init is None:
            pairs: RDD[Any] = self._sc.emptyRDD()
        elif hasattr(init, "mapPartitions"):
            pairs = init
        else:
            pairs = self._sc.parallelize(list(init))
        base = time_ms - self._slide_ms
        return pairs.partitionBy(p.numPartitions, p.partitionFunc).mapPartitions(
            lambda it: [StateRecord(PartitionState.from_pairs(it, base, timeouts), base, [])],
            preservesPartitioning=True,
        )

    def _compute(self, time_ms: int) -> Any:
        prev = self._get_or_compute(time_ms - self._slide_ms)
        if prev is None:
            prev = self._initial(time_ms)
        data = self.parent._get_or_compute(time_ms)
        p = self.partitioner
        if data is None:
            data = self._sc.emptyRDD()
        data = data.partitionBy(p.numPartitions, p.partitionFunc)
        return MapWithStateRDD(prev, data, self.spec._func, time_ms, self.spec._timeout_ms)


class MapWithStateDStream(DerivedDStream[Any]):
    """The records ``mapWithState``'s function returned, batch by batch."""

    def __init__(self, parent: DStream[Any], spec: StateSpec) -> None:
        self._states = _StateRecords(parent, spec)
        super().__init__(self._states)
        self._created_by = "mapWithState"

    def _compute(self, time_ms: int) -> Any:
        rdd = self._states._get_or_compute(time_ms)
        return None if rdd is None else rdd.flatMap(lambda record: record.mapped)

    def checkpoint(self, interval: float) -> MapWithStateDStream:
        """Checkpoint the state every ``interval`` seconds (Spark: the internal state stream)."""
        self._states.checkpoint(interval)
        return self

    def stateSnapshots(self) -> DStream[Any]:
        """Every key's ``(key, state)`` after each batch (partitioned as the state is)."""
        return _Snapshots(self._states)


class StateSnapshotRDD(RDD[Any]):
    """``(key, state)`` of a state RDD, partitioned like it; ``lookup`` reads one dict entry."""

    def __init__(self, states: RDD[StateRecord]) -> None:
        super().__init__(
            states.ctx, [OneToOneDependency(states)], states.getNumPartitions(), states.partitioner
        )

    def compute(self, split: int, tctx: Any) -> Iterator[Any]:
        record = next(iter(self._deps[0].rdd.iterator(split, tctx)))
        return iter([(k, e[0]) for k, e in record.entries().items()])

    def _materialize(self) -> None:
        """Compute (and cache) the state this reads, without walking its entries (views)."""
        self._deps[0].rdd.count()

    def lookup(self, key: Any) -> list[Any]:
        """The key's state (``[]`` if it has none): one task, one dict lookup."""
        assert self.partitioner is not None

        def find(it: Iterator[StateRecord]) -> list[Any]:
            entry = next(iter(it)).entries().get(key)
            return [] if entry is None else [entry[0]]

        return list(self.ctx.runJob(self._deps[0].rdd, find, [self.partitioner(key)]))


class _Snapshots(DerivedDStream[Any]):
    def __init__(self, states: _StateRecords) -> None:
        super().__init__(states)
        self._states = states
        self._created_by = "stateSnapshots"

    def _compute(self, time_ms: int) -> Any:
        rdd = self._states._get_or_compute(time_ms)
        return None if rdd is None else StateSnapshotRDD(rdd)
