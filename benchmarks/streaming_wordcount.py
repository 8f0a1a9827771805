"""Benchmark 7(a): streaming word count, 1 M words per batch over 10 batches.

Input batches are pre-built, cached RDDs (100 k lines x 10 words from a 10 k-word
vocabulary), standing in for received blocks already held by the workers.  The
job is PySpark's network word count (flatMap -> map -> reduceByKey) with an
output that materialises every count.  Batches are driven with a ManualClock and
timed on the wall clock, one batch at a time, so the figure is pure processing
time per batch.

Run:  python benchmarks/streaming_wordcount.py [--batches 10] [--words 1000000]
"""

from __future__ import annotations

import argparse
import operator
import random
import statistics
import time

from dstreams import Context
from dstreams.testing import manual_context

__all__ = ["main"]


def make_lines(n_words: int, seed: int, vocab: int = 10_000, per_line: int = 10) -> list[str]:
    """Return ``n_words`` words as lines of ``per_line`` words."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    flat = rng.choices(words, k=n_words)
    return [" ".join(flat[i : i + per_line]) for i in range(0, n_words, per_line)]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--words", type=int, default=1_000_000)
    p.add_argument("--master", default="local[2]")
    args = p.parse_args(argv)
    with Context(args.master, "bench-streaming-wordcount") as sc:
        parts = sc.defaultParallelism
        batches = []
        for b in range(args.batches + 1):  # +1 warm-up batch
            rdd = sc.parallelize(make_lines(args.words, b), parts).cache()
            rdd.count()
            batches.append(rdd)
        ssc = manual_context(sc, 1)
        counts = (
            ssc.queueStream(batches)
            .flatMap(lambda line: line.split(" "))
            .map(lambda w: (w, 1))
            .reduceByKey(operator.add)
        )
        totals: list[int] = []
        counts.foreachRDD(lambda rdd: totals.append(sum(rdd.values().collect())))
        ssc.start()
        clock = ssc.clock
        times = []
        for i in range(args.batches + 1):
            target = (i + 1) * 1000
            t0 = time.perf_counter()
            clock.setTime(target)
            ssc._scheduler.wait_for_batch(target, 300)
            times.append((time.perf_counter() - t0) * 1000)
        ssc.stop(stopSparkContext=False)
        ssc.awaitTerminationOrTimeout(0)
    assert all(t == args.words for t in totals), totals
    steady = times[1:]
    mean = statistics.mean(steady)
    print(
        f"streaming word count: {args.words:,} words/batch x {args.batches} batches "
        f"on {args.master}"
    )
    print("  per-batch processing time (ms): " + ", ".join(f"{t:.0f}" for t in steady))
    print(
        f"  mean {mean:.1f} ms, median {statistics.median(steady):.1f} ms, "
        f"max {max(steady):.1f} ms (warm-up batch {times[0]:.0f} ms)"
    )
    print(f"  throughput {args.words / (mean / 1000) / 1e6:.2f} M words/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
