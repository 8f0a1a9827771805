"""Benchmark 7(b): empty-batch processing time, and the smallest stable batch interval.

Part 1 drives a word-count graph (flatMap -> map -> reduceByKey -> output) over
exhausted ``queueStream`` batches with a ManualClock and times each batch on the
wall clock: the engine's fixed cost per batch (one job, one empty partition).

Part 2 runs on the system clock: a receiver stores 100 k records/s (1 k-record
chunks every 10 ms) into a word count, for a few seconds per batch interval.  An
interval is *stable* when the scheduling delay stays bounded: the mean delay of
the last third of the batches is at most one batch interval and not above the
first third's plus one interval.

Run:  python benchmarks/streaming_latency.py [--seconds 4] [--intervals 0.025,0.05,0.1,0.2]
"""

from __future__ import annotations

import argparse
import operator
import statistics
import threading
import time
from typing import Any

from dstreams import Context
from dstreams.streaming import Receiver, StreamingContext, StreamingListener
from dstreams.testing import manual_context

__all__ = ["main"]


def word_count(stream: Any, sink: list[int]) -> None:
    """Attach the word count and an output that materialises it."""
    counts = (
        stream.flatMap(lambda line: line.split(" "))
        .map(lambda w: (w, 1))
        .reduceByKey(operator.add, 2)
    )
    counts.foreachRDD(lambda rdd: sink.append(len(rdd.collect())))


def empty_batches(sc: Any, n: int) -> list[float]:
    """Return the wall time (ms) of ``n`` empty batches after 5 warm-up batches."""
    ssc = manual_context(sc, 1)
    out: list[int] = []
    word_count(ssc.queueStream([]), out)
    ssc.start()
    times = []
    for i in range(n + 5):
        target = (i + 1) * 1000
        t0 = time.perf_counter()
        ssc.clock.setTime(target)  # type: ignore[attr-defined]
        ssc._scheduler.wait_for_batch(target, 60)
        times.append((time.perf_counter() - t0) * 1000)
    ssc.stop(stopSparkContext=False)
    return times[5:]


class RateReceiver(Receiver):
    """Stores ``rate`` records per second in chunks every 10 ms until stopped."""

    def __init__(self, rate: int) -> None:
        super().__init__()
        self.rate = rate
        self._stop = threading.Event()

    def onStart(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def onStop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        chunk = [f"w{i % 1000}" for i in range(self.rate // 100)]
        next_t = time.perf_counter()
        while not self._stop.is_set():
            self.storeMany(chunk)
            next_t += 0.01
            self._stop.wait(max(0.0, next_t - time.perf_counter()))


class Delays(StreamingListener):
    """Collects (scheduling delay, processing delay, records) per completed batch."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, int, int]] = []

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        self.rows.append((info.schedulingDelay(), info.processingDelay(), info.numRecords()))


def rate_run(sc: Any, interval: float, seconds: float, rate: int) -> dict[str, Any]:
    """Run the 100 k rec/s stream at ``interval`` for ``seconds``; summarise the delays."""
    ssc = StreamingContext(sc, interval)
    out: list[int] = []
    word_count(ssc.receiverStream(RateReceiver(rate)), out)
    delays = Delays()
    ssc.addStreamingListener(delays)
    ssc.start()
    ssc.awaitTerminationOrTimeout(seconds)
    ssc.stop(stopSparkContext=False)
    rows = delays.rows[2:]  # skip start-up
    third = max(1, len(rows) // 3)
    first = statistics.mean(r[0] for r in rows[:third]) if rows else float("nan")
    last = statistics.mean(r[0] for r in rows[-third:]) if rows else float("nan")
    interval_ms = interval * 1000
    return {
        "interval_ms": interval_ms,
        "batches": len(rows),
        "records_per_s": sum(r[2] for r in rows) / max(1e-9, len(rows) * interval),
        "proc_ms": statistics.median(r[1] for r in rows) if rows else float("nan"),
        "sched_first_ms": first,
        "sched_last_ms": last,
        "stable": bool(rows) and last <= interval_ms and last <= first + interval_ms,
    }


def main(argv: list[str] | None = None) -> int:
    """Run both parts and print their figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--empty-batches", type=int, default=50)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rate", type=int, default=100_000)
    p.add_argument("--intervals", default="0.025,0.05,0.1,0.2")
    p.add_argument("--master", default="local[2]")
    args = p.parse_args(argv)
    with Context(args.master, "bench-streaming-latency") as sc:
        empty = empty_batches(sc, args.empty_batches)
        print(
            f"empty batch (word count graph, 1 output job) on {args.master}: "
            f"median {statistics.median(empty):.2f} ms, mean {statistics.mean(empty):.2f} ms, "
            f"p90 {sorted(empty)[int(len(empty) * 0.9)]:.2f} ms over {len(empty)} batches"
        )
        print(f"{args.rate:,} records/s through a receiver, {args.seconds:g}s per interval:")
        print("  interval  batches  rec/s     median proc  sched delay first->last  stable")
        smallest = None
        for interval in sorted(float(x) for x in args.intervals.split(",")):
            r = rate_run(sc, interval, args.seconds, args.rate)
            print(
                f"  {r['interval_ms']:6.0f}ms  {r['batches']:7d}  {r['records_per_s']:8.0f}  "
                f"{r['proc_ms']:8.1f} ms  {r['sched_first_ms']:9.1f} -> "
                f"{r['sched_last_ms']:7.1f} ms       {'yes' if r['stable'] else 'no'}"
            )
            if r["stable"] and smallest is None:
                smallest = r["interval_ms"]
        print(
            f"smallest stable batch interval: {smallest:.0f} ms"
            if smallest
            else "no interval was stable"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
