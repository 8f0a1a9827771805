"""Event-time windows with a watermark, checked batch by batch against a plain-Python model.

Shuffled, late and duplicate-timestamp records, 300 batches at 50 ms on a manual clock, in
both output modes and with sliding windows; late records are counted and captured; the state
stays bounded on an endless stream; a worker kill leaves the results exact.
"""

from __future__ import annotations

import math
import os
import random
import signal
from collections import defaultdict
from typing import Any

import pytest
from crashing import kill_while_feeding

from dstreams.streaming import StreamingListener
from dstreams.streaming.operators.eventtime import EventWindow, window_starts
from dstreams.testing import CollectingSink, TestSource, manual_context, run_batches


def make_batches(seed: int, n: int) -> list[list[tuple[str, tuple[float, int]]]]:
    """Event time runs ~1 s per batch; records shuffled, some 5-20 s late, many on one ts."""
    rng = random.Random(seed)
    out = []
    for b in range(n):
        recs = []
        for _ in range(rng.randint(0, 10)):
            ts = b + rng.uniform(-2.0, 0.5)
            if rng.random() < 0.1:
                ts -= rng.uniform(5, 20)  # late
            if rng.random() < 0.2:
                ts = float(int(ts))  # duplicate timestamps on whole seconds
            recs.append((rng.choice("abc"), (ts, rng.randint(1, 9))))
        rng.shuffle(recs)
        out.append(recs)
    return out


class Model:
    def __init__(self, length: float, slide: float, delay: float, mode: str) -> None:
        self.length, self.slide, self.delay, self.mode = length, slide, delay, mode
        self.max_ts = -math.inf
        self.windows: dict[tuple[str, float], int] = {}

    def batch(self, records: list[Any]) -> tuple[list[Any], int]:
        wm = self.max_ts - self.delay
        changed: dict[tuple[str, float], None] = {}
        late = 0
        for key, (ts, v) in records:
            self.max_ts = max(self.max_ts, ts)
            if ts < wm:
                late += 1
                continue
            for s in window_starts(ts, self.length, self.slide):
                self.windows[(key, s)] = self.windows.get((key, s), 0) + v
                changed[(key, s)] = None
        final = [(k, v) for k, v in self.windows.items() if k[1] + self.length <= wm]
        for k, _ in final:
            del self.windows[k]
        if self.mode == "append":
            out = [((k[0], EventWindow(k[1], k[1] + self.length)), v) for k, v in final]
        else:
            out = [
                ((k[0], EventWindow(k[1], k[1] + self.length)), self.windows[k]) for k in changed
            ]
        return sorted(out), late


class Extras(StreamingListener):
    def __init__(self) -> None:
        self.late: list[int] = []

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        self.late.append(batchCompleted.batchInfo().extras().numLateRecords())


@pytest.mark.parametrize(
    "length,slide,mode", [(4.0, None, "append"), (4.0, None, "update"), (6.0, 2.0, "append")]
)
def test_every_batch_equals_the_model(sc, tmp_path, length, slide, mode) -> None:
    batches = make_batches(7, 300)
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    extras = Extras()
    ssc.addStreamingListener(extras)
    windows = (
        TestSource(ssc, batches, numSlices=2)
        .stream.windowByEventTime(
            lambda kv: kv[1][0],
            length,
            slide,
            watermarkDelay=3.0,
            outputMode=mode,
            valueFunc=lambda kv: kv[1][1],
            lateRecordsPath=str(tmp_path / "late"),
        )
        .reduceByKey(lambda a, b: a + b)
    )
    sink = CollectingSink(windows, sort=True)
    try:
        times = run_batches(ssc, 300)
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    model = Model(length, slide or length, 3.0, mode)
    total_late = 0
    for b, t in enumerate(times):
        expected, late = model.batch(batches[b])
        assert sink.results[b] == expected, f"batch {b}"
        assert extras.late[b] == late, f"batch {b}: late"
        total_late += late
        if late:
            got = []
            for f in (tmp_path / "late" / f"batch-{t}").iterdir():
                got += [eval(line) for line in f.read_text().splitlines()]
            assert len(got) == late, f"batch {b}: captured late records"
    assert total_late > 20, "the data should have late records"
    if mode == "append":
        emitted = [r for b in sink.results for r in b]
        assert len(emitted) == len(set(emitted)), "a final window is emitted once"


def test_a_real_clock_run_of_100_batches_equals_the_model(sc, tmp_path) -> None:
    from dstreams.streaming import StreamingContext
    from dstreams.testing import run_real_clock

    batches = make_batches(17, 100)
    ssc = StreamingContext(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    windows = (
        TestSource(ssc, batches, numSlices=2)
        .stream.windowByEventTime(
            lambda kv: kv[1][0],
            4.0,
            watermarkDelay=3.0,
            outputMode="update",
            valueFunc=lambda kv: kv[1][1],
        )
        .reduceByKey(lambda a, b: a + b)
    )
    sink = CollectingSink(windows, sort=True)
    run_real_clock(ssc, sink, 100)
    model = Model(4.0, 4.0, 3.0, "update")
    for b, recs in enumerate(batches):
        assert sink.batches[b][1] == model.batch(recs)[0], f"batch {b}"


def test_state_stays_bounded_on_an_endless_stream(sc, tmp_path) -> None:
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    batches = [[(f"k{i % 20}", (b * 2.0 + i * 0.01, 1)) for i in range(50)] for b in range(200)]
    counts = (
        TestSource(ssc, batches, numSlices=2)
        .stream.windowByEventTime(lambda kv: kv[1][0], 1.0, watermarkDelay=2.0, outputMode="append")
        .countByKey()
    )
    sizes: list[int] = []
    states = counts._event_time_states
    states.foreachRDD(lambda rdd: sizes.append(sum(rdd.map(lambda s: len(s.entries)).collect())))
    sink = CollectingSink(counts, sort=True)
    try:
        run_batches(ssc, 200)
    finally:
        ssc.stop(stopSparkContext=False)
    # each batch opens 2 s of 1 s windows for 20 keys; the watermark closes them 2 s later
    assert max(sizes) <= 3 * 2 * 20 and sizes[-1] == sizes[100], sizes[-5:]
    per_window = defaultdict(int)
    for b in sink.results:
        for (_, w), n in b:
            per_window[w] += n
    assert all(n == 50 for n in list(per_window.values())[:-2])


def test_a_worker_killed_mid_run_leaves_the_results_exact(sc, tmp_path) -> None:
    batches = make_batches(9, 80)
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    windows = (
        TestSource(ssc, batches, numSlices=2)
        .stream.windowByEventTime(
            lambda kv: kv[1][0],
            4.0,
            watermarkDelay=3.0,
            outputMode="append",
            valueFunc=lambda kv: kv[1][1],
        )
        .reduceByKey(lambda a, b: a + b)
    )
    sink = CollectingSink(windows, sort=True)
    try:
        run_batches(ssc, 30)
        os.kill(next(iter(sc._backend.worker_pids().values())), signal.SIGKILL)
        run_batches(ssc, 50)
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    model = Model(4.0, 4.0, 3.0, "append")
    for b, recs in enumerate(batches):
        assert sink.results[b] == model.batch(recs)[0], f"batch {b}"


def test_bad_arguments_name_the_bad_value(sc) -> None:
    ssc = manual_context(sc, 0.05)
    try:
        s = TestSource(ssc, []).stream
        with pytest.raises(ValueError, match="outputMode='complete' must be"):
            s.windowByEventTime(lambda r: 0, 1, outputMode="complete")
        with pytest.raises(ValueError, match="windowDuration=0 must be positive"):
            s.windowByEventTime(lambda r: 0, 0)
        with pytest.raises(ValueError, match="slideDuration=5 is longer than windowDuration=2"):
            s.windowByEventTime(lambda r: 0, 2, 5)
        with pytest.raises(TypeError, match="timestampFunc must be a function"):
            s.windowByEventTime(3, 1)
    finally:
        ssc.stop(stopSparkContext=False)


def test_window_starts() -> None:
    assert window_starts(5.5, 4.0, 4.0) == [4.0]
    assert window_starts(4.0, 4.0, 4.0) == [4.0]
    assert window_starts(5.5, 6.0, 2.0) == [0.0, 2.0, 4.0]
    assert window_starts(-0.5, 2.0, 2.0) == [-2.0]


def test_driver_sigkills_emit_every_final_window_exactly_once(tmp_path) -> None:
    """``tools/eventtime_driver.py`` is SIGKILLed at random moments (fixed seed) while files
    keep arriving, and started again; a last run drains. Each final window is in SQLite once,
    with the model's total."""
    import sqlite3
    import subprocess
    import sys
    import time
    from collections import Counter
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    rng = random.Random(4)
    (tmp_path / "inbox").mkdir()
    (tmp_path / "staging").mkdir()
    model: Counter[tuple[str, float]] = Counter()
    clock = {"ts": 0.0, "n": 0}

    def feed(files: int) -> None:
        for _ in range(files):
            lines = []
            for _ in range(10):
                key, t, v = rng.choice("xyz"), clock["ts"] + rng.uniform(0, 1), rng.randint(1, 5)
                lines.append(f"{key} {t:.3f} {v}")
                model[(key, math.floor(float(f"{t:.3f}") / 5) * 5.0)] += v
            clock["ts"] += 1.0
            staged = tmp_path / "staging" / f"f{clock['n']}.txt"
            staged.write_text("\n".join(lines) + "\n")
            staged.rename(tmp_path / "inbox" / staged.name)
            clock["n"] += 1

    env = dict(os.environ, PYTHONPATH=str(root / "src"), DSTREAMS_CONF_UI__ENABLED="false")
    program = [sys.executable, str(root / "tools" / "eventtime_driver.py"), str(tmp_path)]

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(program, env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().startswith("started")
        return proc

    kill_while_feeding(start, feed, rng, 4, (0.5, 2.0))
    (tmp_path / "inbox" / "flush.txt").write_text(f"flush {clock['ts'] + 1000:.3f} 0\n")
    proc = start()
    db = tmp_path / "out.db"
    deadline = time.monotonic() + 90
    rows: list[Any] = []
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db) as conn:
                rows = conn.execute(
                    "SELECT k, start, total FROM windows WHERE k != 'flush'"
                ).fetchall()
        except sqlite3.OperationalError:
            rows = []
        if len(rows) >= len(model):
            break
        time.sleep(0.2)
    (tmp_path / "stop").touch()
    assert proc.wait(60) == 0
    seen = Counter((k, s) for k, s, _ in rows)
    assert [w for w, n in seen.items() if n > 1] == [], "a window was written twice"
    assert {(k, s): t for k, s, t in rows} == dict(model)
