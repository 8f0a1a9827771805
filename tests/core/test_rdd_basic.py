"""Element-wise and structural transformations, with PySpark's partition layouts.

Expected layouts (``glom``) are PySpark 3.x/4.x output for the same program.
"""

from __future__ import annotations

import pytest

from dstreams import RDD, StorageLevel


# -- parallelize slicing (PySpark's batched slicing, observed with glom) ------------------------
@pytest.mark.parametrize(
    ("data", "n", "expected"),
    [
        (range(10), 3, [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]),
        (list(range(10)), 3, [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]),
        (list(range(5)), 4, [[0], [1], [2], [3, 4]]),
        ([1, 2, 3], 5, [[], [1], [], [2], [3]]),
        (range(0, 20, 3), 3, [[0, 3], [6, 9], [12, 15, 18]]),
        ([], 2, [[], []]),
        (range(0), 3, [[], [], []]),
    ],
)
def test_parallelize_glom_matches_pyspark(sc, data, n, expected):
    assert sc.parallelize(data, n).glom().collect() == expected


def test_parallelize_large_list_slices_whole_batches(sc):
    # PySpark ships lists in batches of min(len // n, 1024) and slices the batches.
    lens = [len(p) for p in sc.parallelize(list(range(5000)), 3).glom().collect()]
    assert lens == [1024, 2048, 1928]
    lens = [len(p) for p in sc.parallelize(list(range(2500)), 3).glom().collect()]
    assert lens == [833, 833, 834]


def test_parallelize_default_slices_is_default_parallelism(sc):
    assert sc.defaultParallelism == 2
    assert sc.parallelize(range(7)).getNumPartitions() == 2


def test_range(sc):
    assert sc.range(5).collect() == [0, 1, 2, 3, 4]
    assert sc.range(1, 10, 3, 2).glom().collect() == [[1], [4, 7]]


def test_collect_is_in_partition_order(sc):
    data = list(range(100))
    assert sc.parallelize(data, 7).collect() == data


# -- element-wise ---------------------------------------------------------------------------
def test_map_filter_flatmap(sc):
    rdd = sc.parallelize(range(10), 3)
    assert rdd.map(lambda x: x * 2).collect() == [x * 2 for x in range(10)]
    assert rdd.filter(lambda x: x % 3 == 0).collect() == [0, 3, 6, 9]
    assert rdd.flatMap(lambda x: [x] * (x % 3)).collect() == [
        1,
        2,
        2,
        4,
        5,
        5,
        7,
        8,
        8,
    ]


def test_narrow_ops_keep_partitions(sc):
    rdd = sc.parallelize(range(10), 3)
    for derived in (rdd.map(str), rdd.filter(bool), rdd.flatMap(lambda x: [x]), rdd.glom()):
        assert derived.getNumPartitions() == 3


def test_map_partitions_and_with_index(sc):
    rdd = sc.parallelize(range(6), 3)
    assert rdd.mapPartitions(lambda it: [sum(it)]).collect() == [1, 5, 9]
    assert rdd.mapPartitionsWithIndex(lambda i, it: [(i, sum(it))]).collect() == [
        (0, 1),
        (1, 5),
        (2, 9),
    ]


def test_map_partitions_accepts_generators(sc):
    def gen(it):
        for x in it:
            yield x
            yield -x

    assert sc.parallelize([1, 2], 2).mapPartitions(gen).collect() == [1, -1, 2, -2]


def test_keyby(sc):
    assert sc.parallelize([1, 2]).keyBy(lambda x: x * 10).collect() == [(10, 1), (20, 2)]


def test_long_narrow_chain_is_pipelined(sc):
    rdd = sc.parallelize(range(100), 4)
    for i in range(50):
        rdd = rdd.map(lambda x, i=i: x + 1)
    assert rdd.collect() == [x + 50 for x in range(100)]


# -- union, cartesian, coalesce, repartition ------------------------------------------------
def test_union_concatenates_partitions(sc):
    a = sc.parallelize([1, 2, 3], 2)
    b = sc.parallelize([4, 5], 2)
    u = a.union(b)
    assert u.getNumPartitions() == 4
    assert u.glom().collect() == [[1], [2, 3], [4], [5]]
    assert (a + b).collect() == [1, 2, 3, 4, 5]
    assert sc.union([a, b, a]).collect() == [1, 2, 3, 4, 5, 1, 2, 3]


def test_union_with_itself_keeps_duplicates(sc):
    a = sc.parallelize([1, 2], 1)
    assert a.union(a).collect() == [1, 2, 1, 2]


def test_cartesian_layout(sc):
    c = sc.parallelize([1, 2], 2).cartesian(sc.parallelize(["a", "b"], 2))
    assert c.glom().collect() == [[(1, "a")], [(1, "b")], [(2, "a")], [(2, "b")]]


def test_coalesce_layout(sc):
    rdd = sc.parallelize(range(10), 5)
    assert rdd.coalesce(2).glom().collect() == [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]]
    assert rdd.coalesce(3).glom().collect() == [[0, 1], [2, 3, 4, 5], [6, 7, 8, 9]]
    assert rdd.coalesce(10).getNumPartitions() == 5  # no shuffle: cannot grow
    assert rdd.coalesce(10, shuffle=True).getNumPartitions() == 10


def test_repartition_keeps_every_record(sc):
    rdd = sc.parallelize(range(100), 2).repartition(5)
    parts = rdd.glom().collect()
    assert len(parts) == 5
    assert sorted(x for p in parts for x in p) == list(range(100))
    assert all(parts), "round-robin spreads 100 records over every partition"


def test_distinct(sc):
    rdd = sc.parallelize([1, 2, 2, 3, 3, 3, None, "a", "a"], 3)
    d = rdd.distinct()
    assert d.getNumPartitions() == 3
    assert sorted(d.collect(), key=repr) == ["a", 1, 2, 3, None]
    assert rdd.distinct(2).getNumPartitions() == 2


def test_zip_with_index_and_unique_id(sc):
    rdd = sc.parallelize(["a", "b", "c", "d", "e"], 3)
    assert rdd.zipWithIndex().collect() == [("a", 0), ("b", 1), ("c", 2), ("d", 3), ("e", 4)]
    assert rdd.zipWithUniqueId().collect() == [("a", 0), ("b", 1), ("c", 4), ("d", 2), ("e", 5)]


def test_zip_with_index_with_empty_partitions(sc):
    rdd = sc.parallelize([1, 2, 3], 5)  # [[], [1], [], [2], [3]]
    assert rdd.zipWithIndex().collect() == [(1, 0), (2, 1), (3, 2)]


def test_zip(sc):
    z = sc.parallelize(range(4), 2).zip(sc.parallelize("abcd", 2))
    assert z.collect() == [(0, "a"), (1, "b"), (2, "c"), (3, "d")]
    with pytest.raises(ValueError, match="same number of partitions"):
        sc.parallelize(range(4), 2).zip(sc.parallelize(range(4), 3))


def test_sample_is_deterministic_for_a_seed(sc):
    rdd = sc.parallelize(range(1000), 4)
    s1 = rdd.sample(False, 0.3, 42).collect()
    s2 = rdd.sample(False, 0.3, 42).collect()
    assert s1 == s2
    assert set(s1) <= set(range(1000))
    assert 200 < len(s1) < 400
    assert s1 == sorted(s1)  # without replacement keeps the order
    assert rdd.sample(False, 0.3, 43).collect() != s1
    with_repl = rdd.sample(True, 2.0, 7).collect()
    assert with_repl == rdd.sample(True, 2.0, 7).collect()
    assert len(with_repl) > 1000
    assert rdd.sample(False, 0.0, 1).collect() == []
    assert rdd.sample(False, 1.0, 1).collect() == list(range(1000))


def test_sample_rejects_bad_fraction(sc):
    rdd = sc.parallelize(range(10))
    with pytest.raises(ValueError, match="-0.5"):
        rdd.sample(False, -0.5)
    with pytest.raises(ValueError, match="1.5"):
        rdd.sample(False, 1.5)


def test_random_split_partitions_the_data(sc):
    rdd = sc.parallelize(range(500), 3)
    a, b = rdd.randomSplit([0.3, 0.7], seed=5)
    la, lb = a.collect(), b.collect()
    assert sorted(la + lb) == list(range(500))
    assert not set(la) & set(lb)
    assert la == rdd.randomSplit([0.3, 0.7], seed=5)[0].collect()


# -- persistence ----------------------------------------------------------------------------
def test_cache_computes_each_partition_once(sc, tmp_path):
    marks = tmp_path

    def tag(split, it):
        (marks / f"{split}-{len(list(marks.iterdir()))}").touch()
        return it

    rdd = sc.parallelize(range(20), 4).mapPartitionsWithIndex(tag).cache()
    assert rdd.is_cached
    assert rdd.getStorageLevel() == StorageLevel.MEMORY_ONLY
    assert rdd.sum() == 190
    assert rdd.count() == 20
    assert rdd.map(lambda x: x + 1).collect() == list(range(1, 21))
    assert sorted(p.name.split("-")[0] for p in marks.iterdir()) == ["0", "1", "2", "3"]


def test_unpersist_forgets_the_cache(sc, tmp_path):
    def tag(split, it):
        (tmp_path / f"{split}-{len(list(tmp_path.iterdir()))}").touch()
        return it

    rdd = sc.parallelize(range(4), 2).mapPartitionsWithIndex(tag).persist()
    rdd.collect()
    assert len(list(tmp_path.iterdir())) == 2
    rdd.unpersist()
    assert not rdd.is_cached
    assert rdd.collect() == [0, 1, 2, 3]
    assert len(list(tmp_path.iterdir())) == 4


def test_cached_partitions_are_isolated_from_mutation(sc):
    rdd = sc.parallelize([[1], [2]], 2).cache()
    rdd.collect()

    def mutate(x):
        x.append(99)
        return x

    rdd.map(mutate).collect()
    assert rdd.collect() == [[1], [2]]


def test_persist_rejects_non_storage_level(sc):
    with pytest.raises(TypeError, match="StorageLevel"):
        sc.parallelize([1]).persist("MEMORY_ONLY")


# -- introspection --------------------------------------------------------------------------
def test_ids_context_and_names(sc):
    a = sc.parallelize([1])
    b = a.map(lambda x: x)
    assert isinstance(a, RDD)
    assert a.id() != b.id()
    assert b.context is sc
    assert b.setName("my-rdd") is b
    assert b.name() == "my-rdd"
    assert "my-rdd" in repr(b)


def test_to_debug_string_shows_lineage_as_bytes(sc):
    rdd = (
        sc.parallelize([("a", 1)], 2)
        .setName("source")
        .map(lambda kv: kv)
        .reduceByKey(lambda a, b: a + b)
        .cache()
    )
    s = rdd.toDebugString()
    assert isinstance(s, bytes)
    text = s.decode()
    assert "source" in text
    assert text.splitlines()[0].startswith("(2)")
    # the shuffle boundary is indented below the reduce side
    lines = text.splitlines()
    src_line = next(ln for ln in lines if "source" in ln)
    assert len(src_line) - len(src_line.lstrip()) > 0
    assert "Memory" in lines[0] or "MEMORY" in lines[0].upper()


def test_empty_rdd(sc):
    e = sc.emptyRDD()
    assert e.getNumPartitions() == 0
    assert e.collect() == []
    assert e.count() == 0
    assert e.isEmpty()


def test_debug_string_uses_spark_layout(sc):
    import re

    rdd = sc.parallelize(range(4), 2).map(lambda x: (x, 1)).reduceByKey(lambda a, b: a + b)
    text = re.sub(r"\[\d+\]", "[#]", rdd.toDebugString().decode())
    assert text.splitlines() == [
        "(2) MapPartitionsRDD[#] []",
        " |  ShuffledRDD[#] []",
        " +-(2) MapPartitionsRDD[#] []",
        "    |  MapPartitionsRDD[#] []",
        "    |  ParallelCollectionRDD[#] []",
    ]
