"""Streaming dynamic allocation as a pure policy: batch times in, decisions out."""

from __future__ import annotations

import pytest

from dstreams.scheduler.allocation import AllocationConfig, Decision, StreamingAllocation


def policy(**kw: object) -> StreamingAllocation:
    return StreamingAllocation(AllocationConfig(batch_ms=1000, **kw))  # type: ignore[arg-type]


def test_no_batches_no_decision():
    assert policy().decide(["0", "1"], set()) == Decision()


def test_processing_near_the_interval_asks_for_round_ratio_more():
    p = policy()
    for ms in (900, 1000, 1100):  # ratio 1.0
        p.batch_completed(ms)
    assert p.decide(["0", "1"], set()) == Decision(add=1)
    for ms in (2400, 2600):  # ratio 2.5: round() gives 2
        p.batch_completed(ms)
    assert p.decide(["0", "1", "2"], set()) == Decision(add=2)


def test_scale_up_stops_at_max_executors():
    p = policy(max_executors=3)
    p.batch_completed(5000)
    assert p.decide(["0", "1"], set()) == Decision(add=1)
    p.batch_completed(5000)
    assert p.decide(["0", "1", "2"], set()) == Decision()


def test_idle_removes_the_newest_executor_without_a_receiver():
    p = policy()
    p.batch_completed(100)
    assert p.decide(["0", "1", "10", "2"], {"10"}) == Decision(remove=("2",))


def test_scale_down_keeps_min_executors_and_every_receiver():
    p = policy(min_executors=2)
    p.batch_completed(10)
    assert p.decide(["0", "1"], set()) == Decision()
    q = policy()  # the default minimum: one per receiver
    q.batch_completed(10)
    assert q.decide(["0", "1"], {"0", "1"}) == Decision()


def test_between_the_ratios_nothing_changes_and_the_window_restarts():
    p = policy()
    p.batch_completed(500)
    assert p.decide(["0", "1"], set()) == Decision()
    assert p.decide(["0", "1"], set()) == Decision(), "no batch since: no decision"


@pytest.mark.parametrize(
    "kw",
    [
        {"scale_up_ratio": 0.3, "scale_down_ratio": 0.5},
        {"min_executors": 4, "max_executors": 2},
        {"scaling_interval_ms": 0},
    ],
)
def test_bad_settings_are_refused_naming_them(kw):
    with pytest.raises(ValueError):
        AllocationConfig(batch_ms=1000, **kw)
