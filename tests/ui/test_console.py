"""The terminal's live status line and stage bars: pure rendering, and ``dstreams submit`` on a
real pseudo-terminal (shown), with ``--quiet`` and with pipes (not shown)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest

from dstreams import events as ev
from dstreams.ui.console import stage_bars, status_line
from dstreams.ui.status import StatusStore

pytest.importorskip("rich")

PROGRAM = textwrap.dedent(
    """
    import socket, threading, time
    from dstreams import Context
    from dstreams.streaming import StreamingContext

    srv = socket.create_server(("127.0.0.1", 0))

    def serve():  # 2,000 lines at once, then an idle connection
        conn, _ = srv.accept()
        conn.sendall(b"".join(b"line %d\\n" % i for i in range(2000)))
        time.sleep(30)

    threading.Thread(target=serve, daemon=True).start()

    sc = Context("local[2]", "console-test")
    # a long batch stage: 8 tasks of 0.4 s on 2 workers, so its bar shows
    assert sc.parallelize(range(8), 8).map(lambda x: time.sleep(0.4) or x).sum() == 28
    ssc = StreamingContext(sc, 0.1)
    ssc.socketTextStream("127.0.0.1", srv.getsockname()[1]).count().foreachRDD(lambda r: None)
    ssc.start()
    time.sleep(3.0)
    ssc.stop(stopSparkContext=True)
    print("PROGRAM-DONE", flush=True)
    """
)

STYLE = re.compile(r"\x1b\[[0-9;]*m")  # colours: dropped
MOVES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")  # cursor moves: new lines


def _env() -> dict[str, str]:
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="160", PYTHONUNBUFFERED="1")
    env.pop("NO_COLOR", None)
    env["DSTREAMS_CONF_UI__ENABLED"] = "false"  # the terminal view needs no web UI
    return env


def _run_on_pty(args: list[str]) -> str:
    """Run ``args`` with standard output and error on a pseudo-terminal; all it drew."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=_env())
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(30) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return MOVES.sub("\n", STYLE.sub("", b"".join(chunks).decode(errors="replace")))


def _program(tmp_path: Path) -> str:
    path = tmp_path / "prog.py"
    path.write_text(PROGRAM)
    return str(path)


def test_submit_on_a_terminal_shows_the_status_line_and_stage_bars(tmp_path: Path) -> None:
    out = _run_on_pty([sys.executable, "-m", "dstreams.cli", "submit", _program(tmp_path)])
    assert "PROGRAM-DONE" in out
    # the long batch stage's bar, Spark's (done + running) / total beside it
    bars = re.findall(r"Stage \d+ .*?\((\d) \+ (\d)\) / 8", out)
    assert bars, out[-3000:]
    # running tasks fill at most the 2 workers' 2 slots each; done only grows
    assert all(int(d) + int(r) <= 8 and int(r) <= 4 for d, r in bars), bars
    assert [int(d) for d, _ in bars] == sorted(int(d) for d, _ in bars), bars
    # the streaming status line, with real figures: the input rate is the records of the last
    # (up to) ten 0.1 s batches over their duration; all 2,000 lines fed land in those batches
    # until they fall out of the window, so the rate is 0, or 2,000 / (n * 0.1 s) for n < 10
    # completed batches, then 2,000 per second once ten have completed (while they hold it)
    lines = re.findall(
        r"batch \d\d:\d\d:\d\d\.\d{3} \| input ([\d,]+) rec/s \| processing [\d,.]+ m?s \| "
        r"delay [\d,.]+ m?s \| queued \d+ \| executors 2",
        out,
    )
    assert lines, out[-3000:]
    rates = [int(rate.replace(",", "")) for rate in lines]
    allowed = {0} | {round(2000 / (n * 0.1)) for n in range(1, 11)}
    assert any(rates) and set(rates) <= allowed, rates  # frames are drawn 4 times a second


def test_quiet_turns_the_view_off(tmp_path: Path) -> None:
    out = _run_on_pty(
        [sys.executable, "-m", "dstreams.cli", "submit", "--quiet", _program(tmp_path)]
    )
    assert "PROGRAM-DONE" in out
    assert "rec/s" not in out and "Stage " not in out


def test_no_view_when_output_is_not_a_terminal(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dstreams.cli", "submit", _program(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    assert "PROGRAM-DONE" in proc.stdout
    assert "rec/s" not in proc.stderr + proc.stdout and "Stage " not in proc.stderr


def _store_with_batches() -> StatusStore:
    store = StatusStore()
    store.on_event(ev.ExecutorAdded(1, executor_id="0", host="127.0.0.1"))
    store.on_event(ev.ExecutorAdded(1, executor_id="1", host="127.0.0.1"))
    store.on_event(ev.StreamingStarted(1, batch_duration=100))
    for i in range(12):
        t = 1_000_000 + i * 100
        store.on_event(
            ev.BatchCompleted(
                t + 70,
                batch_time=t,
                submission_time=t + 5,
                processing_start=t + 10,
                processing_end=t + 60,
                records={0: 40 + i},
            )
        )
    store.on_event(
        ev.BatchSubmitted(
            2_000_000, batch_time=2_000_000, submission_time=2_000_000, records={0: 3}
        )
    )
    store.on_event(ev.ExecutorRemoved(5, executor_id="1", reason="killed"))
    return store


def test_status_line_is_computed_from_the_last_ten_batches() -> None:
    store = _store_with_batches()
    line = status_line(store)
    # the last ten batches held 42..51 records, 465 in 1.0 s of batches
    assert " | input 465 rec/s | processing 50 ms | delay 60 ms | queued 1 | " in line
    assert line.endswith("executors 1 (1 lost)")
    stamp = time.strftime("%H:%M:%S", time.localtime(1_001_100 / 1000))
    assert line.startswith(f"batch {stamp}.100")


def test_stage_bars_show_only_active_stages_older_than_the_threshold() -> None:
    store = StatusStore()
    store.on_event(ev.JobStart(1000, job_id=0))
    store.on_event(ev.StageSubmitted(1000, job_id=0, stage_id=0, name="map", num_tasks=6))
    store.on_event(ev.StageSubmitted(1400, job_id=0, stage_id=1, name="reduce", num_tasks=2))
    for task in range(3):
        store.on_event(
            ev.TaskStart(1001, stage_id=0, task_id=task, partition=task, executor_id="0")
        )
    store.on_event(ev.TaskEnd(1200, stage_id=0, task_id=0, executor_id="0", run_ms=199.0))
    assert stage_bars(store, now_ms=1600) == [("Stage 0", 1, 2, 6)]  # stage 1 is 0.2 s old
    assert stage_bars(store, now_ms=2000) == [("Stage 0", 1, 2, 6), ("Stage 1", 0, 0, 2)]
    store.on_event(ev.StageCompleted(2100, job_id=0, stage_id=0))
    assert stage_bars(store, now_ms=2200) == [("Stage 1", 0, 0, 2)]


def test_a_batch_program_shows_its_jobs() -> None:
    store = StatusStore()
    store.on_event(ev.ExecutorAdded(1, executor_id="0", host="127.0.0.1"))
    store.on_event(ev.JobStart(10, job_id=0))
    store.on_event(ev.JobEnd(20, job_id=0))
    store.on_event(ev.JobStart(30, job_id=1))
    assert status_line(store) == "jobs 1 done, 1 running | executors 1"
