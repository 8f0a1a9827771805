"""Storage levels under a small memory budget, on real workers: results stay exact, and only
partitions that were not kept are recomputed."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from dstreams import StorageLevel

PARTS = 6


def counted(marks: Path):
    def compute(i: int, it: Any) -> Any:
        (marks / f"{i}-{uuid.uuid4().hex}").touch()
        return [(i, x, "v" * 40_000) for x in it]

    return compute


def computations(marks: Path) -> list[int]:
    return sorted(int(p.name.split("-")[0]) for p in marks.iterdir())


@pytest.mark.parametrize(
    ("level", "all_kept"),
    [
        (StorageLevel.MEMORY_ONLY, False),
        (StorageLevel.MEMORY_AND_DISK, True),
        (StorageLevel.DISK_ONLY, True),
    ],
)
def test_cached_rdd_larger_than_memory(fresh_context: Any, tmp_path: Path, level, all_kept):
    # each partition is ~160 KB pickled: a 300 KB budget per worker holds one partition
    sc = fresh_context("local[2]", {"dstreams.executor.storageMemory": "300k"})
    marks = tmp_path / "marks"
    marks.mkdir()
    rdd = sc.parallelize(range(4 * PARTS), PARTS).mapPartitionsWithIndex(counted(marks))
    rdd.persist(level)
    first = rdd.map(lambda t: (t[0], t[1])).collect()
    assert computations(marks) == list(range(PARTS))
    kept = {p for (rid, p) in sc._runner.dag.cache_locs if rid == rdd.id()}
    second = rdd.map(lambda t: (t[0], t[1])).collect()
    assert second == first == [(x // 4, x) for x in range(4 * PARTS)]
    recomputed = sorted(_second_round(marks))
    if all_kept:
        assert kept == set(range(PARTS))
        assert recomputed == []
    else:
        assert 0 < len(kept) < PARTS, "the budget holds some partitions, not all"
        assert recomputed == sorted(set(range(PARTS)) - kept)


def _second_round(marks: Path) -> list[int]:
    counts: dict[int, int] = {}
    for p in marks.iterdir():
        i = int(p.name.split("-")[0])
        counts[i] = counts.get(i, 0) + 1
    return [i for i, n in counts.items() if n > 1]
