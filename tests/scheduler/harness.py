"""A process-free harness for the scheduling state machines.

RDDs are built on :class:`FakeContext`, which has only what RDD constructors and pair operators
touch. :class:`Harness` feeds events to a :class:`DAGScheduler`, calls ``validate_state()`` after
every step, and keeps every action it returned.
"""

from __future__ import annotations

import itertools
from typing import Any

from dstreams.conf import Conf
from dstreams.core.io import ParallelCollectionRDD
from dstreams.core.primitives import UnionRDD
from dstreams.core.rdd import RDD
from dstreams.scheduler.dag import (
    DAGScheduler,
    ExecutorAdded,
    ExecutorLost,
    JobFailed,
    JobSucceeded,
    KillTask,
    Launch,
    MergeAccumulators,
    TaskFailed,
    TaskFinished,
    Tick,
)
from dstreams.scheduler.pools import Pool, SchedulingMode
from dstreams.scheduler.task import TaskError, TaskResult
from dstreams.scheduler.taskset import SpeculationConfig


class FakeContext:
    """Just enough of a Context to construct RDDs (no processes, no jobs)."""

    def __init__(self) -> None:
        self._ids = itertools.count()
        self._conf = Conf(loadDefaults=False)
        self._checkpoint_dir = None
        self.removed_shuffles: list[int] = []
        self.unpersisted: list[int] = []

    def _new_rdd_id(self) -> int:
        return next(self._ids)

    def _remove_shuffle(self, shuffle_id: int) -> None:
        self.removed_shuffles.append(shuffle_id)

    def _unpersist_rdd_id(self, rdd_id: int) -> None:
        self.unpersisted.append(rdd_id)

    def union(self, rdds: list[RDD[Any]]) -> RDD[Any]:
        return UnionRDD(self, rdds)  # type: ignore[arg-type]

    def parallelize(self, n: int) -> RDD[Any]:
        return ParallelCollectionRDD(self, [[i] for i in range(n)])  # type: ignore[arg-type]


class Harness:
    def __init__(
        self,
        executors: dict[str, int] | None = None,
        max_failures: int = 4,
        speculation: SpeculationConfig | None = None,
        kill_timeout: float | None = 10.0,
        mode: SchedulingMode = "FAIR",
        pools: dict[str, Pool] | None = None,
    ) -> None:
        self.dag = DAGScheduler(max_failures, speculation, kill_timeout, mode, pools)
        self.now = 0.0
        self.log: list[Any] = []
        for eid, slots in (executors or {"a": 2, "b": 2}).items():
            self.add_executor(eid, slots)

    # -- driving -----------------------------------------------------------------------------
    def _check(self, actions: list[Any]) -> list[Any]:
        self.dag.validate_state()
        self.log.extend(actions)
        return actions

    def submit(
        self,
        rdd: RDD[Any],
        partitions: list[int] | None = None,
        job_id: int | None = None,
        pool: str = "default",
    ) -> list[Any]:
        parts = list(range(rdd.getNumPartitions())) if partitions is None else partitions
        return self._check(self.dag.submit_job(rdd, "func", parts, self.now, job_id, pool))

    def handle(self, event: Any) -> list[Any]:
        return self._check(self.dag.handle(event, self.now))

    def add_executor(self, eid: str, slots: int = 2) -> list[Any]:
        return self.handle(ExecutorAdded(eid, ("127.0.0.1", hash(eid) & 0xFFFF), slots))

    def lose_executor(self, eid: str) -> list[Any]:
        return self.handle(ExecutorLost(eid, "test"))

    def tick(self) -> list[Any]:
        return self.handle(Tick())

    def finish(
        self,
        launch: Launch,
        value: Any = None,
        accumulators: dict[int, Any] | None = None,
        cached: list[tuple[int, int, int, int]] | None = None,
    ) -> list[Any]:
        """``cached``: (rdd_id, split, records, bytes) of each partition the task cached."""
        if value is None:
            value = ("result", launch.spec.partition)
        res = TaskResult(
            launch.spec.task_id,
            launch.executor_id,
            value,
            accumulators or {},
            cached or [],
        )
        return self.handle(TaskFinished(res))

    def fail(
        self,
        launch: Launch,
        exc_type: str = "ValueError",
        message: str = "boom",
        fetch_failed: tuple[str, int] | None = None,
        killed: bool = False,
        withdrawn: bool = False,
        missing_block: tuple[int, int] | None = None,
    ) -> list[Any]:
        err = TaskError(
            launch.spec.task_id,
            launch.executor_id,
            exc_type,
            message,
            f'Traceback (most recent call last):\n  File "user.py", line 1\n{exc_type}: {message}',
            None,
            fetch_failed,
            killed=killed or withdrawn,
            withdrawn=withdrawn,
            missing_block=missing_block,
        )
        return self.handle(TaskFailed(err))


# -- action filters -----------------------------------------------------------------------------
def launches(actions: list[Any]) -> list[Launch]:
    return [a for a in actions if isinstance(a, Launch)]


def parts(actions: list[Any]) -> list[int]:
    return sorted(a.spec.partition for a in launches(actions))


def succeeded(actions: list[Any], job_id: int | None = None) -> JobSucceeded | None:
    found = [a for a in actions if isinstance(a, JobSucceeded) and job_id in (None, a.job_id)]
    assert len(found) <= 1
    return found[0] if found else None


def failed(actions: list[Any], job_id: int | None = None) -> JobFailed | None:
    found = [a for a in actions if isinstance(a, JobFailed) and job_id in (None, a.job_id)]
    assert len(found) <= 1
    return found[0] if found else None


def merges(actions: list[Any]) -> list[MergeAccumulators]:
    return [a for a in actions if isinstance(a, MergeAccumulators)]


def kills(actions: list[Any]) -> list[KillTask]:
    return [a for a in actions if isinstance(a, KillTask)]
