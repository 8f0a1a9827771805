"""Fixtures: one batch Context per test module, a fresh ManualClock StreamingContext per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dstreams import Context
from dstreams.streaming import StreamingContext
from dstreams.testing import CollectingSink, TestSource, manual_context, run_batches


@pytest.fixture(scope="module")
def sc() -> Iterator[Any]:
    context = Context("local[2]", "streaming-tests")
    yield context
    context.stop()


@pytest.fixture
def ssc(sc: Any) -> Iterator[StreamingContext]:
    # ssc.checkpoint() sets the Context's: restore it
    saved = sc._checkpoint_root, sc._checkpoint_dir
    streaming = manual_context(sc, 1)
    yield streaming
    streaming.stop(stopSparkContext=False)
    sc._checkpoint_root, sc._checkpoint_dir = saved


@pytest.fixture
def run(ssc: StreamingContext) -> Callable[..., list[list[Any]]]:
    """run(build, batches, n=None): feed ``batches``, run n batches, return sorted results."""

    def _run(
        build: Callable[[Any], Any],
        batches: list[list[Any]],
        n: int | None = None,
        sort: bool = True,
    ) -> list[list[Any]]:
        src = TestSource(ssc, batches)
        sink = CollectingSink(build(src.stream), sort=sort)
        run_batches(ssc, n if n is not None else len(batches))
        return sink.results

    return _run
