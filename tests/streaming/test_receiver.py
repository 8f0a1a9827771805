"""Block generator, received-block tracker and receiver supervision, on a ManualClock."""

from __future__ import annotations

import threading

from dstreams.streaming.clock import ManualClock
from dstreams.streaming.listener import ListenerBus, StreamingListener
from dstreams.streaming.receiver import (
    BlockGenerator,
    ReceivedBlockTracker,
    Receiver,
    ReceiverTracker,
)


def test_block_generator_cuts_blocks_and_tracker_allocates() -> None:
    clock, tracker = ManualClock(), ReceivedBlockTracker()
    gen = BlockGenerator(0, clock, 200, tracker)
    gen.add_many([1, 2, 3])
    gen.cut()
    gen.add_many([4])
    gen.cut()
    gen.cut()  # empty buffer: no block
    tracker.allocate(1000)
    assert tracker.blocks_of_batch(1000, 0) == [[1, 2, 3], [4]]
    tracker.allocate(2000)
    assert tracker.blocks_of_batch(2000, 0) == []
    tracker.cleanup_old_batches(1000)
    assert tracker.blocks_of_batch(1000, 0) == []
    assert tracker.total_received() == 4


def test_tracker_flushes_generators_before_allocation() -> None:
    clock = ManualClock()
    rt = ReceiverTracker(clock, ListenerBus(), 200, 10)

    class Pushing(Receiver):
        def onStart(self) -> None:
            self.storeMany(["a", "b"])

    r = Pushing()
    r.streamId = 3
    rt.start([r])
    assert rt.blocks.wait_for_received(2, 5)
    rt.allocate_blocks_to_batch(1000)
    assert rt.blocks_of_batch(1000, 3) == [["a", "b"]]
    rt.stop()
    assert rt.blocks.is_empty()


def test_failing_receiver_is_restarted_and_reported() -> None:
    clock, bus = ManualClock(), ListenerBus()
    errors: list[str] = []
    starts: list[int] = []
    restarted = threading.Event()

    class L(StreamingListener):
        def onReceiverError(self, receiverError):
            errors.append(receiverError.receiverInfo().lastErrorMessage())

        def onReceiverStarted(self, receiverStarted):
            starts.append(receiverStarted.receiverInfo().streamId())
            restarted.set()

    bus.addListener(L())

    class Flaky(Receiver):
        calls = 0

        def onStart(self) -> None:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise OSError("source down")
            self.store("ok")

    r = Flaky()
    r.streamId = 0
    rt = ReceiverTracker(clock, bus, 200, 1)
    rt.start([r])
    assert restarted.wait(5)
    assert rt.blocks.wait_for_received(1, 5)
    assert Flaky.calls == 2
    assert len(errors) == 1 and "source down" in errors[0]
    assert starts == [0]
    rt.stop()
