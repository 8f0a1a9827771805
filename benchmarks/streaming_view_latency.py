"""Key lookups on a live 1 M-key state while the stream runs: ``ssc.view(...).lookup(k)``.

    PYTHONPATH=src python3 benchmarks/streaming_view_latency.py [--rate 100000] [--seconds 20]

A word stream arrives over ``socketTextStream`` from a generator process at ``--rate`` words/s,
1 s batches, on ``local[2]``. ``mapWithState`` counts the words into a state that starts with
1,000,000 keys (``initialState``). Its snapshots are registered as a view. A query thread
looks up a random key every 20 ms (``--every``) for ``--seconds`` seconds and times each
lookup. The script prints the median and p99 latency and the stream's median processing time
per batch, which says how loaded the stream was (half of its capacity when it is about
0.5 s). The anchors, in the same run: one core's ``collections.Counter.update`` of one batch
of the same words into a 1 M-key Counter, and a lookup in that Counter.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from _streaming import BatchStats, TextSource, load_note, percentile  # noqa: E402

from dstreams import Context, StateSpec  # noqa: E402
from dstreams.streaming import StreamingContext  # noqa: E402


def count(word: str, one: int, state: object) -> None:
    state.update((state.getOption() or 0) + one)  # type: ignore[attr-defined]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--every", type=float, default=0.02, help="seconds between lookups")
    a = ap.parse_args()
    print(load_note(), flush=True)
    source = TextSource(a.rate, vocab=10_000)
    with Context("local[2]", "bench-view-latency") as sc:
        ssc = StreamingContext(sc, 1.0)
        ssc.checkpoint(tempfile.mkdtemp(prefix="bench-view-"))
        initial = sc.range(a.keys).map(lambda i: (f"k{i}", 1))
        spec = StateSpec.function(count).initialState(initial).numPartitions(2)
        words = ssc.socketTextStream("127.0.0.1", source.port).flatMap(str.split)
        mapped = words.map(lambda w: (w, 1)).mapWithState(spec)
        mapped.foreachRDD(lambda rdd: rdd.count())
        mapped.stateSnapshots().registerView("counts")
        stats = BatchStats()
        ssc.addStreamingListener(stats)
        ssc.start()
        while True:  # the first batch has published the view
            try:
                ssc.view("counts")
                break
            except LookupError:
                time.sleep(0.05)
        rng = random.Random(1)
        latencies: list[float] = []
        wrong: list[str] = []

        def query() -> None:
            end = time.monotonic() + a.seconds
            while time.monotonic() < end:
                i = rng.randrange(a.keys)
                t0 = time.perf_counter()
                got = ssc.view("counts").lookup(f"k{i}")
                latencies.append((time.perf_counter() - t0) * 1000)
                if not got or got[0] < 1:
                    wrong.append(f"k{i}: {got}")
                time.sleep(a.every)

        t = threading.Thread(target=query)
        t.start()
        t.join()
        ssc.stop(stopSparkContext=False, stopGraceFully=False)
    source.stop()
    processing = [b[3] for b in stats.batches[1:] if b[1] > 0]
    records = [b[1] for b in stats.batches[1:] if b[1] > 0]
    print(f"{len(latencies)} lookups on a {a.keys:,}-key state: median "
          f"{statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
          f"max {max(latencies):.1f} ms", flush=True)
    print(f"stream: {statistics.median(records):,.0f} records per 1 s batch, median processing "
          f"{statistics.median(processing):.0f} ms per batch", flush=True)
    from collections import Counter

    counter = Counter({f"k{i}": 1 for i in range(a.keys)})
    words = [f"w{random.Random(2).randrange(10_000)}" for _ in range(a.rate)]
    t0 = time.perf_counter()
    counter.update(words)
    update_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    for i in range(10_000):
        counter.get(f"k{i}")
    lookup_us = (time.perf_counter() - t0) * 1e6 / 10_000
    print(f"one-core Counter: a batch's {a.rate:,} words in {update_ms:.0f} ms; a lookup "
          f"{lookup_us:.2f} us", flush=True)
    if wrong:
        print(f"WRONG lookups: {wrong[:5]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
