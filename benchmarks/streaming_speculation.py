"""Benchmark: one of three workers stops (SIGSTOP) or slows down mid-batch; speculation on/off.

A network word count on ``local[3]``: text arrives through ``socketTextStream`` from a generator
process; 1.2 s batches cut into 6 blocks (``blockInterval`` 200 ms), so each batch runs 6 map
tasks, each doing some CPU work per word, and 3 reduce tasks. After a warm-up, in the middle of
a batch, one worker is stopped with SIGSTOP for 4 s (``--mode stop``), or slowed 5x for 4 s by
stopping it 80 % of every 50 ms (``--mode slow``). The figure is that batch's processing time
over the median of normal batches, with ``dstreams.speculation`` off and on, and the scheduling
delay of the batches after it. Target: at most 1.5x with speculation; later batches not delayed.

The receiver runs on one of the three workers. By default (``--victim task``) the disturbed
worker is one that only runs tasks: that is what speculation is for. With ``--victim receiver``
it is the receiver's: then the source is not read for 4 s either (no speculation can read a
stopped receiver's socket), and the batches after it carry the backlog.

Run:  python benchmarks/streaming_speculation.py [--mode stop|slow] [--victim task|receiver]
      [--rate 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import statistics
import sys
import threading
import time
from operator import add
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _streaming import BatchStats, TextSource, load_note

from dstreams import Conf, Context
from dstreams.streaming import StreamingContext

BATCH = 1.2


def work(word: str) -> tuple[str, int]:
    """About 9 microseconds of CPU per word, as a parse-and-enrich step might cost."""
    d = word.encode() * 40
    for _ in range(12):
        d = hashlib.sha256(d).digest() + d[:64]
    return word, 1 + d[0] % 2


class Starts:
    """Calls back when a batch starts processing."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.event = threading.Event()

    def onBatchStarted(self, batchStarted: Any) -> None:
        self.started.append(batchStarted.batchInfo().batchTime().milliseconds())
        self.event.set()


def disturb(pid: int, mode: str, seconds: float) -> None:
    if mode == "stop":
        os.kill(pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.kill(pid, signal.SIGCONT)
        return
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # runs 10 ms of every 50: five times slower
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.04)
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.01)


def run(
    rate: int, speculation: bool, mode: str, warmup: int, after: int, victim_kind: str
) -> dict[str, Any]:
    source = TextSource(rate)
    conf = Conf().setAll(
        [
            ("dstreams.speculation", str(speculation).lower()),
            ("dstreams.streaming.blockInterval", "200ms"),
        ]
    )
    sc = Context("local[3]", "speculation", conf=conf)
    ssc = StreamingContext(sc, BATCH)
    words = ssc.socketTextStream("127.0.0.1", source.port).flatMap(str.split)
    counts = words.map(work).reduceByKey(add, 3)
    counts.foreachRDD(lambda rdd: rdd.count())
    stats, starts = BatchStats(), Starts()
    ssc.addStreamingListener(stats)
    ssc.addStreamingListener(starts)
    ssc.start()
    try:
        assert stats.wait_for(warmup, warmup * BATCH * 5 + 60), "warm-up did not finish"
        normal = statistics.median(b[3] for b in stats.batches[3:])
        starts.event.clear()
        starts.event.wait(30)
        hit = starts.started[-1]
        time.sleep(min(0.15, normal / 4))  # in the middle of the batch's map stage
        pids = sc._backend.worker_pids()
        receiver_at = set(ssc._receiver_tracker.placements().values())
        if victim_kind == "receiver":
            victim = pids[sorted(receiver_at)[0]]
        else:  # a worker that only runs tasks
            victim = pids[sorted(e for e in pids if e not in receiver_at)[0]]
        disturb(victim, mode, 4.0)
        stats.wait_for(len(stats.batches) + after, after * BATCH * 10 + 60)
    finally:
        ssc.stop()
        source.stop()
    rows = {b[0]: b for b in stats.batches}
    later = [b for b in stats.batches if b[0] > hit]
    return {
        "normal": normal,
        "hit": rows[hit],
        "ratio": rows[hit][3] / normal,
        "later_delay_max": max(b[2] for b in later[3:]) if len(later) > 3 else None,
        "later": later[:8],
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["stop", "slow"], default="stop")
    ap.add_argument("--rate", type=int, default=100_000, help="words per second")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--after", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--victim",
        choices=["task", "receiver"],
        default="task",
        help="disturb a worker that only runs tasks, or the one that runs the receiver",
    )
    a = ap.parse_args()
    print(
        f"# one of 3 workers ({a.victim} worker) "
        f"{'stopped' if a.mode == 'stop' else 'slowed 5x'} for 4 s mid-batch; "
        f"{a.rate} words/s, {BATCH}s batches, 6 map + 3 reduce tasks; {load_note()}"
    )
    for spec in (False, True):
        ratios = []
        for _ in range(a.repeat):
            r = run(a.rate, spec, a.mode, a.warmup, a.after, a.victim)
            ratios.append(r["ratio"])
            print(
                f"speculation {'on ' if spec else 'off'}: normal batch {r['normal']:.0f} ms; the "
                f"disturbed batch {r['hit'][3]} ms = {r['ratio']:.2f}x; scheduling delay of "
                f"later batches (from the 4th on) at most {r['later_delay_max']} ms",
                flush=True,
            )
            print(f"  later batches (time, lines, scheduling ms, processing ms): {r['later']}")
        print(
            f"speculation {'on ' if spec else 'off'}: median ratio {statistics.median(ratios):.2f}x"
            f" over {a.repeat} runs ({', '.join(f'{x:.2f}' for x in ratios)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
