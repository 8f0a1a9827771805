"""The executor-backend contract (``dstreams.executor.base``), one suite for every backend.

Add a backend by appending a factory to ``BACKENDS``: it takes a worker count and a Conf and
returns a started :class:`~dstreams.executor.base.ExecutorBackend`.
"""

from __future__ import annotations

import itertools
import os
import pickle
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dstreams.conf import Conf
from dstreams.core.dependency import Partitioner
from dstreams.core.primitives import ShuffledRDD
from dstreams.core.rdd import RDD
from dstreams.core.shipping import encode_stage
from dstreams.executor.base import ExecutorBackend
from dstreams.executor.local import LocalBackend
from dstreams.scheduler.dag import ExecutorAdded, ExecutorLost, TaskFailed, TaskFinished
from dstreams.scheduler.task import TaskSpec


def _ray_backend(n: int, conf: Conf) -> ExecutorBackend:
    from dstreams.executor.ray import RayBackend

    return RayBackend("ray", conf.set("dstreams.executor.instances", str(n)))


BACKENDS: dict[str, Callable[[int, Conf], ExecutorBackend]] = {
    "local": lambda n, conf: LocalBackend(n, conf),
    "ray": _ray_backend,
}

TIMEOUT = 30.0


class _Ctx:
    """Just enough of a Context to build RDDs."""

    def __init__(self) -> None:
        self._ids = itertools.count()
        self._conf = Conf(loadDefaults=False)
        self._checkpoint_dir = None

    def _new_rdd_id(self) -> int:
        return next(self._ids)

    def _remove_shuffle(self, shuffle_id: int) -> None:
        pass

    def _unpersist_rdd_id(self, rdd_id: int) -> None:
        pass


class ListRDD(RDD[Any]):
    """A source RDD whose partitions travel inside the stage payload (self-contained tasks)."""

    def __init__(self, ctx: _Ctx, slices: list[list[Any]]) -> None:
        super().__init__(ctx, [], len(slices))  # type: ignore[arg-type]
        self.slices = slices

    def compute(self, split: int, tctx: Any) -> Iterator[Any]:
        return iter(self.slices[split])


class Driver:
    """Wraps a backend: collects its events and waits for the ones a test expects."""

    def __init__(self, backend: ExecutorBackend) -> None:
        self.backend = backend
        self.seen: list[Any] = []
        self.addresses: dict[str, Any] = {}
        self._task_ids = itertools.count(1000)

    def wait_for(self, pred: Callable[[Any], bool], include_seen: bool = False) -> Any:
        if include_seen:
            for ev in self.seen:
                if pred(ev):
                    return ev
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"event not seen within {TIMEOUT}s; got {self.seen!r}")
            try:
                ev = self.backend.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(ev)
            if isinstance(ev, ExecutorAdded):
                self.addresses[ev.executor_id] = ev.address
            if pred(ev):
                return ev

    def outcome(self, task_id: int) -> TaskFinished | TaskFailed:
        def match(ev: Any) -> bool:
            if isinstance(ev, TaskFinished):
                return ev.result.task_id == task_id
            if isinstance(ev, TaskFailed):
                return ev.error.task_id == task_id
            return False

        return self.wait_for(match, include_seen=True)

    def run(
        self,
        eid: str,
        stage_id: int,
        rdd: Any,
        func: Any = list,
        partition: int = 0,
        payload: bytes | None = None,
        **spec_kw: Any,
    ) -> TaskFinished | TaskFailed:
        tid = next(self._task_ids)
        partitioner = spec_kw.pop("partitioner", None)
        spec = TaskSpec(tid, stage_id, 0, partition, 0, payload_id=stage_id, **spec_kw)
        if payload is None:
            payload = encode_stage(rdd, func, partitioner)
        self.backend.launch(eid, spec, payload)
        return self.outcome(tid)


@pytest.fixture(params=sorted(BACKENDS))
def driver(request, no_context) -> Iterator[Driver]:
    if request.param == "ray":
        request.getfixturevalue("ray_session")  # one Ray for every test that needs it
    backend = BACKENDS[request.param](2, Conf(loadDefaults=False))
    d = Driver(backend)
    try:
        for _ in range(2):
            d.wait_for(lambda ev: isinstance(ev, ExecutorAdded))
        yield d
    finally:
        backend.stop()


def _double(it: Iterator[int]) -> list[int]:
    return [x * 2 for x in it]


def _fail_on_odd(it: Iterator[int]) -> list[int]:
    out = []
    for x in it:
        if x % 2:
            raise ZeroDivisionError(f"odd value {x}")
        out.append(x)
    return out


def test_two_executors_announce_themselves(driver):
    ids = sorted(driver.addresses)
    assert len(ids) == 2 and len(set(ids)) == 2
    assert sorted(driver.backend.executor_ids()) == ids


def test_launch_gives_task_finished_with_the_result(driver):
    rdd = ListRDD(_Ctx(), [[1, 2, 3], [4]])
    for eid in driver.addresses:
        ev = driver.run(eid, 1, rdd, _double, partition=0)
        assert isinstance(ev, TaskFinished)
        assert ev.result.executor_id == eid
        assert pickle.loads(ev.result.value) == [2, 4, 6]
    ev = driver.run(eid, 1, rdd, _double, partition=1)
    assert pickle.loads(ev.result.value) == [8]


def test_failure_gives_task_failed_with_traceback(driver):
    rdd = ListRDD(_Ctx(), [[2, 3]])
    eid = next(iter(driver.addresses))
    ev = driver.run(eid, 2, rdd, _fail_on_odd)
    assert isinstance(ev, TaskFailed)
    err = ev.error
    assert err.exc_type_name == "ZeroDivisionError"
    assert err.message == "odd value 3"
    assert "_fail_on_odd" in err.traceback
    assert isinstance(pickle.loads(err.exc_pickle), ZeroDivisionError)
    # the executor keeps working after a task failure
    assert isinstance(driver.run(eid, 3, ListRDD(_Ctx(), [[1]])), TaskFinished)


def test_kill_executor_reports_lost_then_a_replacement_with_a_new_id(driver):
    before = set(driver.addresses)
    victim = min(before)
    driver.backend.kill_executor(victim)
    lost = driver.wait_for(lambda ev: isinstance(ev, ExecutorLost))
    assert lost.executor_id == victim
    added = driver.wait_for(lambda ev: isinstance(ev, ExecutorAdded))
    assert added.executor_id not in before
    assert sorted(driver.backend.executor_ids()) == sorted(before - {victim} | {added.executor_id})
    ev = driver.run(added.executor_id, 4, ListRDD(_Ctx(), [[5]]), _double)
    assert pickle.loads(ev.result.value) == [10]


def test_executors_requested_join_and_removed_ones_are_not_replaced(driver):
    before = set(driver.addresses)
    assert driver.backend.request_executors(1)
    added = driver.wait_for(lambda ev: isinstance(ev, ExecutorAdded))
    assert added.executor_id not in before
    ev = driver.run(added.executor_id, 30, ListRDD(_Ctx(), [[4]]), _double)
    assert pickle.loads(ev.result.value) == [8], "a requested executor takes tasks"
    victim = min(before)
    assert driver.backend.remove_executors([victim])
    lost = driver.wait_for(lambda ev: isinstance(ev, ExecutorLost))
    assert lost.executor_id == victim
    time.sleep(1.5)  # a replacement would have been asked for at once
    while True:
        try:
            ev = driver.backend.events.get_nowait()
        except queue.Empty:
            break
        assert not isinstance(ev, ExecutorAdded), f"a removed executor was replaced: {ev}"
    assert sorted(driver.backend.executor_ids()) == sorted(before - {victim} | {added.executor_id})


def test_shuffle_blocks_written_by_one_executor_are_fetched_by_another(driver):
    ctx = _Ctx()
    a, b = sorted(driver.addresses)
    src = ListRDD(ctx, [[(k, k * 10) for k in range(6)], [(1, 1), (7, 70)]])
    part = Partitioner(2)
    shuffled = ShuffledRDD(src, part)
    sid = shuffled.shuffle_id
    # both map partitions run on a
    for p in (0, 1):
        ev = driver.run(a, 10, src, None, partition=p, shuffle_id=sid, partitioner=part)
        assert isinstance(ev, TaskFinished)
    locs = {sid: [(a, driver.addresses[a]), (a, driver.addresses[a])]}
    results = []
    for r in (0, 1):
        ev = driver.run(b, 11, shuffled, list, partition=r, map_locations=locs)
        assert isinstance(ev, TaskFinished), getattr(ev, "error", None)
        results.append(pickle.loads(ev.result.value))
    assert results == [
        [(0, 0), (2, 20), (4, 40)],
        [(1, 10), (3, 30), (5, 50), (1, 1), (7, 70)],
    ]


def test_cached_blocks_written_by_one_executor_are_read_by_another(driver, tmp_path):
    ctx = _Ctx()
    a, b = sorted(driver.addresses)
    marks = str(tmp_path)

    def compute(split, it):
        open(os.path.join(marks, f"computed-{os.getpid()}"), "a").close()
        return [x + 1 for x in it]

    rdd = ListRDD(ctx, [[1, 2]]).mapPartitionsWithIndex(compute).cache()
    ev = driver.run(a, 20, rdd, list)
    assert pickle.loads(ev.result.value) == [2, 3]
    # the cached partition, its records, and its stored (pickled) size
    assert ev.result.cached == [(rdd.id(), 0, 2, len(pickle.dumps([2, 3], 5)))]
    assert len(os.listdir(marks)) == 1
    locs = {(rdd.id(), 0): (a, driver.addresses[a])}
    ev = driver.run(b, 21, rdd, list, block_locations=locs)
    assert pickle.loads(ev.result.value) == [2, 3]
    assert len(os.listdir(marks)) == 1, "the partition was recomputed instead of fetched"


def test_stage_payload_is_sent_once_per_executor_per_payload(driver):
    rdd = ListRDD(_Ctx(), [[1], [2]])
    a, b = sorted(driver.addresses)
    assert pickle.loads(driver.run(a, 30, rdd, _double, partition=0).result.value) == [2]
    # later tasks of the stage on a must not ship (or re-read) a payload: a garbage payload
    # given to launch is never sent, so the task still runs with the cached closure
    ev = driver.run(a, 30, rdd, partition=1, payload=b"not a pickle")
    assert isinstance(ev, TaskFinished), getattr(ev, "error", None)
    assert pickle.loads(ev.result.value) == [4]
    # the first task of the stage on b does get the payload
    ev = driver.run(b, 30, rdd, partition=1, payload=b"not a pickle")
    assert isinstance(ev, TaskFailed)
    ev = driver.run(b, 31, rdd, _double, partition=1)
    assert pickle.loads(ev.result.value) == [4]
    # after forget_payloads the payload is shipped again
    driver.backend.forget_payloads([30, 31])
    ev = driver.run(a, 30, rdd, partition=0, payload=b"not a pickle")
    assert isinstance(ev, TaskFailed)


def test_every_launched_task_gets_exactly_one_outcome(driver):
    rdd = ListRDD(_Ctx(), [[i] for i in range(20)])
    eids = sorted(driver.addresses)
    tids = []
    payload = encode_stage(rdd, _fail_on_odd, None)
    for p in range(20):
        tid = 5000 + p
        driver.backend.launch(eids[p % 2], TaskSpec(tid, 40, 0, p, 0, payload_id=40), payload)
        tids.append(tid)
    outcomes = {}
    for tid in tids:
        ev = driver.outcome(tid)
        outcomes[tid] = type(ev).__name__
    assert [outcomes[5000 + p] for p in range(20)] == [
        "TaskFinished" if p % 2 == 0 else "TaskFailed" for p in range(20)
    ]
    ids = [
        ev.result.task_id if isinstance(ev, TaskFinished) else ev.error.task_id
        for ev in driver.seen
        if isinstance(ev, (TaskFinished, TaskFailed))
    ]
    assert sorted(ids) == tids


def _wait_for_file(path: str, started: str | None = None) -> Callable[[Iterator[Any]], list[Any]]:
    def func(it: Iterator[Any]) -> list[Any]:
        if started is not None:
            open(started, "w").close()
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.005)
        return list(it)

    return func


def _launch(driver: Driver, eid: str, stage_id: int, rdd: Any, func: Any) -> int:
    tid = next(driver._task_ids)
    payload = encode_stage(rdd, func, None)
    driver.backend.launch(eid, TaskSpec(tid, stage_id, 0, 0, 0, payload_id=stage_id), payload)
    return tid


def test_kill_stops_a_running_task_and_revoke_only_withdraws_queued_ones(driver, tmp_path):
    eid = min(driver.addresses)
    gate = tmp_path / "gate"
    rdd = ListRDD(_Ctx(), [[1]])
    running = _launch(driver, eid, 20, rdd, _wait_for_file(str(gate)))
    queued = _launch(driver, eid, 21, rdd, _double)
    # revoking the queued task answers at once, while the first one still runs
    driver.backend.kill_task(eid, queued, only_if_queued=True)
    ev = driver.outcome(queued)
    assert isinstance(ev, TaskFailed) and ev.error.killed and ev.error.withdrawn
    # revoking the running task leaves it alone: it finishes once its gate opens
    driver.backend.kill_task(eid, running, only_if_queued=True)
    gate.touch()
    ev = driver.outcome(running)
    assert isinstance(ev, TaskFinished) and pickle.loads(ev.result.value) == [1]
    # killing a running task stops it; the executor goes on with the next one
    started = tmp_path / "stuck-started"
    stuck = _launch(driver, eid, 23, rdd, _wait_for_file(str(tmp_path / "never"), str(started)))
    later = _launch(driver, eid, 22, rdd, _double)
    deadline = time.monotonic() + TIMEOUT
    while not started.exists():  # kill it once it runs (a queued one would be withdrawn)
        assert time.monotonic() < deadline
        time.sleep(0.005)
    driver.backend.kill_task(eid, stuck)
    ev = driver.outcome(stuck)
    assert isinstance(ev, TaskFailed) and ev.error.killed and not ev.error.withdrawn
    ev = driver.outcome(later)
    assert isinstance(ev, TaskFinished) and pickle.loads(ev.result.value) == [2]
    finished = {e.result.task_id for e in driver.seen if isinstance(e, TaskFinished)}
    assert queued not in finished  # the withdrawn task never ran
