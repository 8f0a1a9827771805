"""JobRunner: the thin driver loop between the DAG scheduler and an executor backend.

``run_job`` hands a job to the pure :class:`~dstreams.scheduler.dag.DAGScheduler` and waits for
its outcome, while some thread feeds the scheduler backend events and carries out the actions it
returns (launch tasks, kill tasks or executors, merge accumulators, remove blocks, end jobs).

Several threads may run jobs at once (streaming batches, queries on views, a program's own
threads); the DAG scheduler shares the executors between their jobs (FAIR pools by default, see
``scheduler/pools.py``). Exactly one caller at a time *pumps*: it takes events from the backend
and applies them for every active job, until its own job ends; then another waiting caller
takes over. A single-threaded program therefore pumps in its own thread, with no hand-off.
A job's pool is its ``spark.scheduler.pool`` local property, else ``streaming`` for a
streaming batch's jobs, else ``default``.

Cleanup requests from weakref finalizers (any thread) are queued and applied between events.
The clock is injected (``clock``), as everywhere.

Stage payloads are encoded here (``core/shipping.py``), each under a fresh payload id, with the
stage's fully cached RDDs as stubs; the DAG scheduler drops a payload when one of those blocks
is lost, and the next launch encodes it again. A payload that cannot be encoded fails the jobs
that need the stage, and the launches that could not happen give their slots back at once.
Workers forget a stage's payloads once no active job needs the stage.

``cancel_all`` (any thread) aborts every job that started before it; later jobs run normally.
"""

from __future__ import annotations

import collections
import itertools
import pickle
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dstreams.conf import Conf
from dstreams.core.rdd import RDD
from dstreams.core.shipping import encode_stage
from dstreams.errors import JobAbortedError, JobCancelledError, SerializationError, TaskFailedError
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
from dstreams.scheduler.pools import DEFAULT_POOL, STREAMING_POOL, Pool, parse_allocations
from dstreams.scheduler.progress import JobProgress
from dstreams.scheduler.taskset import SpeculationConfig

__all__ = ["JobRunner", "job_pool", "pools_from_conf"]

#: the local property that names a job's scheduling pool (Spark's)
POOL_PROPERTY = "spark.scheduler.pool"


@dataclass(eq=False)
class _Waiter:
    """A caller of ``run_job`` and, once its job ends, the outcome."""

    job_id: int
    props: dict[str, str]
    outcome: JobSucceeded | JobFailed | None = None


@dataclass(frozen=True, eq=False)
class _Submit:
    """Queued by ``run_job``: start this job (applied by the pumping thread)."""

    waiter: _Waiter
    rdd: RDD[Any]
    func: Callable[[Any], Any]
    partitions: list[int]
    pool: str


@dataclass(frozen=True)
class _Abort:
    """Queued by an interrupted caller that is not pumping: fail its job."""

    job_id: int
    reason: str


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
        mode = (conf.get_str("dstreams.scheduler.mode") or "FAIR").upper()
        if mode not in ("FIFO", "FAIR"):
            raise ValueError(f"dstreams.scheduler.mode={mode!r} must be FIFO or FAIR")
        self.dag = DAGScheduler(
            max_failures,
            spec,
            reaper / 1000.0 if reaper > 0 else None,
            mode,  # type: ignore[arg-type]
            pools_from_conf(conf),
            conf.get_duration_ms("dstreams.locality.wait") / 1000.0,
        )
        self.backend = backend
        self.clock = clock
        self._accumulators = accumulators
        self._pump = threading.Lock()  # held by the one thread applying events
        self._cond = threading.Condition()  # outcomes and pump hand-offs are told here
        self._submit_lock = threading.Lock()  # job ids and CancelJobs in one order
        self._waiters: dict[int, _Waiter] = {}
        self._local = threading.local()  # .pumping: this thread holds the pump
        self._cleanups: collections.deque[tuple[str, int]] = collections.deque()
        self._tick = conf.get_duration_ms("dstreams.executor.heartbeatInterval") / 1000.0
        self._last_tick = 0.0
        self._payload_ids = itertools.count()
        #: payload ids encoded per stage, forgotten on the workers once the stage is dropped
        self._stage_payloads: dict[int, list[int]] = {}
        self._job_ids = itertools.count()
        self._next_job = 0
        self._cancel_before = 0
        self._cancel_reason = ""
        self.jobs_run = 0
        self.bus = bus or EventBus()
        self._progress = JobProgress(self.bus)

    def post_cleanup(self, item: tuple[str, int]) -> None:
        """Queue an RDD/shuffle removal (thread-safe; applied by the pumping thread)."""
        self._cleanups.append(item)

    def cached_size(self, rdd_id: int, num_partitions: int) -> tuple[int, int, int]:
        """``(records, bytes, partitions)`` cached of RDD ``rdd_id`` (thread-safe)."""
        return self.dag.cached_size(rdd_id, num_partitions)

    def cancel_all(self, reason: str) -> None:
        """Abort every active job, and any job started before this call (thread-safe)."""
        with self._submit_lock:
            self.backend.events.put(CancelJobs(self._next_job, reason))

    def run_job(
        self,
        rdd: RDD[Any],
        func: Callable[[Any], Any],
        partitions: list[int],
        props: dict[str, str] | None = None,
    ) -> list[Any]:
        """Compute ``func(iterator)`` for each partition; results in the order given.

        ``props`` are the caller's local properties (a job's description, its batch, its pool).
        Safe to call from several threads at once.
        """
        props = dict(props or {})
        pool = job_pool(props)
        with self._submit_lock:
            job_id = next(self._job_ids)
            self._next_job = job_id + 1
            w = _Waiter(job_id, props)
            self.backend.events.put(_Submit(w, rdd, func, partitions, pool))
        try:
            self._wait(w)
        except BaseException:
            if w.outcome is None and not self._pump_held_by_me():
                self.backend.events.put(_Abort(job_id, "the driver was interrupted"))
            raise
        outcome = w.outcome
        if isinstance(outcome, JobFailed):
            err = outcome.error
            if isinstance(err, TaskFailedError) and err.cause is not None:
                raise err from err.cause
            raise err
        assert outcome is not None
        return [pickle.loads(v) for v in outcome.results]

    # -- pumping -------------------------------------------------------------------------------
    def _pump_held_by_me(self) -> bool:
        return getattr(self._local, "pumping", False)

    def _wait(self, w: _Waiter) -> None:
        """Until ``w``'s job ends: pump events, or wait while another caller pumps."""
        while w.outcome is None:
            if self._pump.acquire(blocking=False):
                self._local.pumping = True
                try:
                    self._pump_until(w)
                except BaseException as e:
                    # the loop was interrupted midway (Ctrl-C, an internal error): end every
                    # active job rather than leave one waiting on events nobody applies
                    self._abort_all(f"the driver was interrupted ({type(e).__name__})")
                    raise
                finally:
                    self._local.pumping = False
                    with self._cond:
                        self._pump.release()
                        self._cond.notify_all()
            else:
                with self._cond:
                    if w.outcome is None and self._pump.locked():
                        self._cond.wait(timeout=max(self._tick, 0.05))

    def _pump_until(self, w: _Waiter) -> None:
        events = self.backend.events
        while w.outcome is None:
            try:
                ev = events.get(timeout=self._tick)
            except queue.Empty:
                ev = Tick()
            self._process(ev)
            if self.dag.jobs:
                now = self.clock()
                if now - self._last_tick >= self._tick:
                    self._last_tick = now  # stragglers are checked even while events flow
                    self._apply(self.dag.handle(Tick(), now))

    def _process(self, ev: Any) -> None:
        self._apply_cleanups()
        if isinstance(ev, _Submit):
            self._start(ev)
            return
        if isinstance(ev, _Abort):
            self._apply(self.dag.abort_job(ev.reason, job_id=ev.job_id))
            return
        if self.bus.active:
            self._progress.observed(ev)
        if isinstance(ev, ExecutorStorage):
            return  # for the UI only
        if isinstance(ev, CancelJobs):
            if ev.before_job > self._cancel_before:
                self._cancel_before, self._cancel_reason = ev.before_job, ev.reason
            for jid in sorted(j for j in self.dag.jobs if j < ev.before_job):
                error = JobCancelledError(f"job {jid} was cancelled: {ev.reason}")
                self._apply(self.dag.abort_job(ev.reason, error, job_id=jid))
            return
        self._apply(self.dag.handle(ev, self.clock()))
        if isinstance(ev, TaskFinished):
            kill_point("job")  # crash tests: the driver dies mid-job

    def _start(self, sub: _Submit) -> None:
        w = sub.waiter
        self._waiters[w.job_id] = w
        if self.bus.active:
            self._progress.job_started(w.job_id, w.props)
        if w.job_id < self._cancel_before:  # cancelled before its turn came
            error = JobCancelledError(f"job {w.job_id} was cancelled: {self._cancel_reason}")
            self._end(JobFailed(error, w.job_id))
            return
        if not self.dag.jobs:
            self._last_tick = self.clock()
        self._apply(
            self.dag.submit_job(
                sub.rdd, sub.func, sub.partitions, self.clock(), job_id=w.job_id, pool=sub.pool
            )
        )

    def _end(self, outcome: JobSucceeded | JobFailed) -> None:
        w = self._waiters.pop(outcome.job_id, None)
        if w is None:
            return
        self.jobs_run += 1
        dropped = [sid for sid in self._stage_payloads if sid not in self.dag.stages]
        forget: list[int] = []
        for sid in dropped:
            forget += self._stage_payloads.pop(sid)
        self.backend.forget_payloads(forget)
        if self.bus.active:
            self._progress.job_ended(
                w.job_id, outcome.error if isinstance(outcome, JobFailed) else None
            )
        with self._cond:
            w.outcome = outcome
            self._cond.notify_all()

    def _abort_all(self, reason: str) -> None:
        try:
            self._apply(self.dag.abort_job(reason))
        finally:
            for jid in list(self._waiters):  # should the DAG have lost track of one
                self._end(JobFailed(JobAbortedError(reason), jid))

    def _apply_cleanups(self) -> None:
        while self._cleanups:
            kind, ident = self._cleanups.popleft()
            self._progress.cleaned(kind, ident)
            self._apply(self.dag.handle(Cleanup(kind, ident), self.clock()))

    def _apply(self, actions: list[Any]) -> None:
        launches = [a for a in actions if isinstance(a, Launch)]
        if launches:
            try:
                for a in launches:
                    a.spec.payload_id = self._payload(a.stage)
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
                self._end(a)

    def _payload(self, stage: Stage) -> int:
        """The stage's encoded payload (made again after a cached block it stubs was lost)."""
        if stage.payload is None:
            partitioner = stage.shuffle_dep.partitioner if stage.shuffle_dep else None
            frontier = self.dag.cached_frontier(stage.rdd)
            stage.payload = encode_stage(stage.rdd, stage.func, partitioner, frontier)
            stage.frontier = frontier
            stage.payload_id = next(self._payload_ids)
            self._stage_payloads.setdefault(stage.id, []).append(stage.payload_id)
        return stage.payload_id

    def stop(self, timeout: float = 1.0) -> None:
        """Abort the active jobs (call ``cancel_all`` first so that they end promptly)."""
        if not self._pump.acquire(timeout=timeout):
            return  # a job thread is stuck outside the scheduler; the backend stops anyway
        try:
            self._abort_all("the Context was stopped")
        finally:
            with self._cond:
                self._pump.release()
                self._cond.notify_all()


def job_pool(props: dict[str, str]) -> str:
    """A job's pool: its ``spark.scheduler.pool`` property, else ``streaming`` for a batch."""
    return props.get(POOL_PROPERTY) or (
        STREAMING_POOL if "spark.streaming.internal.batchTime" in props else DEFAULT_POOL
    )


def pools_from_conf(conf: Conf) -> dict[str, Pool]:
    """The scheduling pools: the allocation file's, and the ``streaming`` pool's defaults."""
    pools: dict[str, Pool] = {}
    path = conf.get_str("dstreams.scheduler.allocation.file")
    if path:
        import fsspec

        try:
            with fsspec.open(path, "rt", encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise ValueError(
                f"dstreams.scheduler.allocation.file={path!r} does not exist; give the path "
                "of a fairscheduler.xml file or unset the key"
            ) from None
        pools.update(parse_allocations(text, path))
    if STREAMING_POOL not in pools:
        pools[STREAMING_POOL] = Pool(
            STREAMING_POOL,
            "FIFO",
            conf.get_float("dstreams.scheduler.pool.streaming.weight"),
            conf.get_int("dstreams.scheduler.pool.streaming.minShare") or 0,
        )
    return pools


def _seconds_or_none(conf: Conf, key: str) -> float | None:
    text = conf.get_str(key)
    return None if text in (None, "") else conf.get_duration_ms(key) / 1000.0
