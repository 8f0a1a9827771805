"""Check dstreams against a real PySpark, side by side (a development tool, not a test).

Two checks, each run when ``PYSPARK_PYTHON_BIN`` names a Python that can ``import pyspark``
(PySpark is never a dependency of dstreams):

* ``rdd``: runs the doctest examples of PySpark's own ``RDD`` methods against a dstreams
  ``Context`` (read from the installed ``pyspark/core/rdd.py``) and lists the failing methods.
* ``streaming``: runs one streaming program (15 output streams: windows with and without
  inverse functions, state, counts on empty batches, joins) on both engines and compares the
  outputs batch by batch.

Run:
    PYSPARK_PYTHON_BIN=/tmp/pyspark-venv/bin/python PYTHONPATH=src python3 tools/pyspark_parity.py
"""

from __future__ import annotations

import argparse
import ast
import doctest
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STREAMING_PROGRAM = r"""
import json, sys, tempfile, time
from operator import add, sub
if sys.argv[1] == "pyspark":
    from pyspark import SparkContext as Context
    from pyspark.streaming import StreamingContext
else:
    from dstreams import Context, StreamingContext
sc = Context("local[2]", "parity")
sc.setLogLevel("ERROR")
ssc = StreamingContext(sc, 1)
ssc.checkpoint(tempfile.mkdtemp())
data = [["a b a", "c"], ["b b", "d a"], [], ["a"], ["c c c"], [], [], [], [], []]
words = ssc.queueStream([sc.parallelize(d, 2) for d in data]).flatMap(lambda l: l.split())
pairs = words.map(lambda w: (w, 1))
out = {}
def sink(name, stream):
    def f(t, rdd):
        out.setdefault(name, []).append(sorted(map(repr, rdd.collect())))
    stream.foreachRDD(f)
sink("count", words.count())
sink("reduce", words.map(lambda w: 1).reduce(add))
sink("window", words.window(3, 1))
sink("reduceByKeyAndWindow inverse, window >= 5 slides", pairs.reduceByKeyAndWindow(add, sub, 5, 1))
sink("reduceByKeyAndWindow inverse, window < 5 slides", pairs.reduceByKeyAndWindow(add, sub, 3, 1))
sink("reduceByKeyAndWindow without inverse", pairs.reduceByKeyAndWindow(add, None, 3, 1))
sink("reduceByKeyAndWindow slide 2", pairs.reduceByKeyAndWindow(add, sub, 4, 2))
sink("countByWindow", words.countByWindow(3, 1))
sink("countByValueAndWindow", words.countByValueAndWindow(3, 1))
sink("groupByKeyAndWindow", pairs.groupByKeyAndWindow(3, 1).mapValues(lambda v: sorted(v)))
sink("reduceByWindow", words.map(lambda w: 1).reduceByWindow(add, sub, 3, 1))
sink("updateStateByKey", pairs.updateStateByKey(lambda vs, s: sum(vs) + (s or 0)))
sink("updateStateByKey deleting", pairs.updateStateByKey(
    lambda vs, s: (sum(vs) + (s or 0)) if vs else None))
sink("countByValue", words.countByValue())
tags = pairs.map(lambda kv: (kv[0], "x")).reduceByKey(lambda a, b: a)
sink("join", pairs.reduceByKey(add).join(tags))
ssc.start()
time.sleep(float(sys.argv[2]))
ssc.stop(stopSparkContext=True, stopGraceFully=False)
print("RESULT " + json.dumps(out))
"""


def run_streaming(python: str, engine: str, seconds: float) -> dict[str, list[list[str]]]:
    with tempfile.TemporaryDirectory() as d:
        prog = Path(d) / "parity.py"
        prog.write_text(STREAMING_PROGRAM)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
        out = subprocess.run(
            [python, str(prog), engine, str(seconds)],
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            env=env,
        )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise SystemExit(f"{engine} run failed:\n{out.stderr[-3000:]}")


def check_streaming(pyspark_python: str) -> int:
    # PySpark needs far longer per batch; give it time to finish 9 batches
    ps = run_streaming(pyspark_python, "pyspark", 60)
    ds = run_streaming(sys.executable, "dstreams", 12.5)
    failures = 0
    for name in ps:
        a, b = ps[name], ds.get(name, [])
        n = min(len(a), len(b))
        same = a[:n] == b[:n]
        failures += not same
        print(f"  {'same' if same else 'DIFFERENT':9s} {name} ({n} batches compared)")
        if not same:
            for i in range(n):
                if a[i] != b[i]:
                    print(f"      batch {i}: pyspark {a[i]} dstreams {b[i]}")
    return failures


def check_rdd_doctests(pyspark_python: str) -> int:
    from dstreams import Context

    where = subprocess.run(
        [pyspark_python, "-c", "import pyspark, os; print(os.path.dirname(pyspark.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    source = Path(where, "core", "rdd.py").read_text()
    tests = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == "RDD":
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef):
                    doc = ast.get_docstring(fn)
                    if doc and ">>>" in doc:
                        tests.append((fn.name, doc))
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failing = []
    with Context("local[4]", "rdd-parity") as sc:
        globs = {"sc": sc, "SparkContext": Context, "tempfile": tempfile, "os": os, "sys": sys}
        for name, doc in tests:
            test = parser.get_doctest(doc, dict(globs), name, "rdd.py", 0)
            buf = io.StringIO()
            if runner.run(test, out=buf.write, clear_globs=True).failed:
                failing.append(name)
    print(f"  {len(tests) - len(failing)} of {len(tests)} RDD methods' doctests pass")
    print(f"  failing: {', '.join(failing)}")
    return len(failing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["rdd", "streaming"])
    args = parser.parse_args(argv)
    pyspark_python = os.environ.get("PYSPARK_PYTHON_BIN")
    if not pyspark_python:
        print("PYSPARK_PYTHON_BIN is not set: nothing to compare against (skipped)")
        return 0
    if args.only in (None, "rdd"):
        print("PySpark's RDD doctests on dstreams:")
        check_rdd_doctests(pyspark_python)
    if args.only in (None, "streaming"):
        print("the same streaming program on both engines:")
        if check_streaming(pyspark_python):
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
