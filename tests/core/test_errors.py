"""Errors reach the driver with the user's type, message and remote traceback, and bad input is
named clearly."""

from __future__ import annotations

import os
import threading

import pytest

from dstreams import Conf, Context
from dstreams.errors import (
    ContextStoppedError,
    DStreamsError,
    SerializationError,
    TaskFailedError,
)


class UserError(Exception):
    """Importable by workers (the test directory is on their sys.path)."""


def _explode_on_three(x):
    if x == 3:
        raise UserError(f"cannot handle {x}")
    return x


def test_user_exception_reaches_driver_with_type_message_and_traceback(sc):
    with pytest.raises(TaskFailedError) as info:
        sc.parallelize(range(5), 2).map(_explode_on_three).collect()
    err = info.value
    assert isinstance(err, DStreamsError)
    assert err.exc_type_name.endswith("UserError")
    assert err.exc_message == "cannot handle 3"
    assert "_explode_on_three" in err.remote_traceback
    assert 'raise UserError(f"cannot handle {x}")' in err.remote_traceback
    assert isinstance(err.__cause__, UserError)
    assert str(err.__cause__) == "cannot handle 3"
    assert "cannot handle 3" in str(err)
    assert "Remote traceback" in str(err)


def test_builtin_exception_cause(sc):
    with pytest.raises(TaskFailedError) as info:
        sc.parallelize([{"a": 1}], 1).map(lambda d: d["missing"]).collect()
    assert info.value.exc_type_name == "KeyError"
    assert isinstance(info.value.__cause__, KeyError)
    assert "<lambda>" in info.value.remote_traceback


def test_failing_task_is_attempted_max_failures_times(fresh_context, tmp_path):
    ctx = fresh_context("local[2]", {"dstreams.task.maxFailures": 3})

    def always_fails(x):
        (tmp_path / f"attempt-{len(os.listdir(tmp_path))}").touch()
        raise RuntimeError("always")

    with pytest.raises(TaskFailedError, match="failed 3 times") as info:
        ctx.parallelize([1], 1).map(always_fails).collect()
    assert info.value.exc_type_name == "RuntimeError"
    assert len(os.listdir(tmp_path)) == 3
    # the Context is still usable after a failed job
    assert ctx.parallelize(range(3), 2).sum() == 3


def test_max_failures_one_means_no_retry(fresh_context, tmp_path):
    ctx = fresh_context("local[1]", {"spark.task.maxFailures": "1"})

    def fails(x):
        (tmp_path / f"a{len(os.listdir(tmp_path))}").touch()
        raise ValueError("once")

    with pytest.raises(TaskFailedError):
        ctx.parallelize([1], 1).map(fails).collect()
    assert len(os.listdir(tmp_path)) == 1


def test_transient_failure_is_retried_transparently(sc, tmp_path):
    def flaky(x):
        marker = tmp_path / f"seen-{x}"
        if not marker.exists():
            marker.touch()
            raise OSError("transient")
        return x * 2

    assert sc.parallelize(range(4), 2).map(flaky).collect() == [0, 2, 4, 6]


def test_unpicklable_closure_names_the_object(sc):
    lock = threading.Lock()
    with pytest.raises(SerializationError, match="lock") as info:
        sc.parallelize([1]).map(lambda x: (x, lock)).collect()
    assert "picklable" in str(info.value)
    assert sc.parallelize([1, 2]).collect() == [1, 2]  # the Context survives


def test_unpicklable_result_fails_with_type_name(sc):
    with pytest.raises(TaskFailedError, match="lock"):
        sc.parallelize([1], 1).map(lambda x: threading.Lock()).collect()


def test_context_inside_a_closure_is_refused(sc):
    with pytest.raises(SerializationError, match="Context"):
        sc.parallelize([1]).map(lambda x: sc.defaultParallelism).collect()


@pytest.mark.parametrize(
    ("op", "name"),
    [
        (lambda r: r.reduceByKey(lambda a, b: a), "reduceByKey"),
        (lambda r: r.groupByKey(), "groupByKey"),
        (lambda r: r.partitionBy(2), "partitionBy"),
        (
            lambda r: r.combineByKey(lambda v: [v], lambda c, v: c + [v], list.__add__),
            "combineByKey",
        ),
    ],
)
def test_non_pair_records_give_a_type_error_naming_the_record(fresh_context, op, name):
    ctx = fresh_context("local[1]", {"dstreams.task.maxFailures": 1})
    rdd = ctx.parallelize([("ok", 1), 12345], 1)
    with pytest.raises(TaskFailedError) as info:
        op(rdd).collect()
    err = info.value
    assert err.exc_type_name == "TypeError"
    assert isinstance(err.__cause__, TypeError)
    msg = str(err.__cause__)
    assert name in msg
    assert "12345" in msg
    assert "(key, value)" in msg


def test_three_tuples_are_not_pairs(fresh_context):
    ctx = fresh_context("local[1]", {"dstreams.task.maxFailures": 1})
    with pytest.raises(TaskFailedError) as info:
        ctx.parallelize([("a", 1, 2)], 1).reduceByKey(lambda a, b: a).collect()
    assert "('a', 1, 2)" in str(info.value.__cause__)


# -- bad arguments: ValueError naming the value ----------------------------------------------
@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_parallelize_bad_num_slices(sc, n):
    with pytest.raises(ValueError, match=f"numSlices={n!r}"):
        sc.parallelize([1, 2], n)


def test_bad_partition_counts_and_functions(sc):
    rdd = sc.parallelize([(1, 2)])
    with pytest.raises(ValueError, match="numPartitions=0"):
        rdd.partitionBy(0)
    with pytest.raises(ValueError, match="numPartitions=-2"):
        rdd.repartition(-2)
    with pytest.raises(ValueError, match="numPartitions=0"):
        rdd.coalesce(0)
    with pytest.raises(TypeError, match="map expects a function, got 5"):
        rdd.map(5)
    with pytest.raises(TypeError, match="reduceByKey expects a function"):
        rdd.reduceByKey("add")
    with pytest.raises(TypeError, match="parallelize expects an iterable"):
        sc.parallelize(42)


@pytest.mark.parametrize("master", ["yarn", "local[0]", "local[x]", "spark://h:7077"])
def test_bad_master(no_context, master):
    with pytest.raises(ValueError, match=master.replace("[", r"\[").replace("]", r"\]")):
        Context(master)
    assert Context._active is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dstreams.task.maxFailures", "abc"),
        ("dstreams.task.maxFailures", "0"),
        ("dstreams.speculation", "maybe"),
        ("dstreams.speculation.multiplier", "big"),
        ("dstreams.executor.heartbeatInterval", "fast"),
        ("dstreams.default.parallelism", "x"),
        ("dstreams.default.parallelism", "0"),
        ("dstreams.log.level", "LOUD"),
    ],
)
def test_bad_conf_values_name_key_and_value(no_context, key, value):
    with pytest.raises(ValueError) as info:
        Context("local[1]", conf=Conf(loadDefaults=False).set(key, value))
    assert key in str(info.value)
    assert value in str(info.value)
    # a failed start leaves nothing behind: the next Context starts normally
    assert Context._active is None
    with Context("local[1]") as ctx:
        assert ctx.parallelize([1]).count() == 1


def test_stopped_context_refuses_work(no_context):
    ctx = Context("local[1]")
    rdd = ctx.parallelize([1, 2])
    ctx.stop()
    ctx.stop()  # idempotent
    with pytest.raises(ContextStoppedError, match="stopped"):
        ctx.parallelize([1])
    with pytest.raises(ContextStoppedError):
        rdd.collect()


def test_unpicklable_records_name_the_partition_and_the_fix(fresh_context):
    from dstreams.errors import SerializationError, TaskFailedError

    sc = fresh_context("local[2]", {"dstreams.task.maxFailures": "1"})
    with pytest.raises(TaskFailedError, match="could not serialize the result of partition") as e:
        sc.parallelize([1, 2], 2).map(lambda x: (y for y in [x])).collect()
    assert isinstance(e.value.__cause__, SerializationError)
    assert "rather than generators" in str(e.value)
    with pytest.raises(TaskFailedError, match="could not serialize the shuffle output"):
        sc.parallelize([1, 2], 2).map(lambda x: (x, (y for y in [x]))).groupByKey().collect()
