"""The public test kit: TestSource, CollectingSink, run_batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dstreams import Context
from dstreams.streaming import StreamingContext
from dstreams.testing import CollectingSink, ManualClock, TestSource, manual_context, run_batches


@pytest.fixture(scope="module")
def sc() -> Iterator[Any]:
    with Context("local[2]", "testing-kit") as context:
        yield context


def test_source_sink_and_run_batches(sc: Any) -> None:
    ssc = manual_context(sc, 0.5)
    assert isinstance(ssc.clock, ManualClock)
    src = TestSource(ssc, [[1, 2]])
    sink = CollectingSink(src.stream.map(lambda x: x * 10), sort=True)
    times = run_batches(ssc, 1)
    src.push([3])
    times += run_batches(ssc, 2)
    ssc.stop(stopSparkContext=False)
    assert times == [500, 1000, 1500]
    assert sink.results == [[10, 20], [30], []]
    assert [t.timestamp() for t, _ in sink.batches] == [0.5, 1.0, 1.5]


def test_run_batches_needs_manual_clock(sc: Any) -> None:
    ssc = StreamingContext(sc, 1)
    with pytest.raises(TypeError, match="manual_context"):
        run_batches(ssc, 1)
    ssc.stop(stopSparkContext=False)
