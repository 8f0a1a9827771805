"""The JSON REST API, in the shape of Spark's monitoring API (``/api/v1``).

Each function reads a :class:`~dstreams.ui.status.StatusStore` (under its lock) and returns what
Spark's endpoint of the same path returns, with Spark's field names where the concepts match
(``tests/ui/golden/rest_fields.json`` pins them); fields Spark does not have are dstreams
additions (``recomputed`` on tasks, ``markers`` on the statistics). Times are Spark's strings
(``2026-12-02T10:00:00.000GMT``), durations milliseconds.
"""

from __future__ import annotations

import time
from typing import Any

from dstreams.ui.status import StatusStore

__all__ = [
    "applications",
    "batch",
    "batch_operations",
    "batches",
    "executors",
    "jobs",
    "receivers",
    "stage",
    "stages",
    "statistics",
    "spark_time",
]


def spark_time(ms: int) -> str | None:
    """Spark's date format (``yyyy-MM-dd'T'HH:mm:ss.SSS'GMT'``), or None for an unknown time."""
    if ms is None or ms < 0:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000.0)) + f".{ms % 1000:03d}GMT"


def applications(stores: list[StatusStore]) -> list[dict[str, Any]]:
    out = []
    for s in stores:
        with s.lock:
            a = dict(s.app)
            last = s.last_event_time
        end = a["end"]
        out.append(
            {
                "id": a["id"],
                "name": a["name"],
                "attempts": [
                    {
                        "startTime": spark_time(a["start"]),
                        "endTime": spark_time(end) or "1969-12-31T23:59:59.999GMT",
                        "lastUpdated": spark_time(last),
                        "duration": (end if end >= 0 else int(time.time() * 1000)) - a["start"],
                        "sparkUser": a.get("user", ""),
                        "completed": end >= 0,
                        "appSparkVersion": a.get("version", ""),
                        "startTimeEpoch": a["start"],
                        "endTimeEpoch": end,
                        "lastUpdatedEpoch": last,
                    }
                ],
            }
        )
    return out


def _avg(values: list[int]) -> float | None:
    return sum(values) / len(values) if values else None


def _delays(b: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    start, end, sub = b["processingStartTime"], b["processingEndTime"], b["submissionTime"]
    sched = start - sub if start >= 0 and sub >= 0 else None
    proc = end - start if start >= 0 and end >= 0 else None
    total = end - b["batchTime"] if end >= 0 else None
    return sched, proc, total


def statistics(s: StatusStore) -> dict[str, Any]:
    with s.lock:
        done = s.completed_batches()
        delays = [_delays(b) for b in done]
        dur = s.streaming["batch_duration"]
        records = [b["numRecords"] for b in done]
        receivers = list(s.receivers.values())
        return {
            "startTime": spark_time(s.streaming["started"]),
            "batchDuration": dur,
            "numReceivers": len(receivers),
            "numActiveReceivers": sum(1 for r in receivers if r.get("active")),
            "numInactiveReceivers": sum(1 for r in receivers if not r.get("active")),
            "numTotalCompletedBatches": s.counters["batches_completed"],
            "numRetainedCompletedBatches": len(done),
            "numActiveBatches": len(s.active_batches()),
            "numProcessedRecords": s.counters["records_processed"],
            "numReceivedRecords": s.counters["records_received"],
            "avgInputRate": (sum(records) / (len(records) * dur / 1000.0))
            if records and dur > 0
            else None,
            "avgSchedulingDelay": _avg([d[0] for d in delays if d[0] is not None]),
            "avgProcessingTime": _avg([d[1] for d in delays if d[1] is not None]),
            "avgTotalDelay": _avg([d[2] for d in delays if d[2] is not None]),
            "numDroppedEvents": s.counters["events_dropped"],
            "markers": list(s.markers),
        }


def _batch_json(s: StatusStore, b: dict[str, Any]) -> dict[str, Any]:
    sched, proc, total = _delays(b)
    outs = b.get("outputs", {})
    failed = [o for o in outs.values() if o.get("failure")]
    done = [o for o in outs.values() if o.get("end", -1) >= 0]
    return {
        "batchId": b["batchTime"],
        "batchTime": spark_time(b["batchTime"]),
        "status": b["status"],
        "batchDuration": s.streaming["batch_duration"],
        "inputSize": b["numRecords"],
        "schedulingDelay": sched,
        "processingTime": proc,
        "totalDelay": total,
        "numActiveOutputOps": len(outs) - len(done),
        "numCompletedOutputOps": len(done) - len(failed),
        "numFailedOutputOps": len(failed),
        "numTotalOutputOps": len(outs),
        "firstFailureReason": failed[0]["failure"] if failed else None,
        "streamIdToNumRecords": {str(k): v for k, v in b["records"].items()},
    }


def batches(s: StatusStore, status: str | None = None) -> list[dict[str, Any]]:
    """Newest first, as Spark lists them."""
    with s.lock:
        out = [_batch_json(s, b) for b in reversed(s.batches.values())]
    if status:
        out = [b for b in out if b["status"] == status.upper()]
    return out


def batch(s: StatusStore, batch_id: int) -> dict[str, Any] | None:
    with s.lock:
        b = s.batches.get(batch_id)
        return None if b is None else _batch_json(s, b)


def batch_operations(s: StatusStore, batch_id: int) -> list[dict[str, Any]] | None:
    with s.lock:
        b = s.batches.get(batch_id)
        if b is None:
            return None
        jobs_of: dict[int, list[int]] = {}
        for jid in b["jobs"]:
            j = s.jobs.get(jid)
            if j is not None:
                jobs_of.setdefault(j["outputOpId"], []).append(jid)
        out = []
        for oid, o in sorted(b.get("outputs", {}).items()):
            start, end = o.get("start", -1), o.get("end", -1)
            out.append(
                {
                    "outputOpId": oid,
                    "name": o.get("name", ""),
                    "description": o.get("description", ""),
                    "startTime": spark_time(start),
                    "endTime": spark_time(end),
                    "duration": end - start if start >= 0 and end >= 0 else None,
                    "failureReason": o.get("failure") or None,
                    "jobIds": jobs_of.get(oid, []),
                }
            )
        return out


def receivers(s: StatusStore) -> list[dict[str, Any]]:
    with s.lock:
        out = []
        for sid, r in sorted(s.receivers.items()):
            rates = [
                [b["batchTime"], b["records"].get(sid, 0) * 1000.0 / s.streaming["batch_duration"]]
                for b in s.completed_batches()[-60:]
                if s.streaming["batch_duration"] > 0
            ]
            out.append(
                {
                    "streamId": sid,
                    "streamName": r.get("name", ""),
                    "isActive": bool(r.get("active")),
                    "executorId": r.get("executorId", ""),
                    "executorHost": r.get("location", ""),
                    "lastErrorTime": spark_time(r.get("lastErrorTime", -1)),
                    "lastErrorMessage": r.get("lastErrorMessage") or None,
                    "lastError": r.get("lastError") or None,
                    "avgEventRate": s.receiver_rate(sid),
                    "eventRates": rates,
                    "restarts": max(0, r.get("starts", 0) - 1),
                }
            )
        return out


def executors(s: StatusStore, all_: bool = False) -> list[dict[str, Any]]:
    with s.lock:
        out = []
        for x in s.executors.values():
            if not all_ and not x["active"]:
                continue
            total = x["completedTasks"] + x["failedTasks"] + x["killedTasks"]
            out.append(
                {
                    "id": x["id"],
                    "hostPort": x["host"],
                    "isActive": x["active"],
                    "rddBlocks": x["blocks"],
                    "memoryUsed": x["memoryUsed"],
                    "diskUsed": 0,
                    "totalCores": x["cores"],
                    "maxTasks": x["cores"],
                    "activeTasks": x["activeTasks"],
                    "failedTasks": x["failedTasks"],
                    "completedTasks": x["completedTasks"],
                    "totalTasks": total + x["activeTasks"],
                    "totalDuration": int(x["taskTime"]),
                    "addTime": spark_time(x["added"]),
                    "removeTime": spark_time(x["removed"]),
                    "removeReason": x["reason"] or None,
                    "isResponsive": x["responsive"],
                }
            )
        return out


def jobs(s: StatusStore, status: str | None = None) -> list[dict[str, Any]]:
    with s.lock:
        out = []
        for j in reversed(s.jobs.values()):
            stages = [st for st in s.stages.values() if st["jobId"] == j["jobId"]]
            out.append(
                {
                    "jobId": j["jobId"],
                    "name": j["name"],
                    "description": j["description"] or None,
                    "submissionTime": spark_time(j["submissionTime"]),
                    "completionTime": spark_time(j["completionTime"]),
                    "stageIds": list(j["stageIds"]),
                    "status": j["status"],
                    "numTasks": j["numTasks"],
                    "numActiveTasks": j["numActiveTasks"],
                    "numCompletedTasks": j["numCompletedTasks"],
                    "numSkippedTasks": 0,
                    "numFailedTasks": j["numFailedTasks"],
                    "numKilledTasks": j["numKilledTasks"],
                    "numActiveStages": sum(1 for st in stages if st["status"] == "ACTIVE"),
                    "numCompletedStages": sum(1 for st in stages if st["status"] == "COMPLETE"),
                    "numSkippedStages": 0,
                    "numFailedStages": sum(1 for st in stages if st["status"] == "FAILED"),
                    "batchTime": j["batchTime"] if j["batchTime"] >= 0 else None,
                }
            )
    if status:
        out = [j for j in out if j["status"] == status.upper()]
    return out


def _stage_json(st: dict[str, Any], with_tasks: bool) -> dict[str, Any]:
    out = {
        "status": st["status"],
        "stageId": st["stageId"],
        "attemptId": st["attemptId"],
        "numTasks": st["numTasks"],
        "numActiveTasks": st["numActiveTasks"],
        "numCompleteTasks": st["numCompleteTasks"],
        "numFailedTasks": st["numFailedTasks"],
        "numKilledTasks": st["numKilledTasks"],
        "executorRunTime": int(st["executorRunTime"]),
        "submissionTime": spark_time(st["submissionTime"]),
        "completionTime": spark_time(st["completionTime"]),
        "failureReason": st["failureReason"] or None,
        "name": st["name"],
        "jobIds": [st["jobId"]],
    }
    if with_tasks:
        out["tasks"] = {
            str(t["taskId"]): {
                "taskId": t["taskId"],
                "index": t["index"],
                "attempt": t["attempt"],
                "launchTime": spark_time(t["launchTime"]),
                "duration": t["duration"] if t["duration"] >= 0 else None,
                "executorId": t["executorId"],
                "status": t["status"],
                "speculative": t["speculative"],
                "errorMessage": t["errorMessage"] or None,
                "recomputed": t["recomputed"],
            }
            for t in st["tasks"].values()
        }
    return out


def stages(s: StatusStore) -> list[dict[str, Any]]:
    with s.lock:
        return [_stage_json(st, False) for st in reversed(s.stages.values())]


def stage(s: StatusStore, stage_id: int) -> list[dict[str, Any]]:
    with s.lock:
        return [_stage_json(st, True) for st in s.stages.values() if st["stageId"] == stage_id]
