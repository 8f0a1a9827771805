"""Windows: the slide grid, validation, and PySpark's two reduceByKeyAndWindow paths.

1 s batches on a ManualClock: zero time 0, batches at 1 s, 2 s, ...; the window at
t covers (t - window, t].  Expected values follow from those rules by hand.
"""

from __future__ import annotations

import operator
from typing import Any

import pytest

from dstreams.testing import CollectingSink, TestSource, run_batches

FIVE = [[1], [2], [3], [4], [5]]


def test_window_contents(run: Any) -> None:
    out = run(lambda s: s.window(3, 1), FIVE, n=6)
    assert out == [[1], [1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5]]


def test_window_emits_on_slide_grid(ssc: Any) -> None:
    sink = CollectingSink(TestSource(ssc, FIVE).stream.window(4, 2), sort=True)
    run_batches(ssc, 6)
    assert [t.timestamp() for t, _ in sink.batches] == [2.0, 4.0, 6.0]
    assert sink.results == [[1, 2], [1, 2, 3, 4], [3, 4, 5]]


PYSPARK_WINDOW = r"windowDuration must be multiple of the parent dstream's slide \(batch\) duration"
PYSPARK_SLIDE = r"slideDuration must be multiple of the parent dstream's slide \(batch\) duration"


def test_window_validation_uses_pysparks_text_and_names_both_durations(ssc: Any) -> None:
    stream = TestSource(ssc, []).stream
    with pytest.raises(ValueError, match=PYSPARK_WINDOW + r" \(1000 ms\): got 2\.5s"):
        stream.window(2.5, 1)
    with pytest.raises(ValueError, match=PYSPARK_SLIDE + r" \(1000 ms\): got 1\.5s"):
        stream.window(3, 1.5)
    slid = stream.window(4, 2)
    with pytest.raises(ValueError, match=PYSPARK_WINDOW + r" \(2000 ms\): got 3s"):
        slid.window(3)
    with pytest.raises(ValueError, match=PYSPARK_WINDOW + r" \(2000 ms\): got 3s"):
        slid.reduceByKeyAndWindow(operator.add, None, 3, 2)


def test_window_arguments_are_checked_in_pysparks_order(ssc: Any) -> None:
    stream = TestSource(ssc, []).stream
    # PySpark checks the durations first: a ValueError, not a TypeError for the function
    with pytest.raises(ValueError, match=PYSPARK_WINDOW):
        stream.reduceByKeyAndWindow(None, None, 0.1, 0.1)
    with pytest.raises(ValueError, match=PYSPARK_WINDOW):
        stream.reduceByWindow(None, None, 0.5, 1)
    with pytest.raises(ValueError, match=PYSPARK_SLIDE):
        stream.reduceByKeyAndWindow(None, None, 2, 0.5)
    # the window first, then the slide
    with pytest.raises(ValueError, match=PYSPARK_WINDOW):
        stream.window(0.5, 0.5)
    # valid durations: now the function is checked, when the graph is built
    with pytest.raises(TypeError, match="reduceByKeyAndWindow: func must be a function"):
        stream.reduceByKeyAndWindow(None, None, 2, 1)


def test_reduce_by_window_without_inverse(run: Any) -> None:
    out = run(lambda s: s.reduceByWindow(operator.add, None, 3, 1), FIVE, n=8)
    assert out == [[1], [3], [6], [9], [12], [9], [5], []]


def test_count_by_window_needs_checkpoint(ssc: Any) -> None:
    CollectingSink(TestSource(ssc, FIVE).stream.countByWindow(3, 1))
    with pytest.raises(ValueError, match=r"StreamingContext\.checkpoint"):
        ssc.start()


def test_count_by_window(run: Any, ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))
    out = run(lambda s: s.countByWindow(3, 1), FIVE, n=8)
    assert out == [[1], [2], [3], [3], [3], [2], [1], []]


WORDS = [["a", "b"], ["a"]]


def _pairs(s: Any) -> Any:
    return s.map(lambda w: (w, 1))


def test_incremental_path_keeps_zero_keys(run: Any, ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))
    out = run(
        lambda s: _pairs(s).reduceByKeyAndWindow(operator.add, operator.sub, 5, 1), WORDS, n=7
    )
    a2b1 = [("a", 2), ("b", 1)]
    assert out == [
        [("a", 1), ("b", 1)],
        a2b1,
        a2b1,
        a2b1,
        a2b1,
        [("a", 1), ("b", 0)],
        [("a", 0), ("b", 0)],
    ]


def test_incremental_path_with_filter(run: Any, ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))
    out = run(
        lambda s: _pairs(s).reduceByKeyAndWindow(
            operator.add, operator.sub, 5, 1, filterFunc=lambda kv: kv[1] > 0
        ),
        WORDS,
        n=7,
    )
    assert out[5:] == [[("a", 1)], []]


def test_small_window_reduces_whole_window_again(run: Any, ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))
    out = run(
        lambda s: _pairs(s).reduceByKeyAndWindow(operator.add, operator.sub, 3, 1), WORDS, n=5
    )
    assert out == [[("a", 1), ("b", 1)], [("a", 2), ("b", 1)], [("a", 2), ("b", 1)], [("a", 1)], []]


def test_reduce_by_key_and_window_without_inverse(run: Any) -> None:
    out = run(lambda s: _pairs(s).reduceByKeyAndWindow(operator.add, None, 2, 1), WORDS, n=3)
    assert out == [[("a", 1), ("b", 1)], [("a", 2), ("b", 1)], [("a", 1)]]


def test_incremental_with_larger_slide(run: Any, ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))
    data = [[("k", i)] for i in range(1, 15)]  # value i at time i s
    out = run(lambda s: s.reduceByKeyAndWindow(operator.add, operator.sub, 10, 2), data, n=14)
    # emits at 2, 4, ..., 14; window (t - 10, t]
    expected = [[("k", sum(range(max(1, t - 9), t + 1)))] for t in range(2, 15, 2)]
    assert out == expected


def test_count_by_value_and_window(run: Any, ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))
    out = run(lambda s: s.countByValueAndWindow(2, 1), [["x", "y", "x"], ["x"]], n=4)
    assert out == [[("x", 2), ("y", 1)], [("x", 3), ("y", 1)], [("x", 1)], []]


def test_group_by_key_and_window(run: Any, ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))
    out = run(
        lambda s: s.groupByKeyAndWindow(2, 1).mapValues(sorted),
        [[("k", 1)], [("k", 2), ("j", 0)], [("k", 3)]],
        n=4,
    )
    assert out == [
        [("k", [1])],
        [("j", [0]), ("k", [1, 2])],
        [("j", [0]), ("k", [2, 3])],
        [("k", [3])],
    ]


def test_state_rdds_are_checkpointed(ssc: Any, tmp_path: Any) -> None:
    ssc.checkpoint(str(tmp_path))
    windowed = _pairs(TestSource(ssc, [["a"]] * 10).stream).reduceByKeyAndWindow(
        operator.add, operator.sub, 5, 1
    )
    CollectingSink(windowed)
    seen: dict[int, Any] = {}
    windowed.foreachRDD(lambda t, rdd: seen.setdefault(round(t.timestamp() * 1000), rdd))
    run_batches(ssc, 11)
    assert windowed._checkpoint_ms == 10_000
    assert seen[10_000].isCheckpointed()
    assert not seen[9_000].isCheckpointed()
