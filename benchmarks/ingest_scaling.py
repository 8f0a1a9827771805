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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _streaming import load_note, socket_wordcount_rate

from dstreams import Conf, Context


def ingest(master: str, n: int, seconds: float) -> float:
    conf = Conf().setAll(
        [
            ("dstreams.executor.instances", str(n)),
            ("dstreams.streaming.backpressure.enabled", "true"),
        ]
    )
    sc = Context(master, f"ingest-{n}", conf=conf)
    try:
        rate, placed = socket_wordcount_rate(sc, n, seconds, first_seed=0)
    finally:
        sc.stop()
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
