"""Benchmark: ingest throughput with N socket receivers on N executors, N = 1 and 2.

A word count over ``ssc.union(*streams)`` of N ``socketTextStream`` receivers, one per
executor, each fed by its own generator process offering more than the engine takes (6 M
words/s each), backpressure on, 1 s batches. The figure is the words/s of the batches that
completed after a 10 s warm-up. Run on ``local[N]`` and on Ray with N executors (a private
single-node Ray with 2 CPUs started by the script), one after the other in one run. With the
receivers on the executors the driver is not the funnel, so throughput should grow with N
until the machine's cores are used up (2 here).

Run:  python benchmarks/ingest_scaling.py [--seconds 25]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from operator import add
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _streaming import BatchStats, TextSource, load_note

from dstreams import Conf, Context
from dstreams.streaming import StreamingContext


def ingest(master: str, n: int, seconds: float) -> float:
    conf = Conf().setAll(
        [
            ("dstreams.executor.instances", str(n)),
            ("dstreams.streaming.backpressure.enabled", "true"),
        ]
    )
    sc = Context(master, f"ingest-{n}", conf=conf)
    sources = [TextSource(6_000_000, seed=s) for s in range(n)]
    try:
        ssc = StreamingContext(sc, 1.0)
        streams = [ssc.socketTextStream("127.0.0.1", s.port) for s in sources]
        counts = ssc.union(*streams).flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(add)
        counts.foreachRDD(lambda rdd: rdd.count())
        stats = BatchStats()
        ssc.addStreamingListener(stats)
        ssc.start()
        time.sleep(seconds)
        placed = sorted(str(e) for e in ssc._receiver_tracker.placements().values())
        ssc.stop(stopSparkContext=False)
    finally:
        for s in sources:
            s.stop()
        sc.stop()
    first = stats.batches[0][0] if stats.batches else 0
    late: list[Any] = [b for b in stats.batches if b[0] >= first + 10_000]
    rate = sum(b[1] for b in late) * 10 / max(1, len(late))  # 10 words a line, 1 s batches
    print(f"  {master} x{n}: receivers on executors {placed}: {rate / 1e6:.2f} M words/s")
    return rate


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=25.0)
    a = ap.parse_args()
    print(f"# N socket receivers on N executors; {load_note()}", flush=True)
    local = {n: ingest(f"local[{n}]", n, a.seconds) for n in (1, 2)}
    from dstreams.executor.ray import start_local_ray

    ray = start_local_ray(num_cpus=2)
    try:
        on_ray = {n: ingest("ray", n, a.seconds) for n in (1, 2)}
    finally:
        ray.shutdown()
    print("| receivers = executors | local | Ray |")
    print("|---|---|---|")
    for n in (1, 2):
        print(f"| {n} | {local[n] / 1e6:.2f} M words/s | {on_ray[n] / 1e6:.2f} M words/s |")
    print(
        f"scaling 1 -> 2: local {local[2] / local[1]:.2f}x, Ray {on_ray[2] / on_ray[1]:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
