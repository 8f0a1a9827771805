"""``mapWithState`` against ``updateStateByKey``: a 1 M-key state, 10 k keys touched per batch.

    PYTHONPATH=src python3 benchmarks/streaming_mapwithstate.py [--keys 1000000] [--touched 10000]

Both run the same per-key count on ``local[2]``, on a manual clock (each batch runs as soon as
the previous one is done), with the state checkpointed every 10 batches. The state starts
from ``initialState`` / ``initialRDD`` with ``--keys`` keys. Each batch brings ``--touched``
records for distinct keys (a ``queueStream`` of driver-held lists: the records travel with the
tasks, as a receiver's blocks do). The figure is the median batch processing time over
``--batches`` batches after 2 warm-up batches (the wall time of each batch: its generation,
its jobs and its checkpoints), side by side in one run. The result of both
is checked against each other and against a plain-Python count. The anchor, in the same run,
is one core's ``collections.Counter.update`` of each batch's keys into a 1 M-key Counter.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from dstreams import Context, StateSpec  # noqa: E402
from dstreams.testing import manual_context, run_batches  # noqa: E402


def batches_of(keys: int, touched: int, n: int) -> list[list[int]]:
    step = max(1, keys // touched)
    return [[(b * 7 + i * step) % keys for i in range(touched)] for b in range(n)]


class Lines:
    """A loopback server that sends each batch's keys, one per line, to the receiver."""

    def __init__(self) -> None:
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.conn: socket.socket | None = None

    def send(self, keys: list[int]) -> None:
        if self.conn is None:
            self.conn, _ = self.srv.accept()
        self.conn.sendall("".join(f"{k}\n" for k in keys).encode())

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.srv.close()


def add_one(key: int, value: int, state: Any) -> None:
    state.update((state.getOption() or 0) + value)


def run(sc: Context, kind: str, keys: int, touched: int, n: int) -> tuple[float, int]:
    """Median processing ms per batch, and the final sum of all counts."""
    ssc = manual_context(sc, 1.0)
    ssc.checkpoint(tempfile.mkdtemp(prefix="bench-mws-"))
    initial = sc.range(keys).map(lambda i: (i, 1))
    lines = Lines()
    pairs = ssc.socketTextStream("127.0.0.1", lines.port).map(lambda line: (int(line), 1))
    if kind == "mapWithState":
        spec = StateSpec.function(add_one).initialState(initial).numPartitions(2)
        mapped = pairs.mapWithState(spec)
        mapped.foreachRDD(lambda rdd: rdd.count())  # runs the batch's state RDD
        state = mapped.stateSnapshots()
    else:
        state = pairs.updateStateByKey(
            lambda vs, s: (s or 0) + sum(vs), numPartitions=2, initialRDD=initial
        )
        state.foreachRDD(lambda rdd: rdd.count())  # runs the batch's state RDD
    last: dict[str, Any] = {}
    state.foreachRDD(lambda rdd: last.__setitem__("rdd", rdd))  # no job: read at the end
    ssc.start()
    wall = []
    sent = 0
    for keys_of_batch in batches_of(keys, touched, n + 2):
        lines.send(keys_of_batch)
        sent += len(keys_of_batch)
        assert ssc._receiver_tracker.wait_for_received(sent, 60), "the receiver fell behind"
        t0 = time.perf_counter()  # a manual clock: the batch runs now, timed on the wall
        run_batches(ssc, 1, timeout=600)
        wall.append((time.perf_counter() - t0) * 1000)
    ssc.awaitTerminationOrTimeout(0)
    total = last["rdd"].values().sum()
    ssc.stop(stopSparkContext=False)
    lines.close()
    return statistics.median(wall[2:]), total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--touched", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=8)
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    expected = a.keys + a.touched * (a.batches + 2)
    results = {}
    with Context("local[2]", "bench-mapwithstate") as sc:
        for kind in ("mapWithState", "updateStateByKey"):
            t0 = time.perf_counter()
            ms, total = run(sc, kind, a.keys, a.touched, a.batches)
            assert total == expected, (kind, total, expected)
            results[kind] = ms
            print(f"{kind:>17}: median {ms:8.1f} ms per batch ({a.keys:,} keys, {a.touched:,} "
                  f"touched; run {time.perf_counter() - t0:.1f} s)", flush=True)
    # the anchor: one core, a Counter of 1 M keys, each batch's keys added with update()
    counter = Counter(range(a.keys))
    anchor = []
    for keys_of_batch in batches_of(a.keys, a.touched, a.batches + 2):
        t0 = time.perf_counter()
        counter.update(keys_of_batch)
        anchor.append((time.perf_counter() - t0) * 1000)
    assert sum(counter.values()) == expected
    counter_ms = statistics.median(anchor[2:])
    print(f"{'one-core Counter':>17}: median {counter_ms:8.1f} ms per batch", flush=True)
    print(f"mapWithState is {results['updateStateByKey'] / results['mapWithState']:.1f}x faster "
          f"per batch than updateStateByKey, {results['mapWithState'] / counter_ms:.0f}x the "
          "one-core Counter", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
