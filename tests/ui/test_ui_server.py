"""The live UI, its REST API and /metrics, on real HTTP against a streaming program.

The program reads 3000 lines from a real socket at 0.1 s batches and counts each batch in a
``foreachRDD``; the API, the pages and the metrics must show exactly those numbers.
"""

from __future__ import annotations

import json
import pathlib
import re
import urllib.error

import pytest
from uihelp import get

GOLDEN = json.loads((pathlib.Path(__file__).parent / "golden" / "rest_fields.json").read_text())


def _api(fed, path: str):
    return get(
        f"{fed.sc.uiWebUrl}/api/v1/applications/{fed.sc.applicationId}/{path}", "do-not-show-me"
    )


def test_rest_batches_show_exactly_the_records_each_batch_counted(fed):
    batches = _api(fed, "streaming/batches")
    shown = {b["batchId"]: b["inputSize"] for b in batches}
    assert shown == fed.counts, "every batch, with the records its foreachRDD counted"
    assert sum(shown.values()) == fed.sent == 3000
    assert all(b["status"] == "COMPLETED" for b in batches)
    stats = _api(fed, "streaming/statistics")
    assert stats["numTotalCompletedBatches"] == len(fed.counts)
    assert stats["numReceivedRecords"] == stats["numProcessedRecords"] == 3000
    assert stats["batchDuration"] == 100 and stats["numReceivers"] == 1
    one = next(t for t, n in fed.counts.items() if n)
    assert _api(fed, f"streaming/batches/{one}")["inputSize"] == fed.counts[one]
    ops = _api(fed, f"streaming/batches/{one}/operations")
    assert [o["name"] for o in ops] == ["foreachRDD"] and ops[0]["jobIds"]
    job = _api(fed, f"jobs/{ops[0]['jobIds'][0]}")
    assert job["status"] == "SUCCEEDED" and job["batchTime"] == one
    assert job["numCompletedTasks"] == job["numTasks"] > 0


def test_rest_field_names_match_spark_where_the_concepts_match(fed):
    def keys(value):
        return sorted(value)

    apps = get(f"{fed.sc.uiWebUrl}/api/v1/applications", "do-not-show-me")
    assert keys(apps[0]) == GOLDEN["applications"]
    assert keys(apps[0]["attempts"][0]) == GOLDEN["applications.attempts"]
    assert keys(_api(fed, "streaming/statistics")) == GOLDEN["streaming/statistics"]
    batches = _api(fed, "streaming/batches")
    assert keys(batches[0]) == GOLDEN["streaming/batches"]
    ops = _api(fed, f"streaming/batches/{batches[0]['batchId']}/operations")
    assert keys(ops[0]) == GOLDEN["streaming/batches/{id}/operations"]
    assert keys(_api(fed, "streaming/receivers")[0]) == GOLDEN["streaming/receivers"]
    assert keys(_api(fed, "executors")[0]) == GOLDEN["executors"]
    assert keys(_api(fed, "jobs")[0]) == GOLDEN["jobs"]
    stages = _api(fed, "stages")
    assert keys(stages[0]) == GOLDEN["stages"]
    detail = _api(fed, f"stages/{stages[0]['stageId']}")[0]
    assert keys(next(iter(detail["tasks"].values()))) == GOLDEN["stages/{id}.tasks"]


def test_receivers_and_executors_are_listed(fed):
    (r,) = _api(fed, "streaming/receivers")
    assert r["streamId"] == 0 and r["executorId"] in {x["id"] for x in _api(fed, "executors")}
    assert len(_api(fed, "executors")) == 2


def test_metrics_parse_and_count_the_same_batches(fed):
    from prometheus_client.parser import text_string_to_metric_families

    text = get(f"{fed.sc.uiWebUrl}/metrics", "do-not-show-me").decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    value = {f.name: f.samples[0].value for f in families.values() if f.samples}
    assert value["dstreams_streaming_batches_completed"] == len(fed.counts)
    assert value["dstreams_streaming_records_received"] == 3000
    assert value["dstreams_executors_alive"] == 2
    hist = families["dstreams_streaming_batch_processing_seconds"]
    count = next(s.value for s in hist.samples if s.name.endswith("_count"))
    assert count == len(fed.counts)
    for name in (
        "dstreams_streaming_batch_scheduling_delay_seconds",
        "dstreams_streaming_batch_total_delay_seconds",
        "dstreams_streaming_batch_records",
        "dstreams_tasks_failed",
        "dstreams_tasks_speculative",
        "dstreams_partitions_recomputed",
        "dstreams_streaming_active_batches",
        "dstreams_listener_events_dropped",
    ):
        assert name in families, name


def test_pages_show_the_same_numbers(fed):
    page = get(f"{fed.sc.uiWebUrl}/streaming/", "do-not-show-me").decode()
    assert re.search(r"id='completed-batches'>(\d+)<", page).group(1) == str(len(fed.counts))
    assert re.search(r"id='received-records'>(\d+)<", page).group(1) == "3000"
    assert page.count("class='timeline'") == 4 and page.count("class='histogram'") == 4
    one = next(t for t, n in fed.counts.items() if n)
    batch = get(f"{fed.sc.uiWebUrl}/streaming/batch/?id={one}", "do-not-show-me").decode()
    assert re.search(r"id='batch-records'>(\d+)<", batch).group(1) == str(fed.counts[one])
    assert "class='tasks'" in batch and "Speculative" in batch and "Recomputed" in batch
    for path in ("/executors/", "/jobs/"):
        assert b"<table" in get(f"{fed.sc.uiWebUrl}{path}", "do-not-show-me")


def test_the_token_is_required_and_never_shown(fed):
    with pytest.raises(urllib.error.HTTPError) as e:
        get(f"{fed.sc.uiWebUrl}/api/v1/applications")
    assert e.value.code == 401
    env = get(f"{fed.sc.uiWebUrl}/api/v1/applications", "do-not-show-me")
    assert env[0]["id"] == fed.sc.applicationId
    page = get(f"{fed.sc.uiWebUrl}/streaming/?token=do-not-show-me").decode()
    assert "do-not-show-me" not in page
