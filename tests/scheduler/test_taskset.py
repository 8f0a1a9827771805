"""TaskSetManager on its own: offers, retries, resubmission, speculation and locality."""

from __future__ import annotations

from dstreams.scheduler.taskset import SpeculationConfig, TaskSetManager


def tsm(parts=(0, 1, 2, 3), max_failures=4, preferred=None, speculation=None):
    m = TaskSetManager(
        0, 0, list(parts), max_failures, preferred or {}, speculation or SpeculationConfig()
    )
    m.validate_state()
    return m


def test_offers_pending_partitions_in_order_then_nothing():
    m = tsm((0, 1, 2))
    got = [m.offer("a", t, 0.0) for t in range(4)]
    m.validate_state()
    assert [o.partition for o in got[:3]] == [0, 1, 2]
    assert all(o.attempt == 0 and not o.speculative for o in got[:3])
    assert got[3] is None
    assert not m.has_work()


def test_success_marks_done_once():
    m = tsm((0, 1))
    m.offer("a", 10, 0.0)
    m.offer("b", 11, 0.0)
    assert m.on_success(10, 1.0) == 0
    assert m.on_success(10, 1.0) is None  # duplicate report
    assert not m.is_finished()
    assert m.on_success(11, 2.0) == 1
    assert m.is_finished()
    m.validate_state()


def test_failure_requeues_first_and_aborts_at_max_failures():
    m = tsm((0, 1), max_failures=2)
    m.offer("a", 1, 0.0)
    assert m.on_failure(1) == (0, False)
    m.validate_state()
    retry = m.offer("b", 2, 0.0)
    assert (retry.partition, retry.attempt) == (0, 1)  # the failed partition goes first
    assert m.on_failure(2) == (0, True)
    assert m.zombie and not m.has_work()
    assert m.offer("a", 3, 0.0) is None


def test_uncounted_failures_never_abort():
    m = tsm((0,), max_failures=1)
    for t in range(5):
        o = m.offer("a", t, 0.0)
        assert o.attempt == t
        assert m.on_failure(t, counts=False) == (0, False)
        m.validate_state()
    assert m.failures.get(0, 0) == 0


def test_executor_lost_requeues_its_running_tasks():
    m = tsm((0, 1, 2))
    m.offer("a", 1, 0.0)
    m.offer("b", 2, 0.0)
    m.offer("a", 3, 0.0)
    assert sorted(m.executor_lost("a")) == [1, 3]
    m.validate_state()
    assert sorted(m.pending) == [0, 2]
    assert 1 in {rt.partition for rt in m.running.values()}


def test_resubmit_reruns_finished_partitions():
    m = tsm((0, 1))
    m.offer("a", 1, 0.0)
    m.offer("a", 2, 0.0)
    m.on_success(1, 1.0)
    m.on_success(2, 1.0)
    assert m.is_finished()
    m.resubmit([1])
    m.validate_state()
    assert not m.is_finished()
    assert m.offer("b", 3, 2.0).partition == 1


def test_locality_prefers_cached_input_then_no_preference():
    prefs = {0: {"b"}, 1: {"b"}, 2: {"a"}}
    m = tsm((0, 1, 2, 3), preferred=prefs)
    assert m.offer("a", 1, 0.0).partition == 2  # cached on a
    assert m.offer("a", 2, 0.0).partition == 3  # no preference beats another's cache
    assert m.offer("a", 3, 0.0).partition == 0  # then anything
    assert m.offer("b", 4, 0.0).partition == 1
    m.validate_state()


SPEC = SpeculationConfig(enabled=True, multiplier=2.0, quantile=0.5, min_runtime=0.5)


def test_speculation_marks_stragglers_and_offers_elsewhere():
    m = tsm((0, 1, 2, 3), speculation=SPEC)
    for t, ex in enumerate("abab"):
        m.offer(ex, t, 0.0)
    m.on_success(0, 1.0)
    assert m.check_speculation(10.0) == []  # 1 of 4 done < 50%
    m.on_success(2, 1.0)
    # median duration 1s -> threshold 2s; tasks 1 and 3 started at 0
    assert m.check_speculation(1.5) == []
    assert sorted(m.check_speculation(2.5)) == [1, 3]
    assert m.check_speculation(3.0) == []  # already marked
    assert m.has_work()
    copy = m.offer("b", 10, 2.5)  # partition 1 runs on b: b may only copy 3 (on b too) -> none
    assert copy is None
    copy = m.offer("a", 11, 2.5)
    assert copy.partition == 1 and copy.speculative and copy.attempt == 1
    m.validate_state()
    # first finish wins; the original's later success is ignored
    assert m.on_success(11, 3.0) == 1
    assert m.on_success(1, 4.0) is None
    m.validate_state()


def test_speculation_respects_min_runtime_and_disabled():
    cfg = SpeculationConfig(enabled=True, multiplier=1.0, quantile=0.5, min_runtime=5.0)
    m = tsm((0, 1), speculation=cfg)
    m.offer("a", 0, 0.0)
    m.offer("b", 1, 0.0)
    m.on_success(0, 0.1)
    assert m.check_speculation(4.0) == []
    assert m.check_speculation(5.5) == [1]
    off = tsm((0, 1))
    off.offer("a", 0, 0.0)
    off.offer("b", 1, 0.0)
    off.on_success(0, 0.1)
    assert off.check_speculation(1000.0) == []


def test_failure_of_one_copy_keeps_the_other_running():
    m = tsm((0,), speculation=SPEC)
    m.offer("a", 0, 0.0)
    m.speculatable.add(0)
    m.offer("b", 1, 0.0)
    assert m.on_failure(0) == (0, False)
    assert 0 not in m.pending  # the copy on b still runs
    m.validate_state()
    assert m.on_success(1, 1.0) == 0
