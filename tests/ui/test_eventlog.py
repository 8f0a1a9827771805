"""The event log (rolling JSON lines, secrets redacted) and the history server over it."""

from __future__ import annotations

import json
import pathlib

from uihelp import get

from dstreams.ui.eventlog import log_dirs, read_events
from dstreams.ui.history import HistoryServer


def test_the_log_rolls_redacts_and_replays_into_the_same_numbers(fed):
    directory = fed.sc._conf.get_str("dstreams.eventLog.dir")
    fed.sc.stop()  # the application ends: its log is complete
    (log,) = log_dirs(directory)
    files = sorted(pathlib.Path(log).glob("events_*"))
    assert len(files) > 1, "16k files: the log rolled"
    assert all(f.stat().st_size <= 16 * 1024 for f in files)
    assert (pathlib.Path(log) / f"appstatus_{fed.sc.applicationId}").exists()
    text = "".join(f.read_text() for f in files)
    assert "do-not-show-me" not in text and "*********(redacted)" in text
    kinds = [json.loads(line)["Event"] for line in text.splitlines()]
    assert kinds[0] == "ApplicationStart" and kinds[-1] == "ApplicationEnd"
    assert kinds.count("StreamingListenerBatchCompleted") == len(fed.counts)
    events = list(read_events(log))
    assert len(events) == len(kinds)

    history = HistoryServer(directory, port=0)
    try:
        apps = get(f"{history.url}/api/v1/applications")
        assert [a["id"] for a in apps] == [fed.sc.applicationId]
        assert apps[0]["attempts"][0]["completed"] is True
        base = f"{history.url}/api/v1/applications/{fed.sc.applicationId}"
        batches = get(f"{base}/streaming/batches")
        assert {b["batchId"]: b["inputSize"] for b in batches} == fed.counts
        page = get(f"{history.url}/history/{fed.sc.applicationId}/streaming/").decode()
        assert f"id='completed-batches'>{len(fed.counts)}<" in page
        assert "setInterval" not in page, "a finished application's page does not refresh"
        assert fed.sc.applicationId.encode() in get(f"{history.url}/")
    finally:
        history.stop()


def test_a_torn_last_line_is_skipped_and_a_bad_line_elsewhere_is_named(tmp_path):
    import pytest

    d = tmp_path / "eventlog_v2_app-1"
    d.mkdir()
    good = json.dumps({"Event": "ApplicationStart", "time": 1, "app_id": "app-1"})
    (d / "events_1_app-1.jsonl").write_text(good + "\n" + good[:10])
    assert len(list(read_events(str(d)))) == 1
    (d / "events_1_app-1.jsonl").write_text("{nope\n" + good + "\n")
    with pytest.raises(ValueError, match=r"events_1_app-1.jsonl, line 1"):
        list(read_events(str(d)))


def test_dstreams_history_serves_a_log_directory_and_names_a_missing_one(tmp_path):
    import subprocess
    import sys

    from dstreams import events as ev
    from dstreams.ui.eventlog import EventLogWriter

    w = EventLogWriter(str(tmp_path), "app-7")
    w.on_event(ev.AppStart(1000, "app-7", "logged"))
    w.on_event(ev.JobStart(1001, 0, "a job"))
    w.on_event(ev.JobEnd(1002, 0, True))
    w.on_event(ev.AppEnd(1003))
    missing = subprocess.run(
        [sys.executable, "-m", "dstreams.cli", "history", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0 and "nope" in missing.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "dstreams.cli", "history", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        (app,) = get(f"{url}/api/v1/applications")
        assert app["name"] == "logged" and app["attempts"][0]["completed"] is True
        (job,) = get(f"{url}/api/v1/applications/app-7/jobs")
        assert job["status"] == "SUCCEEDED" and job["description"] == "a job"
    finally:
        proc.kill()
        proc.wait()
