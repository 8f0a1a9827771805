"""Context: construction from master/appName/Conf, lifecycle, workers that live across jobs."""

from __future__ import annotations

import gc
import os

import pytest

import dstreams
from dstreams import Conf, Context


def test_master_and_app_name(fresh_context):
    ctx = fresh_context("local[3]")
    assert ctx.master == "local[3]"
    assert ctx.appName == "core-tests-fresh"
    assert ctx.defaultParallelism == 3
    assert ctx.defaultMinPartitions == 2
    assert len(ctx._backend.executor_ids()) == 3
    assert ctx.version == dstreams.__version__
    assert ctx.parallelize(range(9)).getNumPartitions() == 3


def test_local_means_one_worker(fresh_context):
    ctx = fresh_context("local")
    assert ctx.defaultParallelism == 1
    assert len(ctx._backend.worker_pids()) == 1
    assert ctx.parallelize(range(10), 4).sum() == 45


def test_conf_settings_and_spark_aliases(fresh_context):
    ctx = fresh_context(
        "local[2]", {"spark.default.parallelism": "5", "spark.app.name": "ignored-by-arg"}
    )
    assert ctx.defaultParallelism == 5
    assert ctx.getConf().get("dstreams.default.parallelism") == "5"
    # with default.parallelism set, shuffles use it (PySpark's rule)
    assert ctx.parallelize([(1, 1)], 2).reduceByKey(lambda a, b: a).getNumPartitions() == 5


def test_master_from_conf(no_context):
    conf = Conf(loadDefaults=False).setMaster("local[1]").setAppName("from-conf")
    with Context(conf=conf) as ctx:
        assert ctx.master == "local[1]"
        assert ctx.appName == "from-conf"
        assert ctx.defaultParallelism == 1
    assert Context._active is None


def test_get_conf_is_a_copy(sc):
    c = sc.getConf()
    c.set("dstreams.app.name", "changed")
    assert sc.getConf().get("dstreams.app.name") == "core-tests"


def test_only_one_active_context(sc):
    with pytest.raises(ValueError, match="multiple Contexts"):
        Context("local[1]")
    assert Context.getOrCreate() is sc


def test_context_manager_stops_workers(no_context):
    with Context("local[2]") as ctx:
        procs = [w.proc for w in ctx._backend._workers.values()]
        assert ctx.parallelize([1, 2, 3]).count() == 3
    assert all(p.poll() is not None for p in procs), "workers outlived stop()"
    assert Context._active is None
    assert not ctx._runner.dag.jobs


def test_conf_must_be_a_conf(no_context):
    with pytest.raises(TypeError, match="Conf"):
        Context("local[1]", conf={"dstreams.master": "local[1]"})


def test_workers_live_across_jobs_no_process_per_task(sc):
    pids_before = sc._backend.worker_pids()
    seen = set(sc.parallelize(range(40), 20).mapPartitions(lambda _: [os.getpid()]).collect())
    seen |= set(sc.parallelize(range(10), 5).map(lambda _: os.getpid()).collect())
    assert seen <= set(pids_before.values())
    assert sc._backend.worker_pids() == pids_before
    assert os.getpid() not in seen  # tasks never run in the driver


def test_tasks_spread_over_both_workers(sc):
    # each worker has a fixed number of slots, so 8 tasks are offered to both at once
    pids = set(sc.parallelize(range(8), 8).mapPartitions(lambda _: [os.getpid()]).collect())
    assert len(pids) == 2


def test_set_log_level(sc):
    import logging

    sc.setLogLevel("ERROR")
    assert logging.getLogger("dstreams").level == logging.ERROR
    sc.setLogLevel("warn")
    assert logging.getLogger("dstreams").level == logging.WARNING
    with pytest.raises(ValueError, match="LOUD"):
        sc.setLogLevel("LOUD")


def test_union_validates(sc):
    with pytest.raises(TypeError, match="RDD"):
        sc.union([sc.parallelize([1]), [2]])
    with pytest.raises(ValueError, match="at least one"):
        sc.union([])


def test_rdd_of_another_context_is_refused(sc):
    rdd = sc.parallelize([1])
    sc.stop()
    with Context("local[1]") as other, pytest.raises(ValueError, match="another Context"):
        other.runJob(rdd, list)


def test_shuffle_state_is_cleaned_when_rdds_are_collected(sc):
    rdd = sc.parallelize([(i % 4, i) for i in range(40)], 4).reduceByKey(lambda a, b: a + b)
    assert rdd.count() == 4
    dag = sc._runner.dag
    shuffle_ids = set(dag.map_outputs)
    assert shuffle_ids
    del rdd
    gc.collect()
    sc.parallelize([1]).count()  # cleanups are applied between jobs
    assert not (shuffle_ids & set(dag.map_outputs)), "map outputs of a collected RDD remain"


def test_cache_state_is_cleaned_on_unpersist(sc):
    rdd = sc.parallelize(range(8), 4).cache()
    rdd.count()
    dag = sc._runner.dag
    assert {k for k in dag.cache_locs if k[0] == rdd.id()} == {(rdd.id(), p) for p in range(4)}
    rdd.unpersist()
    sc.parallelize([1]).count()
    assert not [k for k in dag.cache_locs if k[0] == rdd.id()]


def test_scheduler_is_idle_between_jobs(sc):
    sc.parallelize([(1, 2)], 2).groupByKey().collect()
    dag = sc._runner.dag
    assert not dag.jobs
    assert not dag.running and not dag.waiting and not dag.tasks
    assert all(ex.free == ex.slots for ex in dag.executors.values())
    dag.validate_state()
