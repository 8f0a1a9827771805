"""Pure tests: clocks, listener events and bus, pprint text, file naming, durations."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from dstreams.streaming._util import fmt_ms, positional_arity, to_ms
from dstreams.streaming.clock import ManualClock, SystemClock
from dstreams.streaming.listener import (
    BatchInfo,
    ListenerBus,
    OutputOperationInfo,
    StreamingListener,
    StreamingListenerBatchCompleted,
    StreamInputInfo,
)
from dstreams.streaming.operators.output import rdd_to_file_name, take_and_print


def test_manual_clock_advance_and_wait() -> None:
    clock = ManualClock()
    assert clock.getTimeMillis() == 0
    reached: list[int] = []
    t = threading.Thread(target=lambda: reached.append(clock.waitTillTime(500)))
    t.start()
    clock.advance(200)
    assert not reached
    clock.setTime(600)
    t.join(5)
    assert reached == [600]
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_manual_clock_wait_interrupted() -> None:
    clock, stop = ManualClock(), threading.Event()
    stop.set()
    assert clock.waitTillTime(10_000, stop) == 0


def test_system_clock_waits_until_target() -> None:
    clock = SystemClock()
    now = clock.getTimeMillis()
    assert clock.waitTillTime(now + 20) >= now + 20


def test_batch_info_unknown_values_are_minus_one() -> None:
    info = BatchInfo(2000, {0: StreamInputInfo(0, 7)}, submissionTime=2001)
    assert info.batchTime().milliseconds() == 2000
    assert info.numRecords() == 7
    assert info.schedulingDelay() == -1
    assert info.processingDelay() == -1
    assert info.totalDelay() == -1
    done = BatchInfo(
        2000,
        {},
        2001,
        2004,
        2014,
        {0: OutputOperationInfo(2000, 0, "pprint", "pprint", 2004, 2014)},
    )
    assert (done.schedulingDelay(), done.processingDelay(), done.totalDelay()) == (3, 10, 13)
    assert done.outputOperationInfos()[0].duration() == 10
    assert done.outputOperationInfos()[0].failureReason() is None


def test_listener_bus_skips_failing_listener() -> None:
    seen: list[int] = []

    class Broken(StreamingListener):
        def onBatchCompleted(self, batchCompleted):
            raise RuntimeError("boom")

    class Good(StreamingListener):
        def onBatchCompleted(self, batchCompleted):
            seen.append(batchCompleted.batchInfo().batchTime().milliseconds())

    bus = ListenerBus()
    bus.addListener(Broken())
    bus.addListener(Good())
    bus.post(StreamingListenerBatchCompleted(BatchInfo(1000, {}, 1000)))
    assert seen == [1000]


class _FakeRDD:
    def __init__(self, data: list[object]) -> None:
        self.data = data

    def take(self, n: int) -> list[object]:
        return self.data[:n]


def test_pprint_text_matches_pyspark(capsys: pytest.CaptureFixture[str]) -> None:
    when = datetime(2024, 1, 2, 3, 4, 5)
    take_and_print(when, _FakeRDD([("a", 1), ("b", 2), ("c", 3)]), 2)
    dashes = "-" * 43
    assert capsys.readouterr().out == (
        f"{dashes}\nTime: 2024-01-02 03:04:05\n{dashes}\n('a', 1)\n('b', 2)\n...\n\n"
    )
    take_and_print(when, _FakeRDD([]), 10)
    assert capsys.readouterr().out == f"{dashes}\nTime: 2024-01-02 03:04:05\n{dashes}\n\n"


def test_rdd_to_file_name() -> None:
    when = datetime.fromtimestamp(1234.5)
    assert rdd_to_file_name("out/p", None, when) == "out/p-1234500"
    assert rdd_to_file_name("out/p", "txt", 1000) == "out/p-1000.txt"


def test_durations_and_arity() -> None:
    assert to_ms(1) == 1000 and to_ms(0.25) == 250 and to_ms(4.35) == 4350
    assert fmt_ms(2000) == "2s" and fmt_ms(250) == "0.25s"
    with pytest.raises(ValueError, match="positive"):
        to_ms(0)
    with pytest.raises(TypeError, match="seconds"):
        to_ms("1")  # type: ignore[arg-type]
    assert positional_arity(lambda rdd: rdd) == 1
    assert positional_arity(lambda t, rdd: rdd) == 2
    assert positional_arity(lambda *a: a) == -1

    class C:
        def m(self, t, rdd):
            return rdd

    assert positional_arity(C().m) == 2
