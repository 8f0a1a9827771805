"""Benchmark: how long a killed driver takes to come back, with 10 s state checkpoints.

A word count with state (``updateStateByKey``) and a 30 s inverse window
(``reduceByKeyAndWindow(add, sub, 30, 1)``) on 1 s batches, checkpointed every 10 s (the
default), with the receiver write-ahead log on. Data arrives through ``socketTextStream`` from
a generator process (``--rate`` words/s over a ``--keys`` vocabulary). The driver runs as a
subprocess started with ``StreamingContext.getOrCreate``; after a random 12-25 s (so at least
one state checkpoint exists, and up to 10 s of batches since it) its whole process group is
SIGKILLed and a new driver is started at once. Repeated ``--kills`` times.

For each restart it prints: the time from spawning the new driver to ``getOrCreate`` returning
(interpreter, imports, reading the checkpoint, starting the Context), to ``start()`` returning,
and to the first *new* batch completing (the first batch generated after the restart, after the
pending and down-time batches re-ran); the time from the kill to that batch; and how many
batches lay between the restored state checkpoint and the restart (recomputed from the
write-ahead log, or re-run). Target: under
2 s from restart to the first new batch on ``local[2]``.

Run:  python benchmarks/streaming_driver_recovery.py [--kills 5] [--rate 20000] [--keys 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from _streaming import TextSource, load_note  # noqa: E402


def emit(event: str, **kw: Any) -> None:
    print(json.dumps({"event": event, "wall": time.time(), **kw}), flush=True)


def child(port: int, directory: str) -> int:
    """The driver: recover or create, run until killed."""
    from operator import add, sub

    from dstreams import Conf, Context
    from dstreams.streaming import StreamingContext, StreamingListener

    spawned = float(os.environ["BENCH_SPAWNED"])

    def setup() -> StreamingContext:
        conf = Conf().set("dstreams.streaming.receiver.writeAheadLog.enable", "true")
        sc = Context("local[2]", "driver-recovery", conf=conf)
        ssc = StreamingContext(sc, 1)
        pairs = ssc.socketTextStream("127.0.0.1", port).flatMap(str.split).map(lambda w: (w, 1))
        state = pairs.updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
        window = pairs.reduceByKeyAndWindow(add, sub, 30, 1)
        state.foreachRDD(lambda rdd: rdd.count())
        window.foreachRDD(lambda rdd: rdd.count())
        return ssc

    ssc = StreamingContext.getOrCreate(directory, setup)
    created = time.time()
    recovered = ssc._recovered_from is not None

    class Events(StreamingListener):
        def __init__(self) -> None:
            self.restart_ms: int | None = None

        def onBatchCompleted(self, batchCompleted: Any) -> None:
            info = batchCompleted.batchInfo()
            t = info.batchTime().milliseconds()
            if self.restart_ms is not None:  # the batches re-run before the first new one
                emit(
                    "batch",
                    batch=t,
                    processing=info.processingDelay(),
                    scheduling=info.schedulingDelay(),
                    records=info.numRecords(),
                )
            if self.restart_ms is not None and t >= self.restart_ms:
                emit("first-new-batch", batch=t, processing=info.processingDelay())
                self.restart_ms = None

    events = Events()
    ssc.addStreamingListener(events)
    ssc.start()
    events.restart_ms = ssc._start_ms
    restored = [t for s in ssc._graph._all_streams() for t in s._ckpt_rdds]
    emit(
        "started",
        recovered=recovered,
        created=created - spawned,
        started=time.time() - spawned,
        # batches recomputed or re-run: from the restored state checkpoint to the restart
        redone=(ssc._start_ms - min(restored)) // 1000 - 1 if restored else 0,
    )
    while True:
        time.sleep(1)


class Driver:
    def __init__(self, port: int, directory: str) -> None:
        self.spawned = time.time()
        env = dict(os.environ, BENCH_SPAWNED=repr(self.spawned))
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "child", str(port), directory],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                pass

    def wait_event(self, name: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if e.get("event") == name:
                    return e
            time.sleep(0.01)
        return None

    def kill(self) -> float:
        killed = time.time()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return killed


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        return child(int(sys.argv[2]), sys.argv[3])
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--rate", type=int, default=20_000, help="words per second")
    ap.add_argument("--keys", type=int, default=10_000, help="vocabulary (state keys)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--verbose", action="store_true", help="print each re-run batch")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    print(
        f"# driver recovery: {a.kills} kills, {a.rate} words/s, {a.keys} keys, 1 s batches, "
        f"10 s checkpoints, write-ahead log on; {load_note()}"
    )
    source = TextSource(a.rate, vocab=a.keys)
    directory = tempfile.mkdtemp(prefix="dstreams-recovery-bench-")
    rows = []
    try:
        driver = Driver(source.port, directory)
        if driver.wait_event("started", 60) is None:
            print("the first driver did not start")
            return 1
        for k in range(a.kills):
            time.sleep(rng.uniform(12, 25))
            killed = driver.kill()
            driver = Driver(source.port, directory)
            started = driver.wait_event("started", 60)
            first = driver.wait_event("first-new-batch", 60)
            if started is None or first is None or not started["recovered"]:
                print(f"restart {k + 1}: did not recover ({started}, {first})")
                return 1
            row = (
                started["created"],
                started["started"],
                first["wall"] - driver.spawned,
                first["wall"] - killed,
            )
            rows.append(row)
            if a.verbose:
                for e in driver.events:
                    if e.get("event") == "batch":
                        print(
                            f"  re-run batch {e['batch']}: {e['records']} records, scheduling "
                            f"{e['scheduling']} ms, processing {e['processing']} ms"
                        )
            print(
                f"restart {k + 1}: getOrCreate {row[0]:.2f} s, start() {row[1]:.2f} s, "
                f"first new batch {row[2]:.2f} s after the restart ({row[3]:.2f} s after the "
                f"kill; {started['redone']} batches since the state checkpoint recomputed or "
                f"re-run first; the new batch's processing {first['processing']} ms)",
                flush=True,
            )
        driver.kill()
    finally:
        source.stop()
    firsts = [r[2] for r in rows]
    print(
        f"restart to the first new batch: median {statistics.median(firsts):.2f} s, "
        f"max {max(firsts):.2f} s over {len(rows)} restarts (target < 2 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
