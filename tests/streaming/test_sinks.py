"""Exactly-once output: the sink protocol, FileSink, SQLiteSink, foreachBatch, saveAsTextFiles.

* a partition whose task fails mid-write leaves nothing, and its retry commits it once;
* the same batch written twice (a re-run after a restart) commits nothing more;
* two live attempts of one partition (the first one's worker stopped, then resumed) commit once;
* a stream written through each sink for hundreds of batches equals a plain-Python model;
* foreachBatch runs once per batch id, and its old markers are swept;
* bad arguments name the bad value.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dstreams import Conf, Context, TaskContext
from dstreams.streaming import StreamingContext
from dstreams.streaming.operators.output import BatchCommits, save_atomically
from dstreams.streaming.sinks import FileSink, SQLiteSink, partition_writer
from dstreams.testing import TestSource, run_batches


@pytest.fixture(scope="module")
def sc() -> Iterator[Context]:
    conf = Conf(loadDefaults=False).set("dstreams.streaming.clock", "manual")
    context = Context("local[2]", "sink-tests", conf=conf)
    yield context
    context.stop()


def fails_first_attempt_mid_partition(split: int, it: Iterator[Any]) -> Iterator[Any]:
    """Partition 1's first attempt yields one record, then fails."""
    tc = TaskContext.get()
    assert tc is not None
    for i, record in enumerate(it):
        if tc.attemptNumber() == 0 and split == 1 and i == 1:
            raise RuntimeError("the first attempt fails after writing a record")
        yield record


def sqlite_rows(db: Path, sql: str) -> list[Any]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_a_failed_attempt_leaves_nothing_and_a_rerun_commits_nothing_more(sc, tmp_path):
    files = FileSink(str(tmp_path / "files"), "once")
    db = tmp_path / "out.db"
    table = SQLiteSink(str(db), "rows", "once", ["k", "v"])
    rdd = sc.parallelize([(i, i * i) for i in range(12)], 3).mapPartitionsWithIndex(
        fails_first_attempt_mid_partition
    )
    written = []
    for _ in range(2):  # the same batch twice: a re-run after a restart
        for sink in (files, table):
            written.append(rdd.mapPartitionsWithIndex(partition_writer(sink, 5000)).sum())
    assert written == [3, 3, 0, 0], "the re-run committed partitions again"
    committed = files.committed()[5000]
    assert sorted(committed) == [0, 1, 2]
    lines = [line for part in committed.values() for line in part]
    assert sorted(lines) == sorted(str((i, i * i)) for i in range(12))
    assert not list((tmp_path / "files").rglob(".part-*")), "a failed attempt left its file"
    assert sqlite_rows(db, "SELECT k, v FROM rows ORDER BY k") == [(i, i * i) for i in range(12)]
    assert sqlite_rows(db, "SELECT COUNT(*) FROM dstreams_commits") == [(3,)]


def test_streams_written_for_hundreds_of_batches_equal_the_model(sc, tmp_path):
    """200 batches at 50 ms: appended counts per batch, and an upserted running total."""
    ssc = StreamingContext(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    batches = [[f"w{(b * 7 + i) % 13}" for i in range(b % 9)] for b in range(200)]
    source = TestSource(ssc, batches, numSlices=2)
    pairs = source.stream.map(lambda w: (w, 1))
    counts = pairs.reduceByKey(lambda a, b: a + b)
    totals = pairs.updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    files = FileSink(str(tmp_path / "files"), "counts")
    db = tmp_path / "out.db"
    counts.writeToSink(files)
    totals.writeToSink(SQLiteSink(str(db), "totals", "totals", ["w", "n"], "upsert", ["w"]))
    seen: list[tuple[int, int]] = []
    counts.foreachBatch(lambda rdd, batch_id: seen.append((batch_id, rdd.count())))
    times = run_batches(ssc, 200)
    ssc.awaitTerminationOrTimeout(0)
    ssc.stop(stopSparkContext=False)

    committed = files.committed()
    running: Counter[str] = Counter()
    for b, t in enumerate(times):
        expected = Counter(batches[b])
        running.update(batches[b])
        got = Counter()
        for line in (x for part in committed.get(t, {}).values() for x in part):
            word, n = eval(line)
            got[word] += n
        assert got == expected, f"batch {b}"
        assert seen[b] == (t, len(expected)), f"foreachBatch of batch {b}"
    assert len(seen) == 200
    assert dict(sqlite_rows(db, "SELECT w, n FROM totals")) == dict(running)


def test_foreach_batch_runs_once_per_batch_id_and_sweeps_old_markers(sc, tmp_path):
    ssc = StreamingContext(sc, 0.01)
    ssc.checkpoint(str(tmp_path / "ck"))
    commits = BatchCommits(ssc.queueStream([]), "once")
    ran: list[int] = []
    for batch_id in range(0, 3000, 10):  # 300 batches of 10 ms
        commits.run_once(batch_id, ran.append)
    for batch_id in (2990, 2500):  # re-runs after a restart: skipped
        commits.run_once(batch_id, ran.append)
    assert ran == list(range(0, 3000, 10))
    markers = sorted(int(p.name) for p in (tmp_path / "ck" / "commits" / "once").iterdir())
    assert markers[-1] == 2990 and 2500 in markers
    assert markers[0] >= 2990 - 10 * (BatchCommits.KEEP_BATCHES + BatchCommits.SWEEP_EVERY)
    ssc.stop(stopSparkContext=False)


def test_save_as_text_files_writes_each_batch_once_and_completely(sc, tmp_path):
    ssc = StreamingContext(sc, 0.1)
    prefix = str(tmp_path / "out" / "batch")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".batch-100.tmp-dead").mkdir()  # a crashed attempt's leftovers
    ssc.queueStream([[1, 2], [3]]).saveAsTextFiles(prefix)
    run_batches(ssc, 2)
    save_atomically(sc.parallelize([9]), prefix + "-100")  # a re-run: the batch is kept
    ssc.stop(stopSparkContext=False)
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == ["batch-100", "batch-200"]
    assert sorted(sc.textFile(prefix + "-100").collect()) == ["1", "2"]


def test_bad_sinks_and_records_name_the_bad_value(sc, tmp_path):
    with pytest.raises(ValueError, match="'a/b'"):
        FileSink(str(tmp_path), "a/b")
    with pytest.raises(ValueError, match="'rows; DROP TABLE x'"):
        SQLiteSink(str(tmp_path / "x.db"), "rows; DROP TABLE x", "s", ["k"])
    with pytest.raises(ValueError, match="key columns \\['id'\\]"):
        SQLiteSink(str(tmp_path / "x.db"), "rows", "s", ["k"], "upsert", ["id"])
    ssc = StreamingContext(sc, 0.1)
    with pytest.raises(TypeError, match="writeToSink needs a sink"):
        ssc.queueStream([[1]]).writeToSink(object())
    sink = SQLiteSink(str(tmp_path / "x.db"), "rows", "arity", ["k", "v"])
    ssc.queueStream([[(1, 2, 3)]]).writeToSink(sink)
    run_batches(ssc, 1)
    with pytest.raises(Exception, match=r"a record has 3 fields, the table rows has 2 columns"):
        ssc.awaitTerminationOrTimeout(0)
    ssc.stop(stopSparkContext=False)


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_two_live_attempts_of_a_partition_commit_once(tmp_path, kind):
    """The first attempt's worker is stopped; its copy commits; it resumes and is refused
    (or is killed as it resumes, before its commit): either way, one commit.

    Last in the module: it stops the module's Context to run one with speculation.
    """
    conf = Conf(loadDefaults=False).set("dstreams.speculation", "true")
    if Context._active is not None:
        Context._active.stop()
    sc = Context("local[2]", "zombie", conf=conf)
    try:
        if kind == "file":
            sink: Any = FileSink(str(tmp_path / "out"), "zombie")
        else:
            sink = SQLiteSink(str(tmp_path / "out.db"), "rows", "zombie", ["k"])
        writing, go, tried = tmp_path / "writing", tmp_path / "go", tmp_path / "tried"

        class Slow:
            """Wraps a sink: the first attempt stops between write and commit until ``go``."""

            def __init__(self, inner: Any) -> None:
                self.inner, self.name = inner, inner.name

            def open(self, p: int, t: int) -> bool:
                return self.inner.open(p, t)

            def write(self, records: Any) -> None:
                self.inner.write(records)
                tc = TaskContext.get()
                if tc is not None and tc.attemptNumber() == 0:
                    writing.write_text(str(os.getpid()))
                    deadline = time.monotonic() + 60
                    while not go.exists() and time.monotonic() < deadline:
                        try:
                            time.sleep(0.01)
                        except BaseException:
                            pass

            def commit(self) -> None:
                try:
                    self.inner.commit()
                finally:
                    tc = TaskContext.get()
                    if tc is not None and tc.attemptNumber() == 0:
                        tried.write_text("")  # the zombie's commit returned (or raised)

            def abort(self, e: Any) -> None:
                try:
                    self.inner.abort(e)
                finally:
                    tc = TaskContext.get()
                    if tc is not None and tc.attemptNumber() == 0:
                        # the copy's win killed the zombie as it resumed, before its commit:
                        # the other way it can end
                        tried.write_text("")

        result: list[Any] = []
        job = threading.Thread(
            target=lambda: result.append(
                sc.parallelize([(1,), (2,)], 1)
                .mapPartitionsWithIndex(partition_writer(Slow(sink), 7000))
                .count()
            )
        )
        job.start()
        deadline = time.monotonic() + 30
        while not writing.exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        pid = int(writing.read_text())
        os.kill(pid, signal.SIGSTOP)
        job.join(60)  # unresponsive: its task is copied, and the copy commits
        assert result == [1]
        go.write_text("")
        os.kill(pid, signal.SIGCONT)  # the zombie resumes and tries to commit too
        deadline = time.monotonic() + 30
        while not tried.exists():
            assert time.monotonic() < deadline, "the resumed attempt never ended"
            time.sleep(0.01)
        if kind == "file":
            parts = sink.committed()[7000]
            assert list(parts) == [0] and parts[0] == ["(1,)", "(2,)"]
            assert not [p for p in (tmp_path / "out").rglob(".part*")], "a temporary file"
        else:
            db = tmp_path / "out.db"
            assert sqlite_rows(db, "SELECT k FROM rows ORDER BY k") == [(1,), (2,)]
            assert sqlite_rows(db, "SELECT COUNT(*) FROM dstreams_commits") == [(1,)]
    finally:
        sc.stop()
