"""Benchmark: a worker SIGKILLed under load, with and without backpressure.

A network word count with running state (``updateStateByKey``, checkpointed every 10 s) reads
``socketTextStream`` from a generator process at a steady rate close to what the engine
sustains. After a warm-up, one worker is SIGKILLed in the middle of a batch: the batch waits for
the replacement worker and for the lost state partitions to be recomputed from lineage, and
the batches behind it queue up. The figure is how many batches it takes, counted from the first
batch delayed by a whole interval, until the scheduling delay is back under one batch interval
(0: it never reached one), with ``dstreams.streaming.backpressure.enabled`` off and on. Target:
within 10 batches with it on. Pick a rate below what the engine sustains (``--rate``): above
it, the delay grows without backpressure before any kill.

Run:  python benchmarks/streaming_kill_recovery.py [--rate 150000] [--batch 0.5]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _streaming import BatchStats, TextSource, load_note

from dstreams import Conf, Context
from dstreams.streaming import StreamingContext


def run(
    rate: int, batch: float, backpressure: bool, warmup: int, after: int, vocab: int
) -> dict[str, Any]:
    source = TextSource(rate, vocab=vocab)
    conf = Conf().set("dstreams.streaming.backpressure.enabled", str(backpressure).lower())
    sc = Context("local[2]", "kill-recovery", conf=conf)
    ssc = StreamingContext(sc, batch)
    ssc.checkpoint(tempfile.mkdtemp(prefix="dstreams-kill-"))
    words = ssc.socketTextStream("127.0.0.1", source.port).flatMap(str.split)
    state = words.map(lambda w: (w, 1)).updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    state.foreachRDD(lambda rdd: rdd.count())
    stats = BatchStats()
    ssc.addStreamingListener(stats)
    ssc.start()
    try:
        assert stats.wait_for(warmup, warmup * batch * 10 + 60), "warm-up did not finish"
        victim = sorted(sc._backend.worker_pids().values())[0]
        # kill mid-batch: wait until a batch has been processing for a third of an interval
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and ssc._scheduler.is_idle():
            time.sleep(0.005)
        time.sleep(batch / 3)
        killed_at = len(stats.batches)  # the first batch to complete after the kill lost it
        os.kill(victim, signal.SIGKILL)
        stats.wait_for(killed_at + after, after * batch * 20 + 120)
    finally:
        ssc.stop()
        source.stop()
    rows = stats.batches[killed_at:]
    interval = int(batch * 1000)
    # from the first batch the kill delayed by a whole interval, to the first back under it
    late = next((i for i, r in enumerate(rows) if r[2] >= interval), None)
    if late is None:
        recovered: int | None = 0  # never even one interval late
    else:
        back = next((i for i, r in enumerate(rows) if i > late and r[2] < interval), None)
        recovered = None if back is None else back - late
    return {
        "before": stats.batches[killed_at - 5 : killed_at],
        "rows": rows,
        "recovered_after": recovered,
        "max_delay": max(r[2] for r in rows) if rows else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=150_000, help="words per second")
    ap.add_argument("--batch", type=float, default=0.5)
    ap.add_argument("--warmup", type=int, default=30, help="batches before the kill")
    ap.add_argument("--after", type=int, default=40, help="batches watched after the kill")
    ap.add_argument("--vocab", type=int, default=10_000, help="distinct words (state keys)")
    a = ap.parse_args()
    print(
        f"# worker killed under load: {a.rate} words/s, {a.vocab} distinct, {a.batch}s batches; "
        f"{load_note()}"
    )
    for bp in (False, True):
        r = run(a.rate, a.batch, bp, a.warmup, a.after, a.vocab)
        name = "on " if bp else "off"
        print(
            f"backpressure {name}: scheduling delay back under {int(a.batch * 1000)} ms "
            f"{r['recovered_after']} batches after it first reached it (max delay "
            f"{r['max_delay']} ms; None: not within the batches watched)"
        )
        print(f"  before the kill (time, lines, scheduling ms, processing ms): {r['before']}")
        print(f"  after:  {r['rows'][:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
