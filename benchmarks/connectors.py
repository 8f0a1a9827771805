"""What each connector sustains at 1 s batches on ``local[2]``, beside a one-core client loop.

    PYTHONPATH=src python3 benchmarks/connectors.py [--batches 4] [--only redis kafka postgres]

Throwaway servers (``tools/servers.py``) on loopback: redis-server, Tansu (in memory) and
PostgreSQL. For each connector, a ladder of rates R (records per 1 s batch). Each step reads R
records per batch from the broker through the direct source's tasks, with
``maxRecordsPerBatch=R`` over a backlog filled beforehand, for ``--batches`` timed batches
after one warm-up batch. Nothing is pre-cached on the workers. A rate is *sustained* when the
median processing time stays under 0.9 s of the 1 s interval. The ladder stops at the first
rate that is not sustained.

* ``redis``: ``createDirectStream(...).count()``.
* ``kafka``: ``KafkaUtils.createDirectStream(...).count()`` over 2 partitions.
* ``postgres``: Redis in, ``PostgresSink`` (append, ``COPY``) out: every record becomes a row.

The anchor of each is a one-core client loop over the same data: ``XRANGE`` pages for Redis,
``Consumer.consume`` for Kafka, ``XRANGE`` pages into one ``COPY`` for PostgreSQL. It is the
client libraries' own limit on one core. Beside it, in the same run, one core's
``collections.Counter`` over the same records' fields, held in memory: the per-record limit of
Python itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "src"))

import servers  # noqa: E402

from dstreams import Context  # noqa: E402
from dstreams.streaming import StreamingContext, StreamingListener  # noqa: E402


def fill_stream(r: Any, key: str, n: int) -> None:
    """``n`` entries of ``ROW`` added to the Redis stream ``key``, 10,000 per pipeline."""
    for start in range(0, n, 10_000):
        pipe = r.pipeline(transaction=False)
        for _ in range(min(10_000, n - start)):
            pipe.xadd(key, ROW)
        pipe.execute()


def counter_rate(n: int = 500_000) -> float:
    """Records per second of one core's ``Counter`` over ``n`` in-memory copies of ``ROW``."""
    from collections import Counter

    rows = [dict(ROW) for _ in range(n)]
    t = time.perf_counter()
    Counter(row["merchant"] for row in rows)
    return n / (time.perf_counter() - t)


LADDER = [25_000, 50_000, 100_000, 150_000, 200_000, 300_000, 400_000, 600_000, 800_000]
ROW = {"user": "u17", "merchant": "shoes", "amount": "123"}


class Timings(StreamingListener):
    def __init__(self) -> None:
        self.done: list[tuple[int, float]] = []

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        self.done.append((info.numRecords(), (info.processingDelay() or 0) / 1000.0))


def run_level(sc: Context, build: Any, rate: int, batches: int) -> tuple[float, int]:
    """Median processing seconds of ``batches`` full batches of ``rate`` records (+1 warm-up)."""
    ssc = StreamingContext(sc, 1.0)
    timings = Timings()
    ssc.addStreamingListener(timings)
    build(ssc, rate)
    ssc.start()
    deadline = time.monotonic() + 30 + batches * 5
    while len([d for d in timings.done if d[0] > 0]) < batches + 1:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    ssc.stop(stopSparkContext=False, stopGraceFully=False)
    full = [t for n, t in timings.done if n > 0][1 : batches + 1]
    records = [n for n, _ in timings.done if n > 0][1 : batches + 1]
    if not full:
        return float("inf"), 0  # not one full batch completed in time: far from sustained
    if any(n != rate for n in records):
        raise AssertionError(f"rate {rate}: batches held {records}, not {rate} each")
    return statistics.median(full), len(full)


def ladder(name: str, sc: Context, fill: Any, build: Any, batches: int) -> int:
    best = 0
    for rate in LADDER:
        fill(rate, rate * (batches + 2))
        median, n = run_level(sc, build, rate, batches)
        ok = median < 0.9
        print(f"  {name} {rate:>8,} rec/batch: median processing {median * 1000:7.0f} ms "
              f"over {n} batches {'sustained' if ok else 'NOT sustained'}", flush=True)
        if not ok:
            break
        best = rate
    return best


# -- Redis ----------------------------------------------------------------------------------------
def redis_bench(sc: Context, work: str, batches: int) -> None:
    import redis

    from dstreams.connectors.redis import createDirectStream

    srv = servers.start_redis(os.path.join(work, "redis"))
    try:
        r = redis.Redis.from_url(srv.url)

        def fill(rate: int, n: int) -> None:
            fill_stream(r, f"bench-{rate}", n)

        def build(ssc: StreamingContext, rate: int) -> None:
            createDirectStream(
                ssc, srv.url, f"bench-{rate}", startFrom="0", maxRecordsPerBatch=rate,
                splitRecords=max(1, rate // 2), commitOffsets=False,
            ).count().foreachRDD(lambda rdd: rdd.collect())

        best = ladder("redis", sc, fill, build, batches)
        # the anchor: one core, XRANGE pages of 10,000, the same entries
        key = f"bench-{LADDER[0]}"
        t, n, cursor = time.perf_counter(), 0, "-"
        while True:
            page = r.xrange(key, cursor, "+", count=10_000)
            if not page:
                break
            n += len(page)
            cursor = "(" + page[-1][0].decode()
        anchor = n / (time.perf_counter() - t)
        print(f"redis: sustains {best:,} records/s at 1 s batches; one-core XRANGE loop "
              f"{anchor:,.0f} records/s ({best / anchor:.2f}x)", flush=True)
    finally:
        srv.stop()


# -- Kafka ----------------------------------------------------------------------------------------
def kafka_bench(sc: Context, work: str, batches: int) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from dstreams.connectors.kafka import KafkaUtils

    srv = servers.start_tansu(os.path.join(work, "tansu"))
    try:
        admin = AdminClient({"bootstrap.servers": srv.url})
        producer = Producer({"bootstrap.servers": srv.url, "linger.ms": 20})
        value = b"u17,shoes,123"

        def fill(rate: int, n: int) -> None:
            topic = f"bench-{rate}"
            for f in admin.create_topics([NewTopic(topic, 2, 1)]).values():
                f.result(10)
            for i in range(n):
                producer.produce(topic, value=value, partition=i % 2)
                if i % 10_000 == 0:
                    producer.poll(0)
            producer.flush(60)

        def build(ssc: StreamingContext, rate: int) -> None:
            KafkaUtils.createDirectStream(
                ssc, [f"bench-{rate}"],
                {"bootstrap.servers": srv.url, "auto.offset.reset": "smallest"},
                maxRecordsPerBatch=rate,
            ).count().foreachRDD(lambda rdd: rdd.collect())

        best = ladder("kafka", sc, fill, build, batches)
        c = Consumer({"bootstrap.servers": srv.url, "group.id": "anchor",
                      "enable.partition.eof": True, "fetch.wait.max.ms": 10})
        topic = f"bench-{LADDER[0]}"
        c.assign([TopicPartition(topic, p, 0) for p in range(2)])
        t, n, eof = time.perf_counter(), 0, 0
        while eof < 2:
            for m in c.consume(10_000, timeout=1):
                if m.error() is None:
                    n += 1
                else:
                    eof += 1
        anchor = n / (time.perf_counter() - t)
        c.close()
        print(f"kafka (Tansu): sustains {best:,} records/s at 1 s batches; one-core consume "
              f"loop {anchor:,.0f} records/s ({best / anchor:.2f}x)", flush=True)
    finally:
        srv.stop()


# -- PostgreSQL -----------------------------------------------------------------------------------
def postgres_bench(sc: Context, work: str, batches: int) -> None:
    import psycopg
    import redis

    from dstreams.connectors.postgres import PostgresSink
    from dstreams.connectors.redis import createDirectStream

    rs = servers.start_redis(os.path.join(work, "redis-pg"))
    ps = servers.start_postgres(os.path.join(work, "postgres"))
    try:
        r = redis.Redis.from_url(rs.url)

        def fill(rate: int, n: int) -> None:
            fill_stream(r, f"pg-{rate}", n)

        cols = {"id": "text", "user_id": "text", "merchant": "text", "amount": "int"}

        def build(ssc: StreamingContext, rate: int) -> None:
            createDirectStream(
                ssc, rs.url, f"pg-{rate}", startFrom="0", maxRecordsPerBatch=rate,
                splitRecords=max(1, rate // 2), commitOffsets=False,
            ).map(
                lambda e: (e[1], e[2]["user"], e[2]["merchant"], int(e[2]["amount"]))
            ).writeToSink(PostgresSink(ps.url, f"rows_{rate}", f"rows-{rate}", cols))

        best = ladder("postgres", sc, fill, build, batches)
        # the anchor: one core, the same path by hand: XRANGE pages of the same entries,
        # turned into rows and written with one COPY
        key = f"pg-{LADDER[0]}"
        with psycopg.connect(ps.url) as conn:
            conn.execute("CREATE TABLE anchor (id text, user_id text, merchant text, amount int)")
            t, n, cursor = time.perf_counter(), 0, "-"
            with conn.cursor() as cur, cur.copy("COPY anchor FROM STDIN") as copy:
                while True:
                    page = r.xrange(key, cursor, "+", count=10_000)
                    if not page:
                        break
                    for eid, f in page:
                        copy.write_row(
                            (eid.decode(), f[b"user"].decode(), f[b"merchant"].decode(),
                             int(f[b"amount"]))
                        )
                    n += len(page)
                    cursor = "(" + page[-1][0].decode()
            conn.commit()
            anchor = n / (time.perf_counter() - t)
        print(f"postgres (Redis in, PostgresSink out): sustains {best:,} rows/s at 1 s batches; "
              f"one-core XRANGE + COPY loop {anchor:,.0f} rows/s ({best / anchor:.2f}x)",
              flush=True)
    finally:
        rs.stop()
        ps.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--only", nargs="*", default=["redis", "kafka", "postgres"])
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"one-core Counter over the same records: {counter_rate():,.0f} records/s", flush=True)
    work = tempfile.mkdtemp(prefix="dstreams-bench-conn-")
    with Context("local[2]", "bench-connectors") as sc:
        for name in a.only:
            {"redis": redis_bench, "kafka": kafka_bench, "postgres": postgres_bench}[name](
                sc, work, a.batches
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
