"""DAGScheduler: turns jobs on RDDs into stages and tasks, as a pure state machine.

State: live executors and their free task slots, the map-output tracker (where each shuffle's
map outputs live), the cached-block tracker, and the stages of the active jobs. Everything changes
only through :meth:`DAGScheduler.submit_job` and :meth:`DAGScheduler.handle`, which return
*actions* for the runner (``scheduler/runner.py``) to carry out: launch a task, merge accumulator
updates, remove blocks, finish or fail the job. Nothing here does I/O, so retries, executor loss
and speculation are tested as plain function calls (``validate_state`` after every step).

Stages are cut at shuffle dependencies. A map stage whose outputs are all available is skipped,
so a shuffle computed by an earlier job is reused. When an executor is lost, its map outputs and
cached partitions are forgotten; only those map partitions are recomputed (wherever slots are
free), and a stage that reads them waits for them. A fetch failure is treated the same way.

Several jobs can be active at once (a streaming batch and a query on a view, say). A shuffle
map stage is shared by every active job that reads its shuffle; a stage ends when no active job
needs it. Free slots go to the stages of the active jobs in the order of
:mod:`~dstreams.scheduler.pools` (FAIR pools, or FIFO by job), one task at a time, so the tasks
of a short job interleave with those of a long one instead of waiting for it to end.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from dstreams.core.dependency import ShuffleDependency
from dstreams.core.rdd import RDD
from dstreams.errors import JobAbortedError, TaskFailedError
from dstreams.scheduler.events import (
    Cleanup,
    ExecutorAdded,
    ExecutorLost,
    ExecutorResponsive,
    ExecutorUnresponsive,
    JobFailed,
    JobSucceeded,
    KillExecutor,
    KillTask,
    Launch,
    MergeAccumulators,
    RemoveBlocks,
    TaskFailed,
    TaskFinished,
    Tick,
)
from dstreams.scheduler.pools import DEFAULT_POOL, Pool, SchedulingMode, order_stages
from dstreams.scheduler.task import Location, TaskError, TaskResult, TaskSpec
from dstreams.scheduler.taskset import SpeculationConfig, TaskSetManager

# the events and actions are re-exported: they are this state machine's vocabulary
__all__ = [
    "DAGScheduler",
    "Stage",
    "Launch",
    "JobSucceeded",
    "JobFailed",
    "MergeAccumulators",
    "RemoveBlocks",
    "KillTask",
    "KillExecutor",
    "ExecutorAdded",
    "ExecutorLost",
    "ExecutorUnresponsive",
    "ExecutorResponsive",
    "TaskFinished",
    "TaskFailed",
    "Tick",
    "Cleanup",
]

MAX_STAGE_ATTEMPTS = 4


@dataclass(eq=False)
class Stage:
    """A set of tasks that run the same pipelined functions on different partitions."""

    id: int
    rdd: RDD[Any]
    shuffle_dep: ShuffleDependency | None  # None for the result stage
    func: Any = None
    parents: list[Stage] = field(default_factory=list)
    shuffle_reads: list[int] = field(default_factory=list)
    attempt: int = -1
    tsm: TaskSetManager | None = None
    payload: bytes | None = None  # the encoded stage, made by the runner (core/shipping.py)
    payload_id: int = -1
    #: persisted RDDs the payload ships as cached stubs (their lineage stays on the driver)
    frontier: frozenset[int] = frozenset()
    #: the active jobs that need this stage; it is dropped when none is left
    jobs: set[int] = field(default_factory=set)
    #: the scheduling pool and job of the first job that needed it (its place in the order)
    pool: str = "default"
    first_job: int = 0

    @property
    def is_result(self) -> bool:
        return self.shuffle_dep is None

    def __repr__(self) -> str:
        kind = "ResultStage" if self.is_result else "ShuffleMapStage"
        return f"{kind}({self.id}, {self.rdd!r})"


@dataclass
class _Job:
    id: int
    final: Stage
    partitions: list[int]
    results: dict[int, Any] = field(default_factory=dict)
    index: dict[int, int] = field(default_factory=dict)  # partition -> position in results


@dataclass
class _Executor:
    address: Any
    slots: int
    free: int
    #: False while the executor does not answer: it is offered no tasks
    responsive: bool = True


class DAGScheduler:
    """The pure scheduling state machine; see the module docstring."""

    def __init__(
        self,
        max_failures: int = 4,
        speculation: SpeculationConfig | None = None,
        kill_timeout: float | None = 10.0,
        mode: SchedulingMode = "FAIR",
        pools: dict[str, Pool] | None = None,
        locality_wait: float = 0.0,
    ):
        if max_failures < 1:
            raise ValueError(f"dstreams.task.maxFailures={max_failures} must be at least 1")
        if mode not in ("FIFO", "FAIR"):
            raise ValueError(f"dstreams.scheduler.mode={mode!r} must be FIFO or FAIR")
        self.max_failures = max_failures
        #: seconds a task whose cached input is elsewhere waits for a slot there (delay scheduling)
        self.locality_wait = locality_wait
        self.mode: SchedulingMode = mode
        self.pools: dict[str, Pool] = dict(pools or {})
        #: a killed task still running after this long gets its executor killed (None: never)
        self.kill_timeout = kill_timeout
        self._kills: dict[int, float | None] = {}  # task id -> when its kill was noticed
        self._reaped: set[str] = set()
        self.speculation = speculation or SpeculationConfig()
        self.executors: dict[str, _Executor] = {}
        self.map_outputs: dict[int, list[Location | None]] = {}
        self.cache_locs: dict[tuple[int, int], Location] = {}
        #: (records, pickled bytes) of each cached partition in cache_locs
        self.cache_sizes: dict[tuple[int, int], tuple[int, int]] = {}
        self.jobs: dict[int, _Job] = {}
        self.stages: dict[int, Stage] = {}
        self.shuffle_stages: dict[int, Stage] = {}
        self._revoking: set[int] = set()  # queued tasks asked to step aside
        self.running: list[Stage] = []
        self.waiting: list[Stage] = []
        self.tasks: dict[int, tuple[Stage, TaskSetManager, str]] = {}
        self._task_ids = itertools.count()
        self._stage_ids = itertools.count()
        self._job_ids = itertools.count()
        self._fetch_failures: dict[int, int] = {}
        self._missing_blocks: dict[tuple[int, int], int] = {}

    # -- public transitions --------------------------------------------------------------------
    def submit_job(
        self,
        rdd: RDD[Any],
        func: Any,
        partitions: list[int],
        now: float,
        job_id: int | None = None,
        pool: str = DEFAULT_POOL,
    ) -> list[Any]:
        """Start a job beside the active ones; its outcome carries ``job_id``."""
        jid = next(self._job_ids) if job_id is None else job_id
        assert jid not in self.jobs, f"job {jid} is already active"
        if not self.jobs:
            self._fetch_failures.clear()
            self._missing_blocks.clear()
        final = Stage(next(self._stage_ids), rdd, None, func, jobs={jid}, pool=pool, first_job=jid)
        self.stages[final.id] = final
        self.jobs[jid] = _Job(
            jid, final, partitions, index={p: i for i, p in enumerate(partitions)}
        )
        self._add_parents(final)
        actions: list[Any] = []
        self._submit_stage(final, actions)
        self._launch(actions, now)
        return actions

    def handle(self, event: Any, now: float) -> list[Any]:
        actions: list[Any] = []
        if isinstance(event, TaskFinished):
            self._on_finished(event.result, now, actions)
        elif isinstance(event, TaskFailed):
            self._on_failed(event.error, now, actions)
        elif isinstance(event, ExecutorAdded):
            self.executors[event.executor_id] = _Executor(event.address, event.slots, event.slots)
        elif isinstance(event, ExecutorLost):
            self._on_executor_lost(event.executor_id, event.reason, actions)
        elif isinstance(event, ExecutorUnresponsive):
            self._on_unresponsive(event.executor_id, actions)
        elif isinstance(event, ExecutorResponsive):
            ex = self.executors.get(event.executor_id)
            if ex is not None:
                ex.responsive = True
        elif isinstance(event, Tick):
            for st in self.running:
                if st.tsm is not None:
                    st.tsm.check_speculation(now)
        elif isinstance(event, Cleanup):
            self._on_cleanup(event, actions)
        else:
            raise TypeError(f"unknown scheduler event {event!r}")
        if self.jobs:
            self._launch(actions, now)
        if self._kills:
            self._reap(now, actions)
        return self._note_kills(actions)

    def _reap(self, now: float, actions: list[Any]) -> None:
        """Kill the executor of a task that ignored its kill for ``kill_timeout`` seconds."""
        for tid in list(self._kills):
            entry = self.tasks.get(tid)
            if entry is None:
                del self._kills[tid]
                continue
            since = self._kills[tid]
            if since is None:
                self._kills[tid] = now
            elif self.kill_timeout is not None and now - since >= self.kill_timeout:
                eid = entry[2]
                if eid not in self._reaped:
                    self._reaped.add(eid)
                    actions.append(
                        KillExecutor(
                            eid,
                            f"task {tid} did not stop {self.kill_timeout:g}s after it was "
                            "killed (dstreams.task.reaper.killTimeout)",
                        )
                    )

    def _note_kills(self, actions: list[Any]) -> list[Any]:
        """Remember the kills in ``actions`` for the reaper; return ``actions``."""
        for a in actions:
            if isinstance(a, KillTask) and not a.only_if_queued:
                self._kills.setdefault(a.task_id, None)
        return actions

    def abort_job(
        self, reason: str, error: Exception | None = None, job_id: int | None = None
    ) -> list[Any]:
        """Fail job ``job_id`` (every active job if None) with ``error`` or a JobAbortedError."""
        actions: list[Any] = []
        for jid in sorted(self.jobs) if job_id is None else [job_id]:
            if jid in self.jobs:
                self._fail_job(
                    jid, error if error is not None else JobAbortedError(reason), actions
                )
        return self._note_kills(actions)

    # -- stage construction --------------------------------------------------------------------
    def _add_parents(self, stage: Stage) -> bool:
        """Link ``stage`` to the map stages of the shuffles it reads; True if any was new.

        Called again when cached partitions are lost: a task that must now recompute a cached
        RDD reads shuffles that the stage did not need when it was built.
        """
        added = False
        for known in stage.parents:
            self._claim(known, stage)  # a stage shared with another job serves this one too
        for sdep in self._shuffle_deps(stage.rdd):
            if sdep.shuffle_id in stage.shuffle_reads:
                continue
            parent = self.shuffle_stages.get(sdep.shuffle_id)
            if parent is None:
                self.map_outputs.setdefault(sdep.shuffle_id, [None] * sdep.rdd.getNumPartitions())
                parent = Stage(
                    next(self._stage_ids),
                    sdep.rdd,
                    sdep,
                    jobs=set(stage.jobs),
                    pool=stage.pool,
                    first_job=stage.first_job,
                )
                self.stages[parent.id] = parent
                self.shuffle_stages[sdep.shuffle_id] = parent
                self._add_parents(parent)
            else:
                self._claim(parent, stage)
            stage.parents.append(parent)
            stage.shuffle_reads.append(sdep.shuffle_id)
            added = True
        return added

    def _claim(self, stage: Stage, child: Stage) -> None:
        """``stage`` (and what it reads) also serves the jobs of ``child``."""
        if child.jobs <= stage.jobs:
            return
        stage.jobs |= child.jobs
        for p in stage.parents:
            self._claim(p, stage)

    def cached_frontier(self, rdd: RDD[Any]) -> frozenset[int]:
        """Persisted RDDs of ``rdd``'s stage whose partitions are all cached (not behind one).

        A stage payload ships them as stubs: tasks read their blocks, and the lineage behind
        them never travels. Any loss of one of their blocks invalidates the payload.
        """
        out: set[int] = set()
        seen: set[int] = set()
        stack = [rdd]
        while stack:
            r = stack.pop()
            if r._id in seen:
                continue
            seen.add(r._id)
            if self._fully_cached(r):
                out.add(r._id)
                continue
            stack.extend(d.rdd for d in r.dependencies() if not isinstance(d, ShuffleDependency))
        return frozenset(out)

    def _fully_cached(self, r: RDD[Any]) -> bool:
        return r._storage_level is not None and all(
            (r._id, p) in self.cache_locs for p in range(r.getNumPartitions())
        )

    def _invalidate_payloads(self, rdd_ids: set[int]) -> None:
        """Stages whose payload stubs one of ``rdd_ids`` are encoded again at their next launch."""
        if not rdd_ids:
            return
        for st in self.stages.values():
            if st.frontier & rdd_ids:
                st.payload = None

    def _forget_cache_loc(self, key: tuple[int, int]) -> None:
        self.cache_sizes.pop(key, None)
        if self.cache_locs.pop(key, None) is not None:
            self._invalidate_payloads({key[0]})

    def _shuffle_deps(self, rdd: RDD[Any]) -> list[ShuffleDependency]:
        """The shuffle dependencies reachable through narrow ones (stage boundaries)."""
        out: dict[int, ShuffleDependency] = {}
        seen: set[int] = set()
        stack = [rdd]
        while stack:
            r = stack.pop()
            if r._id in seen:
                continue
            seen.add(r._id)
            if self._fully_cached(r):
                continue  # fully cached: its parents are not needed
            for dep in r.dependencies():
                if isinstance(dep, ShuffleDependency):
                    out.setdefault(dep.shuffle_id, dep)
                else:
                    stack.append(dep.rdd)
        return list(out.values())

    def _result_job(self, stage: Stage) -> _Job:
        (jid,) = stage.jobs
        return self.jobs[jid]

    def _complete(self, stage: Stage) -> bool:
        if stage.is_result:
            job = self._result_job(stage)
            return len(job.results) == len(job.partitions)
        assert stage.shuffle_dep is not None
        return None not in self.map_outputs[stage.shuffle_dep.shuffle_id]

    def _missing_partitions(self, stage: Stage) -> list[int]:
        if stage.is_result:
            job = self._result_job(stage)
            return [p for p in job.partitions if p not in job.results]
        assert stage.shuffle_dep is not None
        outs = self.map_outputs[stage.shuffle_dep.shuffle_id]
        return [p for p, loc in enumerate(outs) if loc is None]

    def _available(self, stage: Stage) -> bool:
        return not stage.is_result and self._complete(stage)

    def _submit_stage(self, stage: Stage, actions: list[Any]) -> None:
        if stage in self.running or stage in self.waiting:
            return
        self._add_parents(stage)
        missing_parents = [p for p in stage.parents if not self._available(p)]
        if missing_parents:
            self.waiting.append(stage)
            for p in missing_parents:
                self._submit_stage(p, actions)
            return
        parts = self._missing_partitions(stage)
        if not parts:
            self._stage_done(stage, actions)
            return
        stage.attempt += 1
        prefs: dict[int, set[str]] = {}
        held: dict[int, set[str]] = {}
        for part in parts:
            cached, _, wanted = self._task_inputs(stage.rdd, part)
            on = {loc[0] for loc in cached.values()}
            if on:
                held[part] = on
            soft = {e for e in wanted if e in self.executors}
            if soft:
                prefs[part] = soft
        stage.tsm = TaskSetManager(
            stage.id,
            stage.attempt,
            parts,
            self.max_failures,
            prefs,
            self.speculation,
            max((ex.slots for ex in self.executors.values()), default=1),
            held,
            self.locality_wait,
        )
        self.running.append(stage)

    def _task_inputs(
        self, rdd: RDD[Any], partition: int
    ) -> tuple[dict[tuple[int, int], Location], dict[tuple[int, int], Any], list[str]]:
        """What a task reads besides shuffles, walking its narrow lineage.

        Returns the known locations of the cached partitions it may read, the driver-held
        partition data (parallelized collections) it needs (that data travels with the task,
        so each worker receives only the partitions it computes), and the executors where
        other input already lives (received blocks).
        """
        cached: dict[tuple[int, int], Location] = {}
        data: dict[tuple[int, int], Any] = {}
        wanted: list[str] = []
        stack = [(rdd, partition)]
        seen: set[tuple[int, int]] = set()
        while stack:
            r, p = stack.pop()
            key = (r._id, p)
            if key in seen:
                continue
            seen.add(key)
            if r._storage_level is not None and key in self.cache_locs:
                cached[key] = self.cache_locs[key]
                continue
            if r.ships_partition_data and r._checkpoint_rdd is None:
                data[key] = r.partition_data(p)
            wanted.extend(r.preferred_executors(p))
            for dep in r.dependencies():
                if not isinstance(dep, ShuffleDependency):
                    stack.extend((dep.rdd, q) for q in dep.get_parents(p))  # type: ignore[attr-defined]
        return cached, data, wanted

    # -- launching -----------------------------------------------------------------------------
    def _launch(self, actions: list[Any], now: float) -> None:
        if not self.running:
            return
        usable = {e for e, x in self.executors.items() if x.responsive}
        in_flight: dict[int, int] = {}
        for st, _, _ in self.tasks.values():
            in_flight[st.id] = in_flight.get(st.id, 0) + 1
        progress = True
        while progress:
            progress = False
            ready = [st for st in self.running if st.tsm is not None and st.tsm.has_work()]
            if not ready:
                break
            # one task per decision: the order changes with every launch (FAIR pools)
            order = order_stages(ready, lambda st: in_flight.get(st.id, 0), self.pools, self.mode)
            # the idlest executors first: a retried or recomputed task goes to a free worker
            # (for example a replacement that just joined) rather than queueing behind a busy one
            for eid, ex in sorted(self.executors.items(), key=lambda kv: -kv[1].free):
                if ex.free <= 0 or not ex.responsive:
                    continue
                for stage in order:
                    tsm = stage.tsm
                    assert tsm is not None
                    tid = next(self._task_ids)
                    offer = tsm.offer(eid, tid, now, usable)
                    if offer is None:
                        continue
                    ex.free -= 1
                    self.tasks[tid] = (stage, tsm, eid)
                    in_flight[stage.id] = in_flight.get(stage.id, 0) + 1
                    actions.append(Launch(eid, self._spec(stage, tid, offer), stage))
                    progress = True
                    break
                if progress:
                    break
        self._rebalance(actions)

    def _rebalance(self, actions: list[Any]) -> None:
        """Move a task that waits behind another one to an idle executor.

        Executors run their tasks in launch order, so with two slots a task can wait behind a
        long one while another executor (say, a replacement that just joined) sits idle. When
        nothing else is pending, the youngest such queued task is revoked: its executor
        withdraws it if it has not started, and the partition becomes pending again, so the
        idle executor takes it. A task that already started is left alone.
        """
        if not any(ex.free == ex.slots and ex.responsive for ex in self.executors.values()):
            return
        if any(st.tsm is not None and st.tsm.pending for st in self.running):
            return
        queued = []
        by_executor: dict[str, list[int]] = {}
        for tid, (_, _, eid) in self.tasks.items():
            by_executor.setdefault(eid, []).append(tid)
        for eid, tids in by_executor.items():
            ex = self.executors.get(eid)
            if ex is None or not ex.responsive:
                continue  # it would not answer; its queued tasks already have copies
            queued += [(tid, eid) for tid in sorted(tids)[1:] if tid not in self._revoking]
        for tid, eid in sorted(queued, reverse=True):
            stage, tsm, _ = self.tasks[tid]
            if stage in self.running and not tsm.zombie and tid in tsm.running:
                self._revoking.add(tid)
                actions.append(KillTask(eid, tid, only_if_queued=True))
                return

    def _spec(self, stage: Stage, tid: int, offer: Any) -> TaskSpec:
        locs: dict[int, list[Location]] = {}
        for sid in stage.shuffle_reads:
            outs = self.map_outputs[sid]
            locs[sid] = [loc for loc in outs if loc is not None]
            assert len(locs[sid]) == len(outs), "a stage launched before its parents finished"
        cached, data, _ = self._task_inputs(stage.rdd, offer.partition)
        return TaskSpec(
            task_id=tid,
            stage_id=stage.id,
            stage_attempt=stage.attempt,
            partition=offer.partition,
            attempt=offer.attempt,
            shuffle_id=None if stage.shuffle_dep is None else stage.shuffle_dep.shuffle_id,
            speculative=offer.speculative,
            map_locations=locs,
            block_locations=cached,
            partition_data=data,
        )

    # -- outcomes ------------------------------------------------------------------------------
    def _release(self, task_id: int, now: float) -> tuple[Stage, TaskSetManager, str] | None:
        entry = self.tasks.pop(task_id, None)
        self._revoking.discard(task_id)
        if entry is not None:
            eid = entry[2]
            ex = self.executors.get(eid)
            if ex is not None:
                ex.free += 1
            # executors run their tasks in launch order: the next one queued there starts now
            queued = [t for t, (_, _, e) in self.tasks.items() if e == eid]
            if queued:
                _, tsm, _ = self.tasks[min(queued)]
                rt = tsm.running.get(min(queued))
                if rt is not None and rt.start < now:
                    rt.start = now
        return entry

    def _record_cached(
        self, cached: list[tuple[int, int, int, int]], uncached: list[tuple[int, int]], eid: str
    ) -> None:
        for key in uncached:  # dropped from that executor's memory to make room
            loc = self.cache_locs.get(key)
            if loc is not None and loc[0] == eid:
                self._forget_cache_loc(key)
        ex = self.executors.get(eid)
        if ex is not None:
            for rdd_id, split, records, size in cached:
                self.cache_locs[(rdd_id, split)] = (eid, ex.address)
                self.cache_sizes[(rdd_id, split)] = (records, size)

    def cached_size(self, rdd_id: int, num_partitions: int) -> tuple[int, int, int]:
        """``(records, bytes, partitions)`` of the cached partitions of RDD ``rdd_id``.

        Safe to call from any thread: it only reads single entries.
        """
        records = size = parts = 0
        for split in range(num_partitions):
            got = self.cache_sizes.get((rdd_id, split))
            if got is not None:
                records, size, parts = records + got[0], size + got[1], parts + 1
        return records, size, parts

    def _on_finished(self, res: TaskResult, now: float, actions: list[Any]) -> None:
        entry = self._release(res.task_id, now)
        self._record_cached(res.cached, res.uncached, res.executor_id)
        if entry is None:
            return
        stage, tsm, eid = entry
        if stage.id not in self.stages:
            return
        part = tsm.on_success(res.task_id, now)
        if part is None or eid not in self.executors:
            return
        for other in tsm.copies.get(part, ()):
            actions.append(KillTask(self.tasks[other][2], other))
        if stage.is_result:
            job = self._result_job(stage)
            if part in job.results:
                return
            job.results[part] = res.value
        else:
            assert stage.shuffle_dep is not None
            outs = self.map_outputs[stage.shuffle_dep.shuffle_id]
            if outs[part] is not None:
                return
            outs[part] = (eid, self.executors[eid].address)
        if res.accumulators:
            actions.append(MergeAccumulators(res.accumulators))
        if self._complete(stage):
            self._stage_done(stage, actions)

    def _stage_done(self, stage: Stage, actions: list[Any]) -> None:
        if stage in self.running:
            self.running.remove(stage)
        if stage.tsm is not None:
            stage.tsm.zombie = True
        if not self._complete(stage):
            self._submit_stage(stage, actions)  # outputs were lost meanwhile: run them again
            return
        if stage in self.waiting:
            self.waiting.remove(stage)
        if stage.is_result:
            job = self._result_job(stage)
            results = [job.results[p] for p in job.partitions]
            # the losing copy of the last task may already have its KillTask in ``actions``
            actions.extend(k for k in self._finish_job(job.id) if k not in actions)
            actions.append(JobSucceeded(results, job.id))
            return
        for w in list(self.waiting):
            if all(self._available(p) for p in w.parents):
                self.waiting.remove(w)
                self._submit_stage(w, actions)

    def _on_failed(self, err: TaskError, now: float, actions: list[Any]) -> None:
        entry = self._release(err.task_id, now)
        self._record_cached(err.cached, err.uncached, err.executor_id)
        if entry is None:
            return
        stage, tsm, _ = entry
        if stage.id not in self.stages:
            return
        if err.killed:
            tsm.on_failure(err.task_id, counts=False, withdrawn=err.withdrawn)
            return
        if err.fetch_failed is not None:
            tsm.on_failure(err.task_id, counts=False)
            self._on_fetch_failed(stage, err.fetch_failed, actions)
            return
        if err.missing_block is not None:
            tsm.on_failure(err.task_id, counts=False)
            self._on_missing_block(stage, err.missing_block, actions)
            return
        if err.corrupt_checkpoint is not None and self._recompute_checkpointed(
            err.corrupt_checkpoint[0]
        ):
            tsm.on_failure(err.task_id, counts=False)
            self._requeue_readers(actions)
            return
        part, abort = tsm.on_failure(err.task_id, counts=True)
        if abort:
            self._fail_stage(stage, _task_failed_error(stage, part, tsm, err), actions)

    def _on_fetch_failed(self, stage: Stage, failed: tuple[str, int], actions: list[Any]) -> None:
        eid, shuffle_id = failed
        outs = self.map_outputs.get(shuffle_id)
        if outs is not None:
            for i, loc in enumerate(outs):
                if loc is not None and loc[0] == eid:
                    outs[i] = None
        n = self._fetch_failures.get(stage.id, 0) + 1
        self._fetch_failures[stage.id] = n
        if n > MAX_STAGE_ATTEMPTS:
            self._fail_stage(
                stage,
                JobAbortedError(f"{stage!r} failed to fetch shuffle {shuffle_id} {n} times"),
                actions,
            )
            return
        self._requeue_readers(actions)

    def _on_missing_block(self, stage: Stage, key: tuple[int, int], actions: list[Any]) -> None:
        """A cached partition a task expected is gone: recompute it from its lineage."""
        self._forget_cache_loc(key)
        n = self._missing_blocks.get(key, 0) + 1
        self._missing_blocks[key] = n
        if n > MAX_STAGE_ATTEMPTS:
            self._fail_stage(
                stage,
                JobAbortedError(
                    f"{stage!r} could not read cached partition {key[1]} of RDD {key[0]} {n} times"
                ),
                actions,
            )
            return
        self._requeue_readers(actions)

    def _recompute_checkpointed(self, rdd_id: int) -> bool:
        """A checkpoint file of ``rdd_id`` is unreadable: put its lineage back if it was kept.

        The RDD description changes (its dependencies return), so every stage is planned and
        encoded again; the partition is then recomputed like any lost one.
        """
        stack = [st.rdd for st in self.stages.values()]
        seen: set[int] = set()
        while stack:
            r = stack.pop()
            if r._id in seen:
                continue
            seen.add(r._id)
            if r._id == rdd_id:
                if not r._restore_lineage():
                    return False
                for st in self.stages.values():
                    st.payload = None
                return True
            stack.extend(d.rdd for d in r.dependencies())
        return False

    def launch_failed(self, task_ids: list[int], error: Exception) -> list[Any]:
        """Launches the runner could not carry out (the stage could not be encoded).

        Those tasks never reached an executor: their slots are free again at once, and the
        jobs of their stages fail with ``error``; attempts already running are killed.
        """
        stages: dict[int, Stage] = {}
        for tid in task_ids:
            entry = self.tasks.pop(tid, None)
            self._revoking.discard(tid)
            if entry is not None:
                stage, tsm, eid = entry
                tsm.on_failure(tid, counts=False, withdrawn=True)
                stages[stage.id] = stage
                ex = self.executors.get(eid)
                if ex is not None:
                    ex.free += 1
        actions: list[Any] = []
        for stage in stages.values():
            self._fail_stage(stage, error, actions)
        return self._note_kills(actions)

    def _requeue_readers(self, actions: list[Any]) -> None:
        """Park running stages whose shuffle inputs are incomplete; run the lost maps first."""
        for stage in list(self.running):
            self._add_parents(stage)  # lost cached partitions may need shuffles again
            if any(not self._available(p) for p in stage.parents):
                self.running.remove(stage)
                if stage.tsm is not None:
                    stage.tsm.zombie = True
                self._submit_stage(stage, actions)

    def _on_unresponsive(self, eid: str, actions: list[Any]) -> None:
        """An executor stopped answering: copy what waits on it, and offer it nothing.

        Its queued tasks have not started, so a copy on another executor is pure gain. The
        task it is running gets a copy only under speculation, as any straggler would.

        Under speculation, the map outputs it holds count as lost for the stages running now:
        their tasks would wait in fetches from it (a stopped process never answers), and so
        would any copy of them. Those tasks are killed, the maps run again elsewhere and the
        readers follow, as after a fetch failure. If the executor answers again, nothing is
        undone: its outputs were only recomputed.
        """
        ex = self.executors.get(eid)
        if ex is None or not ex.responsive:
            return
        ex.responsive = False
        mine = sorted(t for t, (_, _, e) in self.tasks.items() if e == eid)
        for i, tid in enumerate(mine):  # executors run their tasks in launch order
            stage, tsm, _ = self.tasks[tid]
            rt = tsm.running.get(tid)
            if stage not in self.running or rt is None:
                continue
            if i > 0 or self.speculation.enabled:
                tsm.make_speculatable(rt.partition)
        if self.speculation.enabled and self.jobs:
            self._route_around(eid, actions)

    def _route_around(self, eid: str, actions: list[Any]) -> None:
        """Recompute elsewhere the map outputs on ``eid`` of the current job's shuffles.

        Those of stages still running too: a map stage that finished a partition on ``eid``
        before it stopped would otherwise hand its readers a location they wait on forever.
        """
        touched = False
        for sid in self.shuffle_stages:
            outs = self.map_outputs.get(sid, [])
            for i, loc in enumerate(outs):
                if loc is not None and loc[0] == eid:
                    outs[i] = None
                    touched = True
        if not touched:
            return
        for stage in list(self.running):
            if not stage.is_result and stage.tsm is not None:
                stage.tsm.resubmit(self._missing_partitions(stage))
            if any(not self._available(p) for p in stage.parents):
                for tid, (st, _, e) in self.tasks.items():
                    if st is stage and e != eid:
                        actions.append(KillTask(e, tid))  # waiting in a fetch from ``eid``
        self._requeue_readers(actions)

    def _on_executor_lost(self, eid: str, reason: str, actions: list[Any]) -> None:
        self._reaped.discard(eid)
        if self.executors.pop(eid, None) is None:
            return
        for outs in self.map_outputs.values():
            for i, loc in enumerate(outs):
                if loc is not None and loc[0] == eid:
                    outs[i] = None
        for key in [k for k, loc in self.cache_locs.items() if loc[0] == eid]:
            self._forget_cache_loc(key)
        aborted: tuple[Stage, int | None, TaskSetManager] | None = None
        lost = sorted(t for t, (_, _, e) in self.tasks.items() if e == eid)
        for tid in lost:
            stage, tsm, _ = self.tasks.pop(tid)
            # The oldest task was the one running (executors run tasks in launch order); it
            # counts as failed, so a task that crashes its worker cannot retry forever. The
            # tasks queued behind it are not charged.
            part, abort = tsm.on_failure(tid, counts=tid == lost[0])
            if abort and aborted is None:
                aborted = (stage, part, tsm)
        if not self.jobs:
            return
        if aborted is not None:
            stage, part, tsm = aborted
            self._fail_stage(
                stage,
                JobAbortedError(
                    f"Job aborted due to stage failure: task {part} in stage {stage.id} failed "
                    f"{tsm.failures.get(part, 0) if part is not None else 0} times, most recent "
                    f"failure: executor {eid} was lost ({reason}). A task that kills its worker "
                    "process (os._exit, a crash, running out of memory) is retried up to "
                    "dstreams.task.maxFailures times."
                ),
                actions,
            )
        for stage in list(self.running):
            if not stage.is_result and stage.tsm is not None:
                stage.tsm.resubmit(self._missing_partitions(stage))
        self._requeue_readers(actions)

    def _on_cleanup(self, ev: Cleanup, actions: list[Any]) -> None:
        if ev.kind == "shuffle":
            self.map_outputs.pop(ev.ident, None)
        elif ev.kind == "rdd":
            for key in [k for k in self.cache_locs if k[0] == ev.ident]:
                self._forget_cache_loc(key)
        actions.append(RemoveBlocks(ev.kind, ev.ident))

    def _fail_stage(self, stage: Stage, error: Exception, actions: list[Any]) -> None:
        """Fail every active job that needs ``stage`` (as Spark's abortStage)."""
        for jid in sorted(stage.jobs):
            if jid in self.jobs:
                self._fail_job(jid, error, actions)

    def _fail_job(self, job_id: int, error: Exception, actions: list[Any]) -> None:
        actions.extend(k for k in self._finish_job(job_id) if k not in actions)
        actions.append(JobFailed(error, job_id))

    def _finish_job(self, job_id: int) -> list[KillTask]:
        """End a job; drop the stages no other active job needs, and kill their attempts.

        Late results of killed attempts are released but ignored.
        """
        self.jobs.pop(job_id, None)
        dropped: set[int] = set()
        for st in list(self.stages.values()):
            st.jobs.discard(job_id)
            if st.jobs:
                continue
            dropped.add(st.id)
            del self.stages[st.id]
            self._fetch_failures.pop(st.id, None)
            if st.shuffle_dep is not None:
                self.shuffle_stages.pop(st.shuffle_dep.shuffle_id, None)
            if st in self.running:
                self.running.remove(st)
            if st in self.waiting:
                self.waiting.remove(st)
            if st.tsm is not None:
                st.tsm.zombie = True
        return [KillTask(eid, tid) for tid, (st, _, eid) in self.tasks.items() if st.id in dropped]

    # -- invariants ----------------------------------------------------------------------------
    def validate_state(self) -> None:
        for eid, ex in self.executors.items():
            in_flight = sum(1 for (_, _, e) in self.tasks.values() if e == eid)
            assert ex.free == ex.slots - in_flight, f"slot accounting broken on {eid}"
            assert 0 <= ex.free <= ex.slots
        for _, _, e in self.tasks.values():
            assert e in self.executors, "a task is tracked on a dead executor"
        for outs in self.map_outputs.values():
            for loc in outs:
                assert loc is None or loc[0] in self.executors, "map output on a dead executor"
        for loc in self.cache_locs.values():
            assert loc[0] in self.executors, "cached block on a dead executor"
        if not self.jobs:
            assert not self.running and not self.waiting and not self.stages
        for st in self.stages.values():
            assert st.jobs and st.jobs <= set(self.jobs), f"{st!r} serves no active job"
            for p in st.parents:
                assert st.jobs <= p.jobs, f"{p!r} does not serve the jobs of {st!r}"
        for st in self.running + self.waiting:
            assert st.id in self.stages, f"{st!r} is scheduled but not registered"
        for st in self.running:
            assert st not in self.waiting
            assert all(self._available(p) for p in st.parents), f"{st!r} runs before its parents"
            assert st.tsm is not None
            st.tsm.validate_state()


def _task_failed_error(
    stage: Stage, part: int | None, tsm: TaskSetManager, err: TaskError
) -> TaskFailedError:
    cause = None
    if err.exc_pickle is not None:
        try:
            import pickle

            cause = pickle.loads(err.exc_pickle)
        except Exception:  # noqa: BLE001 - an exception that cannot be rebuilt here
            cause = None
    n = tsm.failures.get(part, 0) if part is not None else 0
    msg = (
        f"Job aborted due to stage failure: task {part} in stage {stage.id} failed {n} times, "
        f"most recent failure on executor {err.executor_id}: {err.exc_type_name}: {err.message}"
    )
    return TaskFailedError(msg, err.exc_type_name, err.message, err.traceback, cause)
