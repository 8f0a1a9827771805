"""Streaming dynamic allocation on a manual clock, with the simulated backend.

Processing time is what the simulated backend charges the manual clock per task, so the ratio
of processing time to the batch interval is set by the test: near 1.2 the manager asks for
executors every scaling interval (up to ``maxExecutors``); near 0 it removes them again, one
per interval, down to the minimum. The decisions themselves are tested in
``tests/scheduler/test_allocation.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import simulated

from dstreams import Conf, Context
from dstreams.streaming import StreamingContext
from dstreams.streaming.clock import ManualClock


def _run(ssc: StreamingContext, clock: ManualClock, until_ms: int) -> None:
    scheduler, waited = ssc._scheduler, 0
    while clock.getTimeMillis() < until_ms:
        due = clock.getTimeMillis() // 100 * 100
        if due > waited:
            assert scheduler.wait_for_batch(due, 60), f"batch {due} never completed"
            waited = due
        else:
            clock.setTime(due + 100)


def test_executors_follow_the_processing_time() -> None:
    clock = ManualClock(0)
    simulated.install(clock, per_record_ms=0.0, fixed_ms=55.0)
    conf = Conf(loadDefaults=False).setAll(
        [
            ("spark.streaming.dynamicAllocation.enabled", "true"),  # Spark's key works
            ("dstreams.streaming.dynamicAllocation.scalingInterval", "1s"),
            ("dstreams.streaming.dynamicAllocation.maxExecutors", "3"),
        ]
    )
    sc = Context("simulated", "scaling", conf=conf)
    try:
        backend: Any = sc._backend
        ssc = StreamingContext(sc, 0.1, clock=clock)
        ssc.queueStream([], default=sc.parallelize([1, 2, 3], 1)).map(
            lambda x: (x % 2, x)
        ).reduceByKey(lambda a, b: a + b).foreachRDD(lambda rdd: rdd.collect())
        ssc.start()
        _run(ssc, clock, 3500)  # each batch: 2 tasks of 55 ms on 100 ms batches, ratio 1.1
        assert backend.requests[:2] == [1, 1] and sc.executorIds() == [
            "sim-0",
            "sim-100",
            "sim-200",
        ], "one more executor each interval, up to maxExecutors"
        backend.fixed_ms = 1.0  # the load goes away: ratio ~0.03
        _run(ssc, clock, 7500)
        ssc.stop(stopSparkContext=False)
        assert backend.removals[:2] == [["sim-200"], ["sim-100"]], "the newest first"
        assert sc.executorIds() == ["sim-0"], "never below the minimum"
    finally:
        sc.stop()
        simulated.uninstall()


def test_bad_allocation_settings_fail_start_naming_the_key() -> None:
    clock = ManualClock(0)
    simulated.install(clock, per_record_ms=0.0, fixed_ms=1.0)
    conf = Conf(loadDefaults=False).setAll(
        [
            ("dstreams.streaming.dynamicAllocation.enabled", "true"),
            ("dstreams.streaming.dynamicAllocation.scalingUpRatio", "lots"),
        ]
    )
    sc = Context("simulated", "scaling", conf=conf)
    try:
        ssc = StreamingContext(sc, 0.1, clock=clock)
        ssc.queueStream([[1]]).foreachRDD(lambda rdd: rdd.collect())
        with pytest.raises(ValueError, match="scalingUpRatio='lots'"):
            ssc.start()
        ssc.stop(stopSparkContext=False)
    finally:
        sc.stop()
        simulated.uninstall()
