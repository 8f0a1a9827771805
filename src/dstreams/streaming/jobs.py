"""JobGenerator and JobScheduler: turn batch times into jobs and run them in order.

* :class:`RecurringTimer` waits on the injected clock and only *posts*
  ``GenerateJobs(t)`` events; it never does work itself.
* :class:`JobGenerator` owns a closed set of events, handled one at a time on its
  event-loop thread: ``GenerateJobs(t)`` (allocate received blocks to the batch,
  ask the graph for jobs, submit the job set) and ``ClearMetadata(t)`` (after a
  batch completes: forget old RDDs and blocks, then mark the batch done, so
  whoever waits for a batch sees its cleanup finished too).  ``handle`` is the whole policy
  and can be driven directly in tests.
* :class:`JobScheduler` runs job sets on one job thread, in batch order
  (Spark's default ``concurrentJobs = 1``).  It posts the listener events, makes
  sure RDDs marked for checkpointing are materialised, and routes every job
  failure through :class:`ContextWaiter`, the one place ``awaitTermination``
  reads errors from.  A failed job fails its batch only; later batches go on.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dstreams.errors import JobCancelledError
from dstreams.events import Recovery, now_ms
from dstreams.streaming._util import Deadline
from dstreams.streaming.clock import ManualClock
from dstreams.streaming.listener import (
    BatchExtras,
    BatchInfo,
    OutputOperationInfo,
    StreamingListenerBatchCompleted,
    StreamingListenerBatchStarted,
    StreamingListenerBatchSubmitted,
    StreamingListenerOutputOperationCompleted,
    StreamingListenerOutputOperationStarted,
    StreamInputInfo,
)

if TYPE_CHECKING:
    from dstreams.streaming.context import StreamingContext
    from dstreams.streaming.graph import GeneratedJob

__all__ = [
    "ClearMetadata",
    "ContextWaiter",
    "GenerateJobs",
    "JobGenerator",
    "JobScheduler",
    "JobSet",
    "RecurringTimer",
]

_log = logging.getLogger(__name__)


class ContextWaiter:
    """Where stop and asynchronous errors meet ``awaitTermination``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._stopped = False

    def notify_error(self, error: BaseException) -> None:
        """Record ``error``; the next ``awaitTermination*`` raises it."""
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def notify_stop(self) -> None:
        """Record that the context stopped."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def wait_for_stop_or_error(self, timeout: float | None = None) -> bool:
        """Block until stop or error; raise the error; return whether stopped."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopped or self._error is not None, timeout)
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return self._stopped


class RecurringTimer:
    """Posts ``callback(t)`` at every multiple ``t`` of ``period`` on ``clock``."""

    def __init__(self, clock: Any, period_ms: int, callback: Any, name: str) -> None:
        self.clock, self.period, self.callback, self.name = clock, period_ms, callback, name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_time(self) -> int:
        """Return the first tick after now: the next multiple of the period."""
        return (self.clock.getTimeMillis() // self.period + 1) * self.period

    def start(self, first_ms: int) -> None:
        """Start ticking at ``first_ms``."""
        self._thread = threading.Thread(
            target=self._run, args=(first_ms,), name=self.name, daemon=True
        )
        self._thread.start()

    def _run(self, next_ms: int) -> None:
        while not self._stop.is_set():
            self.clock.waitTillTime(next_ms, self._stop)
            if self._stop.is_set():
                return
            self.callback(next_ms)
            next_ms += self.period

    def stop(self, timeout: float = 1.0) -> None:
        """Stop ticking (a tick in progress completes); wait at most ``timeout`` seconds."""
        self._stop.set()
        wake = getattr(self.clock, "wake", None)
        if wake is not None:
            wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)


@dataclass
class GenerateJobs:
    """Event: generate the jobs of batch ``time_ms``."""

    time_ms: int


@dataclass
class ClearMetadata:
    """Event: batch ``time_ms`` is done; forget what is no longer needed."""

    time_ms: int


_Event = GenerateJobs | ClearMetadata | None


@dataclass
class JobSet:
    """The jobs of one batch, with the batch's timings (ms; -1 = not yet)."""

    time_ms: int
    jobs: list[GeneratedJob]
    input_infos: dict[int, StreamInputInfo]
    submitted_ms: int = -1
    started_ms: int = -1
    ended_ms: int = -1
    outputs: dict[int, OutputOperationInfo] = field(default_factory=dict)
    extras: BatchExtras = field(default_factory=BatchExtras)

    def info(self) -> BatchInfo:
        """Return the listener view of this job set."""
        return BatchInfo(
            self.time_ms,
            self.input_infos,
            self.submitted_ms,
            self.started_ms,
            self.ended_ms,
            self.outputs,
            self.extras,
        )


class JobGenerator:
    """Generates one job set per batch time and cleans up after completed batches."""

    def __init__(self, ssc: StreamingContext) -> None:
        self.ssc = ssc
        self.timer = RecurringTimer(
            ssc._clock, ssc._batch_ms, self._post_generate, "JobGenerator-timer"
        )
        self._events: queue.Queue[_Event] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.last_generated_ms: int | None = None
        self._held: list[JobSet] = []  # generated, waiting for their checkpoint to be written
        #: batches a restart will run again that are not generated yet: still pending
        self._rerun: set[int] = set()

    def start(self, first_ms: int) -> None:
        """Start the event loop, then the timer (first batch at ``first_ms``)."""
        self._thread = threading.Thread(target=self._loop, name="JobGenerator", daemon=True)
        self._thread.start()
        self.timer.start(first_ms)

    def _post_generate(self, time_ms: int) -> None:
        self._events.put(GenerateJobs(time_ms))

    def on_batch_completion(self, time_ms: int) -> None:
        """Called by the scheduler when batch ``time_ms`` finished."""
        self._events.put(ClearMetadata(time_ms))

    def _loop(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            try:
                self.handle(event)
            except Exception as e:  # noqa: BLE001 - reported through the waiter
                self.ssc._scheduler.report_error(f"Error handling {event}", e)

    def handle(self, event: GenerateJobs | ClearMetadata) -> None:
        """Apply one event (the generator's whole policy)."""
        if isinstance(event, GenerateJobs):
            self._generate(event.time_ms)
        elif isinstance(event, ClearMetadata):
            try:
                self._complete(event.time_ms)
            finally:
                self.ssc._scheduler.mark_done(event.time_ms)
        else:  # pragma: no cover - closed event set
            raise TypeError(f"unknown JobGenerator event {event!r}")

    def _generate(self, time_ms: int) -> None:
        ssc = self.ssc
        # first: a graceful stop waits for this batch. A re-run batch may be older than the
        # newest one generated before the restart, which stays the newest
        self.last_generated_ms = max(self.last_generated_ms or time_ms, time_ms)
        self._rerun.discard(time_ms)
        ssc._receiver_tracker.allocate_blocks_to_batch(time_ms)
        try:
            jobs = ssc._graph.generate_jobs(time_ms)
        except Exception as e:  # noqa: BLE001 - a user function failed while building RDDs
            ssc._scheduler.report_error(f"Error generating jobs for time {time_ms} ms", e)
            self._submit(JobSet(time_ms, [], {}))  # completes in batch order
            return
        infos = {}
        for inp in ssc._graph.inputs:
            info = inp._input_info(time_ms)
            if info is not None:
                infos[inp.id] = info
        self._submit(JobSet(time_ms, jobs, infos))

    def _submit(self, job_set: JobSet) -> None:
        """Submit once the batch's plan is durable (its generation checkpoint is written).

        A checkpoint that cannot be written (a full disk) holds the batch back: running its
        output without a durable plan could not be repeated exactly after a crash. The error
        goes to ``awaitTermination``; the next batch tries again, with this one still pending.
        """
        ck = self.ssc._checkpointer
        if ck is None:
            self.ssc._scheduler.submit(job_set)
            return
        self._held.append(job_set)
        pending = self._pending()
        try:
            ck.write(job_set.time_ms, pending, self.last_generated_ms)
        except OSError as e:
            self.ssc._scheduler.report_error(
                f"Batch {job_set.time_ms} ms waits: its metadata checkpoint failed", e
            )
            return
        held, self._held = self._held, []
        for js in held:
            self.ssc._scheduler.submit(js)

    def _pending(self) -> list[int]:
        """Every batch generated, or due to run again, that has not completed."""
        pending = set(self.ssc._scheduler.pending_times())
        pending.update(j.time_ms for j in self._held)
        pending.update(self._rerun)
        return sorted(pending)

    def _complete(self, time_ms: int) -> None:
        """After batch ``time_ms``: forget old RDDs, record state checkpoints, checkpoint."""
        ssc = self.ssc
        ssc._graph.clear_metadata(time_ms)
        ssc._graph.record_checkpoints(time_ms)
        ck = ssc._checkpointer
        if ck is None:
            return
        pending = [t for t in self._pending() if t != time_ms]
        try:
            ck.write(time_ms, pending, self.last_generated_ms)
        except OSError as e:
            ssc._scheduler.report_error(f"The checkpoint after batch {time_ms} ms failed", e)
            return
        ssc._receiver_tracker.clean_write_ahead_logs()

    # -- recovery -------------------------------------------------------------------------------
    def restart_time(self, cp: Any) -> int:
        """The first batch time after a restart: the next one after now (and after ``cp``)."""
        graph, batch, clock = self.ssc._graph, self.ssc._batch_ms, self.ssc._clock
        zero = graph.zero_ms
        assert zero is not None
        last = cp.last_generated_ms if cp.last_generated_ms is not None else zero
        if isinstance(clock, ManualClock) and clock.getTimeMillis() < last:
            clock.setTime(last)  # as Spark: a manual clock resumes at the checkpoint
        now = clock.getTimeMillis()
        return max(zero + ((now - zero) // batch + 1) * batch, last + batch)

    def restart(self, cp: Any, restart_ms: int) -> None:
        """Re-run the pending and down-time batches in order, then go on from ``restart_ms``."""
        batch = self.ssc._batch_ms
        zero = self.ssc._graph.zero_ms
        assert zero is not None
        last = cp.last_generated_ms if cp.last_generated_ms is not None else zero
        down = list(range(last + batch, restart_ms, batch))
        times = sorted({t for t in [*cp.pending, *down] if t < restart_ms})
        _log.warning(
            "restarting: %d pending and %d down-time batches to run (%s)",
            len(cp.pending),
            len(down),
            ", ".join(str(t) for t in times[:10]) + (" ..." if len(times) > 10 else ""),
        )
        # until they are generated again, the re-runs stay pending in every checkpoint written
        # meanwhile, and the newest batch generated stays the checkpoint's: a crash during the
        # re-runs must find all of them again, each with its recorded plan
        self.last_generated_ms = cp.last_generated_ms
        self._rerun = set(times)
        self.ssc._sc._runner.bus.post(
            Recovery(
                now_ms(), cp.last_generated_ms if cp.last_generated_ms is not None else -1, times
            )
        )
        self._thread = threading.Thread(target=self._loop, name="JobGenerator", daemon=True)
        self._thread.start()
        if times:
            # rebuild the batches between the restored state and the first re-run in order,
            # so each state RDD finds its predecessor memoised instead of recursing
            oldest = min(
                (t for s in self.ssc._graph._all_streams() for t in s._ckpt_rdds),
                default=times[0],
            )
            for t in range(oldest + batch, times[0], batch):
                self.ssc._graph.generate_rdds(t)
        for t in times:
            self._events.put(GenerateJobs(t))
        self.timer.start(restart_ms)

    def stop_timer(self, timeout: float = 1.0) -> None:
        """Stop generating batches (the events already posted are still handled)."""
        self.timer.stop(timeout)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the timer, then the event loop after the events already posted.

        Waits at most ``timeout`` seconds: a user function running in the event loop (a
        ``transform`` that blocks) is left to finish on its own.
        """
        deadline = Deadline(timeout)
        self.timer.stop(deadline.left())
        self._events.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(deadline.left())

    def is_idle(self) -> bool:
        """Return True when no event is waiting."""
        return self._events.empty()


class JobScheduler:
    """Runs job sets one at a time, in batch order, on the job thread."""

    def __init__(self, ssc: StreamingContext) -> None:
        self.ssc = ssc
        self._queue: queue.Queue[JobSet | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._done_ms: int | None = None
        self._pending: set[int] = set()
        self._running = False
        self._drop = False  # set by a non-graceful stop: run nothing more

    def start(self) -> None:
        """Start the job thread."""
        self._thread = threading.Thread(target=self._loop, name="JobScheduler", daemon=True)
        self._thread.start()

    def report_error(self, message: str, error: BaseException) -> None:
        """Route an asynchronous failure to ``awaitTermination``."""
        _log.error("%s: %r", message, error)
        self.ssc._waiter.notify_error(error)

    def submit(self, job_set: JobSet) -> None:
        """Queue ``job_set`` (an empty one completes at once, without listener events)."""
        with self._cond:
            self._pending.add(job_set.time_ms)
        if not job_set.jobs:
            self._queue.put(job_set)  # keeps completion in batch order
            return
        job_set.submitted_ms = self.ssc._clock.getTimeMillis()
        self.ssc._bus.post(StreamingListenerBatchSubmitted(job_set.info()))
        self._queue.put(job_set)

    def _loop(self) -> None:
        while True:
            job_set = self._queue.get()
            if job_set is None:
                return
            with self._cond:
                self._running = True
            try:
                if not self._drop:
                    self._run(job_set)
            finally:
                with self._cond:
                    self._running = False
            # The generator cleans up, then marks the batch done (see JobGenerator.handle).
            self.ssc._generator.on_batch_completion(job_set.time_ms)

    def _run(self, job_set: JobSet) -> None:
        if not job_set.jobs:
            return
        clock, bus = self.ssc._clock, self.ssc._bus
        job_set.started_ms = clock.getTimeMillis()
        bus.post(StreamingListenerBatchStarted(job_set.info()))
        for job in job_set.jobs:
            if self._drop:
                return  # stopping: the batch's remaining output operations do not run
            self._run_job(job_set, job)
        if self._drop:
            return
        self._checkpoint(job_set.time_ms)
        letters = self.ssc._letters
        skipped = 0
        if letters is not None:
            skipped = letters.skipped_in_batch(job_set.time_ms)
            letters.forget_before(job_set.time_ms)
        state = self.ssc._graph.state_sizes(job_set.time_ms, self.ssc._sc._runner)
        late, marks = self.ssc._graph.event_time_report(job_set.time_ms)
        if skipped or state or marks:
            job_set.extras = BatchExtras(skipped, state, late, marks)
        job_set.ended_ms = clock.getTimeMillis()
        bus.post(StreamingListenerBatchCompleted(job_set.info()))

    def _run_job(self, job_set: JobSet, job: GeneratedJob) -> None:
        clock, bus = self.ssc._clock, self.ssc._bus
        info = OutputOperationInfo(
            job.time_ms, job.output_id, job.name, job.name, clock.getTimeMillis()
        )
        job_set.outputs[job.output_id] = info
        bus.post(StreamingListenerOutputOperationStarted(info))
        failure = None
        sc = self.ssc._sc
        props = {
            "spark.streaming.internal.batchTime": str(job.time_ms),
            "spark.streaming.internal.outputOpId": str(job.output_id),
            "spark.job.description": (
                f"Streaming job from [output operation {job.output_id}, batch time {job.time_ms}]"
            ),
        }
        for k, v in props.items():
            sc.setLocalProperty(k, v)
        try:
            job.func()
        except Exception as e:  # noqa: BLE001 - fails this batch only
            failure = f"{type(e).__name__}: {e}"
            if self._drop and isinstance(e, JobCancelledError):
                _log.info("job %s was cancelled by stop()", job)  # asked for: not an error
            else:
                self.report_error(f"Error running job {job}", e)
        info = OutputOperationInfo(
            job.time_ms,
            job.output_id,
            job.name,
            job.name,
            info.startTime(),
            clock.getTimeMillis(),
            failure,
        )
        job_set.outputs[job.output_id] = info
        bus.post(StreamingListenerOutputOperationCompleted(info))

    def _checkpoint(self, time_ms: int) -> None:
        for rdd in self.ssc._graph.take_checkpoint_marks(time_ms):
            try:
                if rdd._checkpoint_requested and not rdd.isCheckpointed():
                    rdd.count()  # materialises the checkpoint of an RDD marked before its job
            except Exception as e:  # noqa: BLE001
                self.report_error(f"Error checkpointing state RDD of batch {time_ms} ms", e)

    def mark_done(self, time_ms: int) -> None:
        """Record batch ``time_ms`` as finished and wake waiters."""
        with self._cond:
            self._pending.discard(time_ms)
            if self._done_ms is None or time_ms > self._done_ms:
                self._done_ms = time_ms
            self._cond.notify_all()

    def wait_for_batch(self, time_ms: int, timeout: float | None = 30.0) -> bool:
        """Block until batch ``time_ms`` finished; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._done_ms is not None and self._done_ms >= time_ms, timeout
            )

    def is_idle(self) -> bool:
        """Return True when no job set is queued or running."""
        with self._cond:
            return self._queue.empty() and not self._running

    def pending_times(self) -> list[int]:
        """Batches submitted and not completed (for the metadata checkpoint)."""
        with self._cond:
            return sorted(self._pending)

    def stop(self, drop_pending: bool, timeout: float = 1.0) -> None:
        """Stop the job thread; wait at most ``timeout`` seconds for it.

        With ``drop_pending`` the running job is cancelled (its tasks are killed) and queued
        batches are dropped; otherwise the queued batches run first. A driver-side function
        that never returns (a blocked ``foreachRDD``) cannot be interrupted: the thread is
        left behind, and its batch never completes.
        """
        if drop_pending:
            self._drop = True
            self.ssc._sc._runner.cancel_all("the StreamingContext was stopped")
        self._queue.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
