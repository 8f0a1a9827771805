"""Fraud-style scoring of a live payment stream against a risk model, written exactly once.

Usage:
    python examples/redis_to_postgres.py REDIS_URL POSTGRES_URL CHECKPOINT_DIR
    python examples/redis_to_postgres.py --selftest

Payments arrive in the Redis stream ``payments`` (fields ``user``, ``merchant``, ``amount``).
The risk model is the PostgreSQL table ``merchant_risk (merchant, risk)``. It is read once when
the program is set up, and each batch joins with it in ``transform``. Every payment is scored
(``amount * risk``; unknown merchants score as risk 1.0) and written to ``scored_payments``.
Each user's running spend and number of flagged payments (``mapWithState``: a batch touches
only the users who paid in it) are upserted into ``user_totals``. Both tables are written through ``PostgresSink``: each batch's rows go in
exactly once. That holds when the program is killed and started again with the same
directories (``StreamingContext.getOrCreate`` recovers it, and the batches re-read the same
Redis ranges).

The program stops gracefully when the file ``CHECKPOINT_DIR/../stop`` appears or on SIGTERM.
``--selftest`` starts throwaway Redis and PostgreSQL servers, runs it twice over a growing
stream with a restart in between, and prints what PostgreSQL holds.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

from dstreams import Conf, Context, StateSpec
from dstreams.connectors.postgres import PostgresSink
from dstreams.connectors.redis import createDirectStream
from dstreams.streaming import StreamingContext

BATCH_SECONDS = 0.2
FLAG_ABOVE = 500.0


def load_model(pg_url: str) -> list[tuple[str, float]]:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        return [(m, float(r)) for m, r in conn.execute("SELECT merchant, risk FROM merchant_risk")]


def score(kv: Any) -> tuple[str, str, str, int, float, bool]:
    merchant, ((eid, user, amount), risk) = kv
    s = amount * (1.0 if risk is None else risk)
    return (eid, user, merchant, amount, round(s, 2), s > FLAG_ABOVE)


def add_up(user: str, payment: tuple[int, int], state: Any) -> tuple[str, int, int]:
    spent, flagged = state.getOption() or (0, 0)
    spent, flagged = spent + payment[0], flagged + payment[1]
    state.update((spent, flagged))
    return (user, spent, flagged)


def setup(redis_url: str, pg_url: str) -> StreamingContext:
    conf = Conf().set("dstreams.streaming.checkpointInterval", "2s")
    sc = Context("local[2]", "redis-to-postgres", conf=conf)
    ssc = StreamingContext(sc, BATCH_SECONDS)
    model = load_model(pg_url)  # a plain list: it goes into the checkpoint with the program
    payments = createDirectStream(
        ssc, redis_url, "payments", startFrom="0", maxRecordsPerBatch=5000
    ).map(lambda e: (e[2]["merchant"], (e[1], e[2]["user"], int(e[2]["amount"]))))
    scored = payments.transform(
        lambda rdd: rdd.leftOuterJoin(rdd.context.parallelize(model, 1)).map(score)
    )
    scored.writeToSink(
        PostgresSink(
            pg_url,
            "scored_payments",
            "scored-payments",
            {
                "id": "text",
                "user_id": "text",
                "merchant": "text",
                "amount": "int",
                "score": "double precision",
                "flagged": "boolean",
            },
        )
    )
    # per-user totals with mapWithState: each batch touches only the users who paid in it, and
    # emits their new totals, which are upserted
    totals = scored.map(lambda r: (r[1], (r[3], int(r[5])))).mapWithState(
        StateSpec.function(add_up)
    )
    totals.writeToSink(
        PostgresSink(
            pg_url,
            "user_totals",
            "user-totals",
            {"user_id": "text", "spent": "bigint", "flagged": "int"},
            mode="upsert",
            key=["user_id"],
        )
    )
    return ssc


def run(redis_url: str, pg_url: str, checkpoint: str) -> int:
    ssc = StreamingContext.getOrCreate(checkpoint, lambda: setup(redis_url, pg_url))
    ssc.start()
    print(f"started{' (recovered)' if ssc._recovered_from is not None else ''}", flush=True)
    stop = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "stop")
    while not os.path.exists(stop) and ssc._state == "ACTIVE":
        time.sleep(0.05)
    ssc.stop(stopSparkContext=True, stopGraceFully=True)
    print("stopped", flush=True)
    return 0


def selftest() -> int:
    import subprocess

    import psycopg
    import redis

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    import servers

    work = tempfile.mkdtemp(prefix="dstreams-example-")
    rs = servers.start_redis(os.path.join(work, "redis"))
    ps = servers.start_postgres(os.path.join(work, "postgres"))
    try:
        with psycopg.connect(ps.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE merchant_risk (merchant text PRIMARY KEY, risk float8)")
            conn.execute("INSERT INTO merchant_risk VALUES ('shoes', 0.5), ('casino', 9.0)")
        r = redis.Redis.from_url(rs.url)
        payments = [("ann", "shoes", 120), ("bob", "casino", 80), ("ann", "books", 30)]
        more = [("bob", "shoes", 40), ("cid", "casino", 10), ("ann", "casino", 100)]
        checkpoint = os.path.join(work, "ck")
        for batch in (payments, more):
            for user, merchant, amount in batch:
                r.xadd("payments", {"user": user, "merchant": merchant, "amount": amount})
            proc = subprocess.Popen([sys.executable, __file__, rs.url, ps.url, checkpoint])
            deadline = time.monotonic() + 60
            with psycopg.connect(ps.url, autocommit=True) as conn:
                while time.monotonic() < deadline:
                    try:
                        n = conn.execute("SELECT COUNT(*) FROM scored_payments").fetchone()
                    except psycopg.errors.UndefinedTable:
                        n = (0,)
                    if n is not None and n[0] >= r.xlen("payments"):
                        break
                    time.sleep(0.1)
            time.sleep(2 * BATCH_SECONDS)  # the totals of the last batch
            open(os.path.join(work, "stop"), "w").close()
            assert proc.wait(60) == 0
            os.remove(os.path.join(work, "stop"))
        with psycopg.connect(ps.url) as conn:
            for row in conn.execute(
                "SELECT user_id, merchant, amount, score, flagged FROM scored_payments "
                "ORDER BY user_id, merchant"
            ):
                print("scored", *row)
            for row in conn.execute("SELECT * FROM user_totals ORDER BY user_id"):
                print("total", *row)
    finally:
        rs.stop()
        ps.stop()
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        sys.exit(selftest())
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(run(*sys.argv[1:]))
