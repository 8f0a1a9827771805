"""JobRunner with real workers: jobs from several threads at once, pools, cancellation.

The DAG scheduler's decisions are tested without processes (``test_dag_jobs.py``); these tests
check the hand-off between threads that pump events, and that results, errors and
cancellations reach the right caller.
"""

from __future__ import annotations

import threading
import time

import pytest

from dstreams import Conf
from dstreams.errors import JobCancelledError, TaskFailedError
from dstreams.scheduler.pools import Pool
from dstreams.scheduler.runner import job_pool, pools_from_conf


def _slow(x):
    time.sleep(0.05)
    return x


@pytest.mark.parametrize("pool", ["streaming", "etl"])
def test_a_query_finishes_while_a_long_job_runs(sc, pool):
    # 40 tasks of 50 ms on 2 workers: about 1 s, in another pool than the query's (the
    # streaming pool, or one the program names). The query (one short task) is started once
    # the long job is under way; it takes a free slot between two of the long job's tasks.
    marks: dict[str, float] = {}
    started = threading.Event()

    def long_job():
        sc.setLocalProperty("spark.scheduler.pool", pool)
        rdd = sc.parallelize(range(40), 40).map(_slow)
        started.set()
        marks["long"] = -1
        assert rdd.sum() == sum(range(40))
        marks["long"] = time.monotonic()

    t = threading.Thread(target=long_job)
    t.start()
    started.wait()
    time.sleep(0.2)
    assert sc.parallelize([1, 2, 3], 1).map(lambda x: x * 2).collect() == [2, 4, 6]
    marks["query"] = time.monotonic()
    t.join()
    assert marks["long"] != -1
    assert marks["query"] < marks["long"] - 0.2, "the query waited for the long job to end"


def _boom(x):
    if x == 3:
        raise ValueError(f"bad record {x}")
    return x


def test_an_error_reaches_only_its_own_caller(sc):
    out: dict[str, object] = {}

    def good():
        out["good"] = sc.parallelize(range(20), 10).map(_slow).sum()

    t = threading.Thread(target=good)
    t.start()
    with pytest.raises(TaskFailedError, match="bad record 3") as info:
        sc.parallelize(range(5), 5).map(_boom).collect()
    assert "test_runner.py" in info.value.remote_traceback
    t.join()
    assert out["good"] == sum(range(20))


def test_cancel_all_ends_every_active_job(fresh_context):
    ctx = fresh_context("local[2]")
    failures: list[BaseException] = []
    running = threading.Barrier(3)

    def job():
        running.wait()
        try:
            ctx.parallelize(range(200), 200).map(_slow).count()
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=job) for _ in range(2)]
    for t in threads:
        t.start()
    running.wait()
    time.sleep(0.3)
    ctx._runner.cancel_all("test")
    for t in threads:
        t.join(timeout=30)
    assert len(failures) == 2 and all(isinstance(e, JobCancelledError) for e in failures)
    # later jobs run normally
    assert ctx.parallelize(range(10), 2).sum() == 45


def test_a_job_pool_comes_from_the_local_property_or_the_batch():
    assert job_pool({}) == "default"
    assert job_pool({"spark.streaming.internal.batchTime": "1000"}) == "streaming"
    assert job_pool({"spark.scheduler.pool": "adhoc"}) == "adhoc"
    props = {"spark.scheduler.pool": "etl", "spark.streaming.internal.batchTime": "1000"}
    assert job_pool(props) == "etl"


def test_pools_from_an_allocation_file(tmp_path):
    f = tmp_path / "fair.xml"
    f.write_text(
        '<allocations><pool name="adhoc"><schedulingMode>FAIR</schedulingMode>'
        "<weight>1</weight><minShare>0</minShare></pool></allocations>"
    )
    conf = Conf(loadDefaults=False).set("spark.scheduler.allocation.file", str(f))
    pools = pools_from_conf(conf)
    assert pools["adhoc"] == Pool("adhoc", "FAIR", 1.0, 0)
    assert pools["streaming"] == Pool("streaming", "FIFO", 2.0, 1)  # the defaults
    missing = Conf(loadDefaults=False).set("dstreams.scheduler.allocation.file", "/nope.xml")
    with pytest.raises(ValueError, match="'/nope.xml' does not exist"):
        pools_from_conf(missing)


def test_the_scheduler_mode_is_checked(fresh_context):
    with pytest.raises(ValueError, match="dstreams.scheduler.mode='RANDOM' must be FIFO or FAIR"):
        fresh_context("local[1]", {"spark.scheduler.mode": "random"})
