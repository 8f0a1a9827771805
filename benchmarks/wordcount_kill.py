"""Benchmark (c): the word count of (a) with one worker SIGKILLed midway, and what that costs.

    PYTHONPATH=src python3 benchmarks/wordcount_kill.py [--words N] [--runs R] [--partitions P]

The job is (a)'s ``textFile -> flatMap(split) -> map((w, 1)) -> reduceByKey(add) -> collect`` on
``local[2]``, except that the split function counts the lines its worker process has seen in the
map stage. When a worker has processed ``--at`` (default 0.5) of its share of the lines
(``lines / workers``), the first one to get there atomically creates a marker file and SIGKILLs
its own process, mid-task. The driver must notice the loss, start a replacement worker,
recompute the lost map output(s) from lineage and still return the exact counts.

The baseline runs the very same instrumented function with the kill disarmed, so the difference
between the two medians is the cost of the failure (lost work + detection + replacement).
Every result is checked against a ``collections.Counter`` of the file; every kill run checks
that a worker really died.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from operator import add
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    check_counts,
    corpus_path,
    engine_version,
    expected_counts,
    machine_note,
    make_context,
)


def killing_split(marker: str | None, kill_after_lines: int) -> Callable[[str], list[str]]:
    """``str.split`` that SIGKILLs its process at line ``kill_after_lines`` (once, via marker)."""
    seen = [0]  # per worker process and stage: the payload is unpickled once per stage

    def split(line: str) -> list[str]:
        seen[0] += 1
        if seen[0] == kill_after_lines and marker is not None:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass  # another worker already died for this run
            else:
                os.write(fd, f"{os.getpid()} {time.time()!r}".encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return line.split()

    return split


def job(sc: Any, path: str, partitions: int | None, split: Callable[[str], list[str]]) -> Any:
    return (
        sc.textFile(path, partitions)
        .flatMap(split)
        .map(lambda w: (w, 1))
        .reduceByKey(add)
        .collect()
    )


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a SIGKILLed child that is not reaped yet is a zombie: dead)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--words", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3, help="timed runs without and with the kill")
    ap.add_argument("--partitions", type=int, default=None, help="textFile minPartitions")
    ap.add_argument("--at", type=float, default=0.5, help="kill at this share of a worker's lines")
    ap.add_argument("--master", default="local[2]")
    a = ap.parse_args()
    print(machine_note())
    path = corpus_path(a.words)
    expected = expected_counts(path)
    with open(path, "rb") as fh:
        lines = sum(1 for _ in fh)
    sc = make_context("dstreams", a.master, "wordcount_kill")
    tmp = tempfile.mkdtemp(prefix="dstreams-kill-")
    try:
        workers = len(sc._backend.executor_ids())  # informational only
        nparts = sc.textFile(path, a.partitions).getNumPartitions()
        kill_after = max(1, int(a.at * lines / workers))
        disarmed = killing_split(None, kill_after)

        base: list[float] = []
        for i in range(a.runs + 1):  # the first run is a warm-up
            t0 = time.perf_counter()
            result = job(sc, path, a.partitions, disarmed)
            dt = time.perf_counter() - t0
            check_counts(result, expected, a.words)
            if i:
                base.append(dt)

        killed: list[float] = []
        verdict = ""
        for i in range(a.runs):
            marker = os.path.join(tmp, f"killed-{i}")
            t0 = time.perf_counter()
            result = job(sc, path, a.partitions, killing_split(marker, kill_after))
            dt = time.perf_counter() - t0
            verdict = check_counts(result, expected, a.words)
            if not os.path.exists(marker):
                raise AssertionError("no worker was killed during the run")
            with open(marker) as fh:
                pid = int(fh.read().split()[0])
            deadline = time.monotonic() + 5
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            if _pid_alive(pid):
                raise AssertionError(f"worker {pid} wrote the kill marker but is still running")
            killed.append(dt)
    finally:
        sc.stop()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)

    mb, mk = statistics.median(base), statistics.median(killed)
    print(
        f"(c) word count with one worker SIGKILLed midway: {a.words:,} words, "
        f"{nparts} map partitions, {a.master}, {engine_version('dstreams')}"
    )
    print(
        f"    kill: the first worker to reach {a.at:.0%} of its share ({kill_after:,} of "
        f"{lines:,} lines) SIGKILLs itself"
    )
    print(f"    without kill (s): {', '.join(f'{t:.2f}' for t in base)}   median {mb:.2f}")
    print(f"    with kill    (s): {', '.join(f'{t:.2f}' for t in killed)}   median {mk:.2f}")
    print(
        f"    extra time: {mk - mb:+.2f} s median ({(mk - mb) / mb:+.0%}); "
        f"best-vs-best {min(killed) - min(base):+.2f} s"
    )
    print(
        f"    throughput: {a.words / mb / 1e6:.2f} -> {a.words / mk / 1e6:.2f} M words/s (median)"
    )
    print(f"    result after the kill: {verdict}")


if __name__ == "__main__":
    main()
