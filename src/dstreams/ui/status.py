"""StatusStore: the application's state as the UI shows it, built from events alone.

As Spark's ``AppStatusStore``, it is a listener on the application's event bus
(``dstreams/events.py``) and nothing else: the live UI, the REST API, the Prometheus metrics and
the terminal status read it; the history server fills one from an event log. It keeps the last
``retained_batches`` batches (Spark's ``spark.streaming.ui.retainedBatches``, 1000), jobs and
stages (``spark.ui.retainedJobs`` / ``retainedStages``, 1000) and tasks per stage; counters
(batches completed, records, failed and speculative tasks, recomputed partitions) and the
delay histograms count every batch since the start, retained or not.

Readers hold :attr:`lock` while they read (one short critical section per request).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from dstreams import events as ev

__all__ = ["DELAY_BUCKETS_S", "Histogram", "StatusStore"]

#: bucket bounds (seconds) of the delay and processing-time histograms
DELAY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class Histogram:
    """Cumulative counts per bucket bound, plus the sum (Prometheus' shape)."""

    bounds: tuple[float, ...] = DELAY_BUCKETS_S
    counts: list[int] = field(default_factory=lambda: [0] * (len(DELAY_BUCKETS_S) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1


class StatusStore:
    """Listener that keeps what the UI shows; see the module docstring."""

    def __init__(
        self,
        retained_batches: int = 1000,
        retained_jobs: int = 1000,
        retained_stages: int = 1000,
        retained_tasks: int = 1000,
        live: bool = True,
    ) -> None:
        self.lock = threading.RLock()
        self.live = live
        self.retained_batches = retained_batches
        self.retained_jobs = retained_jobs
        self.retained_stages = retained_stages
        self.retained_tasks = retained_tasks
        self.app: dict[str, Any] = {"id": "", "name": "", "start": -1, "end": -1, "conf": []}
        self.executors: dict[str, dict[str, Any]] = {}
        self.jobs: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.stages: OrderedDict[tuple[int, int], dict[str, Any]] = OrderedDict()
        self.batches: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.receivers: dict[int, dict[str, Any]] = {}
        self.markers: list[dict[str, Any]] = []
        self.streaming: dict[str, Any] = {"started": -1, "batch_duration": -1}
        self.counters: dict[str, int] = {
            "batches_completed": 0,
            "records_received": 0,
            "records_processed": 0,
            "tasks_failed": 0,
            "tasks_speculative": 0,
            "partitions_recomputed": 0,
            "events_dropped": 0,
            "receiver_restarts": 0,
            "executors_lost": 0,
            "recoveries": 0,
        }
        self.scheduling_delay = Histogram()
        self.processing_time = Histogram()
        self.total_delay = Histogram()
        self.records_per_batch = Histogram(
            bounds=(10, 100, 1e3, 1e4, 1e5, 1e6, 1e7),
            counts=[0] * 8,
        )
        self.rates: dict[int, float] = {}  # stream id -> backpressure rate (records/s)
        self.checkpoint: dict[str, Any] = {"count": 0, "last_ms": -1.0, "last_bytes": -1}
        self.last_event_time = -1

    # -- the listener --------------------------------------------------------------------------
    def on_event(self, e: ev.Event) -> None:
        handler = _HANDLERS.get(type(e))
        with self.lock:
            self.last_event_time = e.time
            if handler is not None:
                handler(self, e)

    def _marker(self, t: int, kind: str, text: str) -> None:
        self.markers.append({"time": t, "kind": kind, "text": text})
        if len(self.markers) > 1000:
            del self.markers[: len(self.markers) - 1000]

    def _app_start(self, e: ev.AppStart) -> None:
        self.app.update(
            id=e.app_id,
            name=e.app_name,
            start=e.time,
            master=e.master,
            user=e.user,
            version=e.version,
            conf=e.conf,
        )

    def _app_end(self, e: ev.AppEnd) -> None:
        self.app["end"] = e.time

    def _executor_added(self, e: ev.ExecutorAdded) -> None:
        self.executors[e.executor_id] = {
            "id": e.executor_id,
            "host": e.host,
            "cores": e.cores,
            "added": e.time,
            "removed": -1,
            "reason": "",
            "active": True,
            "responsive": True,
            "activeTasks": 0,
            "completedTasks": 0,
            "failedTasks": 0,
            "killedTasks": 0,
            "taskTime": 0.0,
            "memoryUsed": 0,
            "blocks": 0,
        }

    def _executor(self, eid: str) -> dict[str, Any]:
        x = self.executors.get(eid)
        if x is None:  # a task event before the add (an event log that starts late)
            self._executor_added(ev.ExecutorAdded(-1, eid, "", 1))
            x = self.executors[eid]
        return x

    def _executor_removed(self, e: ev.ExecutorRemoved) -> None:
        x = self._executor(e.executor_id)
        x.update(active=False, removed=e.time, reason=e.reason, activeTasks=0)
        self.counters["executors_lost"] += 1
        self._marker(e.time, "executor-lost", f"executor {e.executor_id} lost: {e.reason}")

    def _executor_responsive(self, e: ev.ExecutorResponsive) -> None:
        self._executor(e.executor_id)["responsive"] = e.responsive

    def _executor_metrics(self, e: ev.ExecutorMetrics) -> None:
        self._executor(e.executor_id).update(memoryUsed=e.memory_used, blocks=e.blocks)

    def _job_start(self, e: ev.JobStart) -> None:
        self.jobs[e.job_id] = {
            "jobId": e.job_id,
            "name": e.description or f"job {e.job_id}",
            "description": e.description,
            "submissionTime": e.time,
            "completionTime": -1,
            "status": "RUNNING",
            "stageIds": [],
            "numTasks": 0,
            "numActiveTasks": 0,
            "numCompletedTasks": 0,
            "numFailedTasks": 0,
            "numKilledTasks": 0,
            "batchTime": e.batch_time,
            "outputOpId": e.output_op_id,
            "error": "",
        }
        if e.batch_time >= 0:
            b = self.batches.get(e.batch_time)
            if b is not None:
                b["jobs"].append(e.job_id)
        while len(self.jobs) > self.retained_jobs:
            self.jobs.popitem(last=False)

    def _job_end(self, e: ev.JobEnd) -> None:
        j = self.jobs.get(e.job_id)
        if j is not None:
            j.update(
                completionTime=e.time,
                status="SUCCEEDED" if e.succeeded else "FAILED",
                error=e.error,
                numActiveTasks=0,
            )

    def _stage_submitted(self, e: ev.StageSubmitted) -> None:
        self.stages[(e.stage_id, e.attempt)] = {
            "stageId": e.stage_id,
            "attemptId": e.attempt,
            "name": e.name,
            "jobId": e.job_id,
            "numTasks": e.num_tasks,
            "status": "ACTIVE",
            "submissionTime": e.time,
            "completionTime": -1,
            "failureReason": "",
            "shuffleMap": e.shuffle_map,
            "numActiveTasks": 0,
            "numCompleteTasks": 0,
            "numFailedTasks": 0,
            "numKilledTasks": 0,
            "executorRunTime": 0.0,
            "tasks": OrderedDict(),
        }
        j = self.jobs.get(e.job_id)
        if j is not None and e.attempt == 0:  # as Spark: a retried attempt adds no tasks
            j["stageIds"].append(e.stage_id)
            j["numTasks"] += e.num_tasks
        while len(self.stages) > self.retained_stages:
            self.stages.popitem(last=False)

    def _stage_completed(self, e: ev.StageCompleted) -> None:
        s = self.stages.get((e.stage_id, e.attempt))
        if s is not None and s["status"] == "ACTIVE":
            failed = bool(e.failure) and e.failure != "superseded"
            s.update(
                completionTime=e.time,
                failureReason=e.failure,
                status="FAILED" if failed else "COMPLETE",
                numActiveTasks=0,
            )

    def _task_start(self, e: ev.TaskStart) -> None:
        if e.speculative:
            self.counters["tasks_speculative"] += 1
            self._marker(
                e.time,
                "speculation",
                f"task {e.partition} of stage {e.stage_id} copied to {e.executor_id}",
            )
        if e.recomputed:
            self.counters["partitions_recomputed"] += 1
        self._executor(e.executor_id)["activeTasks"] += 1
        s = self.stages.get((e.stage_id, e.stage_attempt))
        if s is None:
            return
        s["numActiveTasks"] += 1
        j = self.jobs.get(s["jobId"])
        if j is not None:
            j["numActiveTasks"] += 1
        tasks = s["tasks"]
        tasks[e.task_id] = {
            "taskId": e.task_id,
            "index": e.partition,
            "attempt": e.attempt,
            "launchTime": e.time,
            "duration": -1,
            "executorId": e.executor_id,
            "status": "RUNNING",
            "speculative": e.speculative,
            "recomputed": e.recomputed,
            "errorMessage": "",
        }
        if len(tasks) > self.retained_tasks:
            tasks.popitem(last=False)

    def _task_end(self, e: ev.TaskEnd) -> None:
        x = self._executor(e.executor_id)
        x["activeTasks"] = max(0, x["activeTasks"] - 1)
        key = {"SUCCESS": "completedTasks", "FAILED": "failedTasks"}.get(e.status, "killedTasks")
        x[key] += 1
        x["taskTime"] += e.run_ms
        if e.status == "FAILED":
            self.counters["tasks_failed"] += 1
        s = self.stages.get((e.stage_id, e.stage_attempt))
        if s is None:
            return
        s["numActiveTasks"] = max(0, s["numActiveTasks"] - 1)
        skey = {"SUCCESS": "numCompleteTasks", "FAILED": "numFailedTasks"}.get(
            e.status, "numKilledTasks"
        )
        s[skey] += 1
        s["executorRunTime"] += e.run_ms
        j = self.jobs.get(s["jobId"])
        if j is not None:
            j["numActiveTasks"] = max(0, j["numActiveTasks"] - 1)
            jkey = {"SUCCESS": "numCompletedTasks", "FAILED": "numFailedTasks"}.get(
                e.status, "numKilledTasks"
            )
            j[jkey] += 1
        t = s["tasks"].get(e.task_id)
        if t is not None:
            t.update(
                duration=e.time - t["launchTime"],
                status=e.status,
                errorMessage=e.reason,
                executorRunTime=e.run_ms,
            )

    def _streaming_started(self, e: ev.StreamingStarted) -> None:
        self.streaming.update(started=e.time, batch_duration=e.batch_duration)

    def _batch(self, e: ev._Batch, status: str) -> dict[str, Any]:
        b = self.batches.get(e.batch_time)
        if b is None:
            b = self.batches[e.batch_time] = {"batchTime": e.batch_time, "jobs": []}
            while len(self.batches) > self.retained_batches:
                self.batches.popitem(last=False)
        b.update(
            status=status,
            submissionTime=e.submission_time,
            processingStartTime=e.processing_start,
            processingEndTime=e.processing_end,
            records=dict(e.records),
            metadata=dict(e.metadata),
            outputs=dict(e.outputs),
            state=dict(e.state),
            numRecords=sum(e.records.values()),
        )
        return b

    def _batch_submitted(self, e: ev.BatchSubmitted) -> None:
        b = self._batch(e, "QUEUED")
        self.counters["records_received"] += b["numRecords"]

    def _batch_started(self, e: ev.BatchStarted) -> None:
        self._batch(e, "PROCESSING")

    def _batch_completed(self, e: ev.BatchCompleted) -> None:
        failed = any(o.get("failure") for o in e.outputs.values())
        b = self._batch(e, "FAILED" if failed else "COMPLETED")
        b["completedAt"] = e.time  # wall clock: where the UI's markers fall
        self.counters["batches_completed"] += 1
        self.counters["records_processed"] += b["numRecords"]
        if e.processing_start >= 0:
            self.scheduling_delay.observe((e.processing_start - e.submission_time) / 1000.0)
            if e.processing_end >= 0:
                self.processing_time.observe((e.processing_end - e.processing_start) / 1000.0)
                self.total_delay.observe((e.processing_end - e.batch_time) / 1000.0)
        self.records_per_batch.observe(b["numRecords"])
        for sid, n in e.records.items():
            r = self.receivers.get(sid)
            if r is not None:
                r["records"] += n

    def _output(self, e: ev._Output) -> None:
        b = self.batches.get(e.batch_time)
        if b is not None:
            b.setdefault("outputs", {})[e.output_op_id] = {
                "name": e.name,
                "description": e.name,
                "start": e.start,
                "end": e.end,
                "failure": e.failure,
            }

    def _receiver(self, e: ev._Receiver, kind: str) -> None:
        r = self.receivers.get(e.stream_id)
        if r is None:
            r = self.receivers[e.stream_id] = {"streamId": e.stream_id, "starts": 0, "records": 0}
        if kind == "started":
            r["starts"] += 1
            if r["starts"] > 1:
                self.counters["receiver_restarts"] += 1
                self._marker(
                    e.time,
                    "receiver-restart",
                    f"receiver {e.stream_id} restarted on {e.executor_id}",
                )
        r.update(
            name=e.name,
            active=e.active,
            executorId=e.executor_id,
            location=e.location,
        )
        if e.last_error_message or kind == "error":
            r.update(
                lastErrorMessage=e.last_error_message,
                lastError=e.last_error,
                lastErrorTime=e.last_error_time,
            )
        r.setdefault("lastErrorMessage", "")
        r.setdefault("lastError", "")
        r.setdefault("lastErrorTime", -1)

    def _recovery(self, e: ev.Recovery) -> None:
        self.counters["recoveries"] += 1
        self._marker(
            e.time, "recovery", f"driver recovered; {len(e.rerun_batches)} batch(es) run again"
        )

    def _dropped(self, e: ev.EventsDropped) -> None:
        self.counters["events_dropped"] = e.total

    def _rate(self, e: ev.RateUpdate) -> None:
        self.rates[e.stream_id] = e.rate

    def _checkpointed(self, e: ev.CheckpointWritten) -> None:
        self.checkpoint.update(
            count=self.checkpoint["count"] + 1,
            last_ms=e.duration_ms,
            last_bytes=e.size_bytes,
            last_time=e.batch_time,
        )

    # -- derived values (call with the lock held) ---------------------------------------------
    def completed_batches(self) -> list[dict[str, Any]]:
        return [b for b in self.batches.values() if b["status"] in ("COMPLETED", "FAILED")]

    def active_batches(self) -> list[dict[str, Any]]:
        return [b for b in self.batches.values() if b["status"] in ("QUEUED", "PROCESSING")]

    def receiver_rate(self, stream_id: int, last: int = 10) -> float:
        """Records per second of ``stream_id`` over the last ``last`` completed batches."""
        done = self.completed_batches()[-last:]
        dur = self.streaming["batch_duration"]
        if not done or dur <= 0:
            return 0.0
        return sum(b["records"].get(stream_id, 0) for b in done) / (len(done) * dur / 1000.0)


_HANDLERS: dict[type, Any] = {
    ev.AppStart: StatusStore._app_start,
    ev.AppEnd: StatusStore._app_end,
    ev.ExecutorAdded: StatusStore._executor_added,
    ev.ExecutorRemoved: StatusStore._executor_removed,
    ev.ExecutorResponsive: StatusStore._executor_responsive,
    ev.ExecutorMetrics: StatusStore._executor_metrics,
    ev.JobStart: StatusStore._job_start,
    ev.JobEnd: StatusStore._job_end,
    ev.StageSubmitted: StatusStore._stage_submitted,
    ev.StageCompleted: StatusStore._stage_completed,
    ev.TaskStart: StatusStore._task_start,
    ev.TaskEnd: StatusStore._task_end,
    ev.StreamingStarted: StatusStore._streaming_started,
    ev.BatchSubmitted: StatusStore._batch_submitted,
    ev.BatchStarted: StatusStore._batch_started,
    ev.BatchCompleted: StatusStore._batch_completed,
    ev.OutputOperationStarted: StatusStore._output,
    ev.OutputOperationCompleted: StatusStore._output,
    ev.ReceiverStarted: lambda s, e: s._receiver(e, "started"),
    ev.ReceiverError: lambda s, e: s._receiver(e, "error"),
    ev.ReceiverStopped: lambda s, e: s._receiver(e, "stopped"),
    ev.Recovery: StatusStore._recovery,
    ev.EventsDropped: StatusStore._dropped,
    ev.RateUpdate: StatusStore._rate,
    ev.CheckpointWritten: StatusStore._checkpointed,
}
