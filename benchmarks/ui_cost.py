"""The UI's cost on the driver: driver CPU time per batch, UI off against UI on, side by side.

A word count at 0.1 s batches reads 200 k words/s through ``socketTextStream`` (a separate
source process). For each configuration the driver's CPU time (``time.process_time``: every
thread of the driver process, none of the workers') over 100 batches is divided by the batches.
Configurations, interleaved over ``--rounds`` rounds on one machine:

* ``off``: ``dstreams.ui.enabled=false``;
* ``on``: the UI, the REST API and /metrics served, nobody looking;
* ``on+viewer``: the same with the streaming page and /metrics fetched every second, as an
  open browser tab and a Prometheus scrape would.

Also reports events dropped by the listener bus (target: none). Target: the UI's cost at most
0.5 ms of driver CPU per batch.

    .venv/bin/python benchmarks/ui_cost.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _streaming import BatchStats, TextSource

from dstreams import Conf, Context
from dstreams.streaming import StreamingContext


def run(mode: str, port: int, batches: int) -> tuple[float, int]:
    conf = Conf(loadDefaults=False).set("dstreams.ui.enabled", str(mode != "off").lower())
    conf.set("dstreams.ui.port", "0")
    with Context("local[2]", f"ui-cost-{mode}", conf=conf) as sc:
        ssc = StreamingContext(sc, 0.1)
        stats = BatchStats()
        ssc.addStreamingListener(stats)
        words = ssc.socketTextStream("127.0.0.1", port).flatMap(str.split)
        words.map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).foreachRDD(
            lambda rdd: rdd.count()
        )
        ssc.start()
        stats.wait_for(10, 60)  # warm up
        stop = threading.Event()
        if mode == "on+viewer":

            def view() -> None:
                while not stop.wait(1.0):
                    for path in ("/streaming/", "/metrics"):
                        urllib.request.urlopen(sc.uiWebUrl + path, timeout=5).read()

            threading.Thread(target=view, daemon=True).start()
        first = len(stats.batches)
        cpu = time.process_time()
        stats.wait_for(first + batches, 120)
        used = time.process_time() - cpu
        done = len(stats.batches) - first
        stop.set()
        dropped = sc._runner.bus.dropped
        ssc.stop(stopSparkContext=False)
    return used * 1000.0 / done, dropped


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=100)
    p.add_argument("--rate", type=int, default=200_000)
    args = p.parse_args()
    modes = ["off", "on", "on+viewer"]
    got: dict[str, list[float]] = {m: [] for m in modes}
    drops = 0
    for r in range(args.rounds):
        for m in modes if r % 2 == 0 else reversed(modes):
            source = TextSource(args.rate)
            try:
                ms, dropped = run(m, source.port, args.batches)
            finally:
                source.stop()
            got[m].append(ms)
            drops += dropped
            print(f"round {r + 1} {m:10s} {ms:.3f} ms driver CPU per batch", flush=True)
    base = statistics.median(got["off"])
    for m in modes:
        med = statistics.median(got[m])
        print(
            f"{m:10s} median {med:.3f} ms/batch ({med - base:+.3f} vs off)  all: "
            + ", ".join(f"{v:.3f}" for v in got[m])
        )
    print(f"listener events dropped: {drops}")


if __name__ == "__main__":
    main()
