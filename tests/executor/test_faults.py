"""Real SIGKILL fault tests on ``local[2]``: exact results, and only lost partitions recomputed.

Determinism comes from the user functions themselves, not from timing: a task decides to kill a
worker at a point that is certain to exist (for example "the victim's second map task starts",
which implies its first map output is stored), guarded by a marker file so it happens once.
Every computation leaves a marker file ``<kind>-<partition>-<pid>-<unique>``; the partitions
computed twice must be exactly those the killed process had computed.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections import defaultdict
from operator import add

import pytest

N_MAPS = 8
N_REDUCES = 6
TIMEOUT = 30.0


def _mark(marks: str, kind: str, split: int) -> None:
    name = f"{kind}-{split}-{os.getpid()}-{time.time_ns()}-{uuid.uuid4().hex}"
    open(os.path.join(marks, name), "w").close()


def _computations(marks: str, kind: str) -> dict[int, list[int]]:
    """partition -> pids that computed it, first computation first."""
    found: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for name in os.listdir(marks):
        parts = name.split("-")
        if parts[0] == kind:
            found[int(parts[1])].append((int(parts[3]), int(parts[2])))
    return {p: [pid for _, pid in sorted(v)] for p, v in found.items()}


def _kill_once(marks: str, victim: int) -> None:
    flag = os.path.join(marks, "kill-flag")
    try:
        fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, repr(time.time()).encode())
    os.close(fd)
    os.kill(victim, signal.SIGKILL)


def _wait_for_kill(marks: str, timeout: float = 30.0) -> None:
    """Block (inside a worker's task) until the kill happened, or give up after ``timeout``."""
    flag = os.path.join(marks, "kill-flag")
    deadline = time.monotonic() + timeout
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.005)


def _kill_time(marks: str) -> float:
    with open(os.path.join(marks, "kill-flag")) as fh:
        return float(fh.read())


class _LostLog(logging.Handler):
    """Records when the backend reports an executor lost (it logs before posting the event)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "lost" in record.getMessage():
            self.times.append(record.created)


@pytest.fixture
def lost_log():
    handler = _LostLog()
    logger = logging.getLogger("dstreams.executor")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def marks(tmp_path):
    d = tmp_path / "marks"
    d.mkdir()
    return str(d)


def _two_workers(ctx) -> dict[str, int]:
    pids = ctx._backend.worker_pids()
    assert len(pids) == 2
    return pids


def _await_two_registered(ctx) -> None:
    """Wait (on the backend's condition, no sleeping) until the scheduler knows 2 executors."""
    backend = ctx._backend
    with backend._registered:
        ok = backend._registered.wait_for(lambda: len(backend.executor_ids()) == 2, TIMEOUT)
    assert ok, "no replacement worker registered"
    deadline = time.monotonic() + TIMEOUT
    while len(ctx._runner.dag.executors) < 2:  # a tiny job applies the pending ExecutorAdded
        assert time.monotonic() < deadline
        ctx.parallelize([0], 1).count()


def _check_recovered(ctx, lost_log, marks, victim_pid) -> None:
    # the driver noticed the death within a second of the kill
    assert lost_log.times, "the backend never reported the executor lost"
    assert lost_log.times[0] - _kill_time(marks) < 1.0
    assert victim_pid not in ctx._backend.worker_pids().values()
    # the next job runs on two workers again
    _await_two_registered(ctx)
    pids = set(ctx.parallelize(range(8), 8).mapPartitions(lambda _: [os.getpid()]).collect())
    assert pids == set(ctx._backend.worker_pids().values())
    assert len(pids) == 2 and victim_pid not in pids


def _word_pairs():
    return [(f"k{i % 13}", i) for i in range(400)]


def _expected_sums():
    d: dict[str, int] = defaultdict(int)
    for k, v in _word_pairs():
        d[k] += v
    return sorted(d.items())


def test_kill_worker_during_map_stage(fresh_context, marks, lost_log):
    ctx = fresh_context("local[2]")
    pids = _two_workers(ctx)
    victim = pids[min(pids)]

    def map_side(split, it):
        mine = [n for n in os.listdir(marks) if n.startswith("map-") and f"-{victim}-" in n]
        _mark(marks, "map", split)
        if os.getpid() == victim and mine:
            # the victim starts its second map task: its first map output is stored
            _kill_once(marks, victim)
        elif os.getpid() != victim:
            # the other worker stays busy until then, so the victim does get a second task
            _wait_for_kill(marks)
        return it

    rdd = ctx.parallelize(_word_pairs(), N_MAPS).mapPartitionsWithIndex(map_side)
    assert sorted(rdd.reduceByKey(add, N_REDUCES).collect()) == _expected_sums()

    maps = _computations(marks, "map")
    assert sorted(maps) == list(range(N_MAPS))
    first_by_victim = {p for p, ps in maps.items() if ps[0] == victim}
    recomputed = {p for p, ps in maps.items() if len(ps) > 1}
    assert len(first_by_victim) >= 2, (maps, victim)
    assert recomputed == first_by_victim
    assert all(victim not in ps[1:] for ps in maps.values())  # the dead compute nothing
    _check_recovered(ctx, lost_log, marks, victim)


def test_kill_worker_holding_map_outputs_during_reduce_stage(fresh_context, marks, lost_log):
    ctx = fresh_context("local[2]")
    pids = _two_workers(ctx)
    killer, victim = (pids[e] for e in sorted(pids))

    def map_side(split, it):
        _mark(marks, "map", split)
        return it

    def reduce_side(split, it):
        _mark(marks, "reduce", split)
        if os.getpid() == killer:
            _kill_once(marks, victim)  # the killer's first reduce task; it already fetched
        return it

    rdd = (
        ctx.parallelize(_word_pairs(), N_MAPS)
        .mapPartitionsWithIndex(map_side)
        .reduceByKey(add, N_REDUCES)
        .mapPartitionsWithIndex(reduce_side)
    )
    assert sorted(rdd.collect()) == _expected_sums()

    maps = _computations(marks, "map")
    assert sorted(maps) == list(range(N_MAPS))
    by_victim = {p for p, ps in maps.items() if ps[0] == victim}
    by_killer = {p for p, ps in maps.items() if ps[0] == killer}
    assert by_victim and by_killer, "both workers must have run map tasks"
    recomputed = {p for p, ps in maps.items() if len(ps) > 1}
    assert recomputed == by_victim
    for p in by_killer:
        assert maps[p] == [killer], f"map partition {p} on the surviving worker was recomputed"
    reduces = _computations(marks, "reduce")
    assert sorted(reduces) == list(range(N_REDUCES))
    again = {p for p, ps in reduces.items() if len(ps) > 1}
    assert all(reduces[p][0] == victim for p in again), "only the victim's reduce tasks rerun"
    _check_recovered(ctx, lost_log, marks, victim)


def test_kill_worker_while_cached_rdd_is_reused(fresh_context, marks, lost_log):
    ctx = fresh_context("local[2]")
    pids = _two_workers(ctx)
    victim = pids[min(pids)]

    def source(split, it):
        _mark(marks, "cache", split)
        return it

    cached = ctx.parallelize(range(80), N_MAPS).mapPartitionsWithIndex(source).cache()
    assert cached.count() == 80
    first = _computations(marks, "cache")
    assert all(len(ps) == 1 for ps in first.values())
    held_by_victim = {p for p, ps in first.items() if ps == [victim]}
    assert held_by_victim and len(held_by_victim) < N_MAPS, "both workers must hold partitions"

    def reuse(split, it):
        data = list(it)  # read from the cache (or recomputed after the kill)
        _mark(marks, "reuse", split)
        if os.getpid() == victim:
            _kill_once(marks, victim)  # the victim dies in its first task of the second job
        return [x * 2 for x in data]

    assert cached.mapPartitionsWithIndex(reuse).collect() == [x * 2 for x in range(80)]
    after = _computations(marks, "cache")
    recomputed = {p for p, ps in after.items() if len(ps) > 1}
    assert recomputed == held_by_victim
    assert cached.sum() == sum(range(80))  # the recomputed partitions are cached again
    assert _computations(marks, "cache") == after
    _check_recovered(ctx, lost_log, marks, victim)
