"""Stage shipping (``core/shipping.py``): flat payloads, cut at cached RDDs, deep lineages run."""

from __future__ import annotations

import threading
from operator import add
from typing import Any

import pytest

from dstreams.core.shipping import (
    CachedRDDStub,
    decode_stage,
    encode_stage,
    lineage_height,
)
from dstreams.errors import SerializationError


def chain(rdd: Any, n: int) -> Any:
    for _ in range(n):
        rdd = rdd.map(lambda x: x + 1)
    return rdd


def state_like(sc: Any, batches: int, parts: int = 2) -> Any:
    """What updateStateByKey builds: state_t = cogroup(state_{t-1}, batch_t), all narrow."""
    state = sc.parallelize([], parts).partitionBy(parts)
    for b in range(batches):
        batch = sc.parallelize([(b % 5, 1), (7, 1)], 1).partitionBy(parts)
        grouped = state.cogroup(batch, parts)
        state = grouped.mapValues(lambda vs: sum(vs[0]) + sum(vs[1]))
    return state


def test_a_deep_lineage_encodes_without_recursion_and_decodes_whole(sc):
    rdd = chain(sc.parallelize([1, 2], 2), 5000)
    data = encode_stage(rdd, list, None)
    stage = decode_stage(data)
    assert stage.height == 5000
    assert lineage_height(rdd) == 5000
    assert stage.func is list and stage.partitioner is None


def test_a_deep_narrow_lineage_computes_on_the_workers(sc):
    assert chain(sc.parallelize(range(10), 2), 3000).collect() == list(range(3000, 3010))


def test_a_deep_state_like_lineage_computes_exactly(sc):
    state = state_like(sc, 600)
    assert lineage_height(state, narrow_only=False) > 3000
    want = {k: 120 for k in range(5)} | {7: 600}
    assert dict(state.collect()) == want


def test_a_fully_cached_rdd_ships_as_a_stub_and_its_lineage_stays_home(sc):
    deep = state_like(sc, 300).cache()
    deep.count()
    runner = sc._runner
    child = deep.mapValues(lambda v: v * 2)
    frontier = runner.dag.cached_frontier(child)
    assert frontier == {deep.id()}
    cut = encode_stage(child, list, None, frontier)
    whole = encode_stage(child, list, None)
    assert len(cut) < 4000 < len(whole) / 10
    stub = decode_stage(cut).rdd.dependencies()[0].rdd
    assert isinstance(stub, CachedRDDStub) and stub.id() == deep.id()
    assert dict(child.collect()) == {k: 120 for k in range(5)} | {7: 600}


def test_a_stubbed_block_that_vanished_is_recomputed_from_lineage(sc):
    deep = state_like(sc, 100).cache()
    want = dict(deep.collect())
    # the blocks disappear from the workers behind the scheduler's back (as an eviction race
    # would): the next job's payload stubs them, its tasks miss, and the stage is re-planned
    sc._backend.remove_blocks("rdd", deep.id())
    assert sc._runner.dag.cached_frontier(deep.map(str)) == {deep.id()}
    assert dict(deep.mapValues(lambda v: v).collect()) == want


def test_an_unpicklable_closure_is_named_with_its_file_and_line(sc):
    lock = threading.Lock()

    def guarded(x: int) -> int:
        with lock:
            return x

    with pytest.raises(SerializationError) as info:
        sc.parallelize([1, 2]).map(guarded).collect()
    text = str(info.value)
    assert "captured variable `lock`" in text
    assert "_thread.lock, which cannot be pickled" in text
    assert f"guarded` ({__file__}:{guarded.__code__.co_firstlineno})" in text
    assert sc.parallelize([1, 2]).map(lambda x: x + 1).reduce(add) == 5  # not wedged


def test_remote_tracebacks_show_the_users_file_and_line(sc):
    def parse(x: str) -> int:
        return int(x)

    with pytest.raises(Exception) as info:
        sc.parallelize(["1", "x"], 1).map(parse).collect()
    line = parse.__code__.co_firstlineno + 1
    assert f'File "{__file__}", line {line}, in parse' in str(info.value)
    assert "<dynamic-code>" not in str(info.value)
