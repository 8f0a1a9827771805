"""JobRunner: the thin driver loop between the DAG scheduler and an executor backend.

``run_job`` submits a job to the pure :class:`~dstreams.scheduler.dag.DAGScheduler`, then feeds
it backend events until it answers ``JobSucceeded`` or ``JobFailed``, carrying out the actions it
returns (launch tasks, merge accumulators, remove blocks). Jobs run one at a time; a lock
serializes callers from several threads. Cleanup requests from weakref finalizers (any thread)
are queued and applied between events. The clock is injected (``clock``), as everywhere.
"""

from __future__ import annotations

import collections
import pickle
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from dstreams.conf import Conf
from dstreams.core.rdd import RDD
from dstreams.errors import SerializationError, TaskFailedError
from dstreams.executor.base import ExecutorBackend
from dstreams.scheduler.dag import (
    Cleanup,
    DAGScheduler,
    JobFailed,
    JobSucceeded,
    KillTask,
    Launch,
    MergeAccumulators,
    RemoveBlocks,
    Stage,
    Tick,
)
from dstreams.scheduler.taskset import SpeculationConfig
from dstreams.serde import dumps_code

__all__ = ["JobRunner"]


class JobRunner:
    """Runs jobs on a backend; see the module docstring."""

    def __init__(
        self,
        backend: ExecutorBackend,
        conf: Conf,
        accumulators: dict[int, Any],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        spec = SpeculationConfig(
            enabled=conf.get_bool("dstreams.speculation"),
            multiplier=conf.get_float("dstreams.speculation.multiplier"),
            quantile=conf.get_float("dstreams.speculation.quantile"),
            min_runtime=conf.get_duration_ms("dstreams.speculation.minTaskRuntime") / 1000.0,
        )
        max_failures = conf.get_int("dstreams.task.maxFailures")
        if max_failures is None:
            max_failures = 4
        self.dag = DAGScheduler(max_failures, spec)
        self.backend = backend
        self.clock = clock
        self._accumulators = accumulators
        self._lock = threading.RLock()
        self._cleanups: collections.deque[tuple[str, int]] = collections.deque()
        self._tick = conf.get_duration_ms("dstreams.executor.heartbeatInterval") / 1000.0
        self.jobs_run = 0

    def post_cleanup(self, item: tuple[str, int]) -> None:
        """Queue an RDD/shuffle removal (thread-safe; applied by the runner thread)."""
        self._cleanups.append(item)

    def run_job(
        self, rdd: RDD[Any], func: Callable[[Any], Any], partitions: list[int]
    ) -> list[Any]:
        """Compute ``func(iterator)`` for each partition; results in the order given."""
        with self._lock:
            self._drain()
            stages: list[Stage] = []
            actions = self.dag.submit_job(rdd, func, partitions, self.clock())
            stages.extend(self.dag.stages.values())
            try:
                outcome = self._apply(actions)
                events = self.backend.events
                last_tick = self.clock()
                while outcome is None:
                    try:
                        ev = events.get(timeout=self._tick)
                    except queue.Empty:
                        ev = Tick()
                    self._apply_cleanups()
                    now = self.clock()
                    outcome = self._apply(self.dag.handle(ev, now))
                    if outcome is None and now - last_tick >= self._tick:
                        last_tick = now  # stragglers are checked even while events flow
                        outcome = self._apply(self.dag.handle(Tick(), now))
            except BaseException:
                self._apply(self.dag.abort_job("the driver was interrupted"))
                raise
            finally:
                self.jobs_run += 1
                self.backend.forget_stages([s.id for s in stages])
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
            self._apply(self.dag.handle(ev, self.clock()))
        self._apply_cleanups()

    def _apply_cleanups(self) -> None:
        while self._cleanups:
            kind, ident = self._cleanups.popleft()
            self._apply(self.dag.handle(Cleanup(kind, ident), self.clock()))

    def _apply(self, actions: list[Any]) -> JobSucceeded | JobFailed | None:
        outcome: JobSucceeded | JobFailed | None = None
        for a in actions:
            if isinstance(a, Launch):
                try:
                    payload = self._payload(a.stage)
                except SerializationError as e:
                    outcome = JobFailed(e)
                    self.dag.abort_job(str(e))
                    break
                self.backend.launch(a.executor_id, a.spec, payload)
            elif isinstance(a, MergeAccumulators):
                for aid, delta in a.updates.items():
                    acc = self._accumulators.get(aid)
                    if acc is not None:
                        acc._merge(delta)
            elif isinstance(a, KillTask):
                self.backend.kill_task(a.executor_id, a.task_id, a.only_if_queued)
            elif isinstance(a, RemoveBlocks):
                self.backend.remove_blocks(a.kind, a.ident)
            elif isinstance(a, (JobSucceeded, JobFailed)):
                outcome = a
        return outcome

    @staticmethod
    def _payload(stage: Stage) -> bytes:
        if stage.payload is None:
            partitioner = stage.shuffle_dep.partitioner if stage.shuffle_dep else None
            stage.payload = dumps_code(
                (stage.rdd, stage.func, partitioner), f"the functions of {stage!r}"
            )
        return stage.payload

    def stop(self) -> None:
        with self._lock:
            if self.dag.job is not None:
                self.dag.abort_job("the Context was stopped")
