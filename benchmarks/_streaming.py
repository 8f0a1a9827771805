"""Shared pieces of the streaming benchmarks: a text source process, batch statistics, RSS.

* :class:`TextSource` starts ``python benchmarks/_streaming.py serve`` as its own process: a
  TCP server on 127.0.0.1 that writes newline-separated words at a steady rate, in large writes
  every 10 ms (little CPU), so data reaches the engine the way a user's does, through
  ``socketTextStream``. Its words come from a seeded vocabulary.
* :class:`BatchStats` is a ``StreamingListener`` recording each batch's time, records,
  scheduling delay and processing time.
* :func:`rss_mb` reads a process's resident memory from ``/proc``.

This module must not import dstreams at module level (the serve mode runs without it).
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))

__all__ = ["BatchStats", "TextSource", "percentile", "rss_mb", "summary_ms", "load_note"]


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"median {statistics.median(values):.1f} ms, p99 {percentile(values, 99):.1f} ms "
        f"(n={len(values)})"
    )


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"


class TextSource:
    """A separate process serving ``rate`` words/s (``words_per_line`` per line) over TCP."""

    def __init__(
        self, rate: int, words_per_line: int = 10, vocab: int = 10_000, seed: int = 1
    ) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                os.path.join(HERE, "_streaming.py"),
                "serve",
                str(rate),
                str(words_per_line),
                str(vocab),
                str(seed),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _serve(rate: int, words_per_line: int, vocab_size: int, seed: int) -> None:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(vocab_size)]
    # one second of text, cut into 10 ms chunks of whole lines, sent over and over
    lines_per_s = max(1, rate // words_per_line)
    text_lines = [" ".join(rng.choices(vocab, k=words_per_line)) for _ in range(lines_per_s)]
    chunks = []
    per_chunk = max(1, lines_per_s // 100)
    for i in range(0, len(text_lines), per_chunk):
        chunks.append(("\n".join(text_lines[i : i + per_chunk]) + "\n").encode())
    server = socket.create_server(("127.0.0.1", 0))
    print(server.getsockname()[1], flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_feed, args=(conn, chunks), daemon=True).start()


def _feed(conn: socket.socket, chunks: list[bytes]) -> None:
    step = 1.0 / len(chunks)
    next_t = time.monotonic()
    i = 0
    try:
        while True:
            conn.sendall(chunks[i % len(chunks)])  # blocks when the receiver is throttled
            i += 1
            next_t += step
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                next_t = time.monotonic()  # fell behind (a throttled reader): do not burst
    except OSError:
        conn.close()


class BatchStats:
    """Per completed batch: (batch time ms, records, scheduling delay ms, processing ms)."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int, int, int]] = []
        self._cond = threading.Condition()

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        row = (
            info.batchTime().milliseconds(),
            info.numRecords(),
            info.schedulingDelay(),
            info.processingDelay(),
        )
        with self._cond:
            self.batches.append(row)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.batches) >= n, timeout)


def socket_wordcount_rate(
    sc: Any, receivers: int, seconds: float, first_seed: int = 1
) -> tuple[float, list[str]]:
    """Words/s of a word count over ``receivers`` socket receivers, each offered 6 M words/s.

    ``ssc.union`` of the streams, 1 s batches, ``seconds`` long; the figure counts the batches
    that completed after a 10 s warm-up. Also returns where the receivers ran.
    """
    from operator import add

    from dstreams.streaming import StreamingContext

    sources = [TextSource(6_000_000, seed=first_seed + i) for i in range(receivers)]
    ssc = StreamingContext(sc, 1.0)
    streams = [ssc.socketTextStream("127.0.0.1", s.port) for s in sources]
    counts = ssc.union(*streams).flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(add)
    counts.foreachRDD(lambda rdd: rdd.count())
    stats = BatchStats()
    ssc.addStreamingListener(stats)
    try:
        ssc.start()
        time.sleep(seconds)
        placed = sorted(str(e) for e in ssc._receiver_tracker.placements().values())
    finally:
        ssc.stop(stopSparkContext=False)
        for s in sources:
            s.stop()
    first = stats.batches[0][0] if stats.batches else 0
    late = [b for b in stats.batches if b[0] >= first + 10_000]
    return sum(b[1] for b in late) * 10 / max(1, len(late)), placed  # 10 words a line


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "serve":
    _serve(*(int(a) for a in sys.argv[2:6]))
