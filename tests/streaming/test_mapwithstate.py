"""``mapWithState``: checked batch by batch against a plain-Python model.

* 400 batches at 50 ms on a manual clock, with timeouts: every batch's mapped records and
  state snapshot equal the model's;
* the work per batch (state entries visited) follows the keys with new records: the same for
  a state of 10 k keys as for 1 M;
* a worker SIGKILLed mid-run: the results stay exact (the state is recomputed from lineage);
* the State API raises Spark's errors; bad specs name the bad value.
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from typing import Any

import pytest

from dstreams import StateSpec
from dstreams.streaming.operators.mapwithstate import State
from dstreams.testing import CollectingSink, TestSource, manual_context, run_batches


def count_words(word: str, one: Any, state: State) -> Any:
    if state.isTimingOut():
        return (word, "timed out", state.get())
    n = (state.getOption() or 0) + one
    if one == 0:
        state.remove()  # a 0 is a reset: the key's state goes
        return (word, "reset", None)
    state.update(n)
    return (word, n)


def model_batch(
    records: list[tuple[str, int]],
    state: dict[str, list[int]],
    t: int,
    timeout_ms: int | None,
) -> list[Any]:
    out = []
    for w, one in records:
        entry = state.get(w)
        if one == 0:
            state.pop(w, None)
            out.append((w, "reset", None))
            continue
        n = (entry[0] if entry else 0) + one
        state[w] = [n, t]
        out.append((w, n))
    if timeout_ms is not None:
        for w in [w for w, (_, last) in state.items() if last < t - timeout_ms]:
            out.append((w, "timed out", state.pop(w)[0]))
    return out


def test_hundreds_of_batches_with_timeouts_equal_the_model(sc, tmp_path) -> None:
    rng = random.Random(12)
    hot = [f"h{i}" for i in range(5)]
    cold = [f"c{i}" for i in range(40)]
    batches = []
    for b in range(400):
        n = rng.randint(0, 8)
        recs = [(rng.choice(hot if rng.random() < 0.7 else cold), 1) for _ in range(n)]
        if b % 37 == 5:
            recs.append((rng.choice(hot), 0))
        batches.append(recs)
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    spec = StateSpec.function(count_words).numPartitions(3).timeout(0.5)
    mapped = TestSource(ssc, batches, numSlices=2).stream.mapWithState(spec)
    out = CollectingSink(mapped, sort=False)
    snaps = CollectingSink(mapped.stateSnapshots(), sort=True)
    try:
        times = run_batches(ssc, 400)
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    state: dict[str, list[int]] = {}
    timed_out = 0
    for b, t in enumerate(times):
        expected = model_batch(batches[b], state, t, 500)
        got = out.results[b]
        assert sorted(got, key=repr) == sorted(expected, key=repr), f"batch {b}"
        # per key, the records come in their order
        for w in {r[0] for r in expected}:
            assert [r for r in got if r[0] == w] == [r for r in expected if r[0] == w]
        assert snaps.results[b] == sorted((w, e[0]) for w, e in state.items()), f"batch {b}"
        timed_out += sum(1 for r in expected if r[1] == "timed out")
    assert timed_out > 20, "the test should exercise timeouts"


def test_a_real_clock_run_of_100_batches_equals_the_model(sc, tmp_path) -> None:
    from dstreams.streaming import StreamingContext
    from dstreams.testing import run_real_clock

    rng = random.Random(21)
    batches = [[(f"k{rng.randrange(8)}", 1) for _ in range(rng.randint(0, 6))] for _ in range(100)]
    ssc = StreamingContext(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    spec = StateSpec.function(count_words).numPartitions(2).timeout(0.3)
    mapped = TestSource(ssc, batches, numSlices=2).stream.mapWithState(spec)
    out = CollectingSink(mapped)
    times = run_real_clock(ssc, out, 100)
    state: dict[str, list[int]] = {}
    for b, t in enumerate(times):
        expected = model_batch(batches[b], state, t, 300)
        assert sorted(out.batches[b][1], key=repr) == sorted(expected, key=repr), f"batch {b}"


def _visited(mapped: Any) -> list[int]:
    seen: list[int] = []
    mapped._states.foreachRDD(
        lambda rdd: seen.append(sum(rdd.map(lambda record: record.visited).collect()))
    )
    return seen


@pytest.mark.parametrize("size", [10_000, 1_000_000])
def test_the_work_per_batch_follows_the_keys_with_records(sc, tmp_path, size) -> None:
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    initial = sc.range(size).map(lambda i: (i, 1))
    spec = StateSpec.function(lambda k, v, s: s.update(s.get() + v)).initialState(initial)
    batches = [[(i * 7919 % size, 1) for i in range(b * 100, b * 100 + 100)] for b in range(12)]
    mapped = TestSource(ssc, batches, numSlices=2).stream.mapWithState(spec.numPartitions(2))
    visited = _visited(mapped)
    total = []
    mapped.stateSnapshots().foreachRDD(lambda rdd: total.append(rdd.values().sum()))
    try:
        run_batches(ssc, 12)
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    assert visited == [100] * 12, visited
    assert total[-1] == size + 1200


def test_a_worker_killed_mid_run_leaves_the_results_exact(sc, tmp_path) -> None:
    rng = random.Random(3)
    batches = [[(f"k{rng.randrange(50)}", 1) for _ in range(30)] for _ in range(60)]
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    mapped = TestSource(ssc, batches, numSlices=2).stream.mapWithState(
        StateSpec.function(count_words).numPartitions(2)
    )
    snaps = CollectingSink(mapped.stateSnapshots(), sort=True)
    try:
        run_batches(ssc, 25)
        pid = next(iter(sc._backend.worker_pids().values()))
        os.kill(pid, signal.SIGKILL)
        run_batches(ssc, 35)
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    running: Counter[str] = Counter()
    for b, recs in enumerate(batches):
        running.update(w for w, _ in recs)
        assert snaps.results[b] == sorted(running.items()), f"batch {b}"


def test_the_state_api_raises_sparks_errors() -> None:
    s = State()
    assert not s.exists() and s.getOption() is None
    with pytest.raises(KeyError, match="State is not set"):
        s.get()
    s.update(3)
    assert s.exists() and s.get() == 3
    s.remove()
    with pytest.raises(ValueError, match="Cannot update the state after it has been removed"):
        s.update(4)
    with pytest.raises(ValueError, match="already been removed"):
        s.remove()
    s._wrap(5, True)
    assert s.isTimingOut() and s.get() == 5
    with pytest.raises(ValueError, match="Cannot update the state that is timing out"):
        s.update(6)
    with pytest.raises(ValueError, match="Cannot remove the state when it is timing out"):
        s.remove()


def test_bad_specs_name_the_bad_value(sc) -> None:
    with pytest.raises(TypeError, match="StateSpec.function needs a function"):
        StateSpec.function(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="numPartitions=0 must be a positive integer"):
        StateSpec.function(count_words).numPartitions(0)
    with pytest.raises(ValueError, match="timeout"):
        StateSpec.function(count_words).timeout(0)
    ssc = manual_context(sc, 0.05)
    try:
        with pytest.raises(TypeError, match="mapWithState needs a StateSpec"):
            TestSource(ssc, []).stream.mapWithState(count_words)
    finally:
        ssc.stop(stopSparkContext=False)


def test_checkpoint_on_the_result_sets_the_states_interval(sc) -> None:
    ssc = manual_context(sc, 0.05)
    try:
        mapped = TestSource(ssc, []).stream.mapWithState(StateSpec.function(count_words))
        assert mapped._states._checkpoint_ms == 500, "10 batch intervals by default"
        assert mapped.checkpoint(2) is mapped and mapped._states._checkpoint_ms == 2000
    finally:
        ssc.stop(stopSparkContext=False)


def test_a_view_of_the_snapshots_looks_a_key_up_in_one_partition(sc, tmp_path) -> None:
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    batches = [[(f"k{i % 30}", 1) for i in range(b, b + 10)] for b in range(40)]
    mapped = TestSource(ssc, batches, numSlices=2).stream.mapWithState(
        StateSpec.function(count_words).numPartitions(3)
    )
    mapped.stateSnapshots().registerView("counts")
    running: Counter[str] = Counter()
    try:
        for recs in batches:
            run_batches(ssc, 1)
            running.update(w for w, _ in recs)
            view = ssc.view("counts")
            assert view.partitioner is not None and view.getNumPartitions() == 3
            assert view.lookup("k7") == ([running["k7"]] if running["k7"] else [])
            assert view.lookup("absent") == []
        assert dict(ssc.view("counts").collect()) == dict(running)
    finally:
        ssc.stop(stopSparkContext=False)
