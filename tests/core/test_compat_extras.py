"""The rest of PySpark's RDD/Context/Conf surface: histogram, approximations, binary input..."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from dstreams import Conf


def test_histogram_matches_pyspark_examples(sc):
    rdd = sc.parallelize(range(51))
    assert rdd.histogram(2) == ([0, 25, 50], [25, 26])
    assert rdd.histogram([0, 5, 25, 50]) == ([0, 5, 25, 50], [5, 20, 26])
    assert rdd.histogram([0, 15, 30, 45, 60]) == ([0, 15, 30, 45, 60], [15, 15, 15, 6])
    words = sc.parallelize(["ab", "ac", "b", "bd", "ef"])
    assert words.histogram(("a", "b", "c")) == (("a", "b", "c"), [2, 2])


def test_histogram_ignores_none_and_nan_and_validates_buckets(sc):
    rdd = sc.parallelize([1.0, None, float("nan"), 2.0, 3.0, 4.0], 3)
    assert rdd.histogram(3) == ([1.0, 2.0, 3.0, 4.0], [1, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        sc.parallelize([None], 1).histogram(2)
    with pytest.raises(ValueError, match="sorted"):
        rdd.histogram([3, 1])
    with pytest.raises(ValueError, match=">= 1"):
        rdd.histogram(0)


def test_to_local_iterator_and_exact_approximations(sc):
    rdd = sc.parallelize(range(10), 3)
    it = rdd.toLocalIterator()
    assert next(it) == 0
    assert list(it) == list(range(1, 10))
    assert rdd.countApprox(1000) == 10
    assert rdd.sumApprox(1000) == 45.0
    assert math.isclose(rdd.meanApprox(1000), 4.5)
    assert sc.parallelize([1, 2, 2, 3, 3, 3]).countApproxDistinct() == 3
    assert rdd.mapPartitionsWithSplit(lambda i, it: [i]).collect() == [0, 1, 2]


def test_repartition_and_sort_within_partitions_matches_pyspark(sc):
    rdd = sc.parallelize([(0, 5), (3, 8), (2, 6), (0, 8), (3, 8), (1, 3)])
    rdd2 = rdd.repartitionAndSortWithinPartitions(2, lambda x: x % 2, True)
    assert rdd2.glom().collect() == [[(0, 5), (0, 8), (2, 6)], [(1, 3), (3, 8), (3, 8)]]


def test_sample_by_key_is_deterministic_for_a_seed(sc):
    rdd = sc.parallelize([(k, i) for i in range(400) for k in "ab"], 4)
    one = rdd.sampleByKey(False, {"a": 0.1, "b": 0.9}, 7).collect()
    assert one == rdd.sampleByKey(False, {"a": 0.1, "b": 0.9}, 7).collect()
    a = sum(1 for k, _ in one if k == "a")
    b = sum(1 for k, _ in one if k == "b")
    assert 10 <= a <= 80 and 300 <= b <= 400
    with pytest.raises(ValueError, match="'a'"):
        rdd.sampleByKey(False, {"a": 1.5, "b": 0.1})


def test_binary_files_and_records(sc, tmp_path: Path):
    (tmp_path / "x.bin").write_bytes(b"\x00\x01\x02\x03")
    (tmp_path / "y.bin").write_bytes(b"abcdef")
    got = dict(sc.binaryFiles(str(tmp_path)).collect())
    assert got == {
        f"file:{tmp_path}/x.bin": b"\x00\x01\x02\x03",
        f"file:{tmp_path}/y.bin": b"abcdef",
    }
    recs = sc.binaryRecords(str(tmp_path / "y.bin"), 2).collect()
    assert recs == [b"ab", b"cd", b"ef"]
    assert sorted(sc.binaryRecords(str(tmp_path), 2).collect()) == sorted(
        [b"\x00\x01", b"\x02\x03", b"ab", b"cd", b"ef"]
    )
    with pytest.raises(ValueError, match="not a multiple of recordLength=4"):
        sc.binaryRecords(str(tmp_path / "y.bin"), 4)


def test_context_properties(sc):
    assert sc.startTime > 1_600_000_000_000
    assert isinstance(sc.sparkUser(), str)
    sc.setLocalProperty("k", "v")
    assert sc.getLocalProperty("k") == "v"
    sc.setLocalProperty("k", None)
    assert sc.getLocalProperty("k") is None
    sc.setJobGroup("g", "desc")
    assert sc.getLocalProperty("spark.jobGroup.id") == "g"


def test_executor_env_reaches_the_workers(fresh_context: Any):
    conf = Conf(loadDefaults=False).setExecutorEnv("DSTREAMS_TEST_VAR", "hello")
    assert conf.get("spark.executorEnv.DSTREAMS_TEST_VAR") == "hello"
    sc = fresh_context("local[2]", dict(conf.getAll()))
    values = sc.parallelize(range(4), 4).map(lambda _: os.environ.get("DSTREAMS_TEST_VAR"))
    assert values.collect() == ["hello"] * 4
    with pytest.raises(ValueError, match="Either"):
        Conf().setExecutorEnv()


def test_sampling_selects_the_same_elements_as_pyspark(sc):
    # expected values printed by PySpark 4.3 for the same calls (local[2], same partitioning)
    r = sc.parallelize(range(100), 4)
    assert r.takeSample(False, 5, 42) == [10, 46, 34, 31, 48]
    assert r.takeSample(True, 5, 7) == [49, 36, 88, 46, 46]
    assert r.sample(False, 0.1, 3).collect() == [11, 15, 61, 63, 99]
    assert r.sample(True, 0.05, 11).collect() == [28, 40, 40]
    assert sc.parallelize(range(20), 3).randomSplit([0.5, 0.5], 17)[0].collect() == [
        1,
        6,
        7,
        8,
        13,
        18,
    ]
    pairs = sc.parallelize([(k, i) for i in range(30) for k in "ab"], 3)
    got = pairs.sampleByKey(False, {"a": 0.2, "b": 0.5}, 5).collect()
    assert got[:8] == [
        ("b", 0),
        ("a", 1),
        ("b", 1),
        ("b", 2),
        ("a", 3),
        ("a", 5),
        ("b", 6),
        ("b", 7),
    ]
    assert len(got) == 25


def test_take_sample_validates_its_size(sc):
    import sys

    with pytest.raises(ValueError, match="greater than"):
        sc.range(0, 10).takeSample(False, sys.maxsize)
    with pytest.raises(ValueError, match="negative"):
        sc.range(0, 10).takeSample(False, -1)
    assert sorted(sc.range(0, 10).takeSample(False, 20, 1)) == list(range(10))
