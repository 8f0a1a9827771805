"""JobRunner: the thin driver loop between the DAG scheduler and an executor backend.

``run_job`` submits a job to the pure :class:`~dstreams.scheduler.dag.DAGScheduler`, then feeds
it backend events until it answers ``JobSucceeded`` or ``JobFailed``, carrying out the actions it
returns (launch tasks, kill tasks or executors, merge accumulators, remove blocks). Jobs run one
at a time; a lock serializes callers from several threads. Cleanup requests from weakref
finalizers (any thread) are queued and applied between events. The clock is injected
(``clock``), as everywhere.

Stage payloads are encoded here (``core/shipping.py``), each under a fresh payload id, with the
stage's fully cached RDDs as stubs; the DAG scheduler drops a payload when one of those blocks
is lost, and the next launch encodes it again. A payload that cannot be encoded fails the job,
and the launches that could not happen give their slots back at once.

``cancel_all`` (any thread) aborts the running job and any job that started before it; later
jobs run normally.
"""

from __future__ import annotations

import collections
import itertools
import pickle
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from dstreams.conf import Conf
from dstreams.core.rdd import RDD
from dstreams.core.shipping import encode_stage
from dstreams.errors import JobCancelledError, SerializationError, TaskFailedError
from dstreams.events import EventBus
from dstreams.executor.base import ExecutorBackend
from dstreams.faults import kill_point
from dstreams.scheduler.dag import (
    Cleanup,
    DAGScheduler,
    JobFailed,
    JobSucceeded,
    KillExecutor,
    KillTask,
    Launch,
    MergeAccumulators,
    RemoveBlocks,
    Stage,
    TaskFinished,
    Tick,
)
from dstreams.scheduler.events import CancelJobs, ExecutorStorage
from dstreams.scheduler.progress import JobProgress
from dstreams.scheduler.taskset import SpeculationConfig

__all__ = ["JobRunner"]


class JobRunner:
    """Runs jobs on a backend; see the module docstring."""

    def __init__(
        self,
        backend: ExecutorBackend,
        conf: Conf,
        accumulators: dict[int, Any],
        clock: Callable[[], float] = time.monotonic,
        bus: EventBus | None = None,
    ) -> None:
        spec = SpeculationConfig(
            enabled=conf.get_bool("dstreams.speculation"),
            multiplier=conf.get_float("dstreams.speculation.multiplier"),
            quantile=conf.get_float("dstreams.speculation.quantile"),
            min_runtime=conf.get_duration_ms("dstreams.speculation.minTaskRuntime") / 1000.0,
            duration_threshold=_seconds_or_none(
                conf, "dstreams.speculation.task.duration.threshold"
            ),
        )
        max_failures = conf.get_int("dstreams.task.maxFailures")
        if max_failures is None:
            max_failures = 4
        reaper = conf.get_duration_ms("dstreams.task.reaper.killTimeout")
        self.dag = DAGScheduler(max_failures, spec, reaper / 1000.0 if reaper > 0 else None)
        self.backend = backend
        self.clock = clock
        self._accumulators = accumulators
        self._lock = threading.RLock()
        self._cleanups: collections.deque[tuple[str, int]] = collections.deque()
        self._tick = conf.get_duration_ms("dstreams.executor.heartbeatInterval") / 1000.0
        self._payload_ids = itertools.count()
        self._job_ids = itertools.count()
        self._next_job = 0
        self.jobs_run = 0
        self.bus = bus or EventBus()
        self._progress = JobProgress(self.bus)

    def post_cleanup(self, item: tuple[str, int]) -> None:
        """Queue an RDD/shuffle removal (thread-safe; applied by the runner thread)."""
        self._cleanups.append(item)

    def cached_size(self, rdd_id: int, num_partitions: int) -> tuple[int, int, int]:
        """``(records, bytes, partitions)`` cached of RDD ``rdd_id`` (thread-safe)."""
        return self.dag.cached_size(rdd_id, num_partitions)

    def cancel_all(self, reason: str) -> None:
        """Abort the running job, and any job started before this call (thread-safe)."""
        self.backend.events.put(CancelJobs(self._next_job, reason))

    def run_job(
        self,
        rdd: RDD[Any],
        func: Callable[[Any], Any],
        partitions: list[int],
        props: dict[str, str] | None = None,
    ) -> list[Any]:
        """Compute ``func(iterator)`` for each partition; results in the order given.

        ``props`` are the caller's local properties (a job's description, its batch).
        """
        with self._lock:
            job_id = next(self._job_ids)
            self._next_job = job_id + 1
            self._drain()
            payload_ids: list[int] = []
            actions = self.dag.submit_job(rdd, func, partitions, self.clock())
            progress = self._progress if self.bus.active else None
            if progress is not None:
                progress.job_started(job_id, props or {})
            outcome: Any = None
            interrupted: BaseException | None = None
            try:
                outcome = self._apply(actions, payload_ids)
                events = self.backend.events
                last_tick = self.clock()
                while outcome is None:
                    try:
                        ev = events.get(timeout=self._tick)
                    except queue.Empty:
                        ev = Tick()
                    self._apply_cleanups()
                    now = self.clock()
                    if progress is not None:
                        progress.observed(ev)
                    if isinstance(ev, ExecutorStorage):
                        continue  # for the UI only
                    if isinstance(ev, CancelJobs):
                        if job_id < ev.before_job:
                            error = JobCancelledError(f"job {job_id} was cancelled: {ev.reason}")
                            outcome = self._apply(self.dag.abort_job(ev.reason, error), [])
                        continue
                    outcome = self._apply(self.dag.handle(ev, now), payload_ids)
                    if isinstance(ev, TaskFinished):
                        kill_point("job")  # crash tests: the driver dies mid-job
                    if outcome is None and now - last_tick >= self._tick:
                        last_tick = now  # stragglers are checked even while events flow
                        outcome = self._apply(self.dag.handle(Tick(), now), payload_ids)
            except BaseException as e:
                self._apply(self.dag.abort_job("the driver was interrupted"), [])
                interrupted = e
                raise
            finally:
                self.jobs_run += 1
                self.backend.forget_payloads(payload_ids)
                if progress is not None:
                    failure = outcome.error if isinstance(outcome, JobFailed) else interrupted
                    progress.job_ended(job_id, failure)
            if isinstance(outcome, JobFailed):
                err = outcome.error
                if isinstance(err, TaskFailedError) and err.cause is not None:
                    raise err from err.cause
                raise err
            return [pickle.loads(v) for v in outcome.results]

    def _drain(self) -> None:
        """Apply events that arrived between jobs (executors added or lost, late results)."""
        events = self.backend.events
        while True:
            try:
                ev = events.get_nowait()
            except queue.Empty:
                break
            if self.bus.active:
                self._progress.observed(ev)
            if not isinstance(ev, (CancelJobs, ExecutorStorage)):  # CancelJobs: for ended jobs
                self._apply(self.dag.handle(ev, self.clock()), [])
        self._apply_cleanups()

    def _apply_cleanups(self) -> None:
        while self._cleanups:
            kind, ident = self._cleanups.popleft()
            self._progress.cleaned(kind, ident)
            self._apply(self.dag.handle(Cleanup(kind, ident), self.clock()), [])

    def _apply(self, actions: list[Any], payload_ids: list[int]) -> JobSucceeded | JobFailed | None:
        outcome: JobSucceeded | JobFailed | None = None
        launches = [a for a in actions if isinstance(a, Launch)]
        if launches:
            try:
                for a in launches:
                    a.spec.payload_id = self._payload(a.stage, payload_ids)
            except SerializationError as e:
                # none of these launches happened: the scheduler frees their slots at once
                failed = self.dag.launch_failed([a.spec.task_id for a in launches], e)
                actions = [a for a in actions if not isinstance(a, Launch)] + failed
        progress = self._progress if self.bus.active else None
        for a in actions:
            if isinstance(a, Launch):
                assert a.stage.payload is not None
                if progress is not None:
                    progress.launched(a)
                self.backend.launch(a.executor_id, a.spec, a.stage.payload)
            elif isinstance(a, MergeAccumulators):
                for aid, delta in a.updates.items():
                    acc = self._accumulators.get(aid)
                    if acc is not None:
                        acc._merge(delta)
            elif isinstance(a, KillTask):
                self.backend.kill_task(a.executor_id, a.task_id, a.only_if_queued)
            elif isinstance(a, KillExecutor):
                self.backend.kill_executor(a.executor_id)
            elif isinstance(a, RemoveBlocks):
                self.backend.remove_blocks(a.kind, a.ident)
            elif isinstance(a, (JobSucceeded, JobFailed)):
                outcome = a
        return outcome

    def _payload(self, stage: Stage, payload_ids: list[int]) -> int:
        """The stage's encoded payload (made again after a cached block it stubs was lost)."""
        if stage.payload is None:
            partitioner = stage.shuffle_dep.partitioner if stage.shuffle_dep else None
            frontier = self.dag.cached_frontier(stage.rdd)
            stage.payload = encode_stage(stage.rdd, stage.func, partitioner, frontier)
            stage.frontier = frontier
            stage.payload_id = next(self._payload_ids)
            payload_ids.append(stage.payload_id)
        return stage.payload_id

    def stop(self, timeout: float = 1.0) -> None:
        """Abort the running job (call ``cancel_all`` first so that it ends promptly)."""
        if not self._lock.acquire(timeout=timeout):
            return  # a job thread is stuck outside the scheduler; the backend stops anyway
        try:
            if self.dag.job is not None:
                self.dag.abort_job("the Context was stopped")
        finally:
            self._lock.release()


def _seconds_or_none(conf: Conf, key: str) -> float | None:
    text = conf.get_str(key)
    return None if text in (None, "") else conf.get_duration_ms(key) / 1000.0
