"""Shared variables: broadcasts reach every task; accumulators count once per successful task."""

from __future__ import annotations

import cloudpickle
import pytest

from dstreams import AccumulatorParam, TaskContext
from dstreams.errors import TaskFailedError


# -- broadcast ------------------------------------------------------------------------------
def test_broadcast_value_in_tasks(sc):
    table = {i: str(i) for i in range(1000)}
    b = sc.broadcast(table)
    assert b.value is table  # the driver keeps its own object
    out = sc.parallelize(range(0, 1000, 100), 4).map(lambda x: b.value[x]).collect()
    assert out == [str(x) for x in range(0, 1000, 100)]


def test_broadcast_travels_by_reference(sc):
    big = b"x" * 2_000_000
    b = sc.broadcast(big)
    assert len(cloudpickle.dumps(b)) < 10_000  # closures carry the id and path, not the value
    assert sc.parallelize(range(4), 4).map(lambda _: len(b.value)).collect() == [2_000_000] * 4


def test_two_broadcasts_are_distinct(sc):
    b1, b2 = sc.broadcast([1]), sc.broadcast([2])
    assert b1.id != b2.id
    assert sc.parallelize([0], 1).map(lambda _: b1.value + b2.value).collect() == [[1, 2]]


def test_destroyed_broadcast_fails_clearly(sc):
    b = sc.broadcast("gone")
    b.destroy()
    with pytest.raises(TaskFailedError, match="destroy"):
        sc.parallelize([1], 1).map(lambda _: b.value).collect()


def test_broadcast_of_unpicklable_value(sc):
    import threading

    from dstreams.errors import SerializationError

    with pytest.raises(SerializationError, match="broadcast"):
        sc.broadcast(threading.Lock())


# -- accumulators ---------------------------------------------------------------------------
def test_accumulator_sums_across_tasks_and_jobs(sc):
    acc = sc.accumulator(0)
    rdd = sc.parallelize(range(10), 5)
    rdd.foreach(lambda x: acc.add(x))
    assert acc.value == 45
    rdd.foreach(lambda x: acc.add(1))
    assert acc.value == 55
    facc = sc.accumulator(0.5)
    rdd.foreach(lambda x: facc.add(0.25))
    assert facc.value == 3.0


def test_accumulator_iadd_inside_tasks(sc):
    acc = sc.accumulator(0)

    def f(x):
        nonlocal_acc = acc
        nonlocal_acc += x

    sc.parallelize([1, 2, 3], 3).foreach(f)
    assert acc.value == 6


def test_accumulator_value_is_driver_only(sc):
    acc = sc.accumulator(0)

    def read(_):
        return acc.value

    with pytest.raises(TaskFailedError, match="inside tasks"):
        sc.parallelize([1], 1).map(read).collect()


def test_accumulator_counted_once_per_successful_task_with_retries(sc):
    acc = sc.accumulator(0)

    def flaky(it):
        items = list(it)
        acc.add(len(items))  # the failed attempt adds too: it must not be counted
        if TaskContext.get().attemptNumber() < 2:
            raise RuntimeError("transient")
        return items

    out = sc.parallelize(range(12), 3).mapPartitions(flaky).collect()
    assert out == list(range(12))
    assert acc.value == 12


def test_accumulator_in_map_stage_counted_once(sc):
    acc = sc.accumulator(0)

    def count(kv):
        acc.add(1)
        return kv

    rdd = sc.parallelize([(i % 3, i) for i in range(30)], 3).map(count)
    assert sorted(rdd.reduceByKey(lambda a, b: a + b).collect()) == [(0, 135), (1, 145), (2, 155)]
    assert acc.value == 30


def test_custom_accumulator_param(sc):
    class VectorParam(AccumulatorParam):
        def zero(self, value):
            return [0] * len(value)

        def addInPlace(self, v1, v2):
            for i in range(len(v1)):
                v1[i] += v2[i]
            return v1

    acc = sc.accumulator([0, 0, 0], VectorParam())
    sc.parallelize(range(6), 3).foreach(lambda x: acc.add([1, x, x * x]))
    assert acc.value == [6, 15, 55]


def test_accumulator_without_param_for_non_numbers(sc):
    with pytest.raises(TypeError, match="AccumulatorParam"):
        sc.accumulator([1])


def _worker_broadcast_ids(sc) -> set[int]:
    def ids(_it):
        from dstreams.core import shared

        return [sorted(shared._broadcast_cache)]

    return {i for part in sc.parallelize(range(4), 4).mapPartitions(ids).collect() for i in part}


def _reader(*bs):
    return lambda _: tuple(b.value for b in bs)


def test_released_broadcasts_leave_the_workers(sc):
    import gc
    import os

    kept = sc.broadcast({"keep": 1})
    dropped = sc.broadcast({"drop": 2})
    destroyed = sc.broadcast({"destroy": 3})
    rdd = sc.parallelize(range(4), 4)
    got = rdd.map(_reader(kept, dropped, destroyed))
    assert got.collect() == [({"keep": 1}, {"drop": 2}, {"destroy": 3})] * 4
    ids = {kept.id, dropped.id, destroyed.id}
    assert ids <= _worker_broadcast_ids(sc)
    path = destroyed._path
    destroyed.destroy()
    assert not os.path.exists(path)
    del got, dropped
    gc.collect()  # the driver no longer references `dropped`: workers forget it too
    left = _worker_broadcast_ids(sc)
    assert kept.id in left
    assert not (ids - {kept.id}) & left
    assert rdd.map(lambda _: kept.value["keep"]).collect() == [1, 1, 1, 1]
