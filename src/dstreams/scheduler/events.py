"""The events the DAG scheduler consumes and the actions it returns (plain data).

Backends post events (``ExecutorAdded``, ``ExecutorLost``, ``ExecutorUnresponsive``,
``ExecutorResponsive``, ``TaskFinished``, ``TaskFailed``);
the job runner adds ``Tick`` and ``Cleanup``. ``DAGScheduler.handle`` answers with actions
(``Launch``, ``KillTask``, ``KillExecutor``, ``MergeAccumulators``, ``RemoveBlocks``,
``JobSucceeded``, ``JobFailed``) that the runner carries out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dstreams.scheduler.task import TaskError, TaskResult, TaskSpec

if TYPE_CHECKING:
    from dstreams.scheduler.dag import Stage

__all__ = [
    "ExecutorAdded",
    "ExecutorLost",
    "ExecutorUnresponsive",
    "ExecutorResponsive",
    "TaskFinished",
    "TaskFailed",
    "Tick",
    "Cleanup",
    "Launch",
    "JobSucceeded",
    "JobFailed",
    "MergeAccumulators",
    "KillTask",
    "KillExecutor",
    "RemoveBlocks",
    "CancelJobs",
    "ReceiverMessage",
    "ExecutorStorage",
]


# -- events ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExecutorAdded:
    executor_id: str
    address: Any
    slots: int


@dataclass(frozen=True)
class ExecutorLost:
    executor_id: str
    reason: str


@dataclass(frozen=True)
class ExecutorStorage:
    """An executor's block store, from its heartbeat (for the UI; the scheduler ignores it)."""

    executor_id: str
    memory_used: int
    blocks: int


@dataclass(frozen=True)
class ExecutorUnresponsive:
    """An executor stopped answering (a stopped or wedged process): it may come back.

    It gets no new tasks; tasks queued on it are copied elsewhere, and with speculation on so
    is the one it is running. Whichever copy finishes first wins.
    """

    executor_id: str
    silent_for: float


@dataclass(frozen=True)
class ExecutorResponsive:
    """An executor that was unresponsive answers again."""

    executor_id: str


@dataclass(frozen=True)
class ReceiverMessage:
    """From a receiver on an executor (``receiver_host.py``): started, error, block, ..."""

    executor_id: str
    stream_id: int
    kind: str
    body: Any


@dataclass(frozen=True)
class TaskFinished:
    result: TaskResult


@dataclass(frozen=True)
class TaskFailed:
    error: TaskError


@dataclass(frozen=True)
class Tick:
    """Periodic: lets the scheduler check for stragglers."""


@dataclass(frozen=True)
class CancelJobs:
    """Abort the active jobs that started before this request (``JobRunner.cancel_all``)."""

    before_job: int
    reason: str


@dataclass(frozen=True)
class Cleanup:
    """An RDD or shuffle was garbage-collected or unpersisted on the driver."""

    kind: str  # "rdd" | "shuffle" | "broadcast"
    ident: int


# -- actions -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Launch:
    executor_id: str
    spec: TaskSpec
    stage: Stage  # the stage whose closure the task runs


@dataclass(frozen=True)
class JobSucceeded:
    results: list[Any]
    job_id: int = -1


@dataclass(frozen=True)
class JobFailed:
    error: Exception
    job_id: int = -1


@dataclass(frozen=True)
class MergeAccumulators:
    updates: dict[int, Any]


@dataclass(frozen=True)
class KillTask:
    """Stop a running attempt that is no longer needed (a speculative loser, a finished job)."""

    executor_id: str
    task_id: int
    #: withdraw the task only if it has not started (to run it on an idle executor instead)
    only_if_queued: bool = False


@dataclass(frozen=True)
class KillExecutor:
    """Kill an executor: a task it was told to kill has not stopped (the task reaper)."""

    executor_id: str
    reason: str


@dataclass(frozen=True)
class RemoveBlocks:
    kind: str  # "rdd" | "shuffle" | "broadcast"
    ident: int
