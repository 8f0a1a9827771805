"""Real servers for the connector tests: Redis, PostgreSQL and Tansu, started once per session.

Each runs on a free loopback port in a temporary directory and is stopped at the end. A test
that needs a server whose binary is missing here is skipped with the reason; under CI (where
``.ci/run`` installs them) it fails instead.
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))

import servers

from dstreams import Context


def _start(start: Callable[[str], Any], tmp: pytest.TempPathFactory, name: str) -> Any:
    try:
        return start(str(tmp.mktemp(name)))
    except (servers.ServerUnavailable, ImportError) as e:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is needed in CI: {e}")
        pytest.skip(f"{name} is not available here: {e}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    s = _start(servers.start_redis, tmp_path_factory, "redis")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    s = _start(servers.start_postgres, tmp_path_factory, "postgres")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def tansu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    s = _start(servers.start_tansu, tmp_path_factory, "tansu")
    yield s
    s.stop()


@pytest.fixture
def rds(redis_server: Any) -> Iterator[Any]:
    """A client of the session's Redis, emptied before each test."""
    import redis

    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def pg(postgres_server: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database of the session's PostgreSQL, named after the test; its URL."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_server.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="module")
def sc() -> Iterator[Context]:
    with Context("local[2]", "connector-tests") as ctx:
        yield ctx
