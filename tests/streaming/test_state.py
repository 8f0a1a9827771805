"""updateStateByKey: called for every key each batch, None deletes, initial state."""

from __future__ import annotations

from typing import Any

import pytest

from dstreams.testing import CollectingSink, TestSource, run_batches

WORDS = [["a", "b"], ["a"], []]


def _pairs(s: Any) -> Any:
    return s.map(lambda w: (w, 1))


def test_running_count(run: Any, ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))
    out = run(lambda s: _pairs(s).updateStateByKey(lambda vs, st: sum(vs) + (st or 0)), WORDS)
    assert out == [[("a", 1), ("b", 1)], [("a", 2), ("b", 1)], [("a", 2), ("b", 1)]]


def test_update_called_for_every_key_with_empty_values(run: Any, ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))
    out = run(lambda s: _pairs(s).updateStateByKey(lambda vs, st: (st or 0) + 1), WORDS)
    assert out == [[("a", 1), ("b", 1)], [("a", 2), ("b", 2)], [("a", 3), ("b", 3)]]


def test_none_deletes_key(run: Any, ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))

    def update(values: list[int], state: int | None) -> int | None:
        return sum(values) + (state or 0) if values else None

    out = run(lambda s: _pairs(s).updateStateByKey(update), WORDS)
    assert out == [[("a", 1), ("b", 1)], [("a", 2)], []]


@pytest.mark.parametrize("as_rdd", [False, True])
def test_initial_state(run: Any, ssc: Any, sc: Any, tmp_path: Any, as_rdd: bool) -> None:
    ssc.checkpoint(str(tmp_path))
    initial: Any = [("a", 10), ("c", 5)]
    if as_rdd:
        initial = sc.parallelize(initial)
    out = run(
        lambda s: _pairs(s).updateStateByKey(
            lambda vs, st: sum(vs) + (st or 0), initialRDD=initial
        ),
        WORDS[:1],
    )
    assert out == [[("a", 11), ("b", 1), ("c", 5)]]


def test_update_state_needs_checkpoint(ssc: Any) -> None:
    CollectingSink(_pairs(TestSource(ssc, WORDS).stream).updateStateByKey(lambda vs, st: 1))
    with pytest.raises(ValueError, match=r"updateStateByKey.*StreamingContext\.checkpoint"):
        ssc.start()


def test_state_lineage_is_checkpointed(ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))
    state = _pairs(TestSource(ssc, [["a"]] * 12).stream).updateStateByKey(
        lambda vs, st: sum(vs) + (st or 0)
    )
    sink = CollectingSink(state)
    seen: dict[int, Any] = {}
    state.foreachRDD(lambda t, rdd: seen.setdefault(round(t.timestamp() * 1000), rdd))
    run_batches(ssc, 12)
    assert sink.results[-1] == [("a", 12)]
    assert seen[10_000].isCheckpointed()
    assert not seen[9_000].isCheckpointed()
    assert seen[12_000].dependencies(), "not checkpointed yet: lineage reaches back to 10 s"


def test_sc_set_checkpoint_dir_satisfies_start_as_in_spark(
    ssc: Any, sc: Any, tmp_path: Any
) -> None:
    sc.setCheckpointDir(str(tmp_path / "via-sc"))  # the PySpark way; ssc.checkpoint not called
    state = _pairs(TestSource(ssc, WORDS).stream).updateStateByKey(
        lambda vs, st: sum(vs) + (st or 0)
    )
    sink = CollectingSink(state, sort=True)
    run_batches(ssc, 2)
    assert sink.results == [[("a", 1), ("b", 1)], [("a", 2), ("b", 1)]]
