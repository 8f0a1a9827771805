"""Benchmark: ``updateStateByKey`` plus an inverse windowed count, 100 ms batches, 10 minutes.

Data arrives through ``socketTextStream`` from a generator process at a steady rate (10
words a line, 10,000-word vocabulary, so the state holds 10,000 keys). The program keeps a
running count per word (``updateStateByKey``) and a 10 s sliding count per word
(``reduceByKeyAndWindow(add, sub, 10, 0.1)``), both checkpointed every 10 s, and counts the
keys of both every batch.

It prints the processing time (median and p99) over the first and the last minute, the
driver's and each worker's RSS every minute, and the lineage depth of both outputs at the end.
Targets: processing time does not drift; RSS grows less than 10 % after the first minute.

Run:  python benchmarks/streaming_stateful_soak.py [--minutes 10] [--rate 40000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from operator import add, sub
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _streaming import BatchStats, TextSource, load_note, rss_mb, summary_ms

from dstreams import Context
from dstreams.core.shipping import lineage_height
from dstreams.streaming import StreamingContext


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=40_000, help="words per second")
    ap.add_argument("--batch", type=float, default=0.1)
    a = ap.parse_args()
    print(f"# stateful soak: {a.minutes} min, {a.rate} words/s, {a.batch}s batches; {load_note()}")
    source = TextSource(a.rate)
    sc = Context("local[2]", "stateful-soak")
    ssc = StreamingContext(sc, a.batch)
    ssc.checkpoint(tempfile.mkdtemp(prefix="dstreams-soak-"))
    pairs = ssc.socketTextStream("127.0.0.1", source.port).flatMap(str.split).map(lambda w: (w, 1))
    state = pairs.updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    window = pairs.reduceByKeyAndWindow(add, sub, 10, a.batch)
    last: dict[str, Any] = {}
    sizes: dict[str, int] = {}

    def keep(name: str) -> Any:
        def f(rdd: Any) -> None:
            last[name] = rdd
            sizes[name] = rdd.count()

        return f

    state.foreachRDD(keep("state"))
    window.foreachRDD(keep("window"))
    stats = BatchStats()
    ssc.addStreamingListener(stats)
    ssc.start()
    start = time.monotonic()
    minute = 0
    rss_log: list[list[float]] = []
    try:
        while time.monotonic() - start < a.minutes * 60:
            time.sleep(1)
            elapsed = time.monotonic() - start
            if elapsed >= (minute + 1) * 60 or elapsed >= a.minutes * 60:
                minute += 1
                now_rss = [rss_mb(os.getpid())] + [
                    rss_mb(p) for p in sorted(sc._backend.worker_pids().values())
                ]
                rss_log.append(now_rss)
                workers = ", ".join(f"{r:.0f}" for r in now_rss[1:])
                recent = stats.batches[-int(60 / a.batch) :]
                print(
                    f"minute {minute}: driver RSS {now_rss[0]:.0f} MiB, workers "
                    f"[{workers}] MiB; last minute {summary_ms([b[3] for b in recent])} "
                    f"processing, scheduling delay max {max((b[2] for b in recent), default=0)} "
                    f"ms; state keys {sizes.get('state')}",
                    flush=True,
                )
        ssc.awaitTerminationOrTimeout(0)
    finally:
        depth = {k: lineage_height(v, narrow_only=False) for k, v in last.items()}
        ssc.stop()
        source.stop()
    per_min = int(60 / a.batch)
    first = [b[3] for b in stats.batches[per_min // 6 : per_min]]  # skip 10 s of warm-up
    final = [b[3] for b in stats.batches[-per_min:]]
    print(f"processing, first minute: {summary_ms(first)}")
    print(f"processing, last minute:  {summary_ms(final)}")
    print(
        f"batches: {len(stats.batches)}; records in the last minute: "
        f"{sum(b[1] for b in stats.batches[-per_min:])}"
    )
    print(f"lineage depth at the end: {depth}")
    if len(rss_log) >= 2:
        base, end = rss_log[0], rss_log[-1]
        growth = [(e - b) / b * 100 for b, e in zip(base, end) if b]
        print(
            f"RSS growth after the first minute (driver, workers): "
            f"{', '.join(f'{g:+.1f}%' for g in growth)} (target < 10%)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
