"""Crash harness: SIGKILL the driver again and again, and check that every record counts once.

``python tools/crash_harness.py [--kills 20] [--seed 7] [--workdir DIR]`` runs
``tools/crash_driver.py`` as a subprocess, killed each time at an injected kill point
(``dstreams.faults``: receiving, mid-job, mid-checkpoint write, mid-commit) chosen with a fixed
seed, and restarted; some restarts also lose a worker right after recovering. Input keeps
arriving throughout: files moved into the watched directory and lines appended to the reliable
receiver's source, also while the driver is dead. A last run without kills drains the input and
stops gracefully. Then:

* the per-batch counts in SQLite, summed, equal a plain-Python count of the whole input, and
  no (batch, word) row is there twice: every record was counted exactly once;
* the last committed state (a FileSink) equals the same counts;
* every committed window count equals the sum of the committed per-batch counts of its 2 s;
* every kill point was hit (at least 3 times each for 12 kills or more).

It prints the kills by phase and the recovery times (restart to the first new batch).
``tests/streaming/test_driver_recovery.py`` runs it short in ``make test`` and long in
``make soak``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from dstreams.faults import POINTS  # noqa: E402

#: hits after which each point fires (how often it is reached varies)
HITS = {"receive": (3, 40), "job": (10, 120), "checkpoint-write": (4, 40), "commit": (4, 60)}


@dataclass
class Report:
    kills: list[str] = field(default_factory=list)
    worker_kills: int = 0
    recovery_s: list[float] = field(default_factory=list)
    startup_s: list[float] = field(default_factory=list)
    records: int = 0
    problems: list[str] = field(default_factory=list)

    def by_phase(self) -> dict[str, int]:
        return dict(Counter(self.kills))


class Input:
    """The input, made as it is fed: files for the file stream, lines for the receiver's log.

    It never runs out, so every run of the driver gets input until its kill point is reached;
    ``files`` and ``lines`` are how much the whole scenario feeds at least. ``model`` counts
    every word fed so far.
    """

    def __init__(self, work: Path, rng: random.Random, files: int, lines: int) -> None:
        self.work, self.rng = work, rng
        self.vocab = [f"w{i}" for i in range(40)]
        self.min_files, self.min_lines = files, lines
        self.next_file = self.next_line = 0
        self.model: Counter[str] = Counter()
        (work / "inbox").mkdir(parents=True, exist_ok=True)
        (work / "staging").mkdir(exist_ok=True)

    def _line(self, k: int) -> str:
        line = " ".join(self.rng.choices(self.vocab, k=k))
        self.model.update(line.split())
        return line

    def feed(self, files: int = 1, lines: int = 30) -> None:
        for _ in range(files):
            i = self.next_file
            staged = self.work / "staging" / f"part-{i:05d}.txt"
            staged.write_text("".join(self._line(8) + "\n" for _ in range(20)))
            staged.rename(self.work / "inbox" / f"part-{i:05d}.txt")
            self.next_file += 1
        if lines:
            with open(self.work / "source.txt", "a") as fh:
                fh.write("".join(self._line(6) + "\n" for _ in range(lines)))
            self.next_line += lines

    def done(self) -> bool:
        return self.next_file >= self.min_files and self.next_line >= self.min_lines


class Driver:
    """One run of the crash driver, with its events read from stdout."""

    def __init__(self, work: Path, kill_at: str | None, log: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        env.pop("DSTREAMS_KILL_AT", None)
        if kill_at is not None:
            env["DSTREAMS_KILL_AT"] = kill_at
            counter = work / "kill-count"
            counter.unlink(missing_ok=True)
            env["DSTREAMS_KILL_COUNT"] = str(counter)
            env["DSTREAMS_KILL_LOG"] = str(log)
        self.spawned = time.time()
        self.stderr = open(work / "driver.stderr", "a")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "crash_driver.py"), str(work)],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
            start_new_session=True,  # a kill of the group takes its workers too
        )
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                pass

    def event(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == name), None)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def workers(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]

    def wait(self, timeout: float) -> int | None:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(5)
        self.stderr.close()
        return code

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.wait(10)


def _reap_group(driver: Driver) -> None:
    """After the driver died, make sure its workers are gone too (they exit on their own)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(driver.proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(driver.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(work: Path, kills: int, seed: int, files: int = 40, lines: int = 1200) -> Report:
    """The whole scenario (see the module docstring); returns what happened and what is wrong."""
    rng = random.Random(seed)
    report = Report()
    data = Input(work, rng, files, lines)
    log = work / "kills.log"
    phases = [POINTS[i % len(POINTS)] for i in range(kills)]
    rng.shuffle(phases)
    for k, point in enumerate(phases):
        lo, hi = HITS[point]
        driver = Driver(work, f"{point}:{rng.randint(lo, hi)}", log)
        lose_worker = k % 4 == 2  # now and then a worker dies during recovery as well
        deadline = time.monotonic() + 40
        while driver.alive() and time.monotonic() < deadline:
            if k == 0 and driver.event("started") is None:
                time.sleep(0.05)  # a fresh start ignores files already there (as Spark)
                continue
            if lose_worker and len(driver.workers()) >= 2:
                time.sleep(0.2)  # the driver is recovering: pending batches are re-running
                for pid in driver.workers()[:1]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        report.worker_kills += 1
                    except ProcessLookupError:
                        pass
                lose_worker = False
            data.feed(files=1 if rng.random() < 0.2 else 0, lines=rng.randint(2, 12))
            time.sleep(0.1)
        _note_recovery(driver, report, k > 0)
        if driver.alive():
            driver.kill()  # the point was not reached in time: not counted as a kill
        else:
            driver.wait(5)
        _reap_group(driver)
        data.feed(files=1, lines=20)  # input arrives while the driver is down
    report.kills = log.read_text().split() if log.exists() else []
    # the last run: no kill; drain every input, then stop gracefully
    driver = Driver(work, None, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if not data.done():
            data.feed(files=2, lines=60)
        elif _committed_total(work) >= sum(data.model.values()):
            break
        time.sleep(0.2)
    expected = sum(data.model.values())
    _note_recovery(driver, report, kills > 0)
    if os.environ.get("CRASH_HARNESS_DEBUG"):
        print("last driver's events:", driver.events[:5])
    (work / "stop").write_text("")
    if driver.wait(60) is None:
        report.problems.append("the last driver did not stop gracefully")
        driver.kill()
    report.records = expected
    report.problems += check(work, data.model)
    if kills >= 3 * len(POINTS):
        for p in POINTS:
            if report.by_phase().get(p, 0) < 3:
                report.problems.append(
                    f"kill point {p} was hit {report.by_phase().get(p, 0)} times"
                )
    return report


def _note_recovery(driver: Driver, report: Report, recovering: bool) -> None:
    """Restart to the first new batch, for a driver that restarted from a checkpoint."""
    started = driver.event("started")
    if started is not None:
        report.startup_s.append(started["took"])
    first = driver.event("first-new-batch")
    if recovering and first is not None:
        report.recovery_s.append(first["wall"] - driver.spawned)


def _committed_total(work: Path) -> int:
    db = work / "out.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            row = conn.execute("SELECT COALESCE(SUM(n), 0) FROM batch_counts").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0])


def check(work: Path, model: Counter[str]) -> list[str]:
    """What is wrong with the committed output (an empty list: nothing)."""
    problems = []
    with sqlite3.connect(work / "out.db", timeout=30) as conn:
        rows = conn.execute("SELECT batch, word, n FROM batch_counts").fetchall()
        windows = conn.execute("SELECT batch, word, n FROM window_counts").fetchall()
    seen: Counter[tuple[int, str]] = Counter((b, w) for b, w, _ in rows)
    doubled = [k for k, c in seen.items() if c > 1]
    if doubled:
        problems.append(f"{len(doubled)} (batch, word) rows committed twice, e.g. {doubled[:3]}")
    totals: Counter[str] = Counter()
    for _, w, n in rows:
        totals[w] += n
    if totals != model:
        diff = {w: (totals.get(w, 0), model.get(w, 0)) for w in set(totals) | set(model)}
        bad = {w: v for w, v in diff.items() if v[0] != v[1]}
        problems.append(f"per-batch counts differ from the input (committed, model): {bad}")
    sys.path.insert(0, str(HERE))
    from crash_driver import BATCH, WINDOW

    per_batch: dict[int, Counter[str]] = {}
    for b, w, n in rows:
        per_batch.setdefault(b, Counter())[w] += n
    span = round(WINDOW * 1000)
    step = round(BATCH * 1000)
    wrong = 0
    for b, w, n in windows:
        want = sum(
            per_batch.get(t, Counter()).get(w, 0) for t in range(b - span + step, b + 1, step)
        )
        if n != want:
            wrong += 1
    if wrong:
        problems.append(f"{wrong} of {len(windows)} window counts disagree with the batches")
    state_dir = work / "out" / "state"
    if state_dir.is_dir():
        last = max(state_dir.iterdir(), key=lambda p: int(p.name.split("-")[1]))
        state: dict[str, int] = {}
        for part in last.glob("part-*"):
            for line in part.read_text().splitlines():
                w, n = eval(line)
                state[w] = n
        if state != dict(model):
            problems.append("the last committed state differs from the input's counts")
    else:
        problems.append("no state was committed")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="dstreams-crash-"))
    t0 = time.monotonic()
    r = run(work, a.kills, a.seed)
    print(
        f"kills survived: {len(r.kills)} (by phase {r.by_phase()}), workers killed "
        f"during recovery: {r.worker_kills}, records: {r.records}, took "
        f"{time.monotonic() - t0:.0f}s, in {work}"
    )
    if r.recovery_s:
        print(
            f"recovery (driver start to the first new batch): median "
            f"{statistics.median(r.recovery_s):.2f}s, max {max(r.recovery_s):.2f}s"
        )
    for p in r.problems:
        print("PROBLEM:", p)
    return 1 if r.problems else 0


if __name__ == "__main__":
    sys.exit(main())
