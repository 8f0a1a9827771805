"""Fixtures of the executor tests: a Ray cluster shared by the tests of this package."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="package")
def ray_session() -> Iterator[Any]:
    """A Ray cluster of 3 nodes (1 CPU each) on loopback, for this package's tests.

    Simulated on this machine with ``ray.cluster_utils.Cluster``; yields the Cluster. Two
    executors leave one node free for a replacement. Health checks are fast (a removed node is
    declared dead in about a second), and the temp directory is private to this run. It is
    stopped after the package's last test, so the rest of the suite does not share the
    machine with it.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray's import
    pytest.importorskip("ray")
    from dstreams.executor.ray import start_cluster

    cluster = start_cluster(3, tempfile.mkdtemp(prefix="dstreams-ray-test-"))
    yield cluster
    import ray

    ray.shutdown()
    cluster.shutdown()
    os.environ.pop("RAY_ADDRESS", None)
