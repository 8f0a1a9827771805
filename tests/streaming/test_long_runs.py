"""Stateful and windowed streams for thousands of batches at sub-second intervals, exactly.

Every batch of every pipeline (``pipelines.py``) is compared with a plain-Python model, on a
manual clock (50 ms batches: 10 s checkpoints are 200 batches apart) and on the real clock
(100 ms batches). The lineage of each output stream is measured as it runs: checkpoints must
keep it bounded, and it must fall back after every checkpoint.

``make test`` runs one 2,000-batch pipeline, short runs of the others and one real-clock run;
``make soak`` (marker ``soak``) runs every pipeline for 2,000 batches, a 10 ms run, and 300
real-clock batches of each.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pipelines import PIPELINES, make_batches

from dstreams.core.shipping import lineage_height
from dstreams.streaming import StreamingContext, StreamingListener
from dstreams.testing import CollectingSink, TestSource, manual_context, run_batches

CHECKPOINT_MS = 10_000


def first_difference(got: list[Any], want: list[Any]) -> str:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"batch {i}: got {g[:8]}... want {w[:8]}..."
    return f"{len(got)} batches, want {len(want)}"


def check_depths(depths: list[int], batch_s: float) -> None:
    """Checkpoints bound the lineage, and each one cuts it back."""
    per_checkpoint = round(CHECKPOINT_MS / (batch_s * 1000))
    bound = 12 * (per_checkpoint + 2) + 60
    assert max(depths) <= bound, f"lineage grew to {max(depths)} (bound {bound})"
    if len(depths) * 25 > 2 * per_checkpoint:  # long enough to see the cut happen
        assert min(depths[len(depths) // 2 :]) < 60, "the lineage was never cut back"


def run_manual(sc: Any, name: str, batch_s: float, n: int, tmp: Path) -> None:
    build, model = PIPELINES[name]
    batches = make_batches(n)
    ssc = manual_context(sc, batch_s)
    ssc.checkpoint(str(tmp / "checkpoints"))
    src = TestSource(ssc, batches, numSlices=2)
    out = build(src.stream.map(lambda w: (w, 1)), batch_s)
    sink = CollectingSink(out, sort=True)
    depths: list[int] = []
    seen = [0]

    def measure(rdd: Any) -> None:
        seen[0] += 1
        if seen[0] % 25 == 0:
            depths.append(lineage_height(rdd, narrow_only=False))

    out.foreachRDD(measure)
    try:
        run_batches(ssc, n, timeout=60)
        ssc.awaitTerminationOrTimeout(0)  # raises the first failed batch's error
    finally:
        ssc.stop(stopSparkContext=False)
    want = model(batches, batch_s)
    assert sink.results == want, first_difference(sink.results, want)
    assert ssc._graph.held_rdd_count() == 0
    check_depths(depths, batch_s)


class _Completed(StreamingListener):
    def __init__(self, n: int) -> None:
        self.n, self.count, self.done = n, 0, threading.Event()

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        self.count += 1
        if self.count >= self.n:
            self.done.set()


def run_real_clock(sc: Any, name: str, batch_s: float, n: int, tmp: Path) -> None:
    build, model = PIPELINES[name]
    batches = make_batches(n)
    ssc = StreamingContext(sc, batch_s)
    ssc.checkpoint(str(tmp / "checkpoints"))
    stream = ssc.queueStream([sc.parallelize(b, 2) for b in batches])
    sink = CollectingSink(build(stream.map(lambda w: (w, 1)), batch_s), sort=True)
    # a window with a slide emits on fewer batches, and a batch without output jobs posts no
    # completion (as in Spark): wait for as many completions as the model has outputs
    want = model(batches, batch_s)
    done = _Completed(len(want))
    ssc.addStreamingListener(done)
    ssc.start()
    try:
        assert done.done.wait(n * batch_s * 4 + 60), f"only {done.count} of {len(want)} ran"
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    # batches after the input ran out may have completed before stop(): compare the prefix
    got = sink.results[: len(want)]
    assert got == want, first_difference(got, want)


SHORT = [n for n in PIPELINES if n != "updateStateByKey"]


def test_update_state_by_key_2000_batches_at_50ms(sc, tmp_path):
    run_manual(sc, "updateStateByKey", 0.05, 2000, tmp_path)


@pytest.mark.parametrize("name", SHORT)
def test_pipeline_300_batches_at_50ms(sc, tmp_path, name):
    run_manual(sc, name, 0.05, 300, tmp_path)


def test_state_into_window_on_the_real_clock_100ms(sc, tmp_path):
    run_real_clock(sc, "state-into-window", 0.1, 300, tmp_path)


@pytest.mark.soak
@pytest.mark.parametrize("name", SHORT)
def test_soak_pipeline_2000_batches_at_50ms(sc, tmp_path, name):
    run_manual(sc, name, 0.05, 2000, tmp_path)


@pytest.mark.soak
@pytest.mark.parametrize("name", ["updateStateByKey", "reduceByKeyAndWindow-inverse"])
def test_soak_pipeline_3000_batches_at_10ms(sc, tmp_path, name):
    run_manual(sc, name, 0.01, 3000, tmp_path)


@pytest.mark.soak
@pytest.mark.parametrize("name", list(PIPELINES))
def test_soak_pipeline_300_batches_on_the_real_clock_100ms(sc, tmp_path, name):
    run_real_clock(sc, name, 0.1, 300, tmp_path)
