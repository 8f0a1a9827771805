"""Public test kit for streaming programs: drive time by hand, feed batches, collect results.

* :func:`manual_context` builds a :class:`~dstreams.streaming.StreamingContext`
  on a :class:`ManualClock` (time 0; first batch at one batch interval).
* :class:`TestSource` is an input stream fed batch by batch (``push``).
* :class:`CollectingSink` registers an output that collects every batch.
* :func:`run_batches` starts the context if needed, moves the clock one batch at
  a time and waits (on a condition, never a sleep) until each batch completed.
* :func:`run_real_clock` runs a real-clock context until a sink holds ``n`` batches.

Example:
    >>> from dstreams import Context
    >>> from dstreams.testing import manual_context, TestSource, CollectingSink, run_batches
    >>> with Context("local[2]") as sc:                      # doctest: +SKIP
    ...     ssc = manual_context(sc, 1)
    ...     src = TestSource(ssc, [[1, 2], [3]])
    ...     sink = CollectingSink(src.stream.map(lambda x: x * 10))
    ...     run_batches(ssc, 3)
    ...     ssc.stop(stopSparkContext=False)
    >>> sink.results                                         # doctest: +SKIP
    [[10, 20], [30], []]
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from dstreams.streaming.clock import ManualClock
from dstreams.streaming.context import StreamingContext
from dstreams.streaming.dstream import DStream

__all__ = [
    "CollectingSink",
    "ManualClock",
    "TestSource",
    "manual_context",
    "run_batches",
    "run_real_clock",
]


def manual_context(sc: Any, batchDuration: float, startTime: int = 0) -> StreamingContext:
    """Return a StreamingContext on ``sc`` driven by a new ManualClock at ``startTime`` ms."""
    return StreamingContext(sc, batchDuration, clock=ManualClock(startTime))


class TestSource:
    """An input stream whose batches you provide: one pushed batch per batch interval.

    Batches not yet pushed when a batch time comes are empty (one empty partition).

    Args:
        ssc: The streaming context.
        batches: Initial batches (lists of records, or RDDs), consumed in order.
        numSlices: Partitions for each list batch (default: the Context's default).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self, ssc: StreamingContext, batches: list[Any] | None = None, numSlices: int | None = None
    ) -> None:
        self._ssc, self._slices = ssc, numSlices
        self.stream: DStream[Any] = ssc.queueStream([self._as_rdd(b) for b in batches or []])

    def _as_rdd(self, batch: Any) -> Any:
        if hasattr(batch, "mapPartitions"):
            return batch
        return self._ssc._sc.parallelize(list(batch), self._slices)

    def push(self, batch: Any) -> None:
        """Queue one more batch (a list of records or an RDD)."""
        self.stream._push(self._as_rdd(batch))  # type: ignore[attr-defined]


class CollectingSink:
    """Collects every batch of ``stream`` as a list, in batch order (driver side)."""

    def __init__(self, stream: DStream[Any], sort: bool = False) -> None:
        self._lock = threading.Lock()
        self._batches: list[tuple[datetime, list[Any]]] = []
        self._sort = sort

        def collect(time: datetime, rdd: Any) -> None:
            data = rdd.collect()
            if self._sort:
                data = sorted(data)
            with self._lock:
                self._batches.append((time, data))

        stream.foreachRDD(collect)

    def __getstate__(self) -> dict[str, Any]:
        # a metadata checkpoint pickles the graph, this sink's function with it: the copy a
        # recovered graph gets starts empty (the results stay with this process's object)
        return {"_sort": self._sort}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._sort = state["_sort"]
        self._lock = threading.Lock()
        self._batches = []

    @property
    def batches(self) -> list[tuple[datetime, list[Any]]]:
        """Return ``(time, records)`` of every batch so far."""
        with self._lock:
            return list(self._batches)

    @property
    def results(self) -> list[list[Any]]:
        """Return the records of every batch so far."""
        with self._lock:
            return [data for _, data in self._batches]

    def clear(self) -> None:
        """Forget what was collected."""
        with self._lock:
            self._batches.clear()


def run_batches(ssc: StreamingContext, n: int, timeout: float = 60.0) -> list[int]:
    """Run ``n`` more batches on a ManualClock-driven context; return their times (ms).

    Starts the context if it is not started.  Each step moves the clock to the
    next batch time and blocks until that batch's jobs are done.  Failures are
    not raised here: call ``ssc.awaitTerminationOrTimeout(0)`` to get them.

    Raises:
        TypeError: the context's clock is not a ManualClock.
        TimeoutError: a batch did not complete within ``timeout`` seconds.
    """
    clock = ssc._clock
    if not isinstance(clock, ManualClock):
        raise TypeError(
            "run_batches needs a ManualClock-driven StreamingContext; create it with "
            "dstreams.testing.manual_context(sc, batchDuration)"
        )
    if ssc._state == "INITIALIZED":
        ssc.start()
    batch = ssc._batch_ms
    times = []
    for _ in range(n):
        target = (clock.getTimeMillis() // batch + 1) * batch
        clock.setTime(target)
        if not ssc._scheduler.wait_for_batch(target, timeout):
            raise TimeoutError(f"batch {target} ms did not complete within {timeout}s")
        times.append(target)
    return times


def run_real_clock(ssc: StreamingContext, sink: Any, n: int, timeout: float = 60.0) -> list[int]:
    """Start real-clock ``ssc``, wait until ``sink`` (a :class:`CollectingSink`, or anything
    with a ``batches`` list of ``(time, records)``) holds ``n`` batches, then stop it.

    Returns the first ``n`` batch times (ms). A failed batch raises here.

    Raises:
        TimeoutError: fewer than ``n`` batches ran within ``timeout`` seconds.
    """
    import time

    ssc.start()
    deadline = time.monotonic() + timeout
    try:
        while len(sink.batches) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(sink.batches)} of {n} batches ran in {timeout}s")
            time.sleep(0.01)
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    return [round(t.timestamp() * 1000) for t, _ in sink.batches[:n]]
