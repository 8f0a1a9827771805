"""The exactly-once PostgreSQL sink against a real PostgreSQL server.

* a partition's rows and its marker land together, and a re-run of the batch skips them;
* a task that fails mid-partition leaves nothing, and its retry commits the partition once;
* two live attempts of one partition: the second waits for the first, then rolls back;
* upsert keeps a key's last row within a partition and replaces older rows;
* a stream written for hundreds of batches equals a plain-Python model;
* bad arguments and records name the bad value.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dstreams import TaskContext
from dstreams.connectors.postgres import PostgresSink
from dstreams.streaming.sinks import partition_writer
from dstreams.testing import TestSource, manual_context, run_batches


def rows(url: str, sql: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def fails_first_attempt(split: int, it: Iterator[Any]) -> Iterator[Any]:
    tc = TaskContext.get()
    for i, record in enumerate(it):
        if tc is not None and tc.attemptNumber() == 0 and split == 1 and i == 2:
            raise RuntimeError("the first attempt fails mid-partition")
        yield record


def test_rows_and_marker_land_once_and_a_rerun_skips_them(sc, pg):
    sink = PostgresSink(pg, "events", "ev", {"k": "bigint", "v": "text"})
    rdd = sc.parallelize([(i, f"v{i}") for i in range(30)], 3).mapPartitionsWithIndex(
        fails_first_attempt
    )
    first = rdd.mapPartitionsWithIndex(partition_writer(sink, 1000)).sum()
    again = rdd.mapPartitionsWithIndex(partition_writer(sink, 1000)).sum()
    assert (first, again) == (3, 0)
    assert rows(pg, "SELECT k, v FROM events ORDER BY k") == [(i, f"v{i}") for i in range(30)]
    assert rows(pg, "SELECT sink, batch_time, part FROM dstreams_commits ORDER BY part") == [
        ("ev", 1000, 0),
        ("ev", 1000, 1),
        ("ev", 1000, 2),
    ]


def test_two_live_attempts_of_a_partition_commit_once(pg):
    a = PostgresSink(pg, "t", "twice", {"k": "int"})
    b = PostgresSink(pg, "t", "twice", {"k": "int"})
    assert a.open(0, 5) and b.open(0, 5)  # neither sees a marker yet
    a.write(iter([(1,), (2,)]))
    b.write(iter([(1,), (2,)]))
    b.commit()
    a.commit()  # finds b's marker: rolls back
    assert rows(pg, "SELECT k FROM t ORDER BY k") == [(1,), (2,)]
    assert rows(pg, "SELECT COUNT(*) FROM dstreams_commits") == [(1,)]
    assert PostgresSink(pg, "t", "twice", ["k"]).open(0, 5) is False, "committed: skipped"


def test_an_attempt_waits_for_one_mid_commit_and_lands_only_if_that_one_failed(pg):
    for outcome, expected in (("commit", [(7,)]), ("rollback", [(1,)])):
        table = f"t_{outcome}"
        other = psycopg.connect(pg)  # an attempt inside its commit: marker in, not committed
        other.execute(f"CREATE TABLE {table} (k int)")
        other.commit()
        sink = PostgresSink(pg, table, outcome, ["k"])
        assert sink.open(0, 5)
        sink.write(iter([(1,)]))
        other.execute(f"INSERT INTO {table} VALUES (7)")
        other.execute(
            "INSERT INTO dstreams_commits (sink, batch_time, part) VALUES (%s, 5, 0)", (outcome,)
        )
        done = threading.Event()
        t = threading.Thread(target=lambda: (sink.commit(), done.set()))
        t.start()
        assert not done.wait(0.5), "the attempt did not wait for the one mid-commit"
        getattr(other, outcome)()
        t.join(10)
        other.close()
        assert done.is_set()
        assert rows(pg, f"SELECT k FROM {table}") == expected, outcome
        assert rows(pg, f"SELECT COUNT(*) FROM dstreams_commits WHERE sink = '{outcome}'") == [(1,)]


def test_upsert_keeps_the_last_row_of_a_key(sc, pg):
    sink = PostgresSink(pg, "totals", "tot", {"w": "text", "n": "int"}, "upsert", ["w"])
    batch1 = [("a", 1), ("b", 1), ("a", 2)]  # "a" twice in one partition: the last wins
    sc.parallelize(batch1, 1).mapPartitionsWithIndex(partition_writer(sink, 1)).sum()
    sc.parallelize([("b", 7), ("c", 1)], 2).mapPartitionsWithIndex(partition_writer(sink, 2)).sum()
    assert rows(pg, "SELECT w, n FROM totals ORDER BY w") == [("a", 2), ("b", 7), ("c", 1)]


def test_a_stream_written_for_hundreds_of_batches_equals_the_model(sc, pg, tmp_path):
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ck"))
    batches = [[f"w{(b * 7 + i) % 13}" for i in range(b % 9)] for b in range(200)]
    pairs = TestSource(ssc, batches, numSlices=2).stream.map(lambda w: (w, 1))
    counts = pairs.reduceByKey(lambda a, b: a + b).transform(
        lambda t, rdd: rdd.map(lambda kv: (int(t.timestamp() * 1000), kv[0], kv[1]))
    )
    counts.writeToSink(
        PostgresSink(pg, "counts", "counts", {"t": "bigint", "w": "text", "n": "int"})
    )
    totals = pairs.updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    totals.writeToSink(
        PostgresSink(pg, "totals", "totals", {"w": "text", "n": "int"}, "upsert", ["w"])
    )
    try:
        times = run_batches(ssc, 200)
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    got: dict[int, Counter[str]] = {}
    for t, w, n in rows(pg, "SELECT t, w, n FROM counts"):
        got.setdefault(t, Counter())[w] += n
    running: Counter[str] = Counter()
    for b, t in enumerate(times):
        running.update(batches[b])
        assert got.get(t, Counter()) == Counter(batches[b]), f"batch {b}"
    assert dict(rows(pg, "SELECT w, n FROM totals")) == dict(running)


def test_bad_arguments_and_records_name_the_bad_value(sc, pg):
    with pytest.raises(ValueError, match="table 'bad name' is not a plain SQL identifier"):
        PostgresSink(pg, "bad name", "s", ["a"])
    with pytest.raises(ValueError, match="mode='upsert' needs key"):
        PostgresSink(pg, "t", "s", ["a"], mode="upsert")
    with pytest.raises(ValueError, match="column 'a' needs an SQL type"):
        PostgresSink(pg, "t", "s", {"a": ""})
    with pytest.raises(ValueError, match="sink's name must be a non-empty string"):
        PostgresSink(pg, "t", "", ["a"])
    sink = PostgresSink(pg, "two", "s", {"a": "int", "b": "int"})
    with pytest.raises(Exception, match="a record has 1 fields, the table two has 2 columns"):
        sc.parallelize([(1, 2), (3,)], 1).mapPartitionsWithIndex(partition_writer(sink, 9)).sum()
    assert rows(pg, "SELECT COUNT(*) FROM two") == [(0,)]
    assert rows(pg, "SELECT COUNT(*) FROM dstreams_commits") == [(0,)]
