"""Benchmark: ``local[2]`` against Ray with 2 executors, side by side in one run.

For each backend, on the same machine one after the other (the Ray one is a private
single-node Ray with 2 CPUs started by this script, executors of 1 core each):

1. tiny tasks: a job of 1,000 one-record tasks (per-task cost) and 200 one-task jobs (median
   job latency). Target on Ray: at most 1 ms per tiny task;
2. the empty streaming batch: a word-count graph over an input with no data, 50 batches on a
   ManualClock, median per batch. Target on Ray: at most 20 ms;
3. the 10 M-word batch word count (``textFile -> flatMap -> map -> reduceByKey -> collect``),
   median of 3 runs after a warm-up, checked against a Counter;
4. a streaming word count over 2 ``socketTextStream`` receivers, each fed by a generator process
   offering more than the engine takes, backpressure on, 1 s batches: the words/s of the batches
   completed after a 10 s warm-up (``--seconds`` per backend);
5. recovery after a killed executor: the 10 M-word count with one executor SIGKILLed (its Ray
   actor killed, on Ray) 40 % into the job, against the same job undisturbed.

Run:  python benchmarks/ray_vs_local.py [--words 10000000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from operator import add
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import check_counts, corpus_path, expected_counts, wordcount
from _streaming import load_note, socket_wordcount_rate

from dstreams import Conf, Context
from dstreams.testing import TestSource, manual_context, run_batches


def tiny(sc: Any) -> tuple[float, float]:
    sc.parallelize(range(100), 100).count()  # warm: every worker has run a stage
    t = time.perf_counter()
    sc.parallelize(range(1000), 1000).count()
    per_task_us = (time.perf_counter() - t) * 1e6 / 1000
    lat = []
    for _ in range(200):
        t = time.perf_counter()
        sc.parallelize([1], 1).count()
        lat.append(time.perf_counter() - t)
    return per_task_us, statistics.median(lat) * 1000


def empty_batch(sc: Any) -> float:
    ssc = manual_context(sc, 0.1)
    src = TestSource(ssc)
    src.stream.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(add).foreachRDD(
        lambda rdd: rdd.count()
    )
    run_batches(ssc, 5)
    times = []
    for _ in range(50):
        t = time.perf_counter()
        run_batches(ssc, 1)
        times.append(time.perf_counter() - t)
    ssc.stop(stopSparkContext=False)
    return statistics.median(times) * 1000


def batch_wordcount(sc: Any, path: str, words: int) -> float:
    expected = expected_counts(path)
    wordcount(sc, path)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        result = wordcount(sc, path)
        times.append(time.perf_counter() - t)
        check_counts(result, expected, words)  # raises unless exact
    return words / statistics.median(times)


def killed_executor(sc: Any, path: str, words: int, normal_s: float, kill: Any) -> float:
    expected = expected_counts(path)
    victim = sorted(sc._backend.executor_ids())[0]
    timer = threading.Timer(normal_s * 0.4, kill, args=(sc._backend, victim))
    t = time.perf_counter()
    timer.start()
    result = wordcount(sc, path)
    took = time.perf_counter() - t
    timer.join()
    check_counts(result, expected, words)  # raises unless exact
    for _ in range(100):  # the replacement joins before the next measurement
        if len(sc._backend.executor_ids()) >= 2:
            break
        time.sleep(0.1)
    return took


def kill_local(backend: Any, eid: str) -> None:
    backend.kill_executor(eid)


def kill_ray(backend: Any, eid: str) -> None:
    import ray

    ray.kill(backend.actor_of(eid))


def run_backend(name: str, master: str, words: int, seconds: float) -> dict[str, float]:
    conf = Conf().setAll(
        [
            ("dstreams.executor.instances", "2"),
            ("dstreams.streaming.backpressure.enabled", "true"),
            ("dstreams.streaming.clock", "system"),
        ]
    )
    t = time.perf_counter()
    sc = Context(master, f"ray-vs-local-{name}", conf=conf)
    started = time.perf_counter() - t
    path = corpus_path(words)
    try:
        out: dict[str, float] = {"start_s": started}
        out["task_us"], out["job_ms"] = tiny(sc)
        out["empty_ms"] = empty_batch(sc)
        out["wc_words_s"] = batch_wordcount(sc, path, words)
        normal = words / out["wc_words_s"]
        took = killed_executor(sc, path, words, normal, kill_ray if name == "ray" else kill_local)
        out["kill_extra_s"] = took - normal
        out["recv_words_s"] = socket_wordcount_rate(sc, 2, seconds)[0]
    finally:
        sc.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=10_000_000)
    ap.add_argument("--seconds", type=float, default=30.0)
    a = ap.parse_args()
    print(f"# local[2] against Ray with 2 executors; {load_note()}", flush=True)
    corpus_path(a.words)
    results = {"local[2]": run_backend("local", "local[2]", a.words, a.seconds)}
    from dstreams.executor.ray import start_local_ray

    t = time.perf_counter()
    ray = start_local_ray(num_cpus=2)
    ray_start = time.perf_counter() - t
    try:
        results["ray (2 executors)"] = run_backend("ray", "ray", a.words, a.seconds)
    finally:
        ray.shutdown()
    rows = [
        ("Context start (s)", "start_s", "{:.2f}"),
        ("tiny task, in a 1,000-task job (us)", "task_us", "{:.0f}"),
        ("one-task job, median (ms)", "job_ms", "{:.2f}"),
        ("empty streaming batch, median (ms)", "empty_ms", "{:.2f}"),
        (f"batch word count, {a.words / 1e6:g} M words (M words/s)", "wc_words_s", "{:.2f}"),
        ("... an executor killed 40 % in: extra time (s)", "kill_extra_s", "{:+.2f}"),
        ("2 socket receivers, 1 s batches (M words/s)", "recv_words_s", "{:.2f}"),
    ]
    names = list(results)
    print(f"| | {' | '.join(names)} |")
    print("|---|" + "---|" * len(names))
    for label, key, fmt in rows:
        vals = []
        for n in names:
            v = results[n][key]
            vals.append(fmt.format(v / 1e6 if key.endswith("words_s") else v))
        print(f"| {label} | {' | '.join(vals)} |")
    print(f"(starting the private Ray took {ray_start:.1f} s, before its Context)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
