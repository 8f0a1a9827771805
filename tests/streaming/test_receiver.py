"""Receivers: the driver's block metadata, the executor-side host, and receivers on real workers.

* ``ReceivedBlockTracker`` is plain metadata: allocation in sequence order, refusal of late
  blocks, cleanup.
* ``ReceiverHost`` runs in this process against a fake driver: blocks, flushes, reliable stores
  that wait for their acknowledgement, restarts after a failure.
* On ``local[2]``: a receiver runs on an executor, its blocks are replicated to the other one,
  the batch's tasks read them where they are, and when the receiver's executor is SIGKILLed the
  receiver restarts on another executor and the blocks it had stored are read from the replica.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from typing import Any

from dstreams.errors import DStreamsError
from dstreams.storage.blocks import BlockClient, BlockStore
from dstreams.streaming import Receiver, StreamingListener
from dstreams.streaming.blocks import BlockInfo, ReceiverSettings
from dstreams.streaming.clock import ManualClock
from dstreams.streaming.receiver_host import ReceiverHost
from dstreams.streaming.receiver_tracker import ReceivedBlockTracker
from dstreams.testing import CollectingSink, manual_context, run_batches


def info(stream: int, epoch: int, n: int, records: int = 1) -> BlockInfo:
    return BlockInfo(stream, (epoch, n), records)


def test_tracker_allocates_in_sequence_order_and_refuses_late_blocks() -> None:
    t = ReceivedBlockTracker()
    assert t.add_block(info(0, 1, 1, 3)) and t.add_block(info(0, 1, 0, 2))
    assert t.add_block(info(5, 1, 0))
    batch = t.allocate(1000)
    assert [b.seq for b in batch[0]] == [(1, 0), (1, 1)] and len(batch[5]) == 1
    assert t.allocate(1000) is batch, "a batch re-generated in recovery keeps its plan"
    assert t.allocate(2000) == {}
    # a block of the replaced incarnation that arrives after newer ones were allocated
    assert not t.add_block(info(0, 1, 1, 9))
    assert t.add_block(info(0, 2, 0, 4))
    assert [b.seq for b in t.allocate(3000)[0]] == [(2, 0)]
    assert t.total_received() == 10
    removed = t.cleanup_old_batches(2000, 0)
    assert [b.seq for b in removed] == [(1, 0), (1, 1)]
    assert t.blocks_of_batch(1000, 0) == [] and t.blocks_of_batch(1000, 5) != []


class FakeDriver:
    """Plays the driver's part for a ReceiverHost: collects its messages, acknowledges."""

    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.blocks: list[BlockInfo] = []
        self.store = BlockStore()
        self.host = ReceiverHost(
            "e1", "addr", self.store, lambda: BlockClient(b"k"), self.messages.put, ManualClock()
        )
        self.refuse: Any = object()  # blocks whose metadata equals this are refused

    def next(self, kind: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            _, stream, what, body = msg
            if what == "block":
                block, reliable = body
                self.blocks.append(block)
                if reliable:
                    self.host.handle(stream, ("ack", block.seq, block.metadata != self.refuse))
            if what == kind:
                return body


def settings(stream: int = 0, **kw: Any) -> ReceiverSettings:
    return ReceiverSettings(stream_id=stream, epoch=7, block_interval_ms=200, **kw)


def test_host_cuts_blocks_on_flush_and_keeps_them_in_its_store() -> None:
    d = FakeDriver()

    class Pushing(Receiver):
        def onStart(self) -> None:
            self.storeBuffered(["a", "b"])
            self.store("c")

    d.host.handle(0, ("start", settings(), Pushing()))
    d.next("started")
    d.host.handle(0, ("flush", "t1"))
    assert d.next("flushed") == "t1"
    (block,) = d.blocks
    assert block.seq == (7, 0) and block.num_records == 3
    assert block.locations == (("e1", "addr"),)
    import pickle

    assert pickle.loads(d.store.get(("input", 0, 7, 0))) == ["a", "b", "c"]
    d.host.handle(0, ("stop",))
    d.next("stopped")


def test_store_many_returns_once_the_driver_accepted_the_block() -> None:
    d = FakeDriver()
    results: list[Any] = []

    class Reliable(Receiver):
        def onStart(self) -> None:
            threading.Thread(target=self._run, daemon=True).start()

        def _run(self) -> None:
            self.store("buffered first")
            self.storeMany(["x", "y"], metadata={"offset": 2})
            results.append(self.lastStoredMetadata())
            try:
                self.storeMany(["z"], metadata={"offset": 3})
            except DStreamsError as e:
                results.append(str(e))

    d.refuse = {"offset": 3}  # the driver refuses that block: its storeMany must raise
    d.host.handle(1, ("start", settings(1, last_metadata={"offset": 0}), Reliable()))
    deadline = time.monotonic() + 20
    while (len(d.blocks) < 3 or len(results) < 2) and time.monotonic() < deadline:
        try:
            d.next("block", 0.05)
        except queue.Empty:
            pass
    # the buffered record goes out first, as its own block, then the reliable ones
    assert [b.num_records for b in d.blocks] == [1, 2, 1]
    assert d.blocks[1].metadata == {"offset": 2}
    assert results[0] == {"offset": 2}
    assert "did not accept block" in results[1] and "must not be acknowledged" in results[1]


def test_a_failing_receiver_is_restarted_and_reported() -> None:
    d = FakeDriver()
    calls = []

    class Flaky(Receiver):
        def onStart(self) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise OSError("source down")
            self.store("ok")

    d.host.handle(0, ("start", settings(restart_delay_ms=1), Flaky()))
    message, tb, _ = d.next("error")
    assert "source down" in message and "OSError" in tb
    d.next("started")
    d.host.handle(0, ("flush", 1))
    d.next("flushed")
    assert len(calls) == 2 and [b.num_records for b in d.blocks] == [1]


# -- on real workers ---------------------------------------------------------------------


class Lines(Receiver):
    """A reliable source: the lines of a file, stored with their position as metadata.

    A restarted incarnation resumes after the last line stored (``lastStoredMetadata``).
    """

    def __init__(self, inbox: str) -> None:
        super().__init__()
        self.inbox = inbox

    def onStart(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        seen = self.lastStoredMetadata() or 0
        while not self.isStopped():
            try:
                with open(self.inbox) as fh:
                    text = fh.read()
                lines = text[: text.rfind("\n") + 1].splitlines()  # complete lines only
            except FileNotFoundError:
                lines = []
            if len(lines) > seen:
                self.storeMany(lines[seen:], metadata=len(lines))
                seen = len(lines)
            time.sleep(0.01)


class Placement(StreamingListener):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.errors: list[str] = []

    def onReceiverStarted(self, receiverStarted: Any) -> None:
        self.started.append(receiverStarted.receiverInfo().executorId())

    def onReceiverError(self, receiverError: Any) -> None:
        self.errors.append(receiverError.receiverInfo().lastErrorMessage())


def _feed(path: Any, lines: list[str]) -> None:
    with open(path, "a") as fh:
        fh.write("".join(line + "\n" for line in lines))


def test_a_receiver_runs_on_an_executor_and_survives_losing_it(sc: Any, tmp_path: Any) -> None:
    inbox = tmp_path / "inbox"
    ssc = manual_context(sc, 1)
    listener = Placement()
    ssc.addStreamingListener(listener)
    lines = ssc.receiverStream(Lines(str(inbox)))
    sink = CollectingSink(lines, sort=True)
    ssc.start()
    tracker = ssc._receiver_tracker
    try:
        _feed(inbox, ["a", "b"])
        assert tracker.wait_for_received(2, 20)
        where = tracker.placements()[lines.id]
        assert where in sc._backend.executor_ids()
        run_batches(ssc, 1)
        assert sink.results == [["a", "b"]]
        _feed(inbox, ["c"])
        assert tracker.wait_for_received(3, 20)
        pending = list(tracker.blocks._unallocated[lines.id])
        assert [len(b.locations) for b in pending] == [2], "the block was replicated"
        # the receiver's executor dies: its blocks are read from the replica, and the
        # receiver starts again on another executor
        pid = sc._backend.worker_pids()[where]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(listener.started) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(listener.started) == 2 and listener.started[1] != where
        assert any("was lost" in e for e in listener.errors)
        run_batches(ssc, 1)
        assert sink.results[1] == ["c"], "the block stored before the loss was not lost"
        _feed(inbox, ["d", "e"])
        assert tracker.wait_for_received(5, 20)
        run_batches(ssc, 1)
        assert sink.results[2] == ["d", "e"]
    finally:
        ssc.stop(stopSparkContext=False)


def test_two_receivers_leave_every_task_slot_free(sc: Any, tmp_path: Any) -> None:
    n = 2
    deadline = time.monotonic() + 30
    while len(sc._backend.executor_ids()) < 2:  # a replacement may still be starting
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ssc = manual_context(sc, 1)
    streams = [ssc.receiverStream(Lines(str(tmp_path / f"in{i}"))) for i in range(n)]
    sink = CollectingSink(ssc.union(*streams), sort=True)
    ssc.start()
    try:
        for i in range(n):
            _feed(tmp_path / f"in{i}", [f"r{i}"])
        assert ssc._receiver_tracker.wait_for_received(n, 20)
        assert len(set(ssc._receiver_tracker.placements().values())) == n, "spread out"
        # receivers take no task slot: a job still gets every slot of both executors
        assert all(ex.slots == ex.free for ex in sc._runner.dag.executors.values())
        run_batches(ssc, 1)
        assert sink.results == [[f"r{i}" for i in range(n)]]
    finally:
        ssc.stop(stopSparkContext=False)


def test_a_stopped_replica_does_not_stop_ingestion(sc: Any, tmp_path: Any) -> None:
    """The replica's worker is stopped: blocks go on with one copy, and two once it resumes."""
    deadline = time.monotonic() + 30
    while len(sc._backend.executor_ids()) < 2:  # a replacement may still be starting
        assert time.monotonic() < deadline
        time.sleep(0.02)
    inbox = tmp_path / "inbox"
    ssc = manual_context(sc, 1)
    lines = ssc.receiverStream(Lines(str(inbox)))
    sink = CollectingSink(lines, sort=True)
    ssc.start()
    tracker = ssc._receiver_tracker
    try:
        _feed(inbox, ["a"])
        assert tracker.wait_for_received(1, 20)
        where = tracker.placements()[lines.id]
        (peer,) = [e for e in sc._backend.executor_ids() if e != where]
        pid = sc._backend.worker_pids()[peer]
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            for i, word in enumerate(["b", "c", "d"]):
                _feed(inbox, [word])
                assert tracker.wait_for_received(2 + i, 20)
            # one store may wait out the replica timeout (1 s) before the peer is known silent
            assert time.monotonic() - t0 < 5, "ingestion waited on the stopped replica"
            newest = list(tracker.blocks._unallocated[lines.id])[-1]
            assert [loc[0] for loc in newest.locations] == [where], "a copy on a stopped peer"
            run_batches(ssc, 1)  # the batch runs on the executor that answers
            assert sink.results == [["a", "b", "c", "d"]]
        finally:
            os.kill(pid, signal.SIGCONT)
        # once the peer answers again (and the receiver has heard so), blocks get two copies
        deadline, n = time.monotonic() + 10, 4
        while True:
            n += 1
            _feed(inbox, [f"w{n}"])
            assert tracker.wait_for_received(n, 20)
            newest = list(tracker.blocks._unallocated[lines.id])[-1]
            if sorted(loc[0] for loc in newest.locations) == sorted([where, peer]):
                break
            assert time.monotonic() < deadline, "blocks never got a replica again"
            time.sleep(0.1)
    finally:
        ssc.stop(stopSparkContext=False)
