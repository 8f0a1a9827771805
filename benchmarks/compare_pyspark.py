"""Side by side: word count (a) and tiny tasks (b) on dstreams and on PySpark, in one run.

    PYSPARK_PYTHON_BIN=/tmp/pyspark-venv/bin/python PYTHONPATH=src \
        python3 benchmarks/compare_pyspark.py

PySpark is never a dependency of dstreams: it is used only if ``PYSPARK_PYTHON_BIN`` names a
Python interpreter that can ``import pyspark`` (set one up with
``python3 -m venv /tmp/pyspark-venv && /tmp/pyspark-venv/bin/pip install pyspark``; Java 17+
needed). Otherwise this prints why and exits 0.

Both engines run the very same workload code (``benchmarks/_common.py``, PySpark's RDD API) with
the same corpus, ``local[2]``, warm-up and number of runs, one engine after the other, each in
its own interpreter (``batch_wordcount.py --json`` and ``tiny_tasks.py --json`` with
``--engine``). ``--rounds 2`` alternates engines twice to expose drift on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def pyspark_python() -> tuple[str | None, str]:
    """The PySpark interpreter, or None and the reason it cannot be used."""
    exe = os.environ.get("PYSPARK_PYTHON_BIN")
    if not exe:
        return None, "PYSPARK_PYTHON_BIN is not set"
    if not os.access(exe, os.X_OK):
        return None, f"PYSPARK_PYTHON_BIN={exe!r} is not an executable"
    probe = subprocess.run(
        [exe, "-c", "import pyspark; print(pyspark.__version__)"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return None, f"{exe} cannot import pyspark: {probe.stderr.strip().splitlines()[-1:]}"
    return exe, probe.stdout.strip()


def run_side(exe: str, engine: str, script: str, args: list[str]) -> dict[str, Any]:
    env = dict(os.environ)
    paths = [HERE] + ([os.path.join(ROOT, "src")] if engine == "dstreams" else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if engine == "pyspark":
        env["PYSPARK_PYTHON"] = exe
        env["PYSPARK_DRIVER_PYTHON"] = exe
    cmd = [exe, os.path.join(HERE, script), "--engine", engine, "--json", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{engine} {script} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--words", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5, help="timed word-count runs per engine")
    ap.add_argument("--tiny-runs", type=int, default=3, help="timed 1,000-task jobs per engine")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    exe, info = pyspark_python()
    if exe is None:
        print(
            f"compare_pyspark: skipped: {info}. To compare, install PySpark in a separate venv "
            "(python3 -m venv /tmp/pyspark-venv && /tmp/pyspark-venv/bin/pip install pyspark) "
            "and set PYSPARK_PYTHON_BIN=/tmp/pyspark-venv/bin/python."
        )
        return
    sys.path.insert(0, HERE)
    from _common import corpus_path, expected_counts, machine_note

    print(machine_note())
    print(f"PySpark interpreter: {exe} (pyspark {info}); dstreams: {sys.executable}")
    expected_counts(corpus_path(a.words))  # generate + cache outside both engines' timings
    wc_args = ["--words", str(a.words), "--runs", str(a.runs)]
    tiny_args = ["--runs", str(a.tiny_runs), "--warmup", "1", "--latency-runs", "20"]
    sides = [("dstreams", sys.executable), ("pyspark", exe)]
    rows: dict[str, list[dict[str, Any]]] = {"dstreams": [], "pyspark": []}
    for rnd in range(a.rounds):
        for engine, py in sides:
            print(f"  round {rnd + 1}: {engine} ...", flush=True)
            wc = run_side(py, engine, "batch_wordcount.py", wc_args)
            tiny = run_side(py, engine, "tiny_tasks.py", tiny_args)
            rows[engine].append({"wc": wc, "tiny": tiny})

    print(
        f"\nSide by side, local[2], {a.words:,}-word corpus, {a.runs} word-count runs and "
        f"{a.tiny_runs} 1,000-task jobs per engine and round (after warm-up):"
    )
    hdr = f"  {'engine':<16}{'(a) best':>12}{'(a) median':>12}{'(b) µs/task':>13}{'1-task job':>12}"
    print(hdr)
    print(f"  {'':<16}{'M words/s':>12}{'M words/s':>12}{'median':>13}{'median ms':>12}")
    for engine, _ in sides:
        for r in rows[engine]:
            wc, tiny = r["wc"], r["tiny"]
            print(
                f"  {wc['engine']:<16}{wc['best_words_per_s'] / 1e6:12.2f}"
                f"{wc['median_words_per_s'] / 1e6:12.2f}{tiny['median_us_per_task']:13.1f}"
                f"{tiny['median_1task_job_ms']:12.2f}"
            )
    ds = rows["dstreams"][-1]
    ps = rows["pyspark"][-1]
    wc_ratio = ds["wc"]["median_words_per_s"] / ps["wc"]["median_words_per_s"]
    tiny_ratio = ps["tiny"]["median_us_per_task"] / ds["tiny"]["median_us_per_task"]
    print(
        f"\n  dstreams / PySpark: word count {wc_ratio:.1f}x faster (median); "
        f"tiny tasks {tiny_ratio:.0f}x less overhead per task"
    )
    print(f"  word-count results: dstreams {ds['wc']['check']}; PySpark {ps['wc']['check']}")


if __name__ == "__main__":
    main()
