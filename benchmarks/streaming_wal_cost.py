"""Benchmark: what the receiver write-ahead log costs, at a 1 s batch interval.

A word count (``socketTextStream -> flatMap -> map -> reduceByKey -> count``) on ``local[2]``
with 1 s batches and backpressure on, fed by a generator process that offers more than the
engine can take (``--rate`` words/s over a 10,000-word vocabulary), so each run settles at the
highest rate it sustains. Runs alternate without and with the write-ahead log
(``dstreams.streaming.receiver.writeAheadLog.enable``, logging to a checkpoint directory on
the local disk), ``--rounds`` times each, ``--seconds`` per run; the first 10 s of each run are
warm-up. For each run it prints the words per second in completed batches, the median
processing time and the largest scheduling delay, then the median of each mode and the
write-ahead log's cost. The limit anchor is one core counting the same text with
``collections.Counter``.

Run:  python benchmarks/streaming_wal_cost.py [--rounds 2] [--seconds 40] [--rate 12000000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _streaming import BatchStats, TextSource, load_note  # noqa: E402

from dstreams import Conf, Context  # noqa: E402
from dstreams.streaming import StreamingContext  # noqa: E402

WARMUP_S = 10
WORDS_PER_LINE = 10


def one_run(port: int, wal: bool, seconds: float) -> tuple[float, float, int]:
    conf = Conf().setAll(
        [
            ("dstreams.streaming.backpressure.enabled", "true"),
            ("dstreams.streaming.receiver.writeAheadLog.enable", str(wal).lower()),
        ]
    )
    sc = Context("local[2]", "wal-cost", conf=conf)
    ssc = StreamingContext(sc, 1)
    directory = tempfile.mkdtemp(prefix="dstreams-wal-bench-", dir="/var/tmp")
    ssc.checkpoint(directory)
    words = ssc.socketTextStream("127.0.0.1", port).flatMap(str.split)
    words.map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).foreachRDD(lambda r: r.count())
    stats = BatchStats()
    ssc.addStreamingListener(stats)
    ssc.start()
    time.sleep(seconds)
    ssc.stop()
    steady = [b for b in stats.batches if b[0] - stats.batches[0][0] >= WARMUP_S * 1000]
    span_s = len(steady)  # one batch per second
    rate = sum(b[1] for b in steady) * WORDS_PER_LINE / max(1, span_s)  # records are lines
    return rate, statistics.median(b[3] for b in steady), max(b[2] for b in steady)


def counter_anchor(words_per_line: int = 10, vocab: int = 10_000) -> float:
    """One core: split and count the generator's text with collections.Counter (words/s)."""
    rng = random.Random(1)
    names = [f"w{i}" for i in range(vocab)]
    lines = [" ".join(rng.choices(names, k=words_per_line)) for _ in range(100_000)]
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        c: Counter[str] = Counter()
        for line in lines:
            c.update(line.split())
        best = max(best, len(lines) * words_per_line / (time.perf_counter() - t0))
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--rate", type=int, default=12_000_000, help="words/s offered")
    a = ap.parse_args()
    print(
        f"# write-ahead log cost: 1 s batches, backpressure on, {a.rate} words/s offered, "
        f"{a.rounds} rounds of {a.seconds:.0f} s; {load_note()}"
    )
    source = TextSource(a.rate, words_per_line=WORDS_PER_LINE)
    results: dict[bool, list[float]] = {False: [], True: []}
    try:
        for r in range(a.rounds):
            for wal in (False, True):
                rate, proc, delay = one_run(source.port, wal, a.seconds)
                results[wal].append(rate)
                print(
                    f"round {r + 1}, write-ahead log {'on ' if wal else 'off'}: {rate:,.0f} "
                    f"words/s, median processing {proc:.0f} ms, max scheduling delay "
                    f"{delay} ms",
                    flush=True,
                )
    finally:
        source.stop()
    off, on = statistics.median(results[False]), statistics.median(results[True])
    print(f"median without the log: {off:,.0f} words/s; with it: {on:,.0f} words/s")
    print(f"cost of the write-ahead log: {(off - on) / off * 100:.1f}% of the throughput")
    print(f"one core, collections.Counter on the same text: {counter_anchor():,.0f} words/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
