"""Reliable checkpointing: files written through fsspec, lineage truncated, results unchanged."""

from __future__ import annotations

import os
from operator import add

import pytest


@pytest.fixture
def ckdir(sc, tmp_path):
    old = sc._checkpoint_root, sc._checkpoint_dir
    d = tmp_path / "ck"
    sc.setCheckpointDir(str(d))
    yield d
    sc._checkpoint_root, sc._checkpoint_dir = old


def test_checkpoint_requires_a_directory(sc):
    old, sc._checkpoint_dir = sc._checkpoint_dir, None
    try:
        with pytest.raises(ValueError, match="setCheckpointDir"):
            sc.parallelize([1]).checkpoint()
    finally:
        sc._checkpoint_dir = old


def test_set_checkpoint_dir_creates_a_subdirectory_of_its_own_as_spark(sc, ckdir):
    import uuid

    run_dir = sc.getCheckpointDir()
    assert os.path.dirname(run_dir) == str(ckdir) and os.path.isdir(run_dir)
    uuid.UUID(os.path.basename(run_dir))  # named by a UUID, as Spark's
    sc.setCheckpointDir(str(ckdir))  # each call (each Context) gets a new one
    assert sc.getCheckpointDir() != run_dir
    with pytest.raises(ValueError):
        sc.setCheckpointDir("")


def test_checkpoint_truncates_lineage_and_keeps_results(sc, ckdir, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    def tag(split, it):
        (marks / f"{split}-{len(os.listdir(marks))}").touch()
        return it

    base = sc.parallelize(range(20), 4).mapPartitionsWithIndex(tag)
    rdd = base.map(lambda x: (x % 3, x)).reduceByKey(add)
    rdd.checkpoint()
    assert not rdd.isCheckpointed()
    assert len(rdd.toDebugString().splitlines()) > 3
    before = sorted(rdd.collect())
    assert before == [(0, 63), (1, 70), (2, 57)]
    assert rdd.isCheckpointed()
    assert rdd.dependencies() == []
    assert len(rdd.toDebugString().splitlines()) == 1
    assert b"checkpointed" in rdd.toDebugString()
    ck = rdd.getCheckpointFile()
    assert ck is not None and ck.startswith(str(ckdir))
    parts = sorted(f for f in os.listdir(ck) if f.startswith("part-"))
    assert parts == [f"part-{i:05d}" for i in range(rdd.getNumPartitions())]
    assert not [f for f in os.listdir(ck) if f.startswith(".")], "temporary files left behind"

    computed = len(os.listdir(marks))
    assert sorted(rdd.collect()) == before
    assert sorted(rdd.mapValues(lambda v: v * 2).collect()) == [(0, 126), (1, 140), (2, 114)]
    assert len(os.listdir(marks)) == computed, "a checkpointed RDD recomputed its lineage"


def test_checkpoint_of_cached_rdd_computes_once(sc, ckdir, tmp_path):
    marks = tmp_path / "m"
    marks.mkdir()

    def tag(split, it):
        (marks / f"{split}-{len(os.listdir(marks))}").touch()
        return it

    rdd = sc.parallelize(range(8), 2).mapPartitionsWithIndex(tag).cache()
    rdd.checkpoint()
    assert rdd.collect() == list(range(8))
    assert rdd.isCheckpointed()
    assert sorted(p.split("-")[0] for p in os.listdir(marks)) == ["0", "1"]


def test_checkpoint_files_are_read_back(sc, ckdir):
    rdd = sc.parallelize(["a", "b", "c"], 3).map(str.upper)
    rdd.checkpoint()
    rdd.count()
    # a corrupted file now surfaces as an error: the data comes from the files, not lineage
    ck = rdd.getCheckpointFile()
    with open(os.path.join(ck, "part-00001"), "wb") as fh:
        fh.write(b"not a pickle")
    with pytest.raises(Exception, match="corrupt|part-00001"):
        rdd.collect()


def test_checkpoint_of_child_only_checkpoints_marked_rdd(sc, ckdir):
    parent = sc.parallelize(range(4), 2).map(lambda x: x + 1)
    child = parent.map(lambda x: x * 10)
    parent.checkpoint()
    assert child.collect() == [10, 20, 30, 40]
    assert parent.isCheckpointed()
    assert not child.isCheckpointed()
    assert child.collect() == [10, 20, 30, 40]
