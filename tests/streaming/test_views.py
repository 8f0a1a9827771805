"""Ad-hoc queries on live state: ``registerView`` and ``ssc.view``.

* after every one of 200 batches, ``ssc.view`` is the whole state as of that batch (a model
  check), ``at=`` reads the retained older batches, and a query from another thread while the
  stream runs always sees a state of one batch boundary, never half of one;
* bad names and batch times name the bad value.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from crashing import kill_while_feeding

from dstreams.testing import TestSource, manual_context, run_batches


def test_the_view_is_the_state_as_of_a_batch_and_keeps_older_ones(sc, tmp_path) -> None:
    batches = [[f"w{(b * 3 + i) % 17}" for i in range(b % 7)] for b in range(200)]
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    totals = (
        TestSource(ssc, batches, numSlices=2)
        .stream.map(lambda w: (w, 1))
        .updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    )
    totals.registerView("totals")
    running: Counter[str] = Counter()
    history: dict[int, dict[str, int]] = {}
    try:
        with pytest.raises(LookupError, match="no completed batch yet"):
            ssc.view("totals")
        for b in range(200):
            (t,) = run_batches(ssc, 1)
            running.update(batches[b])
            history[t] = dict(running)
            view = ssc.view("totals")
            assert dict(view.collect()) == history[t], f"batch {b}"
            if running:
                key = next(iter(running))
                assert view.lookup(key) == [running[key]]
        # the 10 newest batches are kept
        kept = sorted(history)[-10:]
        for t in kept:
            assert dict(ssc.view("totals", at=t).collect()) == history[t]
        with pytest.raises(LookupError, match="keeps the 10 newest"):
            ssc.view("totals", at=sorted(history)[-11])
        # a join with a static RDD
        model = sc.parallelize([("w1", "one"), ("w2", "two")])
        joined = dict(ssc.view("totals").join(model).collect())
        assert joined == {w: (running[w], name) for w, name in [("w1", "one"), ("w2", "two")]}
    finally:
        ssc.stop(stopSparkContext=False)


def test_a_query_beside_the_running_stream_sees_whole_batches(sc, tmp_path) -> None:
    # every batch adds 1 to each of 20 keys: a consistent state has all values equal
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    keys = [f"k{i}" for i in range(20)]
    counts = (
        TestSource(ssc, [keys] * 60, numSlices=2)
        .stream.map(lambda k: (k, 1))
        .updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    )
    counts.registerView("counts")
    seen: list[set[int]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def query() -> None:
        while not stop.is_set():
            try:
                values = set(dict(ssc.view("counts").collect()).values())
                seen.append(values)
            except LookupError:
                time.sleep(0.005)
            except BaseException as e:
                errors.append(e)
                return

    thread = threading.Thread(target=query)
    try:
        run_batches(ssc, 1)
        thread.start()
        run_batches(ssc, 59)
    finally:
        stop.set()
        thread.join(30)
        ssc.stop(stopSparkContext=False)
    assert errors == []
    assert len(seen) > 10, "the query thread ran beside the stream"
    assert all(len(v) == 1 for v in seen), "a query saw a state between two batches"


class ViewReads:
    """What the view showed at each batch (the checkpoint's copy starts empty)."""

    def __init__(self) -> None:
        self.batches: list[Any] = []

    def __getstate__(self) -> dict[str, Any]:
        return {"batches": []}


def test_a_real_clock_run_sees_each_batchs_state_in_the_view(sc, tmp_path) -> None:
    from dstreams.streaming import StreamingContext
    from dstreams.testing import run_real_clock

    batches = [[f"w{(b * 5 + i) % 11}" for i in range(b % 5)] for b in range(100)]
    ssc = StreamingContext(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    totals = (
        TestSource(ssc, batches, numSlices=2)
        .stream.map(lambda w: (w, 1))
        .updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    )
    totals.registerView("totals")
    # an output after the view's: at batch t, the view is batch t's state
    seen = ViewReads()
    totals.foreachRDD(
        lambda t, rdd: seen.batches.append(
            (t, sorted(StreamingContext.getActive().view("totals").collect()))
        )
    )
    run_real_clock(ssc, seen, 100)
    running: Counter[str] = Counter()
    for b in range(100):
        running.update(batches[b])
        assert seen.batches[b][1] == sorted(running.items()), f"batch {b}"


def test_bad_view_names_and_times_name_the_bad_value(sc) -> None:
    ssc = manual_context(sc, 0.05)
    try:
        stream = TestSource(ssc, []).stream
        stream.registerView("v")
        with pytest.raises(ValueError, match="a view named 'v' is already registered"):
            stream.registerView("v")
        with pytest.raises(ValueError, match="a view's name must be a non-empty string"):
            stream.registerView("")
        with pytest.raises(KeyError, match="no view named 'w' \\(registered: v\\)"):
            ssc.view("w")
        run_batches(ssc, 1)
        with pytest.raises(TypeError, match="at='yesterday' must be a batch time"):
            ssc.view("v", at="yesterday")
    finally:
        ssc.stop(stopSparkContext=False)


def test_views_are_read_over_rest_with_a_key_and_a_limit(tmp_path) -> None:
    """The UI's ``/api/v1/applications/{id}/views/{name}``, on real HTTP, token required."""
    import json
    import urllib.error
    import urllib.request

    from dstreams import Conf, Context

    if Context._active is not None:
        Context._active.stop()
    conf = (
        Conf(loadDefaults=False)
        .set("dstreams.ui.enabled", "true")
        .set("dstreams.ui.port", "0")
        .set("dstreams.ui.authToken", "s3cret")
    )
    with Context("local[2]", "views-rest", conf=conf) as ctx:
        ssc = manual_context(ctx, 0.05)
        ssc.checkpoint(str(tmp_path / "ck"))
        batches = [[("card-1", 5), ("card-2", 7), (17, 1)], [("card-1", 1)]]
        TestSource(ssc, batches, numSlices=2).stream.updateStateByKey(
            lambda vs, s: (s or 0) + sum(vs)
        ).registerView("spend")
        try:
            run_batches(ssc, 2)
            base = f"{ctx.uiWebUrl}/api/v1/applications/{ctx.applicationId}/views"

            def get(path: str, token: str | None = "s3cret") -> Any:
                req = urllib.request.Request(base + path)
                if token:
                    req.add_header("Authorization", f"Bearer {token}")
                with urllib.request.urlopen(req, timeout=30) as r:
                    return json.loads(r.read())

            got = get("/spend?key=card-1")
            assert got["rows"] == [["card-1", 6]] and got["batchTime"] == 100
            assert get("/spend?key=17")["rows"] == [[17, 1]], "a numeric key"
            assert len(get("/spend?limit=2")["rows"]) == 2
            for path, code in (("/spend?key=card-1", 401), ("/nope", 404), ("/spend?limit=0", 400)):
                with pytest.raises(urllib.error.HTTPError) as info:
                    get(path, token=None if code == 401 else "s3cret")
                assert info.value.code == code, path
        finally:
            ssc.stop(stopSparkContext=False)


def test_queries_across_driver_sigkills_see_whole_batches_and_lose_nothing(tmp_path) -> None:
    """``tools/views_driver.py`` is SIGKILLed at random moments (fixed seed) while files keep
    arriving and a thread queries the view; a last run drains. Every answer any run gave is the
    state of whole files, each counted once (a marker word per file is 1, and the other words
    add up to those files), and no answer forgets a file an earlier answer had."""
    import json
    import os
    import random
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    rng = random.Random(12)
    (tmp_path / "inbox").mkdir()
    (tmp_path / "staging").mkdir()
    files: dict[str, Counter[str]] = {}

    def feed(n: int) -> None:
        for _ in range(n):
            i = len(files)
            words = Counter(rng.choice("abcde") for _ in range(rng.randint(1, 20)))
            files[f"m{i}"] = words
            text = " ".join([f"m{i}", *words.elements()])
            staged = tmp_path / "staging" / f"f{i}.txt"
            staged.write_text(text + "\n")
            staged.rename(tmp_path / "inbox" / staged.name)

    env = dict(os.environ, PYTHONPATH=str(root / "src"), DSTREAMS_CONF_UI__ENABLED="false")
    program = [sys.executable, str(root / "tools" / "views_driver.py"), str(tmp_path)]
    pids: list[int] = []

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(program, env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().startswith("started")
        pids.append(proc.pid)
        return proc

    kill_while_feeding(start, feed, rng, 3, (1.0, 2.5))

    def answers(pid: int) -> list[dict[str, int]]:
        found = sorted(
            (int(p.stem.split("-")[1]), p) for p in (tmp_path / "snaps").glob(f"{pid}-*.json")
        )
        return [json.loads(p.read_text()) for _, p in found]

    proc = start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        last = answers(proc.pid)
        if last and all(m in last[-1] for m in files):
            break
        time.sleep(0.2)
    (tmp_path / "stop").touch()
    assert proc.wait(60) == 0
    seen: set[str] = set()
    checked = 0
    for pid in pids:
        for counts in answers(pid):
            markers = {k for k in counts if k.startswith("m")}
            assert all(counts[m] == 1 for m in markers), "a file was counted twice"
            want: Counter[str] = Counter()
            for m in markers:
                want.update(files[m])
            assert {k: v for k, v in counts.items() if not k.startswith("m")} == dict(want)
            assert seen <= markers, f"an answer forgot files {sorted(seen - markers)[:5]}"
            seen = markers
            checked += 1
    assert seen == set(files), "the last answer is missing files"
    assert checked > 20 and len(pids) == 4
