"""Driver recovery and exactly-once output.

* ``getOrCreate`` calls the setup function only without a checkpoint, refuses a checkpoint of
  another program or version, skips a corrupt newest checkpoint, and the recovered program
  carries on with exact state;
* a checkpoint write that fails (a full disk, a refused write) fails loudly, leaves nothing
  that recovery would read, and holds batches back until it works again;
* an unreadable state checkpoint is recomputed from lineage while running, and an older one is
  used when recovering;
* sinks commit each partition once, two live attempts included;
* the crash harness (``tools/crash_harness.py``): the driver SIGKILLed at injected points, a
  worker killed during recovery, every record counted exactly once. Short here; 20 kills in
  ``make soak``.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem

from dstreams import Conf, Context
from dstreams.errors import SerializationError
from dstreams.streaming import StreamingContext
from dstreams.streaming.checkpoint import CheckpointError, CheckpointStore
from dstreams.streaming.sinks import FileSink
from dstreams.testing import CollectingSink, run_batches

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))


@pytest.fixture(scope="module")
def sc() -> Any:
    conf = Conf(loadDefaults=False).set("dstreams.streaming.clock", "manual")
    context = Context("local[2]", "recovery-tests", conf=conf)
    yield context
    context.stop()


def drop(inbox: Path, name: str, text: str) -> None:
    staged = inbox.parent / f".{name}"
    staged.write_text(text)
    staged.rename(inbox / name)


def counting_program(work: Path, calls: list[int]) -> Any:
    """A setup function: files -> word counts -> state, to a FileSink."""

    def setup() -> StreamingContext:
        calls.append(1)
        ssc = StreamingContext(Context.getOrCreate(), 0.1)
        words = ssc.textFileStream(str(work / "inbox")).flatMap(str.split)
        state = words.map(lambda w: (w, 1)).updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
        state.writeToSink(FileSink(str(work / "out"), "state"))
        return ssc

    return setup


def last_state(work: Path) -> dict[str, int]:
    committed = FileSink(str(work / "out"), "state").committed()
    if not committed:
        return {}
    parts = committed[max(committed)]
    return dict(eval(line) for lines in parts.values() for line in lines)


def run_program(work: Path, setup: Any, files: list[str], batches: int) -> StreamingContext:
    ssc = StreamingContext.getOrCreate(str(work / "ck"), setup)
    ssc.start()
    inbox = work / "inbox"
    for i, text in enumerate(files):
        drop(inbox, f"{time.monotonic_ns()}-{i}.txt", text)
        run_batches(ssc, 1, timeout=30)
    run_batches(ssc, batches, timeout=30)
    ssc.awaitTerminationOrTimeout(0)
    return ssc


def test_get_or_create_recovers_state_and_calls_setup_only_once(sc, tmp_path):
    (tmp_path / "inbox").mkdir()
    calls: list[int] = []
    setup = counting_program(tmp_path, calls)
    ssc = run_program(tmp_path, setup, ["a b a", "b c"], 2)
    ssc.stop(stopSparkContext=False)
    assert calls == [1] and last_state(tmp_path) == {"a": 2, "b": 2, "c": 1}
    # a file that arrives while the program is down is processed once after the restart
    drop(tmp_path / "inbox", "while-down.txt", "c c a")
    ssc = run_program(tmp_path, setup, ["a"], 2)
    try:
        assert calls == [1], "setupFunc must not be called when a checkpoint exists"
        assert ssc._recovered_from is not None
        assert last_state(tmp_path) == {"a": 4, "b": 2, "c": 3}
    finally:
        ssc.stop(stopSparkContext=False)


def test_a_checkpoint_of_another_program_or_version_is_refused(sc, tmp_path):
    (tmp_path / "inbox").mkdir()
    setup = counting_program(tmp_path, [])
    run_program(tmp_path, setup, ["a"], 1).stop(stopSparkContext=False)

    def other_program() -> StreamingContext:
        ssc = StreamingContext(Context.getOrCreate(), 0.1)
        ssc.textFileStream(str(tmp_path / "inbox")).count().pprint()
        return ssc

    with pytest.raises(CheckpointError, match="written by a different program") as info:
        StreamingContext.getOrCreate(str(tmp_path / "ck"), other_program)
    assert "stop the running program gracefully" in str(info.value)
    store = CheckpointStore(str(tmp_path / "ck"))
    cp = store.read_latest()
    cp.version = "0.0.1"
    store.write(cp)
    with pytest.raises(CheckpointError, match=r"written by dstreams 0\.0\.1; this is dstreams"):
        StreamingContext.getOrCreate(str(tmp_path / "ck"), setup)


def test_a_corrupt_newest_checkpoint_is_skipped_with_a_warning(sc, tmp_path, caplog):
    (tmp_path / "inbox").mkdir()
    setup = counting_program(tmp_path, [])
    run_program(tmp_path, setup, ["a b", "a"], 1).stop(stopSparkContext=False)
    store = CheckpointStore(str(tmp_path / "ck"))
    newest = store._listing()[-1][1]
    with open(newest, "r+b") as fh:
        fh.truncate(os.path.getsize(newest) // 2)
    with caplog.at_level(logging.WARNING):
        ssc = run_program(tmp_path, setup, ["b"], 2)
    try:
        assert any(
            newest in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records
        )
        assert last_state(tmp_path) == {"a": 2, "b": 2}
    finally:
        ssc.stop(stopSparkContext=False)


def test_start_fails_naming_a_function_that_captures_the_context(sc, tmp_path):
    ssc = StreamingContext(sc, 0.1)
    ssc.checkpoint(str(tmp_path / "ck"))

    def uses_sc(rdd: Any) -> None:
        sc.parallelize([1]).count()  # captures the Context: not allowed in a checkpointed graph

    ssc.queueStream([[1]]).foreachRDD(uses_sc)
    with pytest.raises(SerializationError) as info:
        ssc.start()
    text = str(info.value)
    assert "It appears that you are attempting to reference SparkContext from a broadcast" in text
    assert "uses_sc" in text and "captured variable `sc`" in text
    ssc.stop(stopSparkContext=False)


class RefusingFS(LocalFileSystem):
    """A local file system that refuses writes while ``refuse`` is set (a full disk)."""

    protocol = "refusingfs"
    refuse: int | None = None

    def _open(self, path: str, mode: str = "rb", **kw: Any) -> Any:
        if self.refuse is not None and "w" in mode:
            raise OSError(self.refuse, os.strerror(self.refuse), path)
        return super()._open(path, mode, **kw)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        path = str(path)
        if path.startswith("refusingfs://"):
            path = path[len("refusingfs://") :]
        return LocalFileSystem._strip_protocol(path)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EACCES])
def test_a_failing_checkpoint_write_holds_batches_back_and_leaves_nothing(sc, tmp_path, err):
    fsspec.register_implementation("refusingfs", RefusingFS, clobber=True)
    RefusingFS.refuse = None
    url = f"refusingfs://{tmp_path / 'ck'}"
    ssc = StreamingContext(sc, 0.1)
    ssc.checkpoint(url)
    out: list[int] = []
    ssc.queueStream([[1], [2], [3], [4]]).foreachRDD(lambda rdd: out.extend(rdd.collect()))
    run_batches(ssc, 1)
    assert out == [1]
    RefusingFS.refuse = err
    ssc.clock.advance(100)  # the next batch cannot be checkpointed: it must not run
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and ssc._generator._held == []:
        time.sleep(0.01)
    with pytest.raises(OSError) as info:
        ssc.awaitTerminationOrTimeout(5)
    assert info.value.errno == err and "ck/metadata/checkpoint-" in str(info.value)
    assert out == [1], "a batch whose plan is not durable ran"
    metadata = tmp_path / "ck" / "metadata"
    assert not [p for p in metadata.iterdir() if p.name.startswith(".")], "a temporary file"
    RefusingFS.refuse = None  # the disk has room again: the held batch runs, once
    run_batches(ssc, 2)
    ssc.stop(stopSparkContext=False)
    assert out == [1, 2, 3, 4]


def _tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")


def test_a_full_disk_loses_no_output_and_leaves_no_temporary_files(sc, tmp_path):
    disk = tmp_path / "small"
    _tmpfs(disk, "1m")
    try:
        ssc = StreamingContext(sc, 0.1)
        ssc.checkpoint(str(disk / "ck"))
        # ~0.8 MB of state: one state checkpoint fits on the 1 MB disk, the next cannot, and
        # the small metadata checkpoints still fit, so batches go on
        big = [(f"key-{i:05d}", f"{i:05d}" * 80) for i in range(2000)]
        batches = [big[: 500 * (b + 1)] for b in range(4)] + [[("key-00000", "y")]] * 100
        state = ssc.queueStream([sc.parallelize(b, 2) for b in batches]).updateStateByKey(
            lambda vs, s: vs[-1] if vs else s
        )
        state.checkpoint(0.5)  # every 5 batches
        sink = CollectingSink(state.map(lambda kv: kv[0]).count())
        run_batches(ssc, 104, timeout=60)
        errors = []
        while True:
            try:
                ssc.awaitTerminationOrTimeout(0)
                break
            except OSError as e:
                errors.append(e)
        ssc.stop(stopSparkContext=False)
        # every batch's output is there, though checkpoints failed for lack of space
        assert sink.results[:4] == [[500], [1000], [1500], [2000]]
        assert all(r == [2000] for r in sink.results[4:]) and len(sink.results) == 104
        assert errors and all(e.errno == errno.ENOSPC for e in errors)
        assert any(str(disk / "ck") in str(e) for e in errors), "the error names the path"
        leftovers = [p for p in disk.rglob("*") if p.name.startswith(".")]
        assert leftovers == [], f"temporary files keep the disk full: {leftovers}"
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def test_a_truncated_state_checkpoint_is_recomputed_while_running(sc, tmp_path):
    ssc = StreamingContext(sc, 0.1)
    ssc.checkpoint(str(tmp_path / "ck"))
    words = [["a", "b"], ["a"], ["c"]] * 10
    state = (
        ssc.queueStream([sc.parallelize(w, 2) for w in words])
        .map(lambda w: (w, 1))
        .updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    )
    state.checkpoint(1)
    sink = CollectingSink(state, sort=True)
    run_batches(ssc, 12)  # a checkpoint at 1 s
    (ckpt,) = [s for s in ssc._graph._all_streams() if s._ckpt_rdds]
    newest = max(ckpt._ckpt_rdds)
    rdd, path, n, _ = ckpt._ckpt_rdds[newest]
    for split in range(n):  # damage every part, and drop the cached copies
        part = Path(path.replace("file://", "")) / f"part-{split:05d}"
        part.write_bytes(part.read_bytes()[:10])
    rdd.unpersist()
    run_batches(ssc, 18)
    ssc.awaitTerminationOrTimeout(0)
    ssc.stop(stopSparkContext=False)
    counts: Counter[str] = Counter()
    for i, batch in enumerate(words):
        counts.update(batch)
        assert sink.results[i] == sorted(counts.items()), f"batch {i}"


def test_log_segments_go_once_their_batches_are_forgotten(sc, tmp_path):
    from test_receiver import Lines

    conf = sc._conf
    conf.set("dstreams.streaming.receiver.writeAheadLog.enable", "true")
    conf.set("dstreams.streaming.receiver.writeAheadLog.rollingIntervalSecs", "0")
    try:
        ssc = StreamingContext(sc, 0.1)
        ssc.checkpoint(str(tmp_path / "ck"))
        inbox = tmp_path / "lines"
        sink = CollectingSink(ssc.receiverStream(Lines(str(inbox))), sort=True)
        ssc.start()
        got = 0
        for i in range(30):
            with open(inbox, "a") as fh:
                fh.write(f"line {i}\n")
            assert ssc._receiver_tracker.wait_for_received(i + 1, 20)
            run_batches(ssc, 1)
            got += len(sink.results[-1])
        logs = list((tmp_path / "ck" / "receivedData").rglob("log-*"))
        ssc.stop(stopSparkContext=False)
        assert got == 30
        assert len(logs) < 10, f"old log segments were not deleted: {len(logs)}"
    finally:
        conf.set("dstreams.streaming.receiver.writeAheadLog.enable", "false")


def test_the_driver_survives_sigkills_at_every_phase(tmp_path):
    import crash_harness

    report = crash_harness.run(tmp_path, kills=5, seed=11, files=16, lines=500)
    assert report.problems == []
    assert len(report.kills) >= 4, f"kills that landed: {report.kills}"


@pytest.mark.soak
def test_soak_the_driver_survives_twenty_kills_at_every_phase(tmp_path):
    import crash_harness

    report = crash_harness.run(tmp_path, kills=24, seed=7)
    assert report.problems == []
    assert len(report.kills) >= 20
    assert all(n >= 3 for n in report.by_phase().values()) and len(report.by_phase()) == 4
    assert report.worker_kills >= 3
