"""Crash harness, end to end: Redis Streams in, PostgreSQL out, the driver SIGKILLed repeatedly.

``python tools/crash_redis_pg.py [--kills 10] [--seed 3]`` starts throwaway Redis and PostgreSQL
servers and runs ``examples/redis_to_postgres.py`` as the driver. A feeder adds payments to
the Redis stream the whole time, also while the driver is dead. Each run of the driver is
killed with SIGKILL. Half the kills come at an injected point (mid-job, mid-checkpoint write,
inside a sink's commit after its rows are written); the other half come at a random moment.
Both are chosen with the fixed seed. A last run drains the stream and stops gracefully. Then
PostgreSQL must hold exactly what a plain-Python model of every payment fed says:

* ``scored_payments``: every entry ID once (none missing, none twice), each with its
  user, merchant, amount and score;
* ``user_totals``: each user's spend and flagged count.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "examples"))

import servers  # noqa: E402

POINTS = {"job": (5, 60), "checkpoint-write": (3, 25), "commit": (3, 40)}
MERCHANTS = {"shoes": 0.5, "casino": 9.0, "books": 1.2, "fuel": 2.0}


@dataclass
class Report:
    kills: list[str] = field(default_factory=list)
    fed: int = 0
    problems: list[str] = field(default_factory=list)


class Feeder:
    """Adds payments to the stream until stopped; ``model`` holds every one, by entry ID."""

    def __init__(self, url: str, rng: random.Random) -> None:
        import redis

        self.r = redis.Redis.from_url(url, decode_responses=True)
        self.rng = rng
        self.model: dict[str, tuple[str, str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        users = [f"u{i}" for i in range(50)]
        merchants = [*MERCHANTS, "unknown"]
        while not self._stop.is_set():
            batch = [
                (self.rng.choice(users), self.rng.choice(merchants), self.rng.randint(1, 300))
                for _ in range(self.rng.randint(1, 60))
            ]
            pipe = self.r.pipeline(transaction=False)
            for u, m, a in batch:
                pipe.xadd("payments", {"user": u, "merchant": m, "amount": a})
            for eid, p in zip(pipe.execute(), batch):
                self.model[eid] = p
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _expected(model: dict[str, tuple[str, str, int]]) -> tuple[dict[str, Any], dict[str, Any]]:
    import redis_to_postgres as ex

    scored = {}
    totals: dict[str, list[int]] = {}
    for eid, (u, m, a) in model.items():
        s = a * MERCHANTS.get(m, 1.0)
        scored[eid] = (u, m, a, round(s, 2), s > ex.FLAG_ABOVE)
        t = totals.setdefault(u, [0, 0])
        t[0] += a
        t[1] += int(s > ex.FLAG_ABOVE)
    return scored, {u: tuple(t) for u, t in totals.items()}


def run(work: Path, kills: int = 10, seed: int = 3) -> Report:
    import psycopg

    rng = random.Random(seed)
    report = Report()
    rs = servers.start_redis(str(work / "redis"))
    ps = servers.start_postgres(str(work / "postgres"))
    feeder = Feeder(rs.url, random.Random(seed + 1))
    try:
        with psycopg.connect(ps.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE merchant_risk (merchant text PRIMARY KEY, risk float8)")
            for m, risk in MERCHANTS.items():
                conn.execute("INSERT INTO merchant_risk VALUES (%s, %s)", (m, risk))
        feeder.start()
        program = [sys.executable, str(ROOT / "examples" / "redis_to_postgres.py")]
        program += [rs.url, ps.url, str(work / "ck")]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), DSTREAMS_CONF_UI__ENABLED="false")
        for k in range(kills):
            run_env = dict(env)
            injected = k % 2 == 0
            if injected:
                point = rng.choice(sorted(POINTS))
                lo, hi = POINTS[point]
                counter = work / f"kill-count-{k}"
                run_env.update(
                    DSTREAMS_KILL_AT=f"{point}:{rng.randint(lo, hi)}",
                    DSTREAMS_KILL_COUNT=str(counter),
                    DSTREAMS_KILL_LOG=str(work / "kills.log"),
                )
            proc = subprocess.Popen(
                program, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            assert proc.stdout is not None
            line = proc.stdout.readline()  # "started": after recovery, as batches begin
            if not line.startswith("started"):
                report.problems.append(f"run {k} did not start: {line!r}")
            if injected:
                try:
                    proc.wait(60)  # dies at its kill point
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                report.kills.append(run_env["DSTREAMS_KILL_AT"].split(":")[0])
            else:
                time.sleep(rng.uniform(0.2, 2.5))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                report.kills.append("random")
            if proc.returncode == 0:
                report.problems.append(f"run {k} was not killed")
            time.sleep(0.2)  # the killed driver's workers exit by themselves
        feeder.stop()
        report.fed = len(feeder.model)
        proc = subprocess.Popen(program, env=env, stdout=subprocess.DEVNULL)
        scored, totals = _expected(feeder.model)
        deadline = time.monotonic() + 120
        with psycopg.connect(ps.url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                n = conn.execute("SELECT COUNT(*) FROM scored_payments").fetchone()
                got = dict(conn.execute("SELECT user_id, spent FROM user_totals").fetchall())
                spent = {u: t[0] for u, t in totals.items()}
                if n is not None and n[0] >= len(scored) and got == spent:
                    break
                time.sleep(0.2)
        (work / "stop").touch()
        if proc.wait(120) != 0:
            report.problems.append("the last run did not stop cleanly")
        with psycopg.connect(ps.url) as conn:
            rows = conn.execute(
                "SELECT id, user_id, merchant, amount, score, flagged FROM scored_payments"
            ).fetchall()
            final = {
                u: (s, f)
                for u, s, f in conn.execute("SELECT user_id, spent, flagged FROM user_totals")
            }
        ids = Counter(r[0] for r in rows)
        twice = [i for i, c in ids.items() if c > 1]
        if twice:
            report.problems.append(f"{len(twice)} payments written more than once: {twice[:5]}")
        missing = sorted(set(scored) - set(ids))
        if missing:
            report.problems.append(f"{len(missing)} payments never written: {missing[:5]}")
        extra = sorted(set(ids) - set(scored))
        if extra:
            report.problems.append(f"{len(extra)} payments that were never fed: {extra[:5]}")
        wrong = [r for r in rows if r[0] in scored and tuple(r[1:]) != scored[r[0]]]
        if wrong:
            report.problems.append(f"{len(wrong)} payments scored wrongly: {wrong[:3]}")
        if final != totals:
            diff = {u: (final.get(u), totals.get(u)) for u in set(final) | set(totals)}
            diff = {u: v for u, v in diff.items() if v[0] != v[1]}
            some = dict(list(diff.items())[:5])
            report.problems.append(f"user totals differ from the model: {some}")
    finally:
        feeder.stop()
        rs.stop()
        ps.stop()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--workdir")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="dstreams-crash-rp-"))
    started = time.monotonic()
    report = run(work, args.kills, args.seed)
    print(f"kills: {Counter(report.kills)}; payments fed: {report.fed}")
    print(f"took {time.monotonic() - started:.1f} s")
    for p in report.problems:
        print("PROBLEM:", p)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
