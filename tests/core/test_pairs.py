"""Key-value operators: aggregation, partitioning, ordering and joins (PySpark's semantics)."""

from __future__ import annotations

from collections.abc import Iterable
from operator import add

from dstreams import portable_hash
from dstreams.core.pairs import ResultIterable

PAIRS = [("a", 1), ("b", 1), ("a", 2), ("c", 5), ("b", 3), ("a", 4)]


def by_key(rdd_items):
    return sorted(rdd_items, key=repr)


def test_map_values_flat_map_values_keys_values(sc):
    rdd = sc.parallelize([("a", [1, 2]), ("b", [3])])
    assert rdd.mapValues(len).collect() == [("a", 2), ("b", 1)]
    assert rdd.flatMapValues(lambda x: x).collect() == [("a", 1), ("a", 2), ("b", 3)]
    assert rdd.keys().collect() == ["a", "b"]
    assert rdd.values().collect() == [[1, 2], [3]]


def test_reduce_by_key(sc):
    rdd = sc.parallelize(PAIRS, 3)
    out = rdd.reduceByKey(add)
    assert out.getNumPartitions() == 3  # default: the parent's partition count
    assert sorted(out.collect()) == [("a", 7), ("b", 4), ("c", 5)]
    assert rdd.reduceByKey(add, 5).getNumPartitions() == 5


def test_reduce_by_key_places_keys_by_portable_hash(sc):
    keys = ["a", "b", "c", "d", "e", 1, 2, 3, (1, 2), None]
    rdd = sc.parallelize([(k, 1) for k in keys], 2).reduceByKey(add, 3)
    parts = rdd.glom().collect()
    for i, part in enumerate(parts):
        for k, _ in part:
            assert portable_hash(k) % 3 == i


def test_partition_by_int_keys_matches_pyspark_layout(sc):
    rdd = sc.parallelize([(i, i) for i in range(8)], 2).partitionBy(3)
    assert rdd.glom().collect() == [
        [(0, 0), (3, 3), (6, 6)],
        [(1, 1), (4, 4), (7, 7)],
        [(2, 2), (5, 5)],
    ]


def test_partition_by_custom_function_and_reuse(sc):
    rdd = sc.parallelize([(i, str(i)) for i in range(10)], 3)
    p = rdd.partitionBy(2, lambda k: 0 if k < 5 else 1)
    assert p.glom().collect() == [
        [(i, str(i)) for i in range(5)],
        [(i, str(i)) for i in range(5, 10)],
    ]
    same = p.partitionBy(2, p.partitioner.partitionFunc)
    assert same is p  # already partitioned that way: no new shuffle
    assert p.mapValues(len).partitioner == p.partitioner
    assert p.map(lambda kv: kv).partitioner is None


def test_group_by_key_values_are_list_like(sc):
    out = dict(sc.parallelize(PAIRS, 3).groupByKey().collect())
    assert set(out) == {"a", "b", "c"}
    for v in out.values():
        assert isinstance(v, ResultIterable)
        assert isinstance(v, Iterable)
    assert sorted(out["a"]) == [1, 2, 4]
    assert len(out["b"]) == 2
    assert list(out["c"]) == [5]


def test_group_by_key_keeps_map_order_within_key(sc):
    # one input partition: values appear in input order
    out = dict(sc.parallelize([(1, x) for x in "hello"], 1).groupByKey(2).collect())
    assert list(out[1]) == list("hello")


def test_group_by(sc):
    out = sc.parallelize([1, 2, 3, 4, 5]).groupBy(lambda x: x % 2).collect()
    assert sorted((k, sorted(v)) for k, v in out) == [(0, [2, 4]), (1, [1, 3, 5])]


def test_combine_aggregate_fold_by_key(sc):
    rdd = sc.parallelize([("a", 1), ("a", 2), ("b", 3)], 2)
    assert sorted(
        rdd.combineByKey(lambda v: [v], lambda c, v: c + [v], lambda a, b: a + b).collect()
    ) == [("a", [1, 2]), ("b", [3])]
    assert sorted(
        rdd.aggregateByKey([], lambda acc, x: acc + [x], lambda a, b: a + b).collect()
    ) == [("a", [1, 2]), ("b", [3])]
    assert sorted(
        sc.parallelize([("a", 1), ("a", 2), ("b", 3)], 3).foldByKey(0, add).collect()
    ) == [("a", 3), ("b", 3)]


def test_aggregate_by_key_zero_is_copied_per_key(sc):
    rdd = sc.parallelize([("a", 1), ("b", 2), ("a", 3)], 1)

    def seq(acc, x):
        acc.append(x)  # mutates the zero value in place
        return acc

    out = dict(rdd.aggregateByKey([], seq, lambda a, b: a + b).collect())
    assert out == {"a": [1, 3], "b": [2]}


def test_map_side_combine_reduces_shuffled_records(sc):
    # combineByKey's createCombiner runs once per key per map partition, proving map-side combine
    acc = sc.accumulator(0)

    def create(v):
        acc.add(1)
        return v

    rdd = sc.parallelize([("k", 1)] * 100, 4)
    assert rdd.combineByKey(create, add, add).collect() == [("k", 100)]
    assert acc.value == 4


def test_reduce_by_key_locally(sc):
    assert sc.parallelize(PAIRS, 3).reduceByKeyLocally(add) == {"a": 7, "b": 4, "c": 5}


# -- ordering ---------------------------------------------------------------------------------
def test_sort_by_key_layout_matches_pyspark(sc):
    rdd = sc.parallelize([(3, "c"), (1, "a"), (2, "b"), (5, "e"), (4, "d")], 2)
    assert rdd.sortByKey().glom().collect() == [
        [(1, "a"), (2, "b"), (3, "c")],
        [(4, "d"), (5, "e")],
    ]
    assert rdd.sortByKey(False).collect() == [(5, "e"), (4, "d"), (3, "c"), (2, "b"), (1, "a")]


def test_sort_by_layout_matches_pyspark(sc):
    rdd = sc.parallelize([5, 3, 1, 4, 2, 9, 7], 3)
    assert rdd.sortBy(lambda x: -x).glom().collect() == [[9, 7, 5], [4, 3], [2, 1]]
    assert rdd.sortBy(lambda x: x).collect() == [1, 2, 3, 4, 5, 7, 9]
    assert rdd.sortBy(lambda x: x, ascending=False).collect() == [9, 7, 5, 4, 3, 2, 1]


def test_sort_is_total_across_many_partitions(sc):
    import random

    rng = random.Random(3)
    data = [rng.randrange(10_000) for _ in range(3000)]
    out = sc.parallelize(data, 4).sortBy(lambda x: x, numPartitions=5)
    assert out.getNumPartitions() == 5
    assert out.collect() == sorted(data)
    keyed = sc.parallelize([(k, i) for i, k in enumerate(data)], 3)
    desc = keyed.sortByKey(ascending=False, numPartitions=4).keys().collect()
    assert desc == sorted(data, reverse=True)


def test_sort_by_key_with_keyfunc_and_single_partition(sc):
    rdd = sc.parallelize([("B", 1), ("a", 2), ("C", 3)], 2)
    assert rdd.sortByKey(keyfunc=str.lower).keys().collect() == ["a", "B", "C"]
    assert rdd.sortByKey(numPartitions=1).glom().collect() == [[("B", 1), ("C", 3), ("a", 2)]]


def test_sort_empty(sc):
    assert sc.parallelize([], 2).sortByKey().collect() == []
    assert sc.parallelize([], 2).sortBy(lambda x: x).collect() == []


# -- joins ------------------------------------------------------------------------------------
LEFT = [(1, "a"), (2, "b"), (1, "c")]
RIGHT = [(1, "x"), (1, "y"), (3, "z")]


def test_join(sc):
    j = sc.parallelize(LEFT, 2).join(sc.parallelize(RIGHT, 2))
    assert j.getNumPartitions() == 4  # PySpark: union of both sides' partitions
    assert sorted(j.collect()) == [
        (1, ("a", "x")),
        (1, ("a", "y")),
        (1, ("c", "x")),
        (1, ("c", "y")),
    ]
    assert sc.parallelize(LEFT, 2).join(sc.parallelize(RIGHT, 2), 3).getNumPartitions() == 3


def test_outer_joins(sc):
    left = sc.parallelize([(1, "a"), (2, "b")], 2)
    right = sc.parallelize([(1, "x"), (3, "z")], 2)
    assert sorted(left.leftOuterJoin(right).collect()) == [(1, ("a", "x")), (2, ("b", None))]
    assert sorted(left.rightOuterJoin(right).collect()) == [(1, ("a", "x")), (3, (None, "z"))]
    assert sorted(left.fullOuterJoin(right).collect()) == [
        (1, ("a", "x")),
        (2, ("b", None)),
        (3, (None, "z")),
    ]


def test_cogroup_value_layout(sc):
    cg = sc.parallelize(LEFT, 3).cogroup(sc.parallelize([(1, "x"), (3, "z")], 2))
    assert cg.getNumPartitions() == 5
    out = {k: (list(a), list(b)) for k, (a, b) in cg.collect()}
    assert {k: (sorted(a), b) for k, (a, b) in out.items()} == {
        1: (["a", "c"], ["x"]),
        2: (["b"], []),
        3: ([], ["z"]),
    }
    for _, vs in cg.collect():
        assert isinstance(vs, tuple) and len(vs) == 2
        assert all(isinstance(v, ResultIterable) for v in vs)


def test_group_with_three(sc):
    a = sc.parallelize([(1, "a")])
    b = sc.parallelize([(1, "b"), (2, "b")])
    c = sc.parallelize([(2, "c")])
    out = {k: tuple(map(list, vs)) for k, vs in a.groupWith(b, c).collect()}
    assert out == {1: (["a"], ["b"], []), 2: ([], ["b"], ["c"])}


def test_subtract_intersection(sc):
    assert sorted(sc.parallelize([1, 2, 3, 4]).subtract(sc.parallelize([2, 4])).collect()) == [1, 3]
    assert sorted(
        sc.parallelize([1, 2, 2, 3]).intersection(sc.parallelize([2, 3, 3, 5])).collect()
    ) == [2, 3]
    assert sc.parallelize([(1, "a"), (2, "b")]).subtractByKey(
        sc.parallelize([(2, "x")])
    ).collect() == [(1, "a")]


def test_shuffle_output_reused_by_later_jobs(sc, tmp_path):
    # the map side of a shuffle runs once; a second action over the shuffled RDD reuses it
    def tag(split, it):
        (tmp_path / f"map-{split}-{len(list(tmp_path.iterdir()))}").touch()
        return it

    reduced = sc.parallelize(PAIRS, 3).mapPartitionsWithIndex(tag).reduceByKey(add)
    assert sorted(reduced.collect()) == [("a", 7), ("b", 4), ("c", 5)]
    assert reduced.count() == 3
    assert sorted(reduced.mapValues(lambda v: -v).collect()) == [("a", -7), ("b", -4), ("c", -5)]
    assert len(list(tmp_path.iterdir())) == 3


def test_multi_stage_pipeline(sc):
    words = sc.parallelize(["a b", "b c", "c c"], 2).flatMap(str.split)
    counts = words.map(lambda w: (w, 1)).reduceByKey(add)
    by_count = counts.map(lambda kv: (kv[1], kv[0])).groupByKey().mapValues(sorted)
    assert sorted(by_count.collect()) == [(1, ["a"]), (2, ["b"]), (3, ["c"])]


def test_two_element_lists_work_as_pairs(sc):
    # PySpark unpacks ``k, v`` so a 2-element list is a valid pair
    rdd = sc.parallelize([["a", 1], ("a", 2), ["b", 3]], 2)
    assert sorted(rdd.reduceByKey(add).collect()) == [("a", 3), ("b", 3)]
    assert sorted((k, sorted(v)) for k, v in rdd.groupByKey().collect()) == [
        ("a", [1, 2]),
        ("b", [3]),
    ]
    assert sorted(tuple(kv) for kv in rdd.partitionBy(2).collect()) == [
        ("a", 1),
        ("a", 2),
        ("b", 3),
    ]
