"""The Kafka direct source (PySpark 2.x's ``KafkaUtils``) against a real Tansu broker.

* hundreds of 50 ms batches: each batch holds exactly the messages produced before it, in
  partition order, and its ``offsetRanges()`` tile the partitions without a gap or overlap;
* ``fromOffsets`` and ``messageHandler``, ``maxRecordsPerBatch``, ``createRDD``;
* with ``group.id``, each batch's ends are committed for the group after its output;
* a range the broker cannot serve in full fails the batch, naming topic, partition, offsets.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from typing import Any

import pytest

from dstreams.connectors.kafka import KafkaUtils, OffsetRange, TopicAndPartition
from dstreams.errors import OffsetRangeUnavailableError
from dstreams.testing import CollectingSink, manual_context, run_batches

pytest.importorskip("confluent_kafka")


@pytest.fixture
def topic(tansu_server: Any) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"t{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": tansu_server.url})
    for f in admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)]).values():
        f.result(10)
    return name


@pytest.fixture
def produce(tansu_server: Any) -> Any:
    from confluent_kafka import Producer

    # one record per record batch: Tansu 0.6's ListOffsets answers a multi-record batch's
    # base offset + 1 as the latest offset (its fetches report the true high watermark), which
    # would hold a batch's tail back to a later batch (docs/connectors.md)
    p = Producer({"bootstrap.servers": tansu_server.url, "linger.ms": 0, "batch.num.messages": 1})

    def send(topic: str, messages: list[tuple[int, str, str]]) -> None:
        for part, key, value in messages:
            p.produce(topic, key=key.encode(), value=value.encode(), partition=part)
        assert p.flush(10) == 0

    return send


def test_every_batch_holds_exactly_the_messages_produced_before_it(
    sc, topic, produce, tansu_server
):
    rng = random.Random(5)
    ssc = manual_context(sc, 0.05)
    params = {"bootstrap.servers": tansu_server.url, "auto.offset.reset": "smallest"}
    stream = KafkaUtils.createDirectStream(ssc, [topic], params)
    ranges: list[list[OffsetRange]] = []
    stream.foreachRDD(lambda rdd: ranges.append(rdd.offsetRanges()))
    sink = CollectingSink(stream)
    try:
        for b in range(200):
            msgs = [
                (rng.randrange(3), f"k{b}", f"v{b}-{i}") for i in range(rng.choice([0, 1, 5, 30]))
            ]
            produce(topic, msgs)
            run_batches(ssc, 1)
            got = sink.results[-1]
            by_part = defaultdict(list)
            for part, k, v in msgs:
                by_part[part].append((k, v))
            assert sorted(got) == sorted((k, v) for _, k, v in msgs), f"batch {b}"
            # a batch's partitions come in order, each in its produced order
            assert got == [kv for part in sorted(by_part) for kv in by_part[part]], f"batch {b}"
    finally:
        ssc.stop(stopSparkContext=False)
    # the ranges tile each partition: every batch starts where the previous one ended
    for b in range(1, len(ranges)):
        assert [r.fromOffset for r in ranges[b]] == [r.untilOffset for r in ranges[b - 1]]
    assert [r.partition for r in ranges[0]] == [0, 1, 2]
    assert sum(r.count() for rs in ranges for r in rs) == sum(len(b) for b in sink.results)


def test_from_offsets_message_handler_and_a_limit(sc, topic, produce, tansu_server):
    produce(
        topic, [(0, "a", f"x{i}") for i in range(100)] + [(1, "b", f"y{i}") for i in range(300)]
    )
    ssc = manual_context(sc, 0.05)
    stream = KafkaUtils.createDirectStream(
        ssc,
        [topic],
        {"metadata.broker.list": tansu_server.url},
        fromOffsets={
            TopicAndPartition(topic, 0): 40,
            TopicAndPartition(topic, 1): 0,
            TopicAndPartition(topic, 2): 0,
        },
        messageHandler=lambda m: (m.partition, m.offset, m.message),
        maxRecordsPerBatch=120,
    )
    sink = CollectingSink(stream)
    try:
        run_batches(ssc, 4)
    finally:
        ssc.stop(stopSparkContext=False)
    # 360 messages after the starting offsets, 120 a batch shared 60:300 by backlog
    assert [len(b) for b in sink.results] == [120, 120, 120, 0]
    first = sink.results[0]
    assert sum(1 for m in first if m[0] == 0) == 20 and first[0] == (0, 40, "x40")
    got = [m for b in sink.results for m in b]
    assert sorted(m for m in got if m[0] == 0) == [(0, i, f"x{i}") for i in range(40, 100)]
    assert sorted(m for m in got if m[0] == 1) == [(1, i, f"y{i}") for i in range(300)]


def test_a_group_gets_each_batchs_ends_committed(sc, topic, produce, tansu_server):
    from confluent_kafka import Consumer, TopicPartition

    produce(topic, [(p, "k", f"v{i}") for i in range(10) for p in range(3)])
    group = f"g{uuid.uuid4().hex[:6]}"
    params = {
        "bootstrap.servers": tansu_server.url,
        "auto.offset.reset": "earliest",
        "group.id": group,
    }
    ssc = manual_context(sc, 0.05)
    KafkaUtils.createDirectStream(ssc, [topic], params).foreachRDD(lambda rdd: rdd.count())
    try:
        run_batches(ssc, 1)
    finally:
        ssc.stop(stopSparkContext=False)
    c = Consumer({"bootstrap.servers": tansu_server.url, "group.id": group})
    committed = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    c.close()
    assert [tp.offset for tp in committed] == [10, 10, 10]


def test_create_rdd_reads_fixed_ranges(sc, topic, produce, tansu_server):
    produce(topic, [(2, "k", f"v{i}") for i in range(50)])
    rdd = KafkaUtils.createRDD(
        sc, {"bootstrap.servers": tansu_server.url}, [OffsetRange(topic, 2, 10, 15)]
    )
    assert rdd.collect() == [("k", f"v{i}") for i in range(10, 15)]
    assert rdd.offsetRanges() == [OffsetRange(topic, 2, 10, 15)]


def test_a_range_the_broker_cannot_serve_fails_loudly(sc, topic, produce, tansu_server):
    produce(topic, [(0, "k", f"v{i}") for i in range(20)])
    rdd = KafkaUtils.createRDD(
        sc, {"bootstrap.servers": tansu_server.url}, [OffsetRange(topic, 0, 15, 40)]
    )
    with pytest.raises(Exception) as info:
        rdd.collect()
    text = str(info.value)
    assert isinstance(info.value, OffsetRangeUnavailableError) or "OffsetRangeUnavailable" in text
    assert f"topic {topic!r} partition 0 offsets [15, 40)" in text
    assert "the partition ends at offset 20" in text


def test_bad_arguments_name_the_bad_value(sc, tansu_server):
    ssc = manual_context(sc, 0.05)
    try:
        with pytest.raises(ValueError, match="kafkaParams needs 'bootstrap.servers'"):
            KafkaUtils.createDirectStream(ssc, ["t"], {})
        with pytest.raises(ValueError, match="auto.offset.reset='middle'"):
            KafkaUtils.createDirectStream(
                ssc, ["t"], {"bootstrap.servers": tansu_server.url, "auto.offset.reset": "middle"}
            )
        with pytest.raises(ValueError, match="topics='t' must be a list"):
            KafkaUtils.createDirectStream(ssc, "t", {"bootstrap.servers": tansu_server.url})
    finally:
        ssc.stop(stopSparkContext=False)
