"""Failures stay in their batch; stop() is prompt in every state; the Context stays usable.

Each test ends by running a fresh StreamingContext on the same Context and checking its
results, so a failure that wedged the engine (a leaked slot, a held lock, a stale cancel)
shows up as a later failure.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dstreams import Conf, Context
from dstreams.errors import SerializationError, TaskFailedError
from dstreams.testing import CollectingSink, TestSource, manual_context, run_batches

HERE = os.path.basename(__file__)


@pytest.fixture(scope="module")
def sc() -> Iterator[Context]:
    conf = Conf(loadDefaults=False).setAll(
        [("dstreams.task.maxFailures", "2"), ("dstreams.task.reaper.killTimeout", "1s")]
    )
    context = Context("local[2]", "failure-tests", conf=conf)
    yield context
    context.stop()


def still_works(sc: Context, tmp_path: Any) -> None:
    """A new StreamingContext on ``sc`` runs stateful batches with exact results."""
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "after"))
    src = TestSource(ssc, [["a", "b"], ["a"], ["c"]], numSlices=2)
    sink = CollectingSink(
        src.stream.map(lambda w: (w, 1)).updateStateByKey(lambda vs, s: sum(vs) + (s or 0)),
        sort=True,
    )
    try:
        run_batches(ssc, 3, timeout=20)
        ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    assert sink.results == [
        [("a", 1), ("b", 1)],
        [("a", 2), ("b", 1)],
        [("a", 2), ("b", 1), ("c", 1)],
    ]


def parse(word: str) -> tuple[str, int]:
    if word == "bad":
        raise ValueError(f"cannot parse {word!r}")  # the line the traceback must show
    return (word, 1)


RAISE_LINE = parse.__code__.co_firstlineno + 2


def test_user_error_fails_its_batch_only_and_reaches_await_termination(sc, tmp_path):
    ssc = manual_context(sc, 0.05)
    batches = [["a"], ["b", "bad"], ["c"], ["d"]]
    src = TestSource(ssc, batches, numSlices=2)
    parsed = CollectingSink(src.stream.map(parse), sort=True)
    counts = CollectingSink(src.stream.count())
    try:
        run_batches(ssc, 4, timeout=20)
        with pytest.raises(TaskFailedError) as info:
            ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    # the failed output operation lost batch 2; the other output and later batches ran
    assert parsed.results == [[("a", 1)], [("c", 1)], [("d", 1)]]
    assert counts.results == [[1], [2], [1], [1]]
    text = str(info.value)
    assert "ValueError: cannot parse 'bad'" in text
    assert f'{HERE}", line {RAISE_LINE}, in parse' in text
    still_works(sc, tmp_path)


def test_unpicklable_function_fails_its_batch_with_a_message_naming_it(sc, tmp_path):
    ssc = manual_context(sc, 0.05)
    lock = threading.Lock()

    def tag(t: Any, rdd: Any) -> Any:
        if t.timestamp() == 0.1:  # the second batch only

            def with_lock(x: Any) -> Any:
                with lock:
                    return x

            return rdd.map(with_lock)
        return rdd

    src = TestSource(ssc, [[1], [2], [3]], numSlices=1)
    sink = CollectingSink(src.stream.transform(tag))
    try:
        run_batches(ssc, 3, timeout=20)
        with pytest.raises(SerializationError) as info:
            ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    assert sink.results == [[1], [3]]
    text = str(info.value)
    assert "captured variable `lock`" in text and "_thread.lock" in text
    assert "with_lock" in text and HERE in text
    still_works(sc, tmp_path)


def test_lost_executor_past_max_failures_fails_its_batch_only(sc, tmp_path):
    ssc = manual_context(sc, 0.05)

    def crash(x: str) -> str:
        if x == "crash":
            os._exit(3)  # kills the worker process, every attempt
        return x

    src = TestSource(ssc, [["a"], ["crash"], ["b"]], numSlices=1)
    sink = CollectingSink(src.stream.map(crash))
    try:
        run_batches(ssc, 3, timeout=30)
        with pytest.raises(Exception, match="failed 2 times.*was lost"):
            ssc.awaitTerminationOrTimeout(0)
    finally:
        ssc.stop(stopSparkContext=False)
    assert sink.results == [["a"], ["b"]]
    still_works(sc, tmp_path)


def _stop_promptly(ssc: Any) -> float:
    start = time.monotonic()
    ssc.stop(stopSparkContext=False)
    return time.monotonic() - start


def _wait(path: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_stop_is_prompt_while_a_task_runs_and_cancels_it(sc, tmp_path):
    started = tmp_path / "started"
    ssc = manual_context(sc, 0.05)

    def slow(x: int) -> int:
        open(started, "w").close()
        time.sleep(60)
        return x

    src = TestSource(ssc, [[1]], numSlices=1)
    CollectingSink(src.stream.map(slow))
    ssc.start()
    ssc.clock.advance(50)
    _wait(started)
    assert _stop_promptly(ssc) < 2.0
    still_works(sc, tmp_path)


def test_stop_is_prompt_while_a_driver_function_is_stuck(sc, tmp_path):
    release = threading.Event()
    entered = threading.Event()
    ssc = manual_context(sc, 0.05)

    def stuck(rdd: Any) -> None:
        entered.set()
        release.wait(60)

    TestSource(ssc, [[1]], numSlices=1).stream.foreachRDD(stuck)
    ssc.start()
    ssc.clock.advance(50)
    assert entered.wait(20)
    try:
        assert _stop_promptly(ssc) < 2.0
        still_works(sc, tmp_path)
    finally:
        release.set()


def test_stop_is_prompt_when_a_task_ignores_its_kill(sc, tmp_path):
    started = tmp_path / "started"
    ssc = manual_context(sc, 0.05)

    def stubborn(x: int) -> int:
        open(started, "w").close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                time.sleep(0.05)
            except BaseException:
                pass
        return x

    src = TestSource(ssc, [[1]], numSlices=1)
    CollectingSink(src.stream.map(stubborn))
    pids = set(sc._backend.worker_pids().values())
    ssc.start()
    ssc.clock.advance(50)
    _wait(started)
    assert _stop_promptly(ssc) < 2.0
    # the next jobs run; the reaper replaces the worker that would not stop its task
    still_works(sc, tmp_path)
    deadline = time.monotonic() + 20
    while set(sc._backend.worker_pids().values()) >= pids:
        assert time.monotonic() < deadline, "the stubborn worker was never replaced"
        sc.parallelize([1, 2], 2).count()  # jobs carry the reaper's ticks
        time.sleep(0.1)
    still_works(sc, tmp_path)
