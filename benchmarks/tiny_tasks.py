"""Benchmark (b): 1,000 tiny tasks, the per-task overhead of the engine, on ``local[2]``.

    PYTHONPATH=src python3 benchmarks/tiny_tasks.py [--tasks 1000] [--runs 7] [--json]

Measures, after a warm-up:

* ``sc.parallelize(range(1000), 1000).count()``: one job of 1,000 one-element partitions;
  reported as job wall time / 1,000 (µs per task), median and best over ``--runs`` jobs.
  This is the throughput overhead with both workers busy: scheduling, task serialization, the
  driver<->worker round trip, result handling.
* a 1-task job (``sc.parallelize([0], 1).count()``): end-to-end latency of one tiny job, median and
  best over ``--latency-runs`` jobs.

Target: median <= 250 µs per tiny task.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import engine_version, machine_note, make_context, summary, time_runs

TARGET_US = 250.0


def run(
    engine: str, tasks: int, runs: int, latency_runs: int, master: str, warmup: int = 2
) -> dict[str, object]:
    sc = make_context(engine, master, "tiny_tasks")
    try:

        def many() -> int:
            n = sc.parallelize(range(tasks), tasks).count()
            assert n == tasks, n
            return n

        def one() -> int:
            n = sc.parallelize([0], 1).count()
            assert n == 1, n
            return n

        many_times, _ = time_runs(many, runs, warmup=warmup)
        one_times, _ = time_runs(one, latency_runs, warmup=5)
    finally:
        sc.stop()
    m, o = summary(many_times), summary(one_times)
    return {
        "benchmark": "tiny_tasks",
        "engine": engine_version(engine),
        "master": master,
        "tasks": tasks,
        "job_times_s": many_times,
        "median_us_per_task": m["median"] / tasks * 1e6,
        "best_us_per_task": m["best"] / tasks * 1e6,
        "median_1task_job_ms": o["median"] * 1e3,
        "best_1task_job_ms": o["best"] * 1e3,
    }


def report(r: dict[str, object]) -> None:
    med = float(r["median_us_per_task"])  # type: ignore[arg-type]
    times = r["job_times_s"]
    assert isinstance(times, list)
    print(
        f"(b) tiny tasks: parallelize(range({r['tasks']}), {r['tasks']}).count() on "
        f"{r['master']}, {r['engine']}"
    )
    print(f"    jobs (s): {', '.join(f'{t:.3f}' for t in times)}")
    print(
        f"    median {med:7.1f} µs per task   (target <= {TARGET_US:.0f} µs: "
        f"{'met' if med <= TARGET_US else 'NOT met'})"
    )
    print(f"    best   {float(r['best_us_per_task']):7.1f} µs per task")  # type: ignore[arg-type]
    print(
        f"    1-task job latency: median {float(r['median_1task_job_ms']):.2f} ms, "  # type: ignore[arg-type]
        f"best {float(r['best_1task_job_ms']):.2f} ms"
    )  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--latency-runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=2, help="untimed 1,000-task jobs first")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--engine", choices=["dstreams", "pyspark"], default="dstreams")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead")
    a = ap.parse_args()
    if a.engine == "dstreams" and not a.json:
        print(machine_note())
    r = run(a.engine, a.tasks, a.runs, a.latency_runs, a.master, a.warmup)
    if a.json:
        print(json.dumps(r))
    else:
        report(r)


if __name__ == "__main__":
    main()
