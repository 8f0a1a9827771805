"""Benchmark 7(c): sliding-window word count (30 s window, 1 s slide, with inverse).

``reduceByKeyAndWindow(add, sub, 30, 1)`` over a word stream: at steady state
each batch adds the newest batch and subtracts the one that left the window
(PySpark's incremental path, window >= 5 x slide), and every 10 s the window's
state RDD is checkpointed.  Input batches are pre-built cached RDDs; time is
driven with a ManualClock and each batch is timed on the wall clock.  Steady
state = the batches after the window has filled.

Run:  python benchmarks/streaming_window.py [--words 100000] [--batches 45]
"""

from __future__ import annotations

import argparse
import operator
import random
import statistics
import tempfile
import time

from dstreams import Context
from dstreams.testing import manual_context

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--words", type=int, default=100_000, help="words per 1 s batch")
    p.add_argument("--batches", type=int, default=45)
    p.add_argument("--vocab", type=int, default=10_000)
    p.add_argument("--master", default="local[2]")
    args = p.parse_args(argv)
    window, slide = 30, 1
    with (
        Context(args.master, "bench-streaming-window") as sc,
        tempfile.TemporaryDirectory() as checkpoint_dir,
    ):
        rng = random.Random(0)
        vocab = [f"w{i}" for i in range(args.vocab)]
        inputs = []
        for _ in range(args.batches):
            words = rng.choices(vocab, k=args.words)
            lines = [" ".join(words[i : i + 10]) for i in range(0, len(words), 10)]
            rdd = sc.parallelize(lines, sc.defaultParallelism).cache()
            rdd.count()
            inputs.append(rdd)
        ssc = manual_context(sc, slide)
        ssc.checkpoint(checkpoint_dir)
        counts = (
            ssc.queueStream(inputs)
            .flatMap(lambda line: line.split(" "))
            .map(lambda w: (w, 1))
            .reduceByKeyAndWindow(operator.add, operator.sub, window, slide)
        )
        totals: list[int] = []
        counts.foreachRDD(lambda rdd: totals.append(sum(rdd.values().collect())))
        ssc.start()
        times = []
        for i in range(args.batches):
            target = (i + 1) * 1000
            t0 = time.perf_counter()
            ssc.clock.setTime(target)  # type: ignore[attr-defined]
            ssc._scheduler.wait_for_batch(target, 300)
            times.append((time.perf_counter() - t0) * 1000)
        ssc.stop(stopSparkContext=False)
        ssc.awaitTerminationOrTimeout(0)
    expected = [min(i + 1, window) * args.words for i in range(args.batches)]
    assert totals == expected, (totals, expected)
    steady = times[window:]
    ckpt = [times[i] for i in range(window, args.batches) if (i + 1) % 10 == 0]
    plain = [times[i] for i in range(window, args.batches) if (i + 1) % 10 != 0]
    print(
        f"sliding-window word count: {window}s window, {slide}s slide, with inverse; "
        f"{args.words:,} words/batch, {args.vocab:,}-word vocabulary, on {args.master}"
    )
    print(
        f"  filling the window (batches 1-{window}): median "
        f"{statistics.median(times[:window]):.1f} ms"
    )
    print(
        f"  steady state (batches {window + 1}-{args.batches}): median "
        f"{statistics.median(steady):.1f} ms, mean {statistics.mean(steady):.1f} ms, "
        f"max {max(steady):.1f} ms"
    )
    if ckpt and plain:
        print(
            f"  without checkpoint {statistics.median(plain):.1f} ms median; "
            f"checkpoint batches {', '.join(f'{t:.0f}' for t in ckpt)} ms"
        )
    print(
        f"  throughput {args.words / (statistics.mean(steady) / 1000) / 1e6:.2f} M words/s "
        f"(window holds {window * args.words:,} words)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
