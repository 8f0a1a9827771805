"""Actions: results and orders as PySpark defines them."""

from __future__ import annotations

import math
from collections import defaultdict
from operator import add

import pytest


def test_collect_count(sc):
    assert sc.parallelize(range(1000), 7).count() == 1000
    assert sc.parallelize([], 3).count() == 0


def test_first(sc):
    assert sc.parallelize([7, 8, 9], 3).first() == 7
    assert sc.parallelize([1, 2], 5).first() == 1  # first partitions are empty


def test_first_on_empty_raises_value_error(sc):
    with pytest.raises(ValueError, match="RDD is empty"):
        sc.parallelize([], 2).first()
    with pytest.raises(ValueError):
        sc.emptyRDD().first()


def test_take(sc):
    rdd = sc.parallelize(range(10), 4)
    assert rdd.take(5) == [0, 1, 2, 3, 4]
    assert rdd.take(0) == []
    assert sc.parallelize(range(3), 2).take(10) == [0, 1, 2]
    assert sc.parallelize([5], 8).take(1) == [5]  # scans past empty partitions


def test_take_scans_only_needed_partitions(sc, tmp_path):
    def tag(split, it):
        (tmp_path / str(split)).touch()
        return it

    rdd = sc.parallelize(range(100), 10).mapPartitionsWithIndex(tag)
    assert rdd.take(3) == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0"]


def test_is_empty(sc):
    assert sc.parallelize([]).isEmpty()
    assert not sc.parallelize([1]).isEmpty()
    assert sc.emptyRDD().isEmpty()
    assert not sc.parallelize([0], 4).isEmpty()


def test_top_is_descending_and_take_ordered_ascending(sc):
    rdd = sc.parallelize([5, 3, 1, 4, 2, 9, 7], 3)
    assert rdd.top(3) == [9, 7, 5]
    assert rdd.top(3, key=lambda x: -x) == [1, 2, 3]
    assert rdd.takeOrdered(3) == [1, 2, 3]
    assert rdd.takeOrdered(3, key=lambda x: -x) == [9, 7, 5]
    assert rdd.top(100) == [9, 7, 5, 4, 3, 2, 1]


def test_reduce(sc):
    assert sc.parallelize(range(10), 3).reduce(add) == 45
    assert sc.parallelize([3, 1, 2], 5).reduce(add) == 6  # with empty partitions
    assert sc.parallelize(["b", "a"], 2).reduce(lambda a, b: a + b) == "ba"


def test_reduce_on_empty_raises_value_error(sc):
    with pytest.raises(ValueError, match="empty"):
        sc.parallelize([], 3).reduce(add)
    with pytest.raises(ValueError):
        sc.emptyRDD().reduce(add)


def test_fold_applies_zero_per_partition_and_once_more(sc):
    # PySpark: fold each partition from zero, then fold the results from zero again
    assert sc.parallelize([1, 2, 3, 4], 3).fold(10, add) == 50
    assert sc.parallelize([], 3).fold(0, add) == 0
    assert sc.parallelize([], 3).fold(1, add) == 4


def test_aggregate(sc):
    seq = lambda acc, x: (acc[0] + x, acc[1] + 1)
    comb = lambda a, b: (a[0] + b[0], a[1] + b[1])
    assert sc.parallelize([1, 2, 3, 4], 2).aggregate((1, 0), seq, comb) == (13, 4)
    assert sc.parallelize([], 2).aggregate((0, 0), seq, comb) == (0, 0)


def test_fold_zero_value_is_not_shared_between_partitions(sc):
    def seq(acc, x):
        acc.append(x)
        return acc

    out = sc.parallelize([1, 2, 3, 4], 2).aggregate([], seq, lambda a, b: a + b)
    assert sorted(out) == [1, 2, 3, 4]


def test_numeric(sc):
    rdd = sc.parallelize([3, 1, 2], 2)
    assert rdd.max() == 3
    assert rdd.min() == 1
    assert rdd.sum() == 6
    assert sc.parallelize([1, 2, 3, 4]).mean() == 2.5
    assert sc.parallelize([1, 2, 3, 4]).variance() == 1.25
    assert sc.parallelize([1, 2, 3, 4]).stdev() == pytest.approx(1.118033988749895)
    assert sc.parallelize([1, 2, 3, 4]).sampleVariance() == pytest.approx(5 / 3)
    assert sc.parallelize(["b", "ccc", "a"]).max(key=len) == "ccc"
    assert sc.parallelize(["b", "ccc", "a"], 3).min(key=len) == "b"
    assert sc.parallelize([], 2).sum() == 0
    assert math.isnan(sc.parallelize([], 2).mean())
    stats = sc.parallelize(range(1, 101), 4).stats()
    assert (stats.count(), stats.mean(), stats.min(), stats.max()) == (100, 50.5, 1, 100)


def test_max_on_empty_raises(sc):
    with pytest.raises(ValueError):
        sc.parallelize([], 2).max()


def test_foreach_and_foreach_partition_run_on_workers(sc, tmp_path):
    sc.parallelize(range(6), 3).foreach(lambda x: (tmp_path / f"e{x}").touch())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"e{x}" for x in range(6)]

    def per_part(it):
        items = list(it)
        (tmp_path / f"p{'-'.join(map(str, items))}").touch()

    sc.parallelize(range(4), 2).foreachPartition(per_part)
    assert {p.name for p in tmp_path.iterdir() if p.name.startswith("p")} == {"p0-1", "p2-3"}


def test_count_by_value_and_key_return_defaultdicts(sc):
    cbv = sc.parallelize([1, 1, 2, "x"], 3).countByValue()
    assert isinstance(cbv, defaultdict)
    assert dict(cbv) == {1: 2, 2: 1, "x": 1}
    assert cbv["missing"] == 0
    cbk = sc.parallelize([("a", 1), ("a", 2), ("b", 1)], 2).countByKey()
    assert isinstance(cbk, defaultdict)
    assert dict(cbk) == {"a": 2, "b": 1}


def test_collect_as_map_last_value_wins(sc):
    assert sc.parallelize([(1, "a"), (1, "c"), (2, "b")]).collectAsMap() == {1: "c", 2: "b"}


def test_lookup(sc, tmp_path):
    rdd = sc.parallelize([(1, "a"), (2, "b"), (1, "c")], 2)
    assert rdd.lookup(1) == ["a", "c"]
    assert rdd.lookup(9) == []

    def tag(split, it):
        (tmp_path / str(split)).touch()
        return it

    partitioned = rdd.partitionBy(4).mapPartitionsWithIndex(tag, preservesPartitioning=True)
    assert sorted(partitioned.lookup(1)) == ["a", "c"]
    # with a partitioner, lookup scans only the key's partition
    assert [p.name for p in tmp_path.iterdir()] == [str(1 % 4)]


def test_take_sample_is_deterministic(sc):
    rdd = sc.parallelize(range(100), 4)
    s = rdd.takeSample(False, 10, seed=1)
    assert len(s) == 10 == len(set(s))
    assert s == rdd.takeSample(False, 10, seed=1)
    assert len(rdd.takeSample(True, 200, seed=2)) == 200


def test_run_job_on_selected_partitions(sc):
    rdd = sc.parallelize(range(10), 5)
    assert sc.runJob(rdd, lambda it: [sum(it)], [1, 3]) == [5, 13]
    assert sc.runJob(rdd, lambda it: [sum(it)]) == [1, 5, 9, 13, 17]
    with pytest.raises(ValueError, match="out of range"):
        sc.runJob(rdd, list, [5])


def test_task_context_inside_tasks(sc):
    from dstreams import TaskContext

    def info(it):
        tc = TaskContext.get()
        return [(tc.partitionId(), tc.attemptNumber())]

    assert sc.parallelize(range(3), 3).mapPartitions(info).collect() == [(0, 0), (1, 0), (2, 0)]
    assert TaskContext.get() is None  # on the driver
