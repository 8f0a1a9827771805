"""DAGScheduler as a pure state machine: events in, actions out, ``validate_state`` every step."""

from __future__ import annotations

from operator import add
from typing import Any

import pytest
from harness import FakeContext, Harness, failed, kills, launches, merges, parts, succeeded

from dstreams.errors import JobAbortedError, TaskFailedError
from dstreams.scheduler.dag import Cleanup, DAGScheduler, Launch, RemoveBlocks
from dstreams.scheduler.taskset import SpeculationConfig


@pytest.fixture
def ctx():
    return FakeContext()


def shuffled(ctx, maps=4, reduces=2):
    """parallelize(maps) -> map -> reduceByKey(reduces) -> map: one shuffle."""
    src = ctx.parallelize(maps)
    return src.map(lambda x: (x, 1)).reduceByKey(add, reduces).map(lambda kv: kv)


def run_all(h, acts, **kw):
    """Finish every launch in ``acts`` (and the launches that follows) until the job ends."""
    pending = launches(acts)
    out = list(acts)
    while pending:
        nxt = h.finish(pending.pop(0), **kw)
        out.extend(nxt)
        pending.extend(launches(nxt))
    return out


# -- stage splitting --------------------------------------------------------------------------
def test_narrow_job_is_one_stage(ctx):
    h = Harness()
    rdd = ctx.parallelize(3).map(str).filter(bool)
    acts = h.submit(rdd)
    assert len(h.dag.stages) == 1
    assert parts(acts) == [0, 1, 2]
    assert all(a.spec.shuffle_id is None for a in launches(acts))
    out = run_all(h, acts)
    assert succeeded(out).results == [("result", 0), ("result", 1), ("result", 2)]
    assert not h.dag.jobs


def test_shuffle_splits_into_map_and_result_stages(ctx):
    h = Harness()
    rdd = shuffled(ctx, maps=4, reduces=3)
    acts = h.submit(rdd)
    assert len(h.dag.stages) == 2
    map_launches = launches(acts)
    assert parts(acts) == [0, 1, 2, 3]
    sid = map_launches[0].spec.shuffle_id
    assert sid is not None and all(a.spec.shuffle_id == sid for a in map_launches)
    assert not map_launches[0].stage.is_result

    # the result stage starts only when every map output is known
    for launch in map_launches[:-1]:
        assert launches(h.finish(launch, value=[1, 1, 1])) == []
    res = launches(h.finish(map_launches[-1], value=[1, 1, 1]))
    assert parts(res) == [0, 1, 2]
    for r in res:
        assert r.stage.is_result and r.spec.shuffle_id is None
        locs = r.spec.map_locations[sid]
        assert [loc[0] for loc in locs] == [m.executor_id for m in map_launches]
    out = run_all(h, res)
    assert succeeded(out).results == [("result", 0), ("result", 1), ("result", 2)]


def test_results_follow_requested_partition_order(ctx):
    h = Harness()
    acts = h.submit(ctx.parallelize(4), [3, 1])
    ls = launches(acts)
    for launch in reversed(ls):
        out = h.finish(launch, value=f"p{launch.spec.partition}")
    assert succeeded(out).results == ["p3", "p1"]


def test_two_shuffles_run_their_map_stages_together(ctx):
    h = Harness({"a": 4, "b": 4})
    left = ctx.parallelize(2).map(lambda x: (x, x))
    right = ctx.parallelize(3).map(lambda x: (x, -x))
    joined = left.join(right)  # union of both sides, one groupByKey shuffle
    cogrouped = left.reduceByKey(add).join(right.reduceByKey(add))  # three shuffles
    acts = h.submit(joined)
    assert len(h.dag.stages) == 2
    assert parts(acts) == [0, 1, 2, 3, 4]
    run_all(h, acts)
    acts = h.submit(cogrouped)
    assert len(h.dag.stages) == 4
    first = launches(acts)
    assert len({a.stage.id for a in first}) == 2, "both independent map stages start at once"
    assert sorted(a.spec.partition for a in first) == [0, 0, 1, 1, 2]
    out = run_all(h, acts)
    assert succeeded(out) is not None


def test_shuffle_outputs_are_reused_by_the_next_job(ctx):
    h = Harness()
    rdd = shuffled(ctx, maps=4, reduces=2)
    out = run_all(h, h.submit(rdd))
    assert succeeded(out)
    # a second job over the same lineage (another action) skips the map stage
    acts = h.submit(rdd.map(lambda kv: kv[0]))
    assert all(a.stage.is_result for a in launches(acts))
    assert parts(acts) == [0, 1]
    assert succeeded(run_all(h, acts))


def test_fully_cached_rdd_needs_no_parent_stage(ctx):
    h = Harness()
    rdd = shuffled(ctx, maps=2, reduces=2).cache()
    acts = h.submit(rdd)
    pending = launches(acts)
    sid = pending[0].spec.shuffle_id
    while pending:
        launch = pending.pop(0)
        cached = [(rdd.id(), launch.spec.partition, 1, 9)] if launch.stage.is_result else []
        pending.extend(launches(h.finish(launch, cached=cached)))
    assert set(h.dag.cache_locs) == {(rdd.id(), 0), (rdd.id(), 1)}
    # even after the shuffle's outputs are gone, the cached RDD needs no map stage
    assert RemoveBlocks("shuffle", sid) in h.handle(Cleanup("shuffle", sid))
    acts = h.submit(rdd.map(str))
    assert len(h.dag.stages) == 1
    assert parts(acts) == [0, 1]
    assert succeeded(run_all(h, acts))


def cached_shuffle_then_reader(ctx, h):
    """A cached, fully computed shuffled RDD (2 partitions: one on a, one on b)."""
    rdd = shuffled(ctx, maps=2, reduces=2).cache()
    pending = launches(h.submit(rdd))
    while pending:
        launch = pending.pop(0)
        cached = [(rdd.id(), launch.spec.partition, 1, 9)] if launch.stage.is_result else []
        pending.extend(launches(h.finish(launch, cached=cached)))
    assert len(h.dag.cache_locs) == 2
    return rdd


def test_losing_a_cached_partition_mid_stage_brings_back_its_shuffle(ctx):
    h = Harness({"a": 2, "b": 2})
    rdd = cached_shuffle_then_reader(ctx, h)
    sid = next(iter(h.dag.map_outputs))
    lost = {p for (_, p), loc in h.dag.cache_locs.items() if loc[0] == "b"}
    assert lost
    h.submit(rdd.map(str))
    assert len(h.dag.stages) == 1, "fully cached: no map stage planned"
    # b dies: its cached partition and its map output are gone, so the reader stage now
    # depends on the shuffle again and must wait for the lost map partition
    acts = h.lose_executor("b")
    (reader,) = [s for s in h.dag.stages.values() if s.is_result]
    assert sid in reader.shuffle_reads
    assert reader in h.dag.waiting
    maps = [a for a in launches(acts) if not a.stage.is_result]
    assert [a.stage.shuffle_dep.shuffle_id for a in maps] == [sid]
    assert succeeded(run_all(h, acts)) is not None


def test_a_task_that_finds_an_unplanned_shuffle_gets_it_planned(ctx):
    h = Harness({"a": 2, "b": 2})
    rdd = cached_shuffle_then_reader(ctx, h)
    sid = next(iter(h.dag.map_outputs))
    acts = h.submit(rdd.map(str))
    on_b = [a for a in launches(acts) if a.executor_id == "b"]
    # b dies after this task was planned: the task is charged, and the reader now needs the
    # shuffle; a task that still finds the shuffle unplanned fails its fetch the same way
    after_loss = h.lose_executor("b")
    (reader,) = [s for s in h.dag.stages.values() if s.is_result]
    assert sid in reader.shuffle_reads
    on_a = [a for a in launches(acts) if a.executor_id == "a"]
    after_fetch = h.fail(on_a[0], "FetchFailedError", "not planned", fetch_failed=("", sid))
    assert reader in h.dag.waiting
    assert succeeded(run_all(h, after_loss + after_fetch)) is not None
    assert on_b


# -- retries ----------------------------------------------------------------------------------
def test_failed_task_is_retried_then_job_fails_after_max_failures(ctx):
    h = Harness(max_failures=3)
    acts = h.submit(ctx.parallelize(2))
    by_part = {a.spec.partition: a for a in launches(acts)}
    h.finish(by_part[0])
    attempt = by_part[1]
    for n in range(2):
        assert attempt.spec.attempt == n
        nxt = launches(h.fail(attempt, "ValueError", f"bad {n}"))
        assert [a.spec.partition for a in nxt] == [1]
        attempt = nxt[0]
    out = h.fail(attempt, "ValueError", "bad 2")
    err = failed(out).error
    assert isinstance(err, TaskFailedError)
    assert err.exc_type_name == "ValueError"
    assert err.exc_message == "bad 2"
    assert "failed 3 times" in str(err)
    assert "user.py" in err.remote_traceback
    assert not h.dag.jobs


def test_job_failure_kills_the_attempts_still_running(ctx):
    h = Harness(max_failures=1)
    acts = h.submit(ctx.parallelize(3))
    ls = launches(acts)
    out = h.fail(ls[0])
    assert failed(out)
    assert sorted(k.task_id for k in kills(out)) == sorted(a.spec.task_id for a in ls[1:])
    # their late answers are absorbed, slots come back
    h.finish(ls[1])
    h.fail(ls[2], killed=True)
    assert all(ex.free == ex.slots for ex in h.dag.executors.values())


def test_failures_are_counted_per_partition(ctx):
    h = Harness(max_failures=2)
    acts = h.submit(ctx.parallelize(2))
    a0, a1 = sorted(launches(acts), key=lambda a: a.spec.partition)
    r0 = launches(h.fail(a0))[0]
    r1 = launches(h.fail(a1))[0]
    # each partition failed once: no abort yet
    assert failed(h.log) is None
    assert succeeded(h.finish(r0)) is None
    assert succeeded(h.finish(r1)) is not None


def test_killed_answers_do_not_count_as_failures(ctx):
    h = Harness(max_failures=1)
    acts = h.submit(ctx.parallelize(1))
    out = h.fail(launches(acts)[0], killed=True)
    assert failed(out) is None
    assert parts(out) == [0]


def test_unknown_and_duplicate_results_are_ignored(ctx):
    h = Harness()
    acts = h.submit(ctx.parallelize(2))
    l0, l1 = launches(acts)
    h.finish(l0)
    assert h.finish(l0) == []  # a duplicate report of the same task
    assert succeeded(h.finish(l1))
    assert h.finish(l1) == []  # after the job


# -- executor loss ----------------------------------------------------------------------------
def map_stage_done(h, rdd):
    """Run the map stage; return (map launches, first result launches)."""
    acts = h.submit(rdd)
    maps = launches(acts)
    res = []
    for launch in maps:
        res += launches(h.finish(launch, value=[1, 1]))
    return maps, res


def test_executor_lost_recomputes_only_its_map_outputs(ctx):
    h = Harness({"a": 2, "b": 2})
    rdd = shuffled(ctx, maps=4, reduces=2)
    maps, res = map_stage_done(h, rdd)
    sid = maps[0].spec.shuffle_id
    on_b = sorted(m.spec.partition for m in maps if m.executor_id == "b")
    assert on_b and len(on_b) < 4
    r_a = next(r for r in res if r.executor_id == "a")
    r_b = next(r for r in res if r.executor_id == "b")

    h.finish(r_a)  # this reduce partition is done before b dies
    out = h.lose_executor("b")
    assert [p for p, loc in enumerate(h.dag.map_outputs[sid]) if loc is None] == on_b
    recompute = launches(out)
    assert sorted(a.spec.partition for a in recompute) == on_b
    assert all(a.spec.shuffle_id == sid and a.executor_id == "a" for a in recompute)

    # the replacement joins: the map partition queued behind the other one on a is revoked
    joined = h.add_executor("c", 2)
    queued = max(recompute, key=lambda a: a.spec.task_id)
    assert launches(joined) == []
    assert [(k.executor_id, k.task_id, k.only_if_queued) for k in kills(joined)] == [
        ("a", queued.spec.task_id, True)
    ]
    # a withdraws it (it had not started) and c runs it
    (moved,) = launches(h.fail(queued, withdrawn=True))
    assert (moved.executor_id, moved.spec.partition) == ("c", queued.spec.partition)
    assert moved.spec.attempt == queued.spec.attempt
    rerun = []
    for launch in [*(a for a in recompute if a is not queued), moved]:
        rerun += launches(h.finish(launch, value=[1, 1]))
    # only the reduce partition that had not finished runs again, reading no output from b
    assert [a.spec.partition for a in rerun] == [r_b.spec.partition]
    assert all(loc[0] != "b" for loc in rerun[0].spec.map_locations[sid])
    out = h.finish(rerun[0])
    assert succeeded(out).results == [("result", 0), ("result", 1)]
    recomputed_maps = [a for a in launches(h.log) if not a.stage.is_result and a not in maps]
    assert sorted(a.spec.partition for a in recomputed_maps) == sorted(
        [*on_b, moved.spec.partition]
    )


def test_executor_lost_during_map_stage_requeues_its_tasks(ctx):
    h = Harness({"a": 1, "b": 1})
    rdd = shuffled(ctx, maps=3, reduces=1)
    acts = h.submit(rdd)
    la, lb = sorted(launches(acts), key=lambda a: a.executor_id)
    nxt = launches(h.finish(la, value=[1]))  # a takes the next map partition
    assert len(nxt) == 1 and nxt[0].executor_id == "a"
    out = h.lose_executor("b")
    assert launches(out) == []  # a is busy
    assert h.dag.executors.keys() == {"a"}
    # when a frees up it runs b's lost partition, then the reduce
    again = launches(h.finish(nxt[0], value=[1]))
    assert [(a.spec.partition, a.stage.is_result) for a in again] == [(lb.spec.partition, False)]
    assert again[0].spec.attempt == 1
    reduce = launches(h.finish(again[0], value=[1]))
    assert [a.stage.is_result for a in reduce] == [True]
    assert succeeded(h.finish(reduce[0]))


def test_executor_loss_counts_against_the_tasks_running_there(ctx):
    # a task that crashes its worker every time must not retry forever
    h = Harness({"e0": 1}, max_failures=2)
    acts = h.submit(ctx.parallelize(1))
    h.lose_executor("e0")
    acts = h.add_executor("e1", 1)
    assert parts(acts) == [0]
    out = h.lose_executor("e1")
    err = failed(out).error
    assert isinstance(err, JobAbortedError)
    assert "was lost" in str(err)


def test_lost_executor_forgets_cached_blocks(ctx):
    h = Harness({"a": 1, "b": 1})
    rdd = ctx.parallelize(2).cache()
    acts = h.submit(rdd)
    for launch in launches(acts):
        p = launch.spec.partition
        h.finish(launch, cached=[(rdd.id(), p, 10 + p, 100 + p)])
    assert len(h.dag.cache_locs) == 2
    # the sizes the tasks reported add up per RDD, as the state-size metric reads them
    assert h.dag.cached_size(rdd.id(), 2) == (21, 201, 2)
    kept = next(p for (_, p), loc in h.dag.cache_locs.items() if loc[0] == "a")
    h.lose_executor("b")
    assert [loc[0] for loc in h.dag.cache_locs.values()] == ["a"]
    assert h.dag.cached_size(rdd.id(), 2) == (10 + kept, 100 + kept, 1)


# -- fetch failure ----------------------------------------------------------------------------
def test_fetch_failure_resubmits_the_parent_stage(ctx):
    h = Harness({"a": 2, "b": 2})
    rdd = shuffled(ctx, maps=4, reduces=2)
    maps, res = map_stage_done(h, rdd)
    sid = maps[0].spec.shuffle_id
    lost = sorted(m.spec.partition for m in maps if m.executor_id == "b")
    r_a = next(r for r in res if r.executor_id == "a")
    r_b = next(r for r in res if r.executor_id == "b")
    h.finish(r_b)
    # b is alive as far as the scheduler knows, but its outputs cannot be fetched
    out = h.fail(r_a, "FetchFailedError", "refused", fetch_failed=("b", sid))
    assert failed(out) is None
    assert "b" in h.dag.executors
    assert [p for p, loc in enumerate(h.dag.map_outputs[sid]) if loc is None] == lost
    again = launches(out)
    assert sorted(a.spec.partition for a in again) == lost
    assert all(not a.stage.is_result for a in again)
    rerun = []
    for launch in again:
        rerun += launches(h.finish(launch, value=[1, 1]))
    # only the reduce partition that failed runs again, in a new attempt of its stage
    assert [(a.spec.partition, a.spec.stage_attempt) for a in rerun] == [(r_a.spec.partition, 1)]
    out = h.finish(rerun[0])
    assert succeeded(out).results == [("result", 0), ("result", 1)]


def test_repeated_fetch_failures_abort_the_job(ctx):
    h = Harness({"a": 2, "b": 2})
    rdd = shuffled(ctx, maps=2, reduces=1)
    acts = h.submit(rdd)
    pending = launches(acts)
    sid = pending[0].spec.shuffle_id
    error = None
    for _ in range(50):
        launch = pending.pop(0)
        if launch.stage.is_result:
            step = h.fail(launch, "FetchFailedError", "x", fetch_failed=("a", sid))
        else:
            step = h.finish(launch, value=[1])
        pending += launches(step)
        if failed(step):
            error = failed(step).error
            break
    assert isinstance(error, JobAbortedError)
    assert "fetch" in str(error)


# -- speculation ------------------------------------------------------------------------------
SPEC = SpeculationConfig(enabled=True, multiplier=1.5, quantile=0.75, min_runtime=0.1)


def straggler_setup(ctx, rdd=None):
    """4 tasks on 2 one-slot executors; partition 1 (on b) straggles while a does the rest."""
    h = Harness({"a": 1, "b": 1}, speculation=SPEC)
    acts = h.submit(rdd if rdd is not None else ctx.parallelize(4))
    by_ex = {a.executor_id: a for a in launches(acts)}
    slow = by_ex["b"]
    nxt = by_ex["a"]
    for t in (1.0, 2.0, 3.0):
        h.now = t
        step = launches(
            h.finish(nxt, value=[1] if not nxt.stage.is_result else None, accumulators={7: 1})
        )
        if step:
            nxt = step[0]
        if t < 3.0:
            assert h.tick() == []  # fewer than 75% of the tasks are done: no speculation
    return h, slow


def test_straggler_gets_a_copy_on_another_executor_and_first_finish_wins(ctx):
    h, slow = straggler_setup(ctx)
    copy_launch = launches(h.tick())  # t=3: running 3s > 1.5 x the median 1s
    assert len(copy_launch) == 1
    copy = copy_launch[0]
    assert copy.spec.partition == slow.spec.partition
    assert copy.spec.speculative and copy.executor_id == "a"
    assert copy.spec.attempt == 1
    h.now = 3.8
    out = h.finish(copy, value="fast", accumulators={7: 1})
    assert [k.task_id for k in kills(out)] == [slow.spec.task_id]
    assert succeeded(out).results[slow.spec.partition] == "fast"
    # the loser answers late: ignored, its accumulators are not merged
    late = h.finish(slow, value="slow", accumulators={7: 1})
    assert late == []
    assert sum(m.updates[7] for m in merges(h.log)) == 4
    assert all(ex.free == ex.slots for ex in h.dag.executors.values())


def test_speculative_duplicate_of_a_map_task_is_ignored(ctx):
    rdd = ctx.parallelize(4).map(lambda x: (x, x)).partitionBy(1)
    h, slow = straggler_setup(ctx, rdd)
    sid = slow.spec.shuffle_id
    copy = launches(h.tick())[0]
    assert copy.spec.speculative and copy.executor_id == "a"
    out = h.finish(copy, value=[1], accumulators={7: 1})
    result_launch = launches(out)
    assert [a.stage.is_result for a in result_launch] == [True]
    assert h.dag.map_outputs[sid][slow.spec.partition][0] == "a"
    # the original finishes after all (the kill raced with it): no double count, no move
    assert h.finish(slow, value=[1], accumulators={7: 1}) == []
    assert h.dag.map_outputs[sid][slow.spec.partition][0] == "a"
    assert sum(m.updates[7] for m in merges(h.log)) == 4
    assert succeeded(h.finish(result_launch[0]))


def test_no_speculation_when_disabled_or_below_quantile(ctx):
    h = Harness({"a": 1, "b": 1})  # speculation off
    acts = h.submit(ctx.parallelize(4))
    by_ex = {a.executor_id: a for a in launches(acts)}
    nxt = by_ex["a"]
    for t in (1.0, 2.0, 3.0):
        h.now = t
        step = launches(h.finish(nxt))
        nxt = step[0] if step else nxt
    h.now = 100.0
    assert h.tick() == []

    h2 = Harness({"a": 1, "b": 1, "c": 1, "d": 1}, speculation=SPEC)
    acts = h2.submit(ctx.parallelize(4))
    first = launches(acts)
    h2.now = 1.0
    h2.finish(first[0])  # 1 of 4 done < 75%
    h2.now = 100.0
    assert h2.tick() == []


# -- locality -----------------------------------------------------------------------------------
def test_tasks_prefer_the_executor_holding_their_cached_input(ctx):
    h = Harness({"a": 1, "b": 1})
    rdd = ctx.parallelize(4).cache()
    # first job: record where each partition was cached
    acts = h.submit(rdd)
    pending = launches(acts)
    where = {}
    while pending:
        launch = pending.pop(0)
        where[launch.spec.partition] = launch.executor_id
        pending += launches(h.finish(launch, cached=[(rdd.id(), launch.spec.partition, 1, 9)]))
    assert set(where.values()) == {"a", "b"}

    derived = rdd.map(str)
    acts = h.submit(derived)
    pending = launches(acts)
    ran = {}
    while pending:
        launch = pending.pop(0)
        ran[launch.spec.partition] = launch.executor_id
        assert (
            launch.spec.block_locations[(rdd.id(), launch.spec.partition)][0]
            == where[launch.spec.partition]
        )
        pending += launches(h.finish(launch))
    assert ran == where


# -- slots ------------------------------------------------------------------------------------
def test_slot_accounting(ctx):
    h = Harness({"a": 1})
    acts = h.submit(ctx.parallelize(3))
    assert parts(acts) == [0]
    assert h.dag.executors["a"].free == 0
    acts = h.add_executor("b", 2)  # a new executor gets work at once
    assert sorted(a.executor_id for a in launches(acts)) == ["b", "b"]
    assert h.dag.executors["b"].free == 0
    out = h.finish(launches(h.log)[0])
    # nothing is pending, but partition 2 waits behind partition 1 on b while a is idle:
    # b is asked to withdraw it if it has not started
    assert launches(out) == []
    queued = next(a for a in launches(h.log) if a.spec.partition == 2)
    assert [(k.executor_id, k.task_id, k.only_if_queued) for k in kills(out)] == [
        ("b", queued.spec.task_id, True)
    ]
    assert h.dag.executors["a"].free == 1
    (moved,) = launches(h.fail(queued, withdrawn=True))  # withdrawn: it moves to idle a
    # it never ran, so it keeps attempt number 0
    assert (moved.executor_id, moved.spec.partition, moved.spec.attempt) == ("a", 2, 0)
    assert h.dag.executors["b"].free == 1


def test_scheduler_rejects_bad_max_failures():
    with pytest.raises(ValueError, match="maxFailures=0"):
        DAGScheduler(0)


def test_cleanup_events_become_remove_blocks(ctx):
    h = Harness()
    assert h.handle(Cleanup("rdd", 12)) == [RemoveBlocks("rdd", 12)]
    assert h.handle(Cleanup("shuffle", 3)) == [RemoveBlocks("shuffle", 3)]


# -- cached frontier, launch failures, the reaper --------------------------------------------
def test_cached_frontier_names_fully_cached_rdds_and_stops_there(ctx):
    h = Harness({"a": 2, "b": 2})
    rdd = cached_shuffle_then_reader(ctx, h)
    reader = rdd.map(str).map(str)
    assert h.dag.cached_frontier(reader) == {rdd.id()}
    # one partition gone: the RDD is no longer fully cached, so its lineage must ship
    del h.dag.cache_locs[(rdd.id(), 0)]
    assert h.dag.cached_frontier(reader) == frozenset()


def test_a_missing_cached_block_is_recomputed_from_lineage(ctx):
    h = Harness({"a": 2, "b": 2})
    rdd = cached_shuffle_then_reader(ctx, h)
    sid = next(iter(h.dag.map_outputs))
    acts = h.submit(rdd.map(str))
    (reader,) = [s for s in h.dag.stages.values() if s.is_result]
    reader.frontier = frozenset({rdd.id()})  # as the runner encoded it
    reader.payload = b"encoded"
    first = launches(acts)[0]
    key = (rdd.id(), first.spec.partition)
    # the block was evicted on its executor after the task was planned
    out = h.fail(first, "CacheMissingError", "gone", missing_block=key)
    assert key not in h.dag.cache_locs
    assert reader.payload is None, "the payload stubbing the lost block must be encoded again"
    assert failed(out) is None, "a missing block is not the user's failure"
    assert sid in reader.shuffle_reads, "the lost partition's lineage needs its shuffle"
    assert succeeded(run_all(h, out + acts[1:])) is not None


def test_repeatedly_missing_block_aborts_the_job(ctx):
    h = Harness({"a": 2, "b": 2})
    rdd = cached_shuffle_then_reader(ctx, h)
    acts = h.submit(rdd.map(str))
    key = (rdd.id(), 0)
    out: list = []
    for _ in range(10):
        launch = next(a for a in launches(acts + out) if a.stage.is_result)
        h.dag.cache_locs[key] = ("a", h.dag.executors["a"].address)  # says it is back
        out = h.fail(launch, "CacheMissingError", "gone", missing_block=key)
        if failed(out):
            break
        acts = []
    assert isinstance(failed(out).error, JobAbortedError)
    assert "could not read cached partition 0" in str(failed(out).error)


def test_launches_that_could_not_happen_free_their_slots(ctx):
    h = Harness({"a": 2, "b": 2})
    acts = h.submit(ctx.parallelize(6).map(str))
    started = launches(acts)
    assert len(started) == 4 and all(ex.free == 0 for ex in h.dag.executors.values())
    # the runner could not encode the stage: none of these launches reached an executor
    out = h.dag.launch_failed([a.spec.task_id for a in started], ValueError("unpicklable"))
    h.dag.validate_state()
    assert isinstance(failed(out).error, ValueError)
    assert all(ex.free == ex.slots for ex in h.dag.executors.values())
    assert not h.dag.jobs and not h.dag.tasks
    # the next job gets every slot
    assert len(launches(h.submit(ctx.parallelize(4).map(str)))) == 4


def test_a_task_that_ignores_its_kill_gets_its_executor_killed(ctx):
    from dstreams.scheduler.dag import KillExecutor

    h = Harness({"a": 1, "b": 1}, kill_timeout=2.0)
    acts = h.submit(ctx.parallelize(2).map(str))
    on_a = next(a for a in launches(acts) if a.executor_id == "a")
    out = h.dag.abort_job("cancelled")
    assert {k.task_id for k in kills(out)} == {a.spec.task_id for a in launches(acts)}
    h.now = 1.0
    h.finish(next(a for a in launches(acts) if a.executor_id == "b"))  # b obeyed (late result)
    h.now = 2.5
    assert not [a for a in h.tick() if isinstance(a, KillExecutor)], "not yet: 1.5 s"
    h.now = 3.5
    reaped = [a for a in h.tick() if isinstance(a, KillExecutor)]
    assert [r.executor_id for r in reaped] == ["a"]
    assert f"task {on_a.spec.task_id} did not stop" in reaped[0].reason
    assert not [a for a in h.tick() if isinstance(a, KillExecutor)], "asked once"
    h.lose_executor("a")
    assert not h.dag._kills


# -- speculation in small stages, unresponsive executors --------------------------------------
def test_speculation_starts_at_sparks_minimum_finished_count(ctx):
    """6 tasks at quantile 0.75 need floor(4.5) = 4 successes, as in Spark (not 5)."""
    h = Harness({"a": 2, "b": 2, "c": 2}, speculation=SPEC)
    acts = launches(h.submit(ctx.parallelize(6)))
    on_c = sorted((a for a in acts if a.executor_id == "c"), key=lambda a: a.spec.task_id)
    others = [a for a in acts if a.executor_id != "c"]
    h.now = 0.25
    for a in others:
        h.finish(a)
    h.now = 0.5
    copies = launches(h.tick())  # 4 of 6 done; c's two tasks run 0.5 s > 1.5 x 0.25 s
    assert sorted(c.spec.partition for c in copies) == sorted(a.spec.partition for a in on_c)
    assert all(c.executor_id != "c" and c.spec.speculative for c in copies)


def test_duration_threshold_speculates_small_stages_before_the_quantile(ctx):
    spec = SpeculationConfig(True, 1.5, 0.75, 0.1, duration_threshold=0.3)
    h = Harness({"a": 2, "b": 2}, speculation=spec)
    acts = launches(h.submit(ctx.parallelize(2)))  # 2 tasks <= 2 slots of one executor
    slow, fast = acts
    h.now = 0.2
    h.finish(fast)
    assert h.tick() == [], "0.2 s is under the 0.3 s threshold"
    h.now = 0.35
    (copy,) = launches(h.tick())  # 1 of 2 done: below the quantile, but the threshold applies
    assert copy.spec.partition == slow.spec.partition and copy.executor_id != slow.executor_id
    # a stage with more tasks than one executor's slots waits for the quantile
    h2 = Harness({"a": 2, "b": 2}, speculation=spec)
    acts2 = launches(h2.submit(ctx.parallelize(3)))
    h2.now = 5.0
    assert h2.tick() == []
    assert len(acts2) == 3


def test_default_min_runtime_allows_speculation_in_sub_second_batches(ctx):
    h = Harness({"a": 2, "b": 2}, speculation=SpeculationConfig(enabled=True))
    acts = launches(h.submit(ctx.parallelize(4)))
    slow = acts[0]
    h.now = 0.04
    for a in acts[1:]:
        h.finish(a)
    h.now = 0.15  # 110 ms: over max(100 ms, 1.5 x 40 ms)
    (copy,) = launches(h.tick())
    assert copy.spec.partition == slow.spec.partition


def test_an_unresponsive_executor_gets_no_tasks_and_its_queued_task_moves(ctx):
    from dstreams.scheduler.events import ExecutorResponsive, ExecutorUnresponsive

    h = Harness({"a": 2, "b": 2})  # speculation off: only the queued task moves
    acts = launches(h.submit(ctx.parallelize(4)))
    on_b = sorted((a for a in acts if a.executor_id == "b"), key=lambda a: a.spec.task_id)
    running_b, queued_b = on_b
    on_a = [a for a in acts if a.executor_id == "a"]
    h.now = 0.1
    assert launches(h.handle(ExecutorUnresponsive("b", 0.4))) == []  # a is still busy
    out = h.finish(on_a[0])
    (moved,) = launches(out)
    assert moved.executor_id == "a" and moved.spec.partition == queued_b.spec.partition
    assert launches(h.finish(on_a[1])) == [], "b gets nothing while it does not answer"
    done = h.finish(moved)
    assert not succeeded(done)  # the task running on b has no copy without speculation
    # b resumes: its queued original is killed (the copy won), its running task finishes
    h.handle(ExecutorResponsive("b"))
    assert queued_b.spec.task_id in {k.task_id for k in kills(done)}
    assert succeeded(h.finish(running_b)) is not None
    late = h.finish(queued_b)
    assert late == []


def test_with_speculation_the_running_task_of_an_unresponsive_executor_is_copied(ctx):
    from dstreams.scheduler.events import ExecutorUnresponsive

    h = Harness({"a": 1, "b": 1}, speculation=SPEC)
    acts = launches(h.submit(ctx.parallelize(2)))
    stuck = next(a for a in acts if a.executor_id == "b")
    other = next(a for a in acts if a.executor_id == "a")
    h.handle(ExecutorUnresponsive("b", 0.4))
    (copy,) = launches(h.finish(other))
    assert copy.spec.partition == stuck.spec.partition and copy.executor_id == "a"
    out = h.finish(copy)
    assert succeeded(out) and [k.task_id for k in kills(out)] == [stuck.spec.task_id]


def test_with_speculation_readers_of_an_unresponsive_executor_fetch_recomputed_outputs(ctx):
    """A stopped executor holds map outputs: readers waiting on it are killed, maps re-run."""
    from dstreams.scheduler.events import ExecutorUnresponsive

    h = Harness({"a": 2, "b": 2, "c": 2}, speculation=SPEC)
    rdd = shuffled(ctx, maps=6, reduces=3)
    maps, res = map_stage_done(h, rdd)
    sid = maps[0].spec.shuffle_id
    on_b = sorted(m.spec.partition for m in maps if m.executor_id == "b")
    assert on_b and len(res) == 3
    h.now = 0.1
    out = h.handle(ExecutorUnresponsive("b", 0.4))
    waiting = {r.spec.task_id for r in res if r.executor_id != "b"}
    assert {k.task_id for k in kills(out)} == waiting, "the readers waiting on b are killed"
    again = launches(out)
    assert sorted(a.spec.partition for a in again) == on_b
    assert all(not a.stage.is_result and a.executor_id != "b" for a in again)
    for r in res:
        if r.spec.task_id in waiting:
            h.fail(r, killed=True)
    rerun = []
    for launch in again:
        rerun += launches(h.finish(launch, value=[1, 1]))
    assert rerun and all(a.executor_id != "b" for a in rerun)
    assert all(loc[0] != "b" for a in rerun for loc in a.spec.map_locations[sid]), (
        "the new readers fetch nothing from b"
    )
    done: list[Any] = []
    for a in rerun:
        done += h.finish(a)
    assert succeeded(done) is not None, "the job finishes while b still does not answer"


def test_without_speculation_an_unresponsive_executor_keeps_its_map_outputs(ctx):
    from dstreams.scheduler.events import ExecutorUnresponsive

    h = Harness({"a": 2, "b": 2, "c": 2})
    maps, _ = map_stage_done(h, shuffled(ctx, maps=6, reduces=3))
    out = h.handle(ExecutorUnresponsive("b", 0.4))
    assert kills(out) == [] and launches(out) == []
    assert all(loc is not None for loc in h.dag.map_outputs[maps[0].spec.shuffle_id])


def test_with_speculation_maps_an_unresponsive_executor_finished_run_again_before_readers(ctx):
    """b finished a map, then stopped while the map stage still ran: no reader goes to b."""
    from dstreams.scheduler.events import ExecutorUnresponsive

    h = Harness({"a": 1, "b": 1, "c": 1}, speculation=SPEC)
    rdd = shuffled(ctx, maps=6, reduces=3)
    pending = launches(h.submit(rdd))
    sid = pending[0].spec.shuffle_id
    on_b = next(a for a in pending if a.executor_id == "b")
    pending.remove(on_b)
    pending += launches(h.finish(on_b, value=[1, 1]))  # b's map output exists
    h.now = 0.05
    pending += launches(h.handle(ExecutorUnresponsive("b", 0.4)))
    assert h.dag.map_outputs[sid][on_b.spec.partition] is None, "b's output counts as lost"
    done: list[Any] = []
    while pending and not succeeded(done):
        a = pending.pop(0)
        if a.executor_id == "b":
            continue  # b does not answer: whatever it runs never finishes
        done = h.finish(a) if a.stage.is_result else h.finish(a, value=[1, 1])
        pending += launches(done)
    assert succeeded(done) is not None, "the job did not finish without b"
    readers = [a for a in launches(h.log) if a.stage.is_result]
    fetched = {loc[0] for a in readers for loc in a.spec.map_locations.get(sid, [])}
    assert readers and "b" not in fetched


def test_an_output_lost_outside_a_partial_map_attempt_joins_the_attempt(ctx):
    # job 1 computes all four map outputs; losing "a" between jobs leaves job 2 a partial
    # attempt; losing "b" during it must add b's outputs to that attempt (it used to stall)
    h = Harness({"a": 2, "b": 2, "c": 2})
    rdd = shuffled(ctx, maps=4, reduces=2)
    assert succeeded(run_all(h, h.submit(rdd)))
    outs = h.dag.map_outputs[next(iter(h.dag.map_outputs))]
    on_a = sorted(i for i, loc in enumerate(outs) if loc[0] == "a")
    on_b = sorted(i for i, loc in enumerate(outs) if loc[0] == "b")
    assert on_a and on_b
    h.lose_executor("a")
    acts = h.submit(rdd.map(lambda kv: kv))
    assert parts(acts) == on_a
    pending = [a for a in launches(acts) if a.executor_id != "b"]
    pending += launches(h.lose_executor("b"))
    out: list = []
    while pending:
        nxt = h.finish(pending.pop(0))
        out += nxt
        pending += launches(nxt)
    assert succeeded(out) is not None
    map_parts = sorted(
        a.spec.partition for a in out + acts if isinstance(a, Launch) and not a.stage.is_result
    )
    assert sorted(set(map_parts)) == sorted(on_a + on_b)
