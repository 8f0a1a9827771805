"""End to end through crashes: Redis Streams in, PostgreSQL out, the driver SIGKILLed.

``tools/crash_redis_pg.py`` kills the driver of ``examples/redis_to_postgres.py`` at injected
points and at random moments (a fixed seed) while payments keep arriving. PostgreSQL must hold
exactly a plain-Python model of every payment fed: none lost, none twice, totals exact.
Three kills here; ten in ``make soak``.
"""

from __future__ import annotations

import shutil

import pytest


def _harness():
    if not shutil.which("redis-server"):
        import os

        if not os.environ.get("CI"):
            pytest.skip("redis-server is not installed here (apt-get install redis-server)")
    import crash_redis_pg  # tools/, on the path through conftest.py

    return crash_redis_pg


def test_three_driver_kills_lose_and_duplicate_nothing(tmp_path):
    report = _harness().run(tmp_path, kills=3, seed=5)
    assert report.problems == []
    assert len(report.kills) == 3 and report.fed > 1000


@pytest.mark.soak
def test_soak_ten_driver_kills_lose_and_duplicate_nothing(tmp_path):
    report = _harness().run(tmp_path, kills=10, seed=3)
    assert report.problems == []
    assert len(report.kills) == 10 and report.kills.count("random") == 5
    assert report.fed > 5000
