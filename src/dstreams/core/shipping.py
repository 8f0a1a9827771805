"""How a stage's lineage travels to the workers: as flat data, cut where it is already cached.

A stage is the RDDs a task pipelines, from the stage's last RDD back to shuffle reads, sources,
checkpoints and cached RDDs. Pickling that object graph directly makes pickle recurse once per
level, so a state stream's lineage (one ``cogroup`` per batch, all narrow) fails after a few
dozen batches. :func:`encode_stage` instead writes the RDDs as a *list of nodes*: each node's
attributes are pickled on their own, and every reference to another RDD becomes a persistent id
(``(index, class)``). The pickle depth is therefore the depth of one node, whatever the lineage.

Two rules keep what ships small:

* An RDD the driver knows to be fully cached (``truncate``) ships as a
  :class:`CachedRDDStub`: its partitions are read from the block stores, and nothing behind it
  travels. If a block turns out to be missing when the task reads it, the task fails with
  :class:`~dstreams.errors.CacheMissingError`; the scheduler forgets that location and plans the
  stage again with the lineage behind it.
* A checkpointed RDD has no dependencies, so its lineage is already cut.

On the worker, :func:`decode_stage` rebuilds the nodes (all instances first, then their
attributes), and :func:`materialize_deep_lineage` keeps *computing* a deep uncached lineage from
recursing: it materializes every ``MATERIALIZE_EVERY``-th level of the partition's narrow
lineage bottom-up, so no compute nests deeper than that.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dstreams.core.dependency import NarrowDependency, ShuffleDependency
from dstreams.core.rdd import NO_CONTEXT, RDD
from dstreams.errors import CacheMissingError
from dstreams.serde import CodePickler

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dstreams.scheduler.task import TaskContext

__all__ = [
    "CachedRDDStub",
    "DecodedStage",
    "MATERIALIZE_EVERY",
    "decode_stage",
    "encode_stage",
    "lineage_height",
    "materialize_deep_lineage",
]

#: a task's compute never nests more RDD levels than this (deeper lineages are materialized)
MATERIALIZE_EVERY = 48

_STUB_FIELDS = ("_id", "_num_partitions", "partitioner", "_storage_level", "_name")


class CachedRDDStub(RDD[Any]):
    """Stands in, on a worker, for a persisted RDD whose partitions are all cached."""

    def __init__(self, rdd: RDD[Any]) -> None:  # built on the driver, never via RDD.__init__
        for f in _STUB_FIELDS:
            setattr(self, f, getattr(rdd, f))
        self.ctx = NO_CONTEXT
        self._deps = []
        self.is_cached = True
        self.is_checkpointed = False
        self._checkpoint_requested = False
        self._checkpoint_searched = True
        self._checkpoint_rdd = None

    def iterator(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        data = tctx.get_cached(self._id, split)
        if data is None:
            raise CacheMissingError(self._id, split)
        return iter(data)

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        return self.iterator(split, tctx)


class _Refs(dict):  # type: ignore[type-arg]
    """``id(rdd) -> (index, class)`` for the pickler, growing as new RDDs are met."""

    def __init__(self, nodes: list[Any]) -> None:
        super().__init__()
        self.nodes = nodes

    def add(self, rdd: Any, shipped: Any) -> None:
        self[id(rdd)] = (len(self.nodes), type(shipped))
        self.nodes.append(shipped)


class _StagePickler(CodePickler):
    def __init__(self, file: Any, refs: _Refs) -> None:
        super().__init__(file, refs)
        self._table = refs

    def persistent_id(self, obj: Any) -> Any:
        ref = self._table.get(id(obj))
        if ref is None and isinstance(obj, RDD):
            self._table.add(obj, obj)  # met inside a closure: shipped as one more node
            ref = self._table[id(obj)]
        return ref


def _stage_nodes(rdd: RDD[Any], truncate: Collection[int]) -> _Refs:
    refs = _Refs([])
    stack = [rdd]
    while stack:
        r = stack.pop()
        if id(r) in refs:
            continue
        if r._id in truncate and r._storage_level is not None:
            refs.add(r, CachedRDDStub(r))
            continue
        refs.add(r, r)
        if r._checkpoint_rdd is not None:
            stack.append(r._checkpoint_rdd)
        for dep in r.dependencies():
            if not isinstance(dep, ShuffleDependency):  # the map side is another stage
                stack.append(dep.rdd)
    return refs


def encode_stage(
    rdd: RDD[Any], func: Any, partitioner: Any, truncate: Collection[int] = ()
) -> bytes:
    """The stage payload: ``(rdd, func, partitioner)`` with the lineage written node by node.

    Args:
        rdd: the stage's last RDD.
        func: the result function (result stages) or None.
        partitioner: the shuffle's partitioner (map stages) or None.
        truncate: ids of persisted RDDs whose partitions are all cached: shipped as stubs.

    Raises:
        SerializationError: a function or value cannot be pickled; the message names it.
    """
    from dstreams.errors import SerializationError
    from dstreams.serde import explain_unpicklable

    refs = _stage_nodes(rdd, truncate)
    buf = io.BytesIO()
    pickler = _StagePickler(buf, refs)
    what = "the stage's functions"
    try:
        pickler.dump(("stage", rdd, func, partitioner))
        i = 0
        while i < len(refs.nodes):  # nodes met while pickling are appended to the list
            node = refs.nodes[i]
            what = f"{node!r}"
            pickler.dump((i, type(node), node.__getstate__()))
            i += 1
        pickler.dump(("end", len(refs.nodes)))
    except SerializationError:
        raise
    except Exception as e:
        culprit = func if what == "the stage's functions" else refs.nodes[i]
        detail = explain_unpicklable(_user_parts(culprit))
        raise SerializationError(
            f"could not serialize {what} for the workers: {type(e).__name__}: {e}"
            + (f"; {detail}" if detail else "")
            + ". Functions shipped to workers must be picklable: create locks, sockets, open "
            "files, generators and clients inside the function (or once per partition with "
            "mapPartitions) instead of capturing them."
        ) from e
    return buf.getvalue()


def _user_parts(obj: Any) -> Any:
    """What of an RDD node is worth searching for the unpicklable value (its functions)."""
    if isinstance(obj, RDD):
        return {k: v for k, v in obj.__getstate__().items() if k not in ("ctx", "_deps")}
    return obj


@dataclass
class DecodedStage:
    """A stage rebuilt on a worker."""

    rdd: RDD[Any]
    func: Any
    partitioner: Any
    #: the longest chain of narrow dependencies from ``rdd`` (0 for a source)
    height: int


class _StageUnpickler(pickle.Unpickler):
    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.instances: dict[int, Any] = {}

    def persistent_load(self, pid: Any) -> Any:
        index, cls = pid
        inst = self.instances.get(index)
        if inst is None:
            inst = self.instances[index] = cls.__new__(cls)
        return inst


def decode_stage(data: bytes) -> DecodedStage:
    """Rebuild the stage written by :func:`encode_stage`."""
    u = _StageUnpickler(io.BytesIO(data))
    head = u.load()
    if not (isinstance(head, tuple) and head and head[0] == "stage"):
        raise ValueError("not a stage payload")
    _, rdd, func, partitioner = head
    while True:
        rec = u.load()
        if rec[0] == "end":
            break
        index, cls, state = rec
        inst = u.persistent_load((index, cls))
        if hasattr(cls, "__setstate__"):
            inst.__setstate__(state)
        else:
            inst.__dict__.update(state)
    return DecodedStage(rdd, func, partitioner, lineage_height(rdd))


def _parents(r: RDD[Any], narrow_only: bool) -> list[RDD[Any]]:
    return [
        d.rdd for d in r.dependencies() if not (narrow_only and isinstance(d, ShuffleDependency))
    ]


def lineage_height(rdd: RDD[Any], narrow_only: bool = True) -> int:
    """The longest chain of dependencies below ``rdd`` (computed without recursion).

    With ``narrow_only`` (what one task pipelines) shuffle dependencies end the chain;
    without it, the whole lineage counts, as far back as sources and checkpoints.
    """
    height: dict[int, int] = {}
    stack: list[tuple[RDD[Any], bool]] = [(rdd, False)]
    while stack:
        r, expanded = stack.pop()
        if id(r) in height:
            continue
        parents = _parents(r, narrow_only)
        if expanded or not parents:
            height[id(r)] = 1 + max((height[id(p)] for p in parents), default=-1)
            continue
        stack.append((r, True))
        stack.extend((p, False) for p in parents if id(p) not in height)
    return height[id(rdd)]


def materialize_deep_lineage(
    rdd: RDD[Any], split: int, tctx: TaskContext, every: int = MATERIALIZE_EVERY
) -> None:
    """Compute partition ``split``'s deep lineage bottom-up so no compute nests past ``every``.

    Every (RDD, partition) of the narrow lineage whose height is a positive multiple of
    ``every`` is computed, lowest first, into ``tctx.materialized``; a node's compute then stops
    at the materialized ones below it. A materialized partition is dropped as soon as every
    node that reads it directly has been computed. Cached partitions and checkpoints are
    leaves: they are read, not recomputed.
    """
    key_of = _Key
    graph: dict[_Key, list[_Key]] = {}
    order: list[_Key] = []  # post-order: parents before children
    height: dict[_Key, int] = {}
    root = key_of(rdd, split)
    stack: list[tuple[_Key, bool]] = [(root, False)]
    while stack:
        k, expanded = stack.pop()
        if k in height:
            continue
        if k not in graph:
            graph[k] = _parent_keys(k, tctx)
        parents = graph[k]
        if expanded or not parents:
            height[k] = 1 + max((height[p] for p in parents), default=-1)
            order.append(k)
            continue
        stack.append((k, True))
        stack.extend((p, False) for p in parents if p not in height)
    targets = [k for k in order if k != root and height[k] % every == 0 and height[k] > 0]
    if not targets:
        return
    chosen = set(targets)
    readers: dict[_Key, int] = {}
    reads: dict[_Key, list[_Key]] = {}
    for k in [*targets, root]:
        reads[k] = _direct_reads(k, graph, chosen)
        for r in reads[k]:
            readers[r] = readers.get(r, 0) + 1
    for k in targets:  # post-order: every target's materialized inputs are ready
        tctx.materialized[(k.rdd._id, k.split)] = list(k.rdd.iterator(k.split, tctx))
        for r in reads[k]:
            readers[r] -= 1
            if readers[r] == 0:
                tctx.materialized.pop((r.rdd._id, r.split), None)


class _Key:
    """One (RDD, partition) of a task's lineage, hashed by identity of the RDD."""

    __slots__ = ("rdd", "split")

    def __init__(self, rdd: RDD[Any], split: int) -> None:
        self.rdd, self.split = rdd, split

    def __hash__(self) -> int:
        return hash((id(self.rdd), self.split))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and other.rdd is self.rdd and other.split == self.split


def _parent_keys(k: _Key, tctx: TaskContext) -> list[_Key]:
    r = k.rdd
    if r._checkpoint_rdd is not None or isinstance(r, CachedRDDStub):
        return []
    if r._storage_level is not None and tctx.has_cached(r._id, k.split):
        return []
    out: list[_Key] = []
    for d in r.dependencies():
        if isinstance(d, NarrowDependency):
            out.extend(_Key(d.rdd, p) for p in d.get_parents(k.split))
    return out


def _direct_reads(k: _Key, graph: dict[_Key, list[_Key]], chosen: set[_Key]) -> list[_Key]:
    """The materialized keys that computing ``k`` reads without passing another one."""
    out: list[_Key] = []
    seen: set[_Key] = set()
    stack = list(graph.get(k, []))
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        if p in chosen:
            out.append(p)
            continue
        stack.extend(graph.get(p, []))
    return out
