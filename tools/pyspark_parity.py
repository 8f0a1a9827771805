"""Check dstreams against a real PySpark, side by side (a development tool, not a test).

Three checks, each run when ``PYSPARK_PYTHON_BIN`` names a Python that can ``import pyspark``
(PySpark is never a dependency of dstreams):

* ``rdd``: runs the doctest examples of PySpark's own ``RDD`` methods against a dstreams
  ``Context`` (read from the installed ``pyspark/core/rdd.py``) and lists the failing methods.
* ``streaming``: runs one streaming program (15 output streams: windows with and without
  inverse functions, state, counts on empty batches, joins) on both engines and compares the
  outputs batch by batch.
* ``pyspark-rules``: runs three small programs on both engines (the same source; only the
  imports differ) and compares what they report, rule by rule:

  1. ``checkpoint``: with only ``sc.setCheckpointDir(d)`` (no ``ssc.checkpoint``),
     ``updateStateByKey`` and ``reduceByKeyAndWindow`` with an inverse function start and give
     the same batches; with no checkpoint directory at all, ``start()`` is refused for each of
     the two, with a message containing "checkpoint directory has not been set".
  2. ``window-arguments``: which exception class (and which of ``windowDuration`` /
     ``slideDuration`` its message names) five invalid window calls on a 1 s batch stream
     raise; dstreams' message must contain PySpark's "... must be multiple of the parent
     dstream's slide (batch) duration" text.
  3. ``input-info``: ``len(batchInfo().streamIdToInputInfo())`` of every completed batch for a
     queue-only program (0: queue streams report nothing), and for a ``textFileStream`` plus a
     ``queueStream`` (1 reported stream per batch, with ``numRecords`` 0 for the file stream).

  A rule fails if the engines differ; the check exits non-zero if any rule fails.

Run all three from the repository root (``--only rdd|streaming|pyspark-rules`` runs one):
    export PYSPARK_PYTHON_BIN=/tmp/pyspark-venv/bin/python
    PYTHONPATH=src .venv/bin/python tools/pyspark_parity.py
"""

from __future__ import annotations

import argparse
import ast
import doctest
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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


def run_program(python: str, engine: str, source: str, *args: object, timeout: float) -> Any:
    """Run ``source`` as ``python prog.py ENGINE ARGS...``; return the JSON on its RESULT line."""
    with tempfile.TemporaryDirectory() as d:
        prog = Path(d) / "parity.py"
        prog.write_text(source)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
        out = subprocess.run(
            [python, str(prog), engine, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise SystemExit(f"{engine} run failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")


def run_streaming(python: str, engine: str, seconds: float) -> dict[str, list[list[str]]]:
    result: dict[str, list[list[str]]] = run_program(
        python, engine, STREAMING_PROGRAM, seconds, timeout=seconds + 120
    )
    return result


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


# ---------------------------------------------------------------- pyspark-rules
# Each program below runs on both engines; it prints one RESULT line of JSON. The header
# imports the engine named by argv[1]; argv[2] is how long (s) to wait for batches at most.

RULES_HEADER = r"""
import json, os, sys, tempfile, time
from operator import add, sub
if sys.argv[1] == "pyspark":
    from pyspark import SparkContext as Context
    from pyspark.streaming import StreamingContext, StreamingListener
else:
    from dstreams import Context, StreamingContext, StreamingListener
TIMEOUT = float(sys.argv[2])
sc = Context("local[2]", "parity-rules")
sc.setLogLevel("ERROR")
out = {}
def error(e):
    # a Java exception that py4j surfaces is described by its Java class and message
    java = getattr(e, "java_exception", None)
    return {"type": type(e).__name__, "java": None if java is None else java.getClass().getName(),
            "message": str(e) if java is None else str(java.getMessage())}
def start(ssc):
    try:
        ssc.start()
        return {"started": True}
    except Exception as e:
        return {"started": False, **error(e)}
def run_until(ssc, done):
    # the context is started: wait until done() (at most TIMEOUT s), then stop the streams
    deadline = time.time() + TIMEOUT
    while not done() and time.time() < deadline:
        ssc.awaitTerminationOrTimeout(1)
    ssc.stop(stopSparkContext=False, stopGraceFully=False)
def collector(store, name):
    def f(t, rdd):
        store.setdefault(name, []).append(sorted(map(repr, rdd.collect())))
    return f
"""

RULES_FOOTER = r"""
sc.stop()
print("RESULT " + json.dumps(out))
"""

CHECKPOINT_BODY = r"""
data = [["a b a", "c"], ["b b", "d a"], [], ["a"], ["c c"]]
BATCHES = len(data) + 2
OPS = ["updateStateByKey", "reduceByKeyAndWindow with inverse"]
def build(ssc, name):
    pairs = ssc.queueStream([sc.parallelize(d, 2) for d in data]) \
        .flatMap(lambda l: l.split()).map(lambda w: (w, 1))
    if name == "updateStateByKey":
        return pairs.updateStateByKey(lambda vs, s: sum(vs) + (s or 0))
    return pairs.reduceByKeyAndWindow(add, sub, 3, 1)
for name in OPS:  # no checkpoint directory at all
    ssc = StreamingContext(sc, 1)
    build(ssc, name).foreachRDD(lambda t, rdd: None)
    out["no checkpoint directory: " + name] = start(ssc)
    ssc.stop(stopSparkContext=False)
sc.setCheckpointDir(tempfile.mkdtemp())  # the Context's directory only: no ssc.checkpoint
ssc = StreamingContext(sc, 1)
batches = {}
for name in OPS:
    build(ssc, name).foreachRDD(collector(batches, name))
out["sc.setCheckpointDir only: start"] = start(ssc)
if out["sc.setCheckpointDir only: start"]["started"]:
    run_until(ssc, lambda: all(len(batches.get(n, [])) >= BATCHES for n in OPS))
else:
    ssc.stop(stopSparkContext=False)
out["sc.setCheckpointDir only: batches"] = {n: batches.get(n, [])[:BATCHES] for n in OPS}
"""

WINDOW_ARGS_BODY = r"""
ssc = StreamingContext(sc, 1)
s = ssc.queueStream([sc.parallelize([(1, 1)])])
for call in ["s.reduceByKeyAndWindow(None, None, 0.1, 0.1)",
             "s.reduceByKeyAndWindow(None, None, 2, 0.5)",
             "s.window(0.5, 0.5)",
             "s.reduceByWindow(None, None, 0.5, 1)",
             "s.countByValueAndWindow(1.5, 1)"]:
    try:
        eval(call)
        out[call] = {"type": None, "java": None, "message": ""}
    except Exception as e:
        out[call] = error(e)
ssc.stop(stopSparkContext=False)
"""

INPUT_INFO_BODY = r"""
class Recorder(StreamingListener):
    def __init__(self):
        super().__init__()
        self.batches = []  # one {stream id: numRecords} per completed batch
    def onBatchCompleted(self, batchCompleted):
        infos = batchCompleted.batchInfo().streamIdToInputInfo()
        self.batches.append({str(k): int(infos[k].numRecords()) for k in infos.keys()})
def queue(ssc):
    return ssc.queueStream([sc.parallelize(range(i, i + 3), 2) for i in range(3)])

ssc = StreamingContext(sc, 1)  # a queue stream only
rec = Recorder()
ssc.addStreamingListener(rec)
queue(ssc).foreachRDD(lambda t, rdd: None)
ssc.start()
run_until(ssc, lambda: len(rec.batches) >= 4)
out["queue only"] = {"batches": rec.batches}

watched, staging = tempfile.mkdtemp(), tempfile.mkdtemp()
ssc = StreamingContext(sc, 1)  # a file stream on a temporary directory, plus a queue stream
rec = Recorder()
ssc.addStreamingListener(rec)
lines = []
ssc.textFileStream(watched).foreachRDD(lambda t, rdd: lines.extend(rdd.collect()))
queue(ssc).foreachRDD(lambda t, rdd: None)
at = {}
def file_read():
    # once a batch has completed, move a 3-line file in; done 2 batches after it was read
    if "written" not in at and rec.batches:
        with open(os.path.join(staging, "part-00000"), "w") as f:
            f.write("x\ny\nz\n")
        os.rename(os.path.join(staging, "part-00000"), os.path.join(watched, "part-00000"))
        at["written"] = len(rec.batches)
    if "read" not in at and len(lines) >= 3:
        at["read"] = len(rec.batches)
    return "read" in at and len(rec.batches) >= at["read"] + 2
ssc.start()
run_until(ssc, file_read)
out["file + queue"] = {"batches": rec.batches, "lines": sorted(lines)}
"""

RULE_PROGRAMS = {
    rule: RULES_HEADER + body + RULES_FOOTER
    for rule, body in [
        ("checkpoint", CHECKPOINT_BODY),
        ("window-arguments", WINDOW_ARGS_BODY),
        ("input-info", INPUT_INFO_BODY),
    ]
}
NOT_SET = "checkpoint directory has not been set"
WINDOW_TEXT = re.compile(r"\w+ must be multiple of the parent dstream's slide \(batch\) duration")
# the Python exception a Java exception corresponds to (dstreams raises Python's)
JAVA_FAMILY = {
    "java.lang.IllegalArgumentException": "ValueError",
    "java.lang.IllegalStateException": "RuntimeError",
}


def _family(err: dict[str, Any]) -> str | None:
    if err.get("java"):
        return JAVA_FAMILY.get(err["java"], err["java"])
    return err.get("type")


def _err(err: dict[str, Any]) -> str:
    if err.get("started"):
        return "started"
    if not err.get("type"):
        return "no exception"
    java = f" ({err['java']})" if err.get("java") else ""
    return f"{err['type']}{java}: {err['message']!r}"


def _report(same: bool, name: str, ps: str, ds: str) -> bool:
    print(f"    {'same' if same else 'DIFFERENT':9s} {name}")
    print(f"        pyspark:  {ps}")
    print(f"        dstreams: {ds}")
    return same


def _rule_checkpoint(ps: dict[str, Any], ds: dict[str, Any]) -> bool:
    ok = True
    for key in [k for k in ps if k.startswith("no checkpoint directory")]:
        a, b = ps[key], ds.get(key, {})
        refused = [not e.get("started", True) for e in (a, b)]
        mentions = [NOT_SET in str(e.get("message", "")).lower() for e in (a, b)]
        same = all(refused) and all(mentions)
        ok &= _report(
            same,
            f"{key}: start() refused, message has {NOT_SET!r}",
            f"refused={refused[0]} has-text={mentions[0]} family={_family(a)} {_err(a)}",
            f"refused={refused[1]} has-text={mentions[1]} family={_family(b)} {_err(b)}",
        )
    key = "sc.setCheckpointDir only: start"
    a, b = ps[key], ds.get(key, {})
    ok &= _report(bool(a.get("started") and b.get("started")), key, _err(a), _err(b))
    key = "sc.setCheckpointDir only: batches"
    for op, pa in ps[key].items():
        da = ds.get(key, {}).get(op, [])
        ok &= _report(
            pa == da and len(pa) > 0, f"{key}: {op} ({len(pa)} / {len(da)} batches)", pa, da
        )
    return ok


def _rule_window_arguments(ps: dict[str, Any], ds: dict[str, Any]) -> bool:
    ok = True
    for call, a in ps.items():
        b = ds.get(call, {})
        names = [
            [n for n in ("windowDuration", "slideDuration") if n in e.get("message", "")]
            for e in (a, b)
        ]
        match = WINDOW_TEXT.search(a.get("message", ""))
        text = match.group(0) if match else None
        has_text = bool(text) and text in b.get("message", "")
        same = a.get("type") == b.get("type") and names[0] == names[1] and has_text
        ok &= _report(
            same,
            f"{call}: exception class, durations named, PySpark's text {text!r} in dstreams'",
            f"{a.get('type')} names {names[0]} {_err(a)}",
            f"{b.get('type')} names {names[1]} has-pyspark-text={has_text} {_err(b)}",
        )
    return ok


def _rule_input_info(ps: dict[str, Any], ds: dict[str, Any]) -> bool:
    def summary(run: dict[str, Any]) -> dict[str, Any]:
        batches = run.get("batches", [])
        return {
            "batches": len(batches),
            "reported streams per batch": sorted({len(b) for b in batches}),
            "numRecords reported": sorted({n for b in batches for n in b.values()}),
        }

    def ids(run: dict[str, Any]) -> list[str]:
        return sorted({i for b in run.get("batches", []) for i in b})

    ok = True
    key = "queue only"
    sa, sb = summary(ps[key]), summary(ds.get(key, {}))
    ran = sa["batches"] > 0 and sb["batches"] > 0
    same = sa["reported streams per batch"] == sb["reported streams per batch"] == [0]
    ok &= _report(
        ran and same, f"{key}: len(streamIdToInputInfo())", json.dumps(sa), json.dumps(sb)
    )
    key = "file + queue"
    a, b = ps[key], ds.get(key, {})
    sa, sb = summary(a), summary(b)
    ran = sa["batches"] > 0 and sb["batches"] > 0
    for what in ("reported streams per batch", "numRecords reported"):
        ok &= _report(
            ran and sa[what] == sb[what],
            f"{key}: {what}",
            f"{sa[what]} over {sa['batches']} batches",
            f"{sb[what]} over {sb['batches']} batches",
        )
    ok &= _report(
        a.get("lines") == b.get("lines"),
        f"{key}: lines read from the file stream",
        str(a.get("lines")),
        str(b.get("lines")),
    )
    # stream ids are reported for information only (creation order: file stream first)
    print(f"    {'(info)':9s} {key}: reporting stream ids: pyspark {ids(a)}, dstreams {ids(b)}")
    return ok


RULE_CHECKS = {
    "checkpoint": ("checkpoint directory from sc.setCheckpointDir; none at all", _rule_checkpoint),
    "window-arguments": (
        "window argument checks: exception class and wording",
        _rule_window_arguments,
    ),
    "input-info": ("BatchInfo.streamIdToInputInfo() of queue and file streams", _rule_input_info),
}


def check_pyspark_rules(pyspark_python: str) -> int:
    differing = []
    for n, (rule, program) in enumerate(RULE_PROGRAMS.items(), 1):
        title, compare = RULE_CHECKS[rule]
        print(f"  rule {n}, {rule} ({title}):")
        # one JVM (or dstreams Context) at a time; PySpark needs far longer per batch
        ps = run_program(pyspark_python, "pyspark", program, 90, timeout=3 * 90 + 180)
        ds = run_program(sys.executable, "dstreams", program, 30, timeout=3 * 30 + 120)
        if not compare(ps, ds):
            differing.append(rule)
    for n, rule in enumerate(RULE_PROGRAMS, 1):
        print(f"  rule {n} {rule}: {'DIFFERENT' if rule in differing else 'same'}")
    return len(differing)


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
    parser.add_argument("--only", choices=["rdd", "streaming", "pyspark-rules"])
    args = parser.parse_args(argv)
    pyspark_python = os.environ.get("PYSPARK_PYTHON_BIN")
    if not pyspark_python:
        print("PYSPARK_PYTHON_BIN is not set: nothing to compare against (skipped)")
        return 0
    failed = False
    if args.only in (None, "rdd"):
        print("PySpark's RDD doctests on dstreams:")
        check_rdd_doctests(pyspark_python)
    if args.only in (None, "streaming"):
        print("the same streaming program on both engines:")
        failed |= check_streaming(pyspark_python) > 0
    if args.only in (None, "pyspark-rules"):
        print("PySpark's rules, the same small programs on both engines:")
        failed |= check_pyspark_rules(pyspark_python) > 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
