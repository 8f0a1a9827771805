"""The UI's HTML pages, rendered on the server from the REST API's data (``ui/api.py``).

Charts are inline SVG drawn here: nothing is fetched from anywhere at run time, and the page
works without JavaScript. A few lines of inline script refresh the page's content every two
seconds (``?fragment=1`` returns the content alone). Every value from the application (names,
errors) is HTML-escaped.

Pages: Streaming (timelines and histograms of input rate, scheduling delay, processing time and
total delay with markers for executor loss, recovery, speculation and receiver restarts; the
receivers; active and completed batches), Batch (its output operations, their jobs, stages and
tasks, and each input stream's records), Executors, Jobs and Job.
"""

from __future__ import annotations

import html
from typing import Any

from dstreams.ui import api
from dstreams.ui.status import StatusStore

__all__ = ["batch_page", "executors_page", "job_page", "jobs_page", "streaming_page"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
nav{background:#1f3b57;color:#fff;padding:8px 16px}nav a{color:#fff;margin-right:18px}
nav .app{float:right;opacity:.8}main{padding:12px 16px}
table{border-collapse:collapse;margin:8px 0 18px;font-size:13px;background:#fff}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#eef2f6}
.charts{display:grid;grid-template-columns:170px 580px 340px;gap:4px 12px;align-items:center}
.metric{font-weight:600}.metric small{display:block;font-weight:400;color:#666}
.legend span{margin-right:14px}.FAILED,.bad{color:#b00}.warn{color:#b60}
svg text{font-size:10px;fill:#555}
"""

_JS = """
setInterval(async () => {
  const sep = location.search ? '&' : '?';
  try {
    const r = await fetch(location.pathname + location.search + sep + 'fragment=1',
                          {credentials: 'same-origin'});
    if (r.ok) document.getElementById('content').innerHTML = await r.text();
  } catch (e) {}
}, 2000);
"""

MARKER_COLOURS = {
    "executor-lost": "#d62728",
    "recovery": "#9467bd",
    "speculation": "#ff7f0e",
    "receiver-restart": "#2ca02c",
}


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def layout(store: StatusStore, title: str, body: str, base: str, live: bool = True) -> str:
    """A whole page: navigation, the content (refreshed live) and the refresh script."""
    with store.lock:
        name, app_id = store.app["name"], store.app["id"]
        streaming = store.streaming["started"] >= 0
    links = [("streaming/", "Streaming")] if streaming else []
    links += [("jobs/", "Jobs"), ("executors/", "Executors")]
    nav = "".join(f'<a href="{base}{href}">{text}</a>' for href, text in links)
    script = f"<script>{_JS}</script>" if live else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(name)} - {_e(title)}"
        f"</title><style>{_CSS}</style></head><body><nav><b>dstreams</b> &nbsp; {nav}"
        f"<span class='app'>{_e(name)} ({_e(app_id)})</span></nav>"
        f"<main id='content'>{body}</main>{script}</body></html>"
    )


def _ms(v: Any) -> str:
    if v is None:
        return "-"
    if v >= 10000:
        return f"{v / 1000:.1f} s"
    return f"{v:.0f} ms" if isinstance(v, (int, float)) else _e(v)


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def timeline_svg(
    values: list[float | None], markers: list[tuple[int, str, str]], unit: str, name: str
) -> str:
    """A line chart of ``values`` (one per batch, oldest first) with marker lines at indexes."""
    w, h, left, bottom = 570, 140, 46, 18
    known = [v for v in values if v is not None]
    top = max(known, default=0.0) or 1.0
    n = max(len(values), 2)

    def x(i: int) -> float:
        return left + (w - left - 8) * i / (n - 1)

    def y(v: float) -> float:
        return 6 + (h - bottom - 6) * (1 - v / top)

    pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values) if v is not None)
    marks = "".join(
        f"<line x1='{x(i):.1f}' x2='{x(i):.1f}' y1='6' y2='{h - bottom}' stroke='"
        f"{MARKER_COLOURS.get(kind, '#888')}' stroke-dasharray='3,2' class='marker {kind}'>"
        f"<title>{_e(text)}</title></line>"
        for i, kind, text in markers
    )
    dots = "".join(
        f"<circle cx='{x(i):.1f}' cy='{y(v):.1f}' r='1.6' fill='#1f77b4'/>"
        for i, v in enumerate(values)
        if v is not None and len(values) <= 120
    )
    return (
        f"<svg class='timeline' data-metric='{name}' data-points='{len(known)}' width='{w}' "
        f"height='{h}' viewBox='0 0 {w} {h}'><rect x='{left}' y='6' width='{w - left - 8}' "
        f"height='{h - bottom - 6}' fill='#fff' stroke='#ccc'/>"
        f"<text x='2' y='12'>{top:.4g} {unit}</text><text x='2' y='{h - bottom}'>0</text>"
        f"<text x='{left}' y='{h - 4}'>oldest</text><text x='{w - 40}' y='{h - 4}'>newest</text>"
        f"{marks}<polyline fill='none' stroke='#1f77b4' stroke-width='1.5' points='{pts}'/>"
        f"{dots}</svg>"
    )


def histogram_svg(values: list[float | None], unit: str, name: str, bins: int = 10) -> str:
    """A horizontal histogram of ``values`` (as the Streaming tab's, beside each timeline)."""
    w, h = 330, 140
    known = [v for v in values if v is not None]
    top = max(known, default=0.0) or 1.0
    counts = [0] * bins
    for v in known:
        counts[min(bins - 1, int(v / top * bins))] += 1
    most = max(counts) or 1
    rows = []
    bar_h = (h - 20) / bins
    for i, c in enumerate(counts):
        yy = h - 20 - (i + 1) * bar_h
        rows.append(
            f"<rect x='60' y='{yy:.1f}' width='{(w - 90) * c / most:.1f}' "
            f"height='{bar_h - 1:.1f}' fill='#6baed6'><title>{c} batches</title></rect>"
        )
        if i % 2 == 0:
            rows.append(f"<text x='2' y='{yy + bar_h - 2:.1f}'>{top * i / bins:.3g}</text>")
    return (
        f"<svg class='histogram' data-metric='{name}' width='{w}' height='{h}'>"
        f"{''.join(rows)}<text x='60' y='{h - 6}'>batches ({unit} on the left)</text></svg>"
    )


def streaming_page(store: StatusStore, base: str) -> str:
    stats = api.statistics(store)
    batch_list = api.batches(store)
    with store.lock:
        done = store.completed_batches()[-300:]
        dur = store.streaming["batch_duration"]
        marker_list = list(store.markers)
        ends = [b.get("completedAt", -1) for b in done]
    rate = [b["numRecords"] * 1000.0 / dur if dur > 0 else None for b in done]
    delays = [api._delays(b) for b in done]
    sched = [None if d[0] is None else float(d[0]) for d in delays]
    proc = [None if d[1] is None else float(d[1]) for d in delays]
    total = [None if d[2] is None else float(d[2]) for d in delays]
    marks: list[tuple[int, str, str]] = []
    for m in marker_list:  # on the first batch that completed after the event
        idx = next((i for i, t in enumerate(ends) if t >= m["time"]), None)
        if idx is not None:
            marks.append((idx, m["kind"], m["text"]))
    rows = []
    for label, sub, values, unit, key in [
        (
            "Input Rate",
            f"avg {stats['avgInputRate'] or 0:.1f} records/s",
            rate,
            "rec/s",
            "inputRate",
        ),
        (
            "Scheduling Delay",
            f"avg {_ms(stats['avgSchedulingDelay'])}",
            sched,
            "ms",
            "schedulingDelay",
        ),
        ("Processing Time", f"avg {_ms(stats['avgProcessingTime'])}", proc, "ms", "processingTime"),
        ("Total Delay", f"avg {_ms(stats['avgTotalDelay'])}", total, "ms", "totalDelay"),
    ]:
        rows.append(
            f"<div class='metric'>{label}<small>{_e(sub)}</small></div>"
            + timeline_svg(values, marks, unit, key)
            + histogram_svg(values, unit, key)
        )
    legend = "".join(
        f"<span style='color:{c}'>&#9474; {k}</span>" for k, c in MARKER_COLOURS.items()
    )
    receivers = api.receivers(store)
    rec_rows = [
        [
            _e(r["streamName"]),
            "ACTIVE" if r["isActive"] else "INACTIVE",
            _e(r["executorId"]),
            _e(r["executorHost"]),
            f"{r['avgEventRate']:.1f}",
            str(r["restarts"]),
            _e(r["lastErrorMessage"] or "-"),
        ]
        for r in receivers
    ]

    def batch_rows(items: list[dict[str, Any]]) -> list[list[str]]:
        return [
            [
                f"<a href='{base}streaming/batch/?id={b['batchId']}'>{_e(b['batchTime'])}</a>",
                str(b["inputSize"]),
                _ms(b["schedulingDelay"]),
                _ms(b["processingTime"]),
                _ms(b["totalDelay"]),
                f"{b['numCompletedOutputOps']}/{b['numTotalOutputOps']}"
                + (
                    f" <span class='bad'>{b['numFailedOutputOps']} failed</span>"
                    if b["numFailedOutputOps"]
                    else ""
                ),
                f"<span class='{b['status']}'>{b['status']}</span>",
            ]
            for b in items
        ]

    active = [b for b in batch_list if b["status"] in ("QUEUED", "PROCESSING")]
    completed = [b for b in batch_list if b["status"] in ("COMPLETED", "FAILED")][:100]
    heads = [
        "Batch Time",
        "Records",
        "Scheduling Delay",
        "Processing Time",
        "Total Delay",
        "Output Ops",
        "Status",
    ]
    dropped = stats["numDroppedEvents"]
    drop_note = (
        f" <span class='bad'>{dropped} listener events dropped (queue full)</span>"
        if dropped
        else ""
    )
    body = (
        f"<h2>Streaming Statistics</h2><p>Running batches of {_ms(stats['batchDuration'])} "
        f"since {_e(stats['startTime'])}: <b id='completed-batches'>"
        f"{stats['numTotalCompletedBatches']}</b> completed batches, <b id='received-records'>"
        f"{stats['numReceivedRecords']}</b> records received.{drop_note}</p>"
        f"<p class='legend'>Markers: {legend}</p><div class='charts'>{''.join(rows)}</div>"
        f"<h3>Receivers ({len(receivers)})</h3>"
        + _table(
            [
                "Receiver",
                "Status",
                "Executor",
                "Location",
                "Rate (records/s)",
                "Restarts",
                "Last Error",
            ],
            rec_rows,
            "receivers",
        )
        + f"<h3>Active Batches ({len(active)})</h3>"
        + _table(heads, batch_rows(active), "active-batches")
        + f"<h3>Completed Batches (last {len(completed)} of {stats['numTotalCompletedBatches']})"
        "</h3>" + _table(heads, batch_rows(completed), "completed-batches")
    )
    return body


def _tasks_table(tasks: dict[str, Any]) -> str:
    rows = [
        [
            str(t["index"]),
            str(t["taskId"]),
            str(t["attempt"]),
            _e(t["status"]),
            _e(t["executorId"]),
            _ms(t["duration"]),
            "yes" if t["speculative"] else "",
            "yes" if t["recomputed"] else "",
            _e(t["errorMessage"] or ""),
        ]
        for t in tasks.values()
    ]
    return _table(
        [
            "Index",
            "Task",
            "Attempt",
            "Status",
            "Executor",
            "Duration",
            "Speculative",
            "Recomputed",
            "Error",
        ],
        rows,
        "tasks",
    )


def _job_detail(store: StatusStore, job: dict[str, Any]) -> str:
    parts = [f"<h4>Job {job['jobId']}: {_e(job['name'])} ({job['status']})</h4>"]
    for sid in job["stageIds"]:
        for st in api.stage(store, sid):
            parts.append(
                f"<p>Stage {st['stageId']} attempt {st['attemptId']}: {_e(st['name'])}, "
                f"{st['numCompleteTasks']}/{st['numTasks']} tasks, {st['status']}</p>"
                + _tasks_table(st["tasks"])
            )
    return "".join(parts)


def batch_page(store: StatusStore, base: str, batch_id: int) -> str:
    b = api.batch(store, batch_id)
    if b is None:
        return f"<h2>Batch {batch_id}</h2><p>No such batch is retained.</p>"
    ops = api.batch_operations(store, batch_id) or []
    all_jobs = {j["jobId"]: j for j in api.jobs(store)}
    with store.lock:
        metadata = dict(store.batches.get(batch_id, {}).get("metadata", {}))
    inputs = []
    for k, v in sorted(b["streamIdToNumRecords"].items()):
        meta = metadata.get(int(k), {})
        lag = meta.get("lag")
        inputs.append(
            [
                _e(k),
                str(v),
                _e(str(meta.get("Description", ""))).replace("\n", "<br>"),
                "" if lag is None else str(lag),
            ]
        )
    op_rows = [
        [
            str(o["outputOpId"]),
            _e(o["name"]),
            _ms(o["duration"]),
            _e(o["failureReason"] or ""),
            ", ".join(f"<a href='{base}jobs/job/?id={j}'>{j}</a>" for j in o["jobIds"]),
        ]
        for o in ops
    ]
    details = "".join(
        _job_detail(store, all_jobs[j]) for o in ops for j in o["jobIds"] if j in all_jobs
    )
    return (
        f"<h2>Batch {_e(b['batchTime'])}</h2><p>Status {b['status']}; "
        f"<b id='batch-records'>{b['inputSize']}</b> records; scheduling delay "
        f"{_ms(b['schedulingDelay'])}, processing time {_ms(b['processingTime'])}, total delay "
        f"{_ms(b['totalDelay'])}</p><h3>Input</h3>"
        + _table(["Input stream", "Records", "Input metadata", "Lag (records)"], inputs, "inputs")
        + "<h3>Output Operations</h3>"
        + _table(["Id", "Name", "Duration", "Failure", "Jobs"], op_rows, "outputs")
        + details
    )


def executors_page(store: StatusStore, base: str) -> str:
    rows = [
        [
            _e(x["id"]),
            _e(x["hostPort"]),
            ("Active" if x["isActive"] else f"Dead: {_e(x['removeReason'])}")
            + (
                ""
                if x["isResponsive"] or not x["isActive"]
                else " <span class='warn'>(not answering)</span>"
            ),
            str(x["activeTasks"]),
            str(x["completedTasks"]),
            str(x["failedTasks"]),
            _ms(x["totalDuration"]),
            str(x["rddBlocks"]),
            f"{x['memoryUsed'] / 2**20:.1f} MiB",
            _e(x["addTime"]),
            _e(x["removeTime"] or ""),
        ]
        for x in api.executors(store, all_=True)
    ]
    alive = sum(1 for x in api.executors(store))
    return f"<h2>Executors ({alive} alive)</h2>" + _table(
        [
            "Id",
            "Address",
            "Status",
            "Active Tasks",
            "Completed",
            "Failed",
            "Task Time",
            "Blocks",
            "Storage Memory",
            "Added",
            "Removed",
        ],
        rows,
        "executors",
    )


def jobs_page(store: StatusStore, base: str) -> str:
    jl = api.jobs(store)
    rows = [
        [
            f"<a href='{base}jobs/job/?id={j['jobId']}'>{j['jobId']}</a>",
            _e(j["name"]),
            _e(j["submissionTime"]),
            f"<span class='{j['status']}'>{j['status']}</span>",
            f"{j['numCompletedTasks']}/{j['numTasks']}"
            + (f" ({j['numFailedTasks']} failed)" if j["numFailedTasks"] else ""),
            str(len(j["stageIds"])),
        ]
        for j in jl[:200]
    ]
    return f"<h2>Jobs ({len(jl)} retained)</h2>" + _table(
        ["Job", "Description", "Submitted", "Status", "Tasks", "Stages"], rows, "jobs"
    )


def job_page(store: StatusStore, base: str, job_id: int) -> str:
    job = next((j for j in api.jobs(store) if j["jobId"] == job_id), None)
    if job is None:
        return f"<h2>Job {job_id}</h2><p>No such job is retained.</p>"
    return f"<h2>Job {job_id}</h2>" + _job_detail(store, job)
