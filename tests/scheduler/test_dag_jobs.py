"""Several active jobs in one DAGScheduler: pools, shared stages, isolated failures.

Pure state machine tests (``validate_state`` after every step, see ``harness.py``), plus a seeded
random run of interleaved jobs, task failures and executor losses checked job by job.
"""

from __future__ import annotations

import random
from operator import add

import pytest
from harness import FakeContext, Harness, failed, kills, launches, succeeded

from dstreams.errors import JobAbortedError
from dstreams.scheduler.dag import Launch
from dstreams.scheduler.pools import Pool


@pytest.fixture
def ctx():
    return FakeContext()


def shuffled(ctx, maps=4, reduces=2):
    return ctx.parallelize(maps).map(lambda x: (x, 1)).reduceByKey(add, reduces)


def drain(h, pending, job_id):
    """Finish ``pending`` and every launch that follows; the JobSucceeded of ``job_id``."""
    result = None
    while pending:
        out = h.finish(pending.pop(0))
        pending += launches(out)
        result = result or succeeded(out, job_id)
    return result


def test_a_query_task_takes_the_next_free_slot_during_a_long_stage(ctx):
    # two executors with two slots each; the streaming job has 12 tasks
    h = Harness(pools={"streaming": Pool("streaming", weight=2, min_share=1)})
    stream = h.submit(ctx.parallelize(12), job_id=0, pool="streaming")
    queued = launches(stream)
    assert len(queued) == 4  # every slot taken
    query = h.submit(ctx.parallelize(1).map(str), job_id=1)
    assert launches(query) == []  # no slot is free yet
    out = h.finish(queued.pop(0))
    (nxt,) = launches(out)
    assert nxt.stage.first_job == 1, "the query's task goes before 8 pending streaming tasks"
    out = h.finish(nxt, value="answer")
    assert succeeded(out, 1).results == ["answer"]
    assert list(h.dag.jobs) == [0], "the streaming job goes on"
    # the rest of the streaming job runs to the end
    results = drain(h, queued + launches(out), 0)
    assert results is not None and len(results.results) == 12


def test_fifo_mode_makes_the_query_wait_for_the_older_job(ctx):
    h = Harness(mode="FIFO")
    stream = launches(h.submit(ctx.parallelize(6), job_id=0, pool="streaming"))
    h.submit(ctx.parallelize(1), job_id=1)
    out = h.finish(stream.pop(0))
    assert [a.stage.first_job for a in launches(out)] == [0]
    out = h.finish(stream.pop(0))
    assert [a.stage.first_job for a in launches(out)] == [0]
    out = h.finish(stream.pop(0))  # the streaming stage has nothing pending now
    assert [a.stage.first_job for a in launches(out)] == [1]


def test_the_streaming_pool_keeps_its_min_share_under_a_query_storm(ctx):
    h = Harness({"a": 1, "b": 1}, pools={"streaming": Pool("streaming", weight=1, min_share=1)})
    stream = launches(h.submit(ctx.parallelize(8), job_id=0, pool="streaming"))
    assert len(stream) == 2
    h.submit(ctx.parallelize(4), job_id=1)  # a large query: the default pool, weight 1
    out = h.finish(stream[0])  # streaming runs 1 (= minShare), default 0: default first
    assert [a.stage.first_job for a in launches(out)] == [1]
    out = h.finish(stream[1])  # streaming runs 0 < minShare: needy, so it comes first
    assert [a.stage.first_job for a in launches(out)] == [0]


def test_two_jobs_share_one_map_stage(ctx):
    h = Harness()
    rdd = shuffled(ctx, maps=4, reduces=2)
    first = launches(h.submit(rdd, job_id=0))
    assert len(first) == 4 and all(not a.stage.is_result for a in first)
    second = h.submit(rdd.map(lambda kv: kv), job_id=1)
    assert launches(second) == [], "the map stage is already running for job 0"
    map_stage = first[0].stage
    assert map_stage.jobs == {0, 1}
    pending = list(first)
    done = {}
    while pending:
        out = h.finish(pending.pop(0))
        pending += launches(out)
        for j in (0, 1):
            if succeeded(out, j):
                done[j] = succeeded(out, j).results
    assert sorted(done) == [0, 1]
    maps = [a for a in h.log if isinstance(a, Launch) and not a.stage.is_result]
    assert len(maps) == 4, "each map partition ran once for both jobs"
    assert not h.dag.jobs and not h.dag.stages


def test_a_failing_query_does_not_touch_the_streaming_job(ctx):
    h = Harness(max_failures=2)
    stream = launches(h.submit(ctx.parallelize(6), job_id=0, pool="streaming"))
    out = h.finish(stream.pop(0))
    stream += launches(out)
    h.submit(ctx.parallelize(1), job_id=1)
    # free a slot so the query launches, then fail it twice
    out = h.finish(stream.pop(0))
    (q,) = [a for a in launches(out) if a.stage.first_job == 1]
    stream += [a for a in launches(out) if a.stage.first_job == 0]
    out = h.fail(q)
    (q,) = [a for a in launches(out) if a.stage.first_job == 1]
    stream += [a for a in launches(out) if a.stage.first_job == 0]
    out = h.fail(q)
    assert "failed 2 times" in str(failed(out, 1).error)
    assert failed(out, 0) is None and list(h.dag.jobs) == [0]
    result = drain(h, stream + launches(out), 0)
    assert result is not None and len(result.results) == 6


def test_aborting_one_job_kills_only_its_tasks(ctx):
    h = Harness({"a": 4})
    s = launches(h.submit(ctx.parallelize(2), job_id=0))
    q = launches(h.submit(ctx.parallelize(2), job_id=1))
    assert len(s) == 2 and len(q) == 2
    out = h.dag.abort_job("user cancelled", job_id=1)
    h.dag.validate_state()
    assert isinstance(failed(out, 1).error, JobAbortedError)
    assert {k.task_id for k in kills(out)} == {a.spec.task_id for a in q}
    assert list(h.dag.jobs) == [0]


def test_a_lost_executor_is_recovered_for_every_job(ctx):
    h = Harness({"a": 2, "b": 2, "c": 2})
    r1 = shuffled(ctx, maps=3, reduces=2)
    r2 = shuffled(ctx, maps=2, reduces=3)
    pending = launches(h.submit(r1, job_id=0)) + launches(h.submit(r2, job_id=1))
    results = {}
    # finish the first wave, then lose an executor that holds map outputs of both
    for a in list(pending):
        pending.remove(a)
        pending += launches(h.finish(a, value=[1]))
    pending = [a for a in pending if a.executor_id != "b"]
    pending += launches(h.lose_executor("b"))
    while pending:
        out = h.finish(pending.pop(0), value=[1])
        pending += launches(out)
        for j in (0, 1):
            if succeeded(out, j):
                results[j] = len(succeeded(out, j).results)
    assert results == {0: 2, 1: 3}
    assert not h.dag.jobs and not h.dag.tasks


def test_random_interleavings_end_every_job_exactly_once(ctx):
    rng = random.Random(20261202)
    for _ in range(30):
        h = Harness({"a": 2, "b": 2, "c": 1}, max_failures=8)
        lineages = [
            shuffled(ctx, maps=rng.randint(1, 5), reduces=rng.randint(1, 4)) for _ in range(3)
        ]
        want: dict[int, int] = {}
        outcomes: dict[int, list[str]] = {}
        in_flight: list[Launch] = []
        next_job = 0
        spare = 0
        for _step in range(400):
            r = rng.random()
            if next_job < 6 and (r < 0.08 or (not in_flight and not h.dag.jobs)):
                rdd = rng.choice(lineages)
                if rng.random() < 0.5:
                    rdd = rdd.map(lambda kv: kv)
                pool = rng.choice(["streaming", "default", "adhoc"])
                want[next_job] = rdd.getNumPartitions()
                acts = h.submit(rdd, job_id=next_job, pool=pool)
                next_job += 1
            elif in_flight and r < 0.85:
                a = in_flight.pop(rng.randrange(len(in_flight)))
                acts = h.fail(a) if rng.random() < 0.1 else h.finish(a, value=[1])
            elif in_flight and r < 0.9 and len(h.dag.executors) > 1:
                eid = rng.choice(sorted(h.dag.executors))
                in_flight = [a for a in in_flight if a.executor_id != eid]
                acts = h.lose_executor(eid)
            elif len(h.dag.executors) < 3:
                spare += 1
                acts = h.add_executor(f"new{spare}", 2)
            else:
                continue
            in_flight += launches(acts)
            in_flight = [a for a in in_flight if a.spec.task_id in h.dag.tasks]
            for j in list(want):
                if succeeded(acts, j):
                    outcomes.setdefault(j, []).append("ok")
                    assert len(succeeded(acts, j).results) == want[j]
                if failed(acts, j):
                    outcomes.setdefault(j, []).append("failed")
            if next_job >= 6 and not h.dag.jobs:
                break
        while in_flight:  # drain what is left without more faults
            acts = h.finish(in_flight.pop(0), value=[1])
            in_flight += launches(acts)
            for j in list(want):
                if succeeded(acts, j):
                    outcomes.setdefault(j, []).append("ok")
        assert not h.dag.jobs, _debug(h)
        assert sorted(outcomes) == sorted(want)
        assert all(len(v) == 1 for v in outcomes.values()), outcomes


def _debug(h):  # what a stalled scheduler holds, for the failure message
    d = h.dag
    return {
        "running": [
            (
                s,
                s.tsm.pending,
                s.tsm.done,
                s.tsm.running,
                s.tsm.speculatable,
                d.map_outputs.get(s.shuffle_dep.shuffle_id) if s.shuffle_dep else None,
            )
            for s in d.running
        ],
        "waiting": [(s, [p for p in s.parents]) for s in d.waiting],
        "tasks": d.tasks,
        "execs": {e: (x.free, x.slots, x.responsive) for e, x in d.executors.items()},
        "stages": {i: (s, s.jobs) for i, s in d.stages.items()},
    }
