"""Shared helper for the batch benchmarks: engine-neutral workloads, timing and reporting.

Everything here uses only the PySpark RDD API, so the same code runs on dstreams
(``from dstreams import Context``) and on PySpark (``compare_pyspark.py`` runs it under a separate
interpreter). This module must not import dstreams or pyspark at module level.
"""

from __future__ import annotations

import os
import pickle
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from operator import add
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from gen_corpus import corpus_path  # noqa: E402

__all__ = [
    "make_context",
    "wordcount",
    "expected_counts",
    "check_counts",
    "time_runs",
    "summary",
    "corpus_path",
    "machine_note",
]


def make_context(engine: str, master: str = "local[2]", app: str = "bench") -> Any:
    """A started context for ``engine`` ("dstreams" or "pyspark")."""
    if engine == "dstreams":
        from dstreams import Context

        return Context(master, app)
    if engine == "pyspark":
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        from pyspark import SparkConf, SparkContext

        conf = (
            SparkConf()
            .setMaster(master)
            .setAppName(app)
            .set("spark.ui.enabled", "false")
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.driver.memory", "2g")
        )
        sc = SparkContext(conf=conf)
        sc.setLogLevel("ERROR")
        return sc
    raise ValueError(f"engine={engine!r} must be 'dstreams' or 'pyspark'")


def engine_version(engine: str) -> str:
    mod = __import__(engine)
    return f"{engine} {getattr(mod, '__version__', '?')}"


def wordcount(sc: Any, path: str) -> list[tuple[str, int]]:
    """The canonical PySpark word count."""
    return (
        sc.textFile(path)
        .flatMap(lambda line: line.split())
        .map(lambda w: (w, 1))
        .reduceByKey(add)
        .collect()
    )


def expected_counts(path: str) -> Counter[str]:
    """Word counts of ``path`` computed in this process (cached next to the corpus)."""
    cache = path + ".counts.pkl"
    if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(path):
        with open(cache, "rb") as fh:
            return pickle.load(fh)
    c: Counter[str] = Counter()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            c.update(line.split())
    tmp = f"{cache}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        pickle.dump(c, fh, 4)
    os.replace(tmp, cache)
    return c


def check_counts(result: list[tuple[str, int]], expected: Counter[str], n_words: int) -> str:
    """Raise AssertionError unless ``result`` is exactly ``expected``; return a short verdict."""
    total = sum(v for _, v in result)
    got = dict(result)
    if len(got) != len(result):
        raise AssertionError(f"duplicate keys in the result ({len(result) - len(got)})")
    if total != n_words:
        raise AssertionError(f"total count {total:,} != {n_words:,} words")
    if got != dict(expected):
        bad = [k for k in set(got) | set(expected) if got.get(k) != expected.get(k)][:5]
        raise AssertionError(f"counts differ from collections.Counter, e.g. for {bad}")
    return f"OK (total {total:,}, {len(got):,} distinct words, equals collections.Counter)"


def time_runs(fn: Callable[[], Any], runs: int, warmup: int = 1) -> tuple[list[float], Any]:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times; return (seconds, last value)."""
    value = None
    for _ in range(warmup):
        value = fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return times, value


def summary(times: list[float]) -> dict[str, float]:
    return {"best": min(times), "median": statistics.median(times), "worst": max(times)}


def machine_note() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {load:.2f} at start (shared machine: figures are noisy)"
    )
