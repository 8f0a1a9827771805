"""The status store alone: events in, the numbers the UI shows out (no server, no engine)."""

from __future__ import annotations

import pytest

from dstreams import events as ev
from dstreams.ui.status import StatusStore


def test_a_retried_stage_attempt_adds_no_tasks_to_its_job() -> None:
    store = StatusStore()
    store.on_event(ev.JobStart(1, job_id=0))
    store.on_event(ev.StageSubmitted(1, job_id=0, stage_id=0, attempt=0, num_tasks=4))
    store.on_event(ev.StageSubmitted(2, job_id=0, stage_id=1, attempt=0, num_tasks=2))
    # a fetch failure: the map stage runs again for the 2 lost partitions
    store.on_event(ev.StageCompleted(3, job_id=0, stage_id=0, attempt=0, failure="superseded"))
    store.on_event(ev.StageSubmitted(4, job_id=0, stage_id=0, attempt=1, num_tasks=2))
    job = store.jobs[0]
    assert job["numTasks"] == 6 and job["stageIds"] == [0, 1]
    assert store.stages[(0, 1)]["numTasks"] == 2 and store.stages[(0, 0)]["status"] == "COMPLETE"


def test_a_batch_keeps_its_state_sizes() -> None:
    store = StatusStore()
    state = {3: {"operation": "updateStateByKey", "keys": 7, "bytes": 90}}
    store.on_event(ev.BatchCompleted(5, batch_time=100, state=state))
    assert store.completed_batches()[0]["state"] == state
    # the event log's JSON keeps the stream ids as numbers
    back = ev.from_json(ev.to_json(ev.BatchCompleted(5, batch_time=100, state=state)))
    assert back is not None and back.state == state  # type: ignore[attr-defined]


def test_a_direct_sources_lag_reaches_the_batch_page_and_the_metrics() -> None:
    pytest.importorskip("prometheus_client")
    from dstreams.ui import pages
    from dstreams.ui.metrics import registry_for, render

    store = StatusStore()
    meta = {0: {"lag": 7, "Description": "payments: 0-0 .. 5-0 (5)"}}
    store.on_event(
        ev.BatchCompleted(
            5,
            batch_time=100,
            submission_time=100,
            processing_start=101,
            processing_end=103,
            records={0: 5},
            metadata=meta,
        )
    )
    page = pages.batch_page(store, "/", 100)
    assert "<td>payments: 0-0 .. 5-0 (5)</td><td>7</td>" in page
    text = render(registry_for(store)).decode()
    assert 'dstreams_streaming_source_lag_records{stream="0"} 7.0' in text
