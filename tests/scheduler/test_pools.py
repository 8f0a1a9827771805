"""Pool ordering (Spark's FIFO and FAIR algorithms) and allocation files, as pure functions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dstreams.scheduler.pools import Pool, order_stages, parse_allocations


@dataclass
class St:
    id: int
    pool: str
    first_job: int
    running: int = 0


def order(stages, pools=None, mode="FAIR"):
    return [s.id for s in order_stages(stages, lambda s: s.running, pools or {}, mode)]


def test_fifo_takes_the_oldest_job_first_whatever_the_pools():
    stages = [St(5, "default", 2), St(3, "streaming", 1, running=4), St(4, "streaming", 1)]
    assert order(stages, mode="FIFO") == [3, 4, 5]


def test_fair_serves_a_pool_below_its_min_share_first():
    pools = {"streaming": Pool("streaming", weight=2, min_share=2)}
    stages = [St(1, "streaming", 0, running=1), St(2, "default", 1, running=0)]
    # streaming runs 1 < minShare 2: needy, so it comes first although default runs nothing
    assert order(stages, pools) == [1, 2]
    stages[0].running = 2  # at its share: now tasks per weight decide (2/2 = 1 > 0/1)
    assert order(stages, pools) == [2, 1]


def test_fair_orders_the_rest_by_running_tasks_per_weight():
    pools = {"a": Pool("a", weight=3), "b": Pool("b", weight=1)}
    stages = [St(1, "a", 0, running=2), St(2, "b", 1, running=1)]
    assert order(stages, pools) == [1, 2]  # 2/3 < 1/1
    stages[0].running = 4
    assert order(stages, pools) == [2, 1]  # 4/3 > 1/1


def test_needy_pools_compare_by_how_far_below_their_share():
    pools = {"a": Pool("a", min_share=4), "b": Pool("b", min_share=2)}
    stages = [St(1, "a", 0, running=3), St(2, "b", 1, running=1)]
    assert order(stages, pools) == [2, 1]  # 1/2 < 3/4


def test_a_pool_counts_all_its_running_tasks():
    # pool p's two stages run 1 task each: 2 in all, more than q's 1 (equal weights)
    stages = [St(1, "p", 0, running=1), St(2, "p", 0, running=1), St(3, "q", 1, running=1)]
    assert order(stages) == [3, 1, 2]


def test_within_a_pool_fifo_or_fair():
    stages = [St(1, "p", 0, running=3), St(2, "p", 1, running=0)]
    assert order(stages, {"p": Pool("p", "FIFO")}) == [1, 2]
    assert order(stages, {"p": Pool("p", "FAIR")}) == [2, 1]


def test_ties_break_by_pool_name():
    assert order([St(1, "zz", 0), St(2, "aa", 1)]) == [2, 1]


def test_parse_a_spark_allocation_file():
    text = """<?xml version="1.0"?>
    <allocations>
      <pool name="production">
        <schedulingMode>FAIR</schedulingMode>
        <weight>3</weight>
        <minShare>2</minShare>
      </pool>
      <pool name="test"><schedulingMode>fifo</schedulingMode></pool>
    </allocations>"""
    pools = parse_allocations(text, "fair.xml")
    assert pools == {
        "production": Pool("production", "FAIR", 3.0, 2),
        "test": Pool("test", "FIFO", 1.0, 0),
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("<allocations><pool", "fair.xml: not valid XML"),
        ("<allocations><pool><weight>1</weight></pool></allocations>", "has no name="),
        (
            '<allocations><pool name="p"><weight>heavy</weight></pool></allocations>',
            "pool 'p': could not convert string to float: 'heavy'",
        ),
        (
            '<allocations><pool name="p"><weight>0</weight></pool></allocations>',
            "weight 0.0 must be positive",
        ),
        (
            '<allocations><pool name="p"><schedulingMode>LIFO</schedulingMode></pool>'
            "</allocations>",
            "schedulingMode 'LIFO' is not FIFO or FAIR",
        ),
    ],
)
def test_bad_allocation_files_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_allocations(text, "fair.xml")
