"""JobProgress: what the job runner does, told as application events (``dstreams/events.py``).

The runner hands it every job it starts and ends, every launch the DAG scheduler orders and
every backend event it handles; this turns them into job, stage, task and executor events on
the application's :class:`~dstreams.events.EventBus`. It keeps only what it needs to name a
task's stage when the task ends and to tell when a stage attempt has every partition. Several
jobs may be active at once; a stage belongs to the first job that needed it (as in Spark). It
does no work while the bus has no listener (the runner checks ``bus.active`` first).

A task is *recomputed* when it writes a map output that an earlier task of the same shuffle
had already written: the output was lost with its executor and lineage is computing it again.
"""

from __future__ import annotations

from typing import Any

from dstreams.events import (
    EventBus,
    ExecutorAdded,
    ExecutorMetrics,
    ExecutorRemoved,
    ExecutorResponsive,
    JobEnd,
    JobStart,
    StageCompleted,
    StageSubmitted,
    TaskEnd,
    TaskStart,
    now_ms,
)
from dstreams.scheduler import events as sched

__all__ = ["JobProgress"]


class JobProgress:
    """Turns the runner's work into events; see the module docstring."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        #: task id -> (stage id, stage attempt, shuffle id or None, partition)
        self._tasks: dict[int, tuple[int, int, int | None, int]] = {}
        #: (stage id, attempt) -> (tasks in the attempt, partitions done, job)
        self._stages: dict[tuple[int, int], tuple[int, set[int], int]] = {}
        #: shuffle id -> map partitions written at least once
        self._written: dict[int, set[int]] = {}

    def job_started(self, job_id: int, props: dict[str, str]) -> None:
        self.bus.post(
            JobStart(
                now_ms(),
                job_id,
                props.get("spark.job.description", ""),
                int(props.get("spark.streaming.internal.batchTime", -1)),
                int(props.get("spark.streaming.internal.outputOpId", -1)),
            )
        )

    def job_ended(self, job_id: int, error: BaseException | None) -> None:
        t = now_ms()
        ended = set()
        for key, (_, _, job) in list(self._stages.items()):
            if job != job_id:
                continue
            reason = "" if error is None else f"the job failed: {type(error).__name__}"
            self.bus.post(StageCompleted(t, job_id, key[0], key[1], reason or "superseded"))
            del self._stages[key]
            ended.add(key)
        for tid in [t for t, info in self._tasks.items() if (info[0], info[1]) in ended]:
            del self._tasks[tid]  # late results of those stages are not reported
        text = "" if error is None else f"{type(error).__name__}: {error}"
        self.bus.post(JobEnd(t, job_id, error is None, text))

    def launched(self, launch: sched.Launch) -> None:
        spec, stage = launch.spec, launch.stage
        key = (spec.stage_id, spec.stage_attempt)
        t = now_ms()
        if key not in self._stages:
            n = len(stage.tsm.partitions) if stage.tsm is not None else 0
            self._stages[key] = (n, set(), stage.first_job)
            name = f"{type(stage.rdd).__name__} at {getattr(stage.rdd, '_id', '?')}"
            self.bus.post(
                StageSubmitted(
                    t,
                    stage.first_job,
                    spec.stage_id,
                    spec.stage_attempt,
                    name,
                    n,
                    spec.shuffle_id is not None,
                )
            )
        recomputed = False
        if spec.shuffle_id is not None and not spec.speculative:
            recomputed = spec.partition in self._written.get(spec.shuffle_id, ())
        self._tasks[spec.task_id] = (
            spec.stage_id,
            spec.stage_attempt,
            spec.shuffle_id,
            spec.partition,
        )
        self.bus.post(
            TaskStart(
                t,
                spec.stage_id,
                spec.stage_attempt,
                spec.task_id,
                spec.partition,
                spec.attempt,
                launch.executor_id,
                spec.speculative,
                recomputed,
            )
        )

    def observed(self, ev: Any) -> None:
        """A backend event the runner is about to hand to the DAG scheduler."""
        post = self.bus.post
        if isinstance(ev, sched.TaskFinished):
            r = ev.result
            info = self._tasks.pop(r.task_id, None)
            if info is None:
                return
            sid, attempt, shuffle, part = info
            post(
                TaskEnd(
                    now_ms(),
                    sid,
                    attempt,
                    r.task_id,
                    r.executor_id,
                    "SUCCESS",
                    "",
                    r.run_seconds * 1000.0,
                )
            )
            if shuffle is not None:
                self._written.setdefault(shuffle, set()).add(part)
            stage = self._stages.get((sid, attempt))
            if stage is not None:
                stage[1].add(part)
                if len(stage[1]) >= stage[0]:
                    del self._stages[(sid, attempt)]
                    post(StageCompleted(now_ms(), stage[2], sid, attempt, ""))
        elif isinstance(ev, sched.TaskFailed):
            e = ev.error
            info = self._tasks.pop(e.task_id, None)
            if info is None:
                return
            status = "KILLED" if e.killed or e.withdrawn else "FAILED"
            reason = "" if status == "KILLED" else f"{e.exc_type_name}: {e.message}"
            post(TaskEnd(now_ms(), info[0], info[1], e.task_id, e.executor_id, status, reason))
        elif isinstance(ev, sched.ExecutorAdded):
            addr = ev.address
            host = addr[0] if isinstance(addr, tuple) and addr else "localhost"
            post(ExecutorAdded(now_ms(), ev.executor_id, str(host), 1))  # a process is a core
        elif isinstance(ev, sched.ExecutorLost):
            post(ExecutorRemoved(now_ms(), ev.executor_id, ev.reason))
        elif isinstance(ev, sched.ExecutorUnresponsive):
            post(ExecutorResponsive(now_ms(), ev.executor_id, False))
        elif isinstance(ev, sched.ExecutorResponsive):
            post(ExecutorResponsive(now_ms(), ev.executor_id, True))
        elif isinstance(ev, sched.ExecutorStorage):
            post(ExecutorMetrics(now_ms(), ev.executor_id, ev.memory_used, ev.blocks))

    def cleaned(self, kind: str, ident: int) -> None:
        if kind == "shuffle":
            self._written.pop(ident, None)
