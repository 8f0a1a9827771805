"""Benchmark (a): batch word count over 10 M words read with ``textFile`` on ``local[2]``.

    PYTHONPATH=src python3 benchmarks/batch_wordcount.py [--words N] [--runs R] [--json]

Runs the canonical PySpark program
``textFile(path).flatMap(split).map((w, 1)).reduceByKey(add).collect()`` over a seeded corpus
(10k-word vocabulary, Zipf-ish, generated once into benchmarks/data/), once as a warm-up and then
``--runs`` times, and prints words/s (best and median). Every run's result is checked against a
``collections.Counter`` of the same file computed in the driver. The Context is started before
the timed part; corpus generation and the Counter are outside it too. Target: >= 6 M words/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    check_counts,
    corpus_path,
    engine_version,
    expected_counts,
    machine_note,
    make_context,
    summary,
    time_runs,
    wordcount,
)

TARGET = 6e6


def run(engine: str, words: int, runs: int, warmup: int, master: str) -> dict[str, object]:
    path = corpus_path(words)
    expected = expected_counts(path)
    sc = make_context(engine, master, "batch_wordcount")
    try:
        checks: list[str] = []

        def job() -> list[tuple[str, int]]:
            result = wordcount(sc, path)
            checks.append(check_counts(result, expected, words))
            return result

        times, _ = time_runs(job, runs, warmup)
    finally:
        sc.stop()
    s = summary(times)
    return {
        "benchmark": "batch_wordcount",
        "engine": engine_version(engine),
        "master": master,
        "words": words,
        "times_s": times,
        "best_words_per_s": words / s["best"],
        "median_words_per_s": words / s["median"],
        "check": checks[-1],
    }


def report(r: dict[str, object]) -> None:
    times = r["times_s"]
    assert isinstance(times, list)
    print(f"(a) batch word count: {r['words']:,} words, textFile on {r['master']}, {r['engine']}")
    print(f"    runs (s): {', '.join(f'{t:.2f}' for t in times)}")
    best, med = float(r["best_words_per_s"]), float(r["median_words_per_s"])  # type: ignore[arg-type]
    print(f"    best   {best / 1e6:6.2f} M words/s")
    print(
        f"    median {med / 1e6:6.2f} M words/s   (target >= {TARGET / 1e6:.0f} M words/s: "
        f"{'met' if med >= TARGET else 'NOT met'})"
    )
    print(f"    result {r['check']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--words", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--engine", choices=["dstreams", "pyspark"], default="dstreams")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead")
    a = ap.parse_args()
    if a.engine == "dstreams" and not a.json:
        print(machine_note())
    r = run(a.engine, a.words, a.runs, a.warmup, a.master)
    if a.json:
        print(json.dumps(r))
    else:
        report(r)


if __name__ == "__main__":
    main()
