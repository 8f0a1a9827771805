"""Run every benchmark script in benchmarks/ and print its output (``make bench``).

    PYTHONPATH=src python3 benchmarks/run_all.py [--only NAME ...] [--skip NAME ...]

Runs each ``benchmarks/*.py`` in turn (batch ones, then streaming ones, then the PySpark
comparison), except the helpers: ``run_all.py``, ``gen_corpus.py`` and ``_*.py``. Each script runs
in its own interpreter with ``src/`` on ``PYTHONPATH``; its output is streamed as it comes.
Exits non-zero if any script failed, after running the rest.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HELPERS = {"run_all.py", "gen_corpus.py"}
ORDER = ["batch_wordcount", "tiny_tasks", "wordcount_kill"]  # first; compare_pyspark last


def scripts() -> list[str]:
    names = [
        os.path.basename(p)
        for p in glob.glob(os.path.join(HERE, "*.py"))
        if os.path.basename(p) not in HELPERS and not os.path.basename(p).startswith("_")
    ]

    def key(name: str) -> tuple[int, str]:
        stem = name[:-3]
        if stem in ORDER:
            return (0, f"{ORDER.index(stem):03d}")
        if stem == "compare_pyspark":
            return (2, stem)
        return (1, stem)

    return sorted(names, key=key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", nargs="*", default=None, help="script names (with or without .py)")
    ap.add_argument("--skip", nargs="*", default=[], help="script names to leave out")
    a = ap.parse_args()
    norm = lambda n: n if n.endswith(".py") else n + ".py"  # noqa: E731
    todo = scripts()
    if a.only is not None:
        todo = [s for s in todo if s in {norm(n) for n in a.only}]
    todo = [s for s in todo if s not in {norm(n) for n in a.skip}]
    env = dict(os.environ)
    src = os.path.join(ROOT, "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    failed = []
    t_all = time.perf_counter()
    for name in todo:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, os.path.join(HERE, name)], cwd=ROOT, env=env)
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"--- {name}: {status} in {time.perf_counter() - t0:.1f}s", flush=True)
        if rc != 0:
            failed.append(name)
    tail = f"; failed: {', '.join(failed)}" if failed else ""
    print(
        f"\n{len(todo) - len(failed)}/{len(todo)} benchmarks ok "
        f"in {time.perf_counter() - t_all:.0f}s{tail}"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
