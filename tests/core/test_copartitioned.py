"""Co-partitioned inputs: joins, cogroup and grouping skip the shuffle, with identical results."""

from __future__ import annotations

from operator import add
from typing import Any

from dstreams.core.dependency import ShuffleDependency
from dstreams.core.primitives import PartitionerAwareUnionRDD, union_for_grouping
from dstreams.core.rdd import RDD


def shuffles(rdd: RDD[Any]) -> int:
    """The number of shuffle dependencies in the lineage."""
    seen, stack, n = set(), [rdd], 0
    while stack:
        r = stack.pop()
        if r.id() in seen:
            continue
        seen.add(r.id())
        for d in r.dependencies():
            n += isinstance(d, ShuffleDependency)
            stack.append(d.rdd)
    return n


def test_join_of_copartitioned_rdds_adds_no_shuffle_and_matches_the_shuffled_result(sc):
    a = sc.parallelize([(i % 7, i) for i in range(40)], 3).partitionBy(4)
    b = sc.parallelize([(i % 5, -i) for i in range(30)], 2).partitionBy(4)
    fast = a.join(b, 4)
    # the same join with the partitioners dropped goes through a shuffle
    slow = a.map(lambda kv: kv).join(b.map(lambda kv: kv), 4)
    assert shuffles(fast) == 2  # only the two partitionBy calls
    assert shuffles(slow) == 3
    assert fast.glom().collect() == slow.glom().collect()
    assert fast.partitioner == a.partitioner


def test_cogroup_and_outer_joins_keep_their_layout(sc):
    a = sc.parallelize([(k, k * 10) for k in range(12)], 2).partitionBy(3)
    b = sc.parallelize([(k, str(k)) for k in range(6, 18)], 2).partitionBy(3)
    strip = lambda r: r.map(lambda kv: kv)
    for op in ("cogroup", "leftOuterJoin", "rightOuterJoin", "fullOuterJoin"):
        fast = getattr(a, op)(b, 3)
        slow = getattr(strip(a), op)(strip(b), 3)
        assert shuffles(fast) == 2, op
        got = fast.mapValues(lambda v: tuple(map(list, v)) if op == "cogroup" else v)
        want = slow.mapValues(lambda v: tuple(map(list, v)) if op == "cogroup" else v)
        assert got.glom().collect() == want.glom().collect(), op


def test_without_an_explicit_partition_count_the_join_keeps_pyspark_partition_counts(sc):
    a = sc.parallelize([(1, 1), (2, 2)], 2).partitionBy(2)
    b = sc.parallelize([(1, 3)], 2).partitionBy(2)
    # PySpark: union of 2 + 2 partitions, grouped into 4
    assert a.join(b).getNumPartitions() == 4
    assert sorted(a.join(b).collect()) == [(1, (1, 3))]


def test_reduce_by_key_on_partitioned_input_reuses_the_partitioning(sc):
    a = sc.parallelize([(i % 10, 1) for i in range(100)], 4).partitionBy(3)
    r = a.reduceByKey(add, 3)
    assert shuffles(r) == 1
    assert sorted(r.collect()) == [(k, 10) for k in range(10)]


def test_union_for_grouping_falls_back_to_a_plain_union(sc):
    a = sc.parallelize([(1, 1)], 2).partitionBy(2)
    b = sc.parallelize([(1, 1)], 2)
    assert not isinstance(union_for_grouping(sc, [a, b], 2), PartitionerAwareUnionRDD)
    assert not isinstance(
        union_for_grouping(sc, [a, a.partitionBy(3)], 2), PartitionerAwareUnionRDD
    )
    assert isinstance(union_for_grouping(sc, [a, a], 2), PartitionerAwareUnionRDD)
    assert union_for_grouping(sc, [a, b], 2).getNumPartitions() == 4  # PySpark's union
