"""The Redis Streams direct source against a real redis-server.

* hundreds of 50 ms batches on a manual clock: every batch holds exactly the entries added
  before it, per stream and in order, and its input info counts them;
* ``maxRecordsPerBatch`` shares the limit by backlog, reports the lag, and drains every entry
  once; ``splitRecords`` cuts ranges into tasks;
* a range trimmed away before its batch reads it fails the batch, naming stream and range;
* the ends are committed after the output, and ``startFrom="committed"`` resumes there;
* bad arguments name the bad value.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest

from dstreams.connectors.direct import allot, cut
from dstreams.connectors.redis import StreamRange, createDirectStream
from dstreams.errors import OffsetRangeUnavailableError
from dstreams.streaming import StreamingListener
from dstreams.testing import CollectingSink, manual_context, run_batches


class Infos(StreamingListener):
    def __init__(self) -> None:
        self.batches: list[Any] = []

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        self.batches.append(batchCompleted.batchInfo())


def _add(rds: Any, stream: str, n: int, tag: str) -> list[tuple[str, str, dict[str, str]]]:
    pipe = rds.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, {"v": f"{tag}-{i}"})
    ids = pipe.execute()
    return [(stream, eid, {"v": f"{tag}-{i}"}) for i, eid in enumerate(ids)]


def test_every_batch_holds_exactly_the_entries_added_before_it(sc, rds, redis_server, tmp_path):
    rng = random.Random(101)
    ssc = manual_context(sc, 0.05)
    stream = createDirectStream(ssc, redis_server.url, ["a", "b"], startFrom="0")
    sink = CollectingSink(stream)
    infos = Infos()
    ssc.addStreamingListener(infos)
    try:
        for b in range(300):
            added = []
            for name in ("a", "b"):
                added += _add(rds, name, rng.choice([0, 0, 1, 3, 17, 60]), f"{name}{b}")
            run_batches(ssc, 1)
            got = sink.results[-1]
            assert got == added, f"batch {b}: {len(got)} records, {len(added)} added"
            info = infos.batches[-1].streamIdToInputInfo()[stream.id]
            assert info.numRecords() == len(added)
            assert info.metadata()["lag"] == 0
        offsets = rds.hgetall("dstreams:offsets:connector-tests")
        assert offsets == {s: rds.xrevrange(s, count=1)[0][0] for s in ("a", "b")}
    finally:
        ssc.stop(stopSparkContext=False)


def test_a_limit_is_shared_by_backlog_and_every_entry_arrives_once(sc, rds, redis_server):
    ssc = manual_context(sc, 0.05)
    added = _add(rds, "small", 1000, "s") + _add(rds, "big", 3000, "g")
    stream = createDirectStream(
        ssc,
        redis_server.url,
        ["small", "big"],
        startFrom="0",
        maxRecordsPerBatch=400,
        splitRecords=120,
    )
    parts: list[int] = []
    ranges: list[list[StreamRange]] = []

    def note(rdd: Any) -> None:
        parts.append(rdd.getNumPartitions())
        ranges.append(rdd.offsetRanges())

    stream.foreachRDD(note)
    sink = CollectingSink(stream)
    infos = Infos()
    ssc.addStreamingListener(infos)
    try:
        run_batches(ssc, 11)
    finally:
        ssc.stop(stopSparkContext=False)
    # the first batch: 400 records shared 1:3 by backlog; the lag is what is left
    first = sink.results[0]
    assert sum(1 for r in first if r[0] == "small") == 100
    assert sum(1 for r in first if r[0] == "big") == 300
    meta = infos.batches[0].streamIdToInputInfo()[stream.id].metadata()
    assert meta["lag"] == 3600
    assert [o["count"] for o in meta["offsets"]] == [100, 300]
    # 120-record tasks: 100 -> 1, 300 -> 3
    assert parts[0] == 4
    assert [(r.stream, r.count) for r in ranges[0]] == [("small", 100), ("big", 300)]
    assert ranges[1][0].fromId == ranges[0][0].untilId, "the next range starts at the end"
    # drained in 10 batches of 400, then nothing: each entry once, each stream in order
    assert [len(b) for b in sink.results] == [400] * 10 + [0]
    got = [r for b in sink.results for r in b]
    by_stream: dict[str, list[Any]] = defaultdict(list)
    for r in got:
        by_stream[r[0]].append(r)
    assert by_stream["small"] == added[:1000] and by_stream["big"] == added[1000:]


def test_a_trimmed_range_fails_its_batch_naming_the_stream_and_range(sc, rds, redis_server):
    ssc = manual_context(sc, 0.05)
    _add(rds, "t", 50, "x")
    stream = createDirectStream(ssc, redis_server.url, "t", startFrom="0")

    def trim_then_read(rdd: Any) -> None:
        rds.xtrim("t", maxlen=10, approximate=False)  # after the plan, before the read
        rdd.count()

    stream.foreachRDD(trim_then_read)
    try:
        run_batches(ssc, 1)
        with pytest.raises(Exception) as info:
            ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    text = str(info.value) + repr(info.value.__cause__)
    assert "OffsetRangeUnavailableError" in text or isinstance(
        info.value, OffsetRangeUnavailableError
    )
    assert "stream 't' range (0-0, " in text and "held 50 entries" in text and "10 are left" in text


def test_committed_offsets_let_a_new_run_resume_after_the_last_output(sc, rds, redis_server):
    first = _add(rds, "c", 30, "one")
    ssc = manual_context(sc, 0.05)
    sink = CollectingSink(createDirectStream(ssc, redis_server.url, "c", startFrom="0"))
    try:
        run_batches(ssc, 2)
    finally:
        ssc.stop(stopSparkContext=False)
    assert [r for b in sink.results for r in b] == first
    second = _add(rds, "c", 12, "two")
    ssc = manual_context(sc, 0.05)
    sink = CollectingSink(createDirectStream(ssc, redis_server.url, "c", startFrom="committed"))
    try:
        run_batches(ssc, 1)
    finally:
        ssc.stop(stopSparkContext=False)
    assert sink.results == [second]


def test_a_consumer_group_shows_the_progress(sc, rds, redis_server):
    _add(rds, "g", 20, "x")
    ssc = manual_context(sc, 0.05)
    stream = createDirectStream(ssc, redis_server.url, "g", startFrom="0", consumerGroup="dash")
    stream.foreachRDD(lambda rdd: rdd.count())
    try:
        run_batches(ssc, 1)
    finally:
        ssc.stop(stopSparkContext=False)
    (group,) = rds.xinfo_groups("g")
    assert group["name"] == "dash"
    assert group["last-delivered-id"] == rds.xrevrange("g", count=1)[0][0]
    assert group["lag"] == 0


def test_bad_arguments_name_the_bad_value(sc, redis_server):
    ssc = manual_context(sc, 0.05)
    try:
        with pytest.raises(ValueError, match="streams=\\[\\] must name"):
            createDirectStream(ssc, redis_server.url, [])
        with pytest.raises(ValueError, match="maxRecordsPerBatch=0 must be a positive"):
            createDirectStream(ssc, redis_server.url, "s", maxRecordsPerBatch=0)
        with pytest.raises(ValueError, match="startFrom names streams that are not read"):
            createDirectStream(ssc, redis_server.url, "s", startFrom={"other": "0"})
        bad = createDirectStream(ssc, redis_server.url, "s", startFrom="yesterday")
        bad.foreachRDD(lambda rdd: None)
        with pytest.raises(ValueError, match="startFrom 'yesterday' for stream 's' is not"):
            ssc.start()
    finally:
        ssc.stop(stopSparkContext=False)


def test_allot_shares_a_cap_by_backlog_in_whole_records() -> None:
    assert allot({"a": 10, "b": 30}, None) == {"a": None, "b": None}
    assert allot({"a": 10, "b": 0}, None) == {"a": None, "b": 0}
    assert allot({"a": 10, "b": 30}, 100) == {"a": 10, "b": 30}
    assert allot({"a": 10, "b": 30}, 4) == {"a": 1, "b": 3}
    assert allot({"a": 1, "b": 1, "c": 1}, 2) == {"a": 1, "b": 1, "c": 0}
    shares = allot({i: (i * 37) % 101 for i in range(20)}, 333)
    assert sum(shares.values()) == 333  # type: ignore[arg-type]


def test_cut_makes_tasks_of_at_most_split_records() -> None:
    tasks = cut("s", "0", "9", 250, ["3", "6"], 100)
    assert [(t.start, t.end, t.count) for t in tasks] == [
        ("0", "3", 100),
        ("3", "6", 100),
        ("6", "9", 50),
    ]
    assert cut("s", "0", "9", 0, [], 100) == []


def test_backpressure_limits_the_ranges(sc, rds, redis_server):
    added = _add(rds, "bp", 3000, "x")
    conf = sc._conf
    conf.set("dstreams.streaming.backpressure.enabled", "true")
    conf.set("dstreams.streaming.backpressure.initialRate", "100")
    try:
        ssc = manual_context(sc, 0.1)
    finally:
        conf.set("dstreams.streaming.backpressure.enabled", "false")
        conf.set("dstreams.streaming.backpressure.initialRate", "")
    stream = createDirectStream(ssc, redis_server.url, "bp", startFrom="0")
    sink = CollectingSink(stream)
    try:
        run_batches(ssc, 301)
    finally:
        ssc.stop(stopSparkContext=False)
    # 100 records/s at 0.1 s batches: 10 a batch. On the manual clock a batch takes no time,
    # so the PID estimator has nothing to go on and the rate stays (the estimator's own
    # behaviour is tested with the receivers, tests/streaming/test_backpressure.py)
    assert stream._rate == 100
    assert [len(b) for b in sink.results] == [10] * 300 + [0]
    assert [r for b in sink.results for r in b] == added, "every entry once, in order"


def test_planning_walks_each_range_once_and_counts_the_start_once(sc, rds, redis_server):
    _add(rds, "w", 5000, "x")
    ssc = manual_context(sc, 0.05)
    stream = createDirectStream(
        ssc, redis_server.url, "w", startFrom="0", maxRecordsPerBatch=1000, splitRecords=300
    )
    calls: list[tuple[str, int]] = []
    adapter = stream._adapter
    inner = adapter._run_span

    def counted(s: str, after: str, limit: int, split: int, before: int) -> Any:
        calls.append((after, limit))
        return inner(s, after, limit, split, before)

    adapter._run_span = counted  # type: ignore[method-assign]
    sink = CollectingSink(stream)
    try:
        run_batches(ssc, 5)
    finally:
        ssc.stop(stopSparkContext=False)
    assert [len(b) for b in sink.results] == [1000] * 5
    # "0" is resolved without a scan; then one walk of each batch's 1,000 IDs
    assert [limit for _, limit in calls] == [1000] * 5, calls


def test_a_real_clock_run_reads_each_batchs_range_exactly(sc, rds, redis_server):
    """100 batches of 50 ms on the real clock while a thread keeps adding entries: each
    batch holds exactly its planned ranges' entries, the ranges tile the streams, and every
    entry added is read once."""
    import threading
    import time

    from dstreams.streaming import StreamingContext
    from dstreams.testing import run_real_clock

    rng = random.Random(8)
    added: dict[str, list[Any]] = {"a": [], "b": []}
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            for name in ("a", "b"):
                added[name] += _add(rds, name, rng.randint(0, 20), "x")
            time.sleep(0.01)

    ssc = StreamingContext(sc, 0.05)
    stream = createDirectStream(ssc, redis_server.url, ["a", "b"], startFrom="0")
    ranges: list[list[StreamRange]] = []
    stream.foreachRDD(lambda rdd: ranges.append(rdd.offsetRanges()))
    sink = CollectingSink(stream)
    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        run_real_clock(ssc, sink, 100)
    finally:
        stop.set()
        feeder.join(10)
    got: dict[str, list[Any]] = {"a": [], "b": []}
    for b in range(100):
        records = sink.batches[b][1]
        for r in ranges[b]:
            # the model of the batch: the entries of its range, read back from Redis now
            expected = (
                [(r.stream, eid, f) for eid, f in rds.xrange(r.stream, f"({r.fromId}", r.untilId)]
                if r.count
                else []
            )
            assert [x for x in records if x[0] == r.stream] == expected, f"batch {b} {r}"
            assert len(expected) == r.count
            got[r.stream] += expected
        if b:
            assert [r.fromId for r in ranges[b]] == [r.untilId for r in ranges[b - 1]]
    for name in ("a", "b"):  # every entry read once, in order, up to the last batch's end
        assert got[name] == added[name][: len(got[name])]
    assert sum(len(v) for v in got.values()) > 500
