"""The record-error policy: ``fail`` poisons a state stream (as PySpark); ``deadLetter`` skips.

With ``deadLetter`` a bad record is written once to the dead-letter directory with its operator,
batch time and traceback, however often its task is retried or recomputed, and counted in
``batchInfo.extras().numSkippedRecords()``.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dstreams import Conf, Context, TaskContext
from dstreams.errors import TaskFailedError
from dstreams.streaming import StreamingListener
from dstreams.testing import CollectingSink, TestSource, manual_context, run_batches

HERE = os.path.basename(__file__)


@pytest.fixture(scope="module")
def letters_dir(tmp_path_factory: Any) -> Path:
    return tmp_path_factory.mktemp("dead-letters")


@pytest.fixture(scope="module")
def sc(letters_dir: Path) -> Iterator[Context]:
    conf = Conf(loadDefaults=False).setAll(
        [
            ("dstreams.streaming.recordErrors", "deadLetter"),
            ("dstreams.streaming.recordErrors.path", str(letters_dir)),
        ]
    )
    context = Context("local[2]", "dead-letter-tests", conf=conf)
    yield context
    context.stop()


@pytest.fixture(autouse=True)
def _empty_letters(letters_dir: Path) -> None:
    import shutil

    for child in letters_dir.iterdir():
        shutil.rmtree(child)


def parse(line: str) -> tuple[str, int]:
    word, n = line.split(":")
    return word, int(n)  # "bad:x" raises here


PARSE_LINE = parse.__code__.co_firstlineno + 2


class Skipped(StreamingListener):
    def __init__(self) -> None:
        self.by_batch: dict[int, int] = {}

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        self.by_batch[info.batchTime().milliseconds()] = info.extras().numSkippedRecords()


def entries(root: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted(root.rglob("*.jsonl")):
        out += [json.loads(line) for line in f.read_text().splitlines()]
    assert not [p for p in root.rglob(".*") if p.is_file()], "temporary files left behind"
    return out


def test_a_bad_record_is_skipped_written_once_and_counted(sc, letters_dir, tmp_path):
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    batches = [["a:1", "b:2"], ["a:3", "bad:x", "c:1"], ["b:1"], ["a:1"]]
    src = TestSource(ssc, batches, numSlices=2)
    state = src.stream.map(parse).updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    sink = CollectingSink(state, sort=True)
    skipped = Skipped()
    ssc.addStreamingListener(skipped)
    try:
        run_batches(ssc, 4, timeout=20)
        ssc.awaitTerminationOrTimeout(0)  # nothing failed
    finally:
        ssc.stop(stopSparkContext=False)
    assert sink.results == [
        [("a", 1), ("b", 2)],
        [("a", 4), ("b", 2), ("c", 1)],
        [("a", 4), ("b", 3), ("c", 1)],
        [("a", 5), ("b", 3), ("c", 1)],
    ]
    (entry,) = entries(letters_dir / "batch-100")
    assert entry["record"] == "'bad:x'" and entry["operator"] == "map"
    assert entry["batchTime"] == 100
    assert entry["error"] == "ValueError: invalid literal for int() with base 10: 'x'"
    assert f'{HERE}", line {PARSE_LINE}, in parse' in entry["traceback"]
    assert skipped.by_batch == {50: 0, 100: 1, 150: 0, 200: 0}


def test_retries_and_recomputation_write_each_dead_letter_once(sc, letters_dir, tmp_path):
    marker = tmp_path / "killed"
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    batches = [["a:1"], ["bad:1:2", "a:2", "b:oops", "KILL:1", "c:1"], ["a:1"]]

    runs = tmp_path / "runs"
    runs.mkdir()

    def flaky_once(it: Any) -> Any:
        tc = TaskContext.get()
        items = list(it)
        (runs / f"{os.getpid()}-{tc.taskAttemptId() if tc else 0}").touch()
        if tc is not None and tc.attemptNumber() == 0 and any(k == "c" for k, _ in items):
            raise RuntimeError("first attempt fails after the bad records were skipped")
        return items

    def kill_in_reduce(values: list[int], state: int | None) -> int:
        if values and not marker.exists() and sum(values) == 1 and state is None:
            # the reduce side of batch 1: dies after the map outputs were written, so the
            # lost map outputs (and their dead letters) are computed again
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return (state or 0) + sum(values)

    src = TestSource(ssc, batches, numSlices=1)
    pairs = src.stream.map(parse).mapPartitions(flaky_once)
    state = pairs.updateStateByKey(kill_in_reduce)
    sink = CollectingSink(state, sort=True)
    skipped = Skipped()
    ssc.addStreamingListener(skipped)
    try:
        run_batches(ssc, 3, timeout=60)
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    assert marker.exists(), "the reduce task did kill its worker"
    assert sink.results == [
        [("a", 1)],
        [("KILL", 1), ("a", 3), ("c", 1)],
        [("KILL", 1), ("a", 4), ("c", 1)],
    ]
    assert len(list(runs.iterdir())) >= 4, "batch 1's map ran at least twice (a retry)"
    got = sorted(e["record"] for e in entries(letters_dir / "batch-100"))
    assert got == ["'b:oops'", "'bad:1:2'"]
    assert skipped.by_batch[100] == 2


def test_a_failing_update_keeps_the_keys_previous_state(sc, letters_dir, tmp_path):
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))

    def update(values: list[int], state: int | None) -> int:
        if 13 in values:
            raise ArithmeticError("unlucky")
        return (state or 0) + sum(values)

    src = TestSource(ssc, [[("k", 1)], [("k", 13), ("j", 2)], [("k", 1)]], numSlices=2)
    sink = CollectingSink(src.stream.updateStateByKey(update), sort=True)
    try:
        run_batches(ssc, 3, timeout=20)
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    assert sink.results == [[("k", 1)], [("j", 2), ("k", 1)], [("j", 2), ("k", 2)]]
    found = [e for e in entries(letters_dir) if e["operator"] == "updateStateByKey"]
    assert [(e["record"], e["accumulated"]) for e in found] == [("('k', [13])", "1")]


def test_deadletter_needs_a_path_and_the_policy_name_is_checked(tmp_path):
    from dstreams.streaming.deadletter import RecordErrorPolicy

    with pytest.raises(ValueError, match="needs a directory: set dstreams.streaming.record"):
        RecordErrorPolicy.from_conf(lambda k: "deadLetter" if k.endswith("recordErrors") else "")
    with pytest.raises(ValueError, match="'skip' is not a policy; use 'fail'"):
        RecordErrorPolicy.from_conf(lambda k: "skip" if k.endswith("recordErrors") else "")


def test_under_fail_a_bad_record_poisons_the_state_stream_as_in_pyspark(fresh_stream):
    ssc = fresh_stream
    src = TestSource(ssc, [["a:1"], ["bad:x"], ["a:1"], ["a:1"]], numSlices=1)
    sink = CollectingSink(
        src.stream.map(parse).updateStateByKey(lambda vs, s: (s or 0) + sum(vs)), sort=True
    )
    run_batches(ssc, 4, timeout=30)
    with pytest.raises(TaskFailedError, match="invalid literal"):
        ssc.awaitTerminationOrTimeout(0)
    assert sink.results == [[("a", 1)]], "every batch after the bad record fails"


@pytest.fixture
def fresh_stream(sc: Context, tmp_path: Path) -> Iterator[Any]:
    """A StreamingContext under the default policy (``fail``), on its own Context."""
    sc.stop()
    other = Context("local[2]", "fail-policy", conf=Conf(loadDefaults=False))
    try:
        ssc = manual_context(other, 0.05)
        ssc.checkpoint(str(tmp_path / "ck"))
        yield ssc
        ssc.stop(stopSparkContext=False)
    finally:
        other.stop()
