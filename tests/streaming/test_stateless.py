"""Per-batch DStream operators, on a ManualClock (1 s batches; first batch at t = 1 s)."""

from __future__ import annotations

import operator
from datetime import datetime
from typing import Any

import pytest

from dstreams.testing import CollectingSink, TestSource, run_batches


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda s: s.map(lambda x: x * 2), [[2, 4, 6], [8]]),
        (lambda s: s.filter(lambda x: x % 2), [[1, 3], []]),
        (lambda s: s.mapPartitions(lambda it: [sum(it)]).reduce(operator.add), [[6], [4]]),
    ],
)
def test_element_wise(run: Any, build: Any, expected: list[list[int]]) -> None:
    assert run(build, [[1, 2, 3], [4]]) == expected


def test_flatmap_and_chained_transforms(run: Any) -> None:
    out = run(
        lambda s: s.flatMap(str.split).map(lambda w: w.upper()).filter(lambda w: w != "B"),
        [["a b", "c"]],
    )
    assert out == [["A", "C"]]


def test_count_on_exhausted_queue_gives_zero(run: Any) -> None:
    assert run(lambda s: s.count(), [[1, 2, 3]], n=3) == [[3], [0], [0]]


def test_reduce_on_exhausted_queue_is_empty(run: Any) -> None:
    assert run(lambda s: s.reduce(operator.add), [[1, 2, 3]], n=2) == [[6], []]


PAIRS = [[("a", 1), ("b", 2), ("a", 3)]]


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda s: s.reduceByKey(operator.add), [("a", 4), ("b", 2)]),
        (lambda s: s.groupByKey().mapValues(sorted), [("a", [1, 3]), ("b", [2])]),
        (
            lambda s: s.combineByKey(lambda v: [v], lambda c, v: c + [v], operator.add).mapValues(
                sorted
            ),
            [("a", [1, 3]), ("b", [2])],
        ),
        (lambda s: s.mapValues(lambda v: v * 10), [("a", 10), ("a", 30), ("b", 20)]),
        (
            lambda s: s.flatMapValues(lambda v: [v, -v]),
            [("a", -3), ("a", -1), ("a", 1), ("a", 3), ("b", -2), ("b", 2)],
        ),
    ],
)
def test_pair_operations(run: Any, build: Any, expected: list[Any]) -> None:
    assert run(build, PAIRS) == [expected]


def test_count_by_value(run: Any) -> None:
    assert run(lambda s: s.countByValue(), [["x", "y", "x"]]) == [[("x", 2), ("y", 1)]]


def test_glom_partitions_and_index(ssc: Any) -> None:
    src = TestSource(ssc, [[1, 2, 3, 4]], numSlices=2)
    glommed = CollectingSink(src.stream.glom())
    indexed = CollectingSink(src.stream.mapPartitionsWithIndex(lambda i, it: [(i, sum(it))]))
    parts = CollectingSink(
        src.stream.partitionBy(3).transform(
            lambda rdd: rdd.context.parallelize([rdd.getNumPartitions()], 1)
        )
    )
    run_batches(ssc, 1)
    assert glommed.results == [[[1, 2], [3, 4]]]
    assert indexed.results == [[(0, 3), (1, 7)]]
    src2_partitions = parts.results
    assert src2_partitions == [[3]]


def test_repartition(run: Any) -> None:
    out = run(lambda s: s.repartition(3).glom().map(len), [list(range(9))])
    assert sum(out[0]) == 9 and len(out[0]) == 3


def test_transform_with_time_and_without(ssc: Any) -> None:
    src = TestSource(ssc, [[1], [2]])
    timed = CollectingSink(src.stream.transform(lambda t, rdd: rdd.map(lambda x: (t, x))))
    plain = CollectingSink(src.stream.transform(lambda rdd: rdd.map(lambda x: -x)))
    seen: list[tuple[datetime, list[int]]] = []
    src.stream.foreachRDD(lambda t, rdd: seen.append((t, rdd.collect())))
    run_batches(ssc, 2)
    assert timed.results == [[(datetime.fromtimestamp(1.0), 1)], [(datetime.fromtimestamp(2.0), 2)]]
    assert plain.results == [[-1], [-2]]
    assert seen == [(datetime.fromtimestamp(1.0), [1]), (datetime.fromtimestamp(2.0), [2])]


def test_transform_returning_none_skips_batch(run: Any) -> None:
    out = run(lambda s: s.transform(lambda rdd: None), [[1]], n=1)
    assert out == []


def test_two_stream_operations(ssc: Any) -> None:
    a = TestSource(ssc, [[("k", 1), ("x", 2)]]).stream
    b = TestSource(ssc, [[("k", "v"), ("y", "w")]]).stream
    sinks = {
        "union": CollectingSink(a.union(b), sort=False),
        "join": CollectingSink(a.join(b), sort=True),
        "left": CollectingSink(a.leftOuterJoin(b), sort=True),
        "right": CollectingSink(a.rightOuterJoin(b), sort=True),
        "full": CollectingSink(a.fullOuterJoin(b).map(lambda kv: (kv[0], repr(kv[1]))), sort=True),
        "cogroup": CollectingSink(
            a.cogroup(b).mapValues(lambda ab: (list(ab[0]), list(ab[1]))), sort=True
        ),
        "with": CollectingSink(
            a.transformWith(lambda x, y: x.map(lambda kv: kv[0]).union(y.map(lambda kv: kv[0])), b),
            sort=True,
        ),
    }
    run_batches(ssc, 1)
    assert sorted(map(repr, sinks["union"].results[0])) == sorted(
        map(repr, [("k", 1), ("x", 2), ("k", "v"), ("y", "w")])
    )
    assert sinks["join"].results == [[("k", (1, "v"))]]
    assert sinks["left"].results == [[("k", (1, "v")), ("x", (2, None))]]
    assert sinks["right"].results == [[("k", (1, "v")), ("y", (None, "w"))]]
    assert sinks["full"].results == [[("k", "(1, 'v')"), ("x", "(2, None)"), ("y", "(None, 'w')")]]
    assert sinks["cogroup"].results == [[("k", ([1], ["v"])), ("x", ([2], [])), ("y", ([], ["w"]))]]
    assert sinks["with"].results == [["k", "k", "x", "y"]]


def test_context_union_and_transform(ssc: Any) -> None:
    a = TestSource(ssc, [[1, 2]]).stream
    b = TestSource(ssc, [[3]]).stream
    c = TestSource(ssc, [[4]]).stream
    u = CollectingSink(ssc.union(a, b, c), sort=True)
    t = CollectingSink(
        ssc.transform([a, b], lambda rdds: rdds[0].union(rdds[1]).map(str)), sort=True
    )
    assert ssc.union(a) is a
    with pytest.raises(ValueError, match="at least one"):
        ssc.union()
    run_batches(ssc, 1)
    assert u.results == [[1, 2, 3, 4]]
    assert t.results == [["1", "2", "3"]]


def test_queue_stream_modes(ssc: Any, sc: Any) -> None:
    all_at_once = CollectingSink(ssc.queueStream([[1], [2]], oneAtATime=False), sort=True)
    with_default = CollectingSink(ssc.queueStream([sc.parallelize([1])], default=[9]), sort=True)
    one_part = CollectingSink(ssc.queueStream([]).glom())
    run_batches(ssc, 2)
    assert all_at_once.results == [[1, 2], []]
    assert with_default.results == [[1], [9]]
    assert one_part.results == [[[]], [[]]]


def test_pprint_through_engine(ssc: Any, capsys: pytest.CaptureFixture[str]) -> None:
    TestSource(ssc, [list(range(12))], numSlices=1).stream.pprint()
    run_batches(ssc, 1)
    dashes = "-" * 43
    expected = "\n".join(
        [
            dashes,
            f"Time: {datetime.fromtimestamp(1.0)}",
            dashes,
            *map(str, range(10)),
            "...",
            "",
            "",
        ]
    )
    assert capsys.readouterr().out == expected


def test_save_as_text_files(ssc: Any, tmp_path: Any) -> None:
    TestSource(ssc, [["a", "b"]]).stream.saveAsTextFiles(str(tmp_path / "out"), "txt")
    run_batches(ssc, 1)
    out_dir = tmp_path / "out-1000.txt"
    lines = []
    for f in sorted(out_dir.iterdir()):
        if not f.name.startswith(("_", ".")):
            lines += f.read_text().splitlines()
    assert sorted(lines) == ["a", "b"]


def test_slice_returns_remembered_rdds(ssc: Any) -> None:
    ssc.remember(10)
    stream = TestSource(ssc, [[1], [2], [3]]).stream
    CollectingSink(stream)
    run_batches(ssc, 3)
    rdds = stream.slice(datetime.fromtimestamp(2.0), 3.0)
    assert [r.collect() for r in rdds] == [[2], [3]]


def test_cache_and_persist_mark_stream(run: Any, ssc: Any) -> None:
    out = run(lambda s: s.map(lambda x: x + 1).cache().map(lambda x: x * 2), [[1]])
    assert out == [[4]]
