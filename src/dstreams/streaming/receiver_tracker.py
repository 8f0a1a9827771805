"""The driver side of receivers: where they run, and the metadata of the blocks they store.

:class:`ReceiverTracker` places each receiver on an executor (spreading them out, as Spark's
``ReceiverSchedulingPolicy`` does), sends it there through the backend, and supervises it from
afar: when its executor is lost it starts the receiver again on another one, under a new epoch.
It names a second executor as each receiver's replica, forwards rate limits (backpressure),
turns receiver messages into listener events, and before each batch flushes every receiver
(so everything stored before the batch time is in that batch) and allocates the blocks.

:class:`ReceivedBlockTracker` holds only metadata (:class:`~dstreams.streaming.blocks.BlockInfo`):
the blocks not yet in a batch, the blocks of each batch, and per stream the newest block
allocated so far. A block that arrives older than that (a late block of an incarnation that
was replaced) is refused, so its ``storeMany`` fails and the source keeps it. The data itself
stays on the executors (and in the write-ahead log): the driver is no funnel.

Threading: one event thread consumes ``backend.receiver_events``; the job generator calls
``allocate_blocks_to_batch``; everything shared is under the tracker's condition.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from dstreams.faults import kill_point as _kill_point
from dstreams.streaming.blocks import BlockInfo, ReceiverSettings
from dstreams.streaming.clock import Clock
from dstreams.streaming.listener import (
    ListenerBus,
    ReceiverInfo,
    StreamingListenerReceiverError,
    StreamingListenerReceiverStarted,
    StreamingListenerReceiverStopped,
)

__all__ = ["ReceivedBlockTracker", "ReceiverTracker"]

_log = logging.getLogger(__name__)

#: how long allocation waits for a receiver to flush its buffer (then the batch goes without)
FLUSH_TIMEOUT = 5.0


class ReceivedBlockTracker:
    """Blocks not yet in a batch, the blocks each batch got, and what was allocated (metadata)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._unallocated: dict[int, deque[BlockInfo]] = {}
        self._allocated: dict[int, dict[int, list[BlockInfo]]] = {}
        #: per stream: the newest block allocated to a batch (older ones are refused)
        self.allocated_upto: dict[int, tuple[int, int]] = {}
        self._latest: dict[int, BlockInfo] = {}
        self._received = 0

    def add_block(self, info: BlockInfo) -> bool:
        """Queue a block for the next batch; False for a late block that must be refused."""
        with self._cond:
            upto = self.allocated_upto.get(info.stream_id)
            if upto is not None and info.seq <= upto:
                return False
            self._unallocated.setdefault(info.stream_id, deque()).append(info)
            self._received += info.num_records
            latest = self._latest.get(info.stream_id)
            if latest is None or info.seq > latest.seq:
                self._latest[info.stream_id] = info
            self._cond.notify_all()
            return True

    def allocate(self, time_ms: int) -> dict[int, list[BlockInfo]]:
        """Give every unallocated block to batch ``time_ms``; return the allocation."""
        with self._cond:
            if time_ms in self._allocated:
                return self._allocated[time_ms]  # re-generated (recovery): the same plan
            batch = {
                sid: sorted(q, key=lambda b: b.seq) for sid, q in self._unallocated.items() if q
            }
            for q in self._unallocated.values():
                q.clear()
            for sid, blocks in batch.items():
                self.allocated_upto[sid] = max(
                    self.allocated_upto.get(sid, (-1, -1)), blocks[-1].seq
                )
            self._allocated[time_ms] = batch
            return batch

    def set_allocation(self, time_ms: int, batch: dict[int, list[BlockInfo]]) -> None:
        """Put back a recovered batch's allocation (from the metadata checkpoint)."""
        with self._cond:
            self._allocated[time_ms] = {sid: list(b) for sid, b in batch.items()}
            for sid, blocks in batch.items():
                if blocks:
                    self.allocated_upto[sid] = max(
                        self.allocated_upto.get(sid, (-1, -1)), blocks[-1].seq
                    )

    def allocations(self) -> dict[int, dict[int, list[BlockInfo]]]:
        """Every remembered batch's allocation (for the metadata checkpoint)."""
        with self._cond:
            return {t: {s: list(b) for s, b in a.items()} for t, a in self._allocated.items()}

    def blocks_of_batch(self, time_ms: int, stream_id: int) -> list[BlockInfo]:
        with self._cond:
            return list(self._allocated.get(time_ms, {}).get(stream_id, []))

    def cleanup_old_batches(self, threshold_ms: int, stream_id: int) -> list[BlockInfo]:
        """Forget the blocks ``stream_id`` got in batches at or before ``threshold_ms``."""
        removed: list[BlockInfo] = []
        with self._cond:
            for t in [t for t in self._allocated if t <= threshold_ms]:
                removed += self._allocated[t].pop(stream_id, [])
                if not self._allocated[t]:
                    del self._allocated[t]
        return removed

    def latest(self, stream_id: int) -> BlockInfo | None:
        with self._cond:
            return self._latest.get(stream_id)

    def note_latest(self, info: BlockInfo) -> None:
        """Remember ``info`` as the stream's newest block if it is (recovered from a log)."""
        with self._cond:
            latest = self._latest.get(info.stream_id)
            if latest is None or info.seq > latest.seq:
                self._latest[info.stream_id] = info

    def oldest_remembered(self, stream_id: int) -> tuple[int, int] | None:
        """The oldest block of ``stream_id`` still allocated to a remembered batch or waiting;
        every block before it has been forgotten (None: nothing allocated yet)."""
        with self._cond:
            seqs = [b.seq for a in self._allocated.values() for b in a.get(stream_id, [])]
            seqs += [b.seq for b in self._unallocated.get(stream_id, ())]
            if seqs:
                return min(seqs)
            upto = self.allocated_upto.get(stream_id)
            return None if upto is None else (upto[0], upto[1] + 1)

    def total_received(self) -> int:
        """Records in every block reported so far."""
        with self._cond:
            return self._received

    def is_unallocated_empty(self) -> bool:
        with self._cond:
            return not any(self._unallocated.values())

    def is_empty(self) -> bool:
        with self._cond:
            return not self._allocated and not any(self._unallocated.values())

    def clear(self) -> None:
        with self._cond:
            self._allocated.clear()
            self._unallocated.clear()


class _Placed:
    """One receiver and where it runs now."""

    def __init__(self, receiver: Any) -> None:
        self.receiver = receiver
        self.stream_id: int = receiver.streamId
        self.executor: str | None = None
        self.epoch = -1
        self.active = False
        self.wanted = True  # False once stopped: never started again
        self.last_error: tuple[str, str, int] = ("", "", -1)


class ReceiverTracker:
    """Starts, places, supervises and stops every receiver; owns the block tracker."""

    def __init__(
        self,
        clock: Clock,
        bus: ListenerBus,
        block_interval_ms: int,
        restart_delay_ms: int,
        rates: Any = None,
        wal_dir: Callable[[int], str | None] | None = None,
        replica_timeout_ms: int = 1000,
    ) -> None:
        from dstreams.streaming.ratecontrol import RateConfig

        self.clock, self.bus = clock, bus
        self.block_interval, self.restart_delay = block_interval_ms, restart_delay_ms
        self.replica_timeout_ms = replica_timeout_ms
        self.rates = rates or RateConfig()
        self._wal_dir = wal_dir or (lambda stream_id: None)
        self.blocks = ReceivedBlockTracker()
        self._backend: Any = None
        self._placed: dict[int, _Placed] = {}
        self._executors: dict[str, Any] = {}  # executor id -> address
        self._silent: set[str] = set()  # executors that stopped answering (they may resume)
        self._epochs = itertools.count(1)
        self._flushed: set[Any] = set()
        self._tokens = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._rates: dict[int, float] = {}
        self._min_epoch = 1  # epochs below this were used before a driver restart
        self._segments: dict[str, tuple[int, int]] = {}  # log segment -> newest block in it

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, backend: Any, receivers: list[Any], first_epoch: int = 1) -> None:
        first_epoch = max(first_epoch, self._min_epoch)
        """Send ``receivers`` to executors and start supervising them.

        Raises:
            SerializationError: a receiver cannot be shipped (it names the receiver).
        """
        self._backend = backend
        self._epochs = itertools.count(first_epoch)
        # events left from an earlier StreamingContext on this Context are history: the
        # snapshot taken after dropping them says which executors are alive now
        while True:
            try:
                backend.receiver_events.get_nowait()
            except queue.Empty:
                break
        self._executors = dict(backend.executor_addresses())
        for r in receivers:
            self._placed[r.streamId] = _Placed(r)
        with self._cond:  # before the event thread: it must find them placed already
            for placed in self._placed.values():
                self._launch(placed)
        self._thread = threading.Thread(target=self._loop, name="ReceiverTracker", daemon=True)
        self._thread.start()

    def next_epoch(self) -> int:
        """The epoch the next receiver start would get (above every epoch used so far)."""
        used = [p.epoch for p in self._placed.values()] + [self._min_epoch - 1]
        return max(used) + 1

    # -- metadata checkpoints -------------------------------------------------------------------
    def checkpoint_data(self) -> dict[str, Any]:
        """What a restarted driver needs: every remembered batch's blocks, and the epochs."""
        return {
            "allocations": self.blocks.allocations(),
            "allocated_upto": dict(self.blocks.allocated_upto),
            "next_epoch": self.next_epoch(),
            "latest": {
                sid: info.metadata
                for sid in list(self._placed)
                if (info := self.blocks.latest(sid)) is not None
            },
        }

    def restore(self, data: dict[str, Any], wal_dir: Callable[[int], str | None]) -> None:
        """Put a checkpoint's allocations back; recover unallocated blocks from the logs.

        A block allocated to a remembered batch is read from its write-ahead log when the batch
        runs again (the executors that held it are gone). One with no log is lost: its batch
        gets it as missing data, reported loudly, as Spark does for receivers without a log.
        A logged block newer than every allocated one (stored, acknowledged, not yet in a
        batch when the driver died) goes to the next batch.
        """
        if not data:
            return
        self._min_epoch = int(data.get("next_epoch", 1))
        upto: dict[int, tuple[int, int]] = {
            int(k): tuple(v)  # type: ignore[misc]
            for k, v in data.get("allocated_upto", {}).items()
        }
        lost = 0
        for t, batch in sorted(data.get("allocations", {}).items()):
            kept: dict[int, list[BlockInfo]] = {}
            for sid, blocks in batch.items():
                ok = [replace(b, locations=()) for b in blocks if b.wal is not None]
                lost += sum(b.num_records for b in blocks if b.wal is None)
                kept[sid] = ok
            self.blocks.set_allocation(t, kept)
        if lost:
            _log.error(
                "recovery: %d received records of batches that must run again are lost (no "
                "write-ahead log); enable dstreams.streaming.receiver.writeAheadLog.enable",
                lost,
            )
        self.blocks.allocated_upto.update(upto)
        for sid in {int(s) for s in data.get("latest", {})} | set(upto):
            directory = wal_dir(sid)
            if directory is None:
                continue
            self._recover_log(sid, directory, upto.get(sid))

    def _recover_log(self, stream_id: int, directory: str, upto: tuple[int, int] | None) -> None:
        import pickle

        from dstreams.streaming.wal import WriteAheadLog

        log = WriteAheadLog(directory)
        recovered = 0
        for handle, record in log.read_all():
            sid, seq, n, metadata, _ = pickle.loads(record)
            info = BlockInfo(sid, tuple(seq), n, (), handle, metadata)  # type: ignore[arg-type]
            # a receiver started after the checkpoint may have logged under a newer epoch
            self._min_epoch = max(self._min_epoch, info.seq[0] + 1)
            self._note_segment(info)
            self.blocks.note_latest(info)
            if upto is None or info.seq > upto:
                self.blocks.add_block(info)
                recovered += n
        if recovered:
            _log.warning(
                "recovered %d records of stream %d from its write-ahead log", recovered, stream_id
            )

    def _note_segment(self, info: BlockInfo) -> None:
        if info.wal is not None:
            seq = self._segments.get(info.wal.path)
            if seq is None or info.seq > seq:
                self._segments[info.wal.path] = info.seq

    def clean_write_ahead_logs(self) -> None:
        """Delete log segments whose every block belongs to a batch already forgotten.

        A writer only ever appends to its newest segment, so that one is kept.
        """
        if not self._segments:
            return
        import fsspec

        from dstreams.streaming.wal import segment_range

        by_writer: dict[str, list[str]] = {}
        for path in self._segments:
            by_writer.setdefault(path.rsplit("-", 1)[-1], []).append(path)
        newest = {
            max(paths, key=lambda p: segment_range(p) or (0, 0)) for paths in by_writer.values()
        }
        for path, seq in list(self._segments.items()):
            stream = _stream_of(path)
            floor = self.blocks.oldest_remembered(stream)
            if path in newest or floor is None or not seq < floor:
                continue
            try:
                fs, _, (p,) = fsspec.get_fs_token_paths(path)
                fs.rm(p)
            except (FileNotFoundError, OSError):
                pass
            del self._segments[path]

    def _choose(self, placed: _Placed) -> str | None:
        alive = sorted(self._executors)
        if not alive:
            return None
        wanted = placed.receiver.preferredLocation()
        if wanted in self._executors:
            return str(wanted)
        load = {e: 0 for e in alive}
        for p in self._placed.values():
            if p.executor in load and p is not placed:
                load[p.executor] += 1
        return min(alive, key=lambda e: (load[e], e))

    def _replica(self, executor: str) -> Any:
        """The peer that keeps a copy of ``executor``'s blocks: a live one that answers.

        An executor that stopped answering is never one: every store would wait on it (up to
        ``dstreams.streaming.receiver.replicaTimeout``). With no other, blocks are kept with
        one copy until it answers again, and ingestion goes on.
        """
        answering = sorted(e for e in self._executors if e != executor and e not in self._silent)
        return (answering[0], self._executors[answering[0]]) if answering else None

    def _repick_replicas(self) -> None:
        """Tell every running receiver its (possibly new) replica (caller holds the lock)."""
        for p in self._placed.values():
            if p.executor is not None and not self._stopping:
                replica = self._replica(p.executor)
                self._backend.receiver_command(p.executor, p.stream_id, ("peer", replica))

    def _launch(self, placed: _Placed) -> None:
        """Start ``placed`` on the best executor (caller holds the condition)."""
        executor = self._choose(placed)
        if executor is None:
            placed.executor = None
            return  # started once an executor joins
        placed.executor = executor
        placed.epoch = next(self._epochs)
        latest = self.blocks.latest(placed.stream_id)
        rate = self._rates.get(placed.stream_id, self.rates.starting_rate())
        settings = ReceiverSettings(
            stream_id=placed.stream_id,
            epoch=placed.epoch,
            block_interval_ms=self.block_interval,
            rate=rate,
            wal_dir=self._wal_dir(placed.stream_id),
            replica=self._replica(executor),
            replica_timeout_ms=self.replica_timeout_ms,
            last_metadata=latest.metadata if latest is not None else None,
            restart_delay_ms=self.restart_delay,
        )
        self._backend.start_receiver(executor, placed.stream_id, placed.receiver, settings)

    def stop_receivers(self, timeout: float = 1.0) -> None:
        """Stop every receiver (their last blocks are pushed first); wait at most ``timeout``."""
        with self._cond:
            running = [p for p in self._placed.values() if p.executor is not None]
            for p in running:
                self._backend.receiver_command(p.executor, p.stream_id, ("stop",))
            self._cond.wait_for(lambda: not any(p.active for p in running), timeout)
            for p in self._placed.values():
                p.wanted = False
                p.executor = None

    def stop(self, timeout: float = 1.0) -> None:
        """Stop every receiver and the tracker, and drop the blocks' metadata."""
        if self._backend is not None:
            self.stop_receivers(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._backend is not None:
            self._backend.receiver_events.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.blocks.clear()

    # -- per batch ----------------------------------------------------------------------------
    def flush(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Have every running receiver push its buffered records now; wait for it."""
        if self._backend is None:
            return
        with self._cond:
            waiting = set()
            for p in self._placed.values():
                if p.executor is not None and p.active:
                    token = (p.stream_id, next(self._tokens))
                    waiting.add(token)
                    self._backend.receiver_command(p.executor, p.stream_id, ("flush", token))
            ok = self._cond.wait_for(lambda: waiting <= self._flushed or self._stopping, timeout)
            self._flushed -= waiting
        if not ok:
            _log.warning("a receiver did not flush within %.0fs; its data goes later", timeout)

    def allocate_blocks_to_batch(self, time_ms: int) -> dict[int, list[BlockInfo]]:
        """Flush every receiver, then give all pending blocks to batch ``time_ms``."""
        self.flush()
        return self.blocks.allocate(time_ms)

    def blocks_of_batch(self, time_ms: int, stream_id: int) -> list[BlockInfo]:
        return self.blocks.blocks_of_batch(time_ms, stream_id)

    def cleanup_old_batches(self, threshold_ms: int, stream_id: int) -> None:
        """Forget the blocks of batches at or before ``threshold_ms``; free them on executors."""
        removed = self.blocks.cleanup_old_batches(threshold_ms, stream_id)
        if removed and self._backend is not None:
            self._backend.remove_input_blocks(stream_id, max(b.seq for b in removed))

    def wait_for_received(self, n: int, timeout: float = 10.0) -> bool:
        """Flush until at least ``n`` records were reported (for tests and graceful stops)."""
        from dstreams.streaming._util import Deadline

        deadline = Deadline(timeout)
        while self.blocks.total_received() < n:
            if deadline.left(0) <= 0:
                return False
            self.flush(min(deadline.left(), FLUSH_TIMEOUT))
            if self.blocks.total_received() >= n:
                return True
            with self.blocks._cond:
                self.blocks._cond.wait(0.02)
        return True

    def total_received(self) -> int:
        return self.blocks.total_received()

    # -- rates --------------------------------------------------------------------------------
    def update_rate(self, stream_id: int, rate: float) -> None:
        """Throttle the receiver of ``stream_id`` to ``rate`` records/s (backpressure)."""
        rate = self.rates.clamp(rate)
        with self._cond:
            self._rates[stream_id] = rate
            p = self._placed.get(stream_id)
            if p is not None and p.executor is not None:
                self._backend.receiver_command(p.executor, stream_id, ("rate", rate))

    def rate_of(self, stream_id: int) -> float | None:
        with self._cond:
            return self._rates.get(stream_id, self.rates.starting_rate())

    def receiver_info(self, stream_id: int) -> ReceiverInfo:
        with self._cond:
            p = self._placed[stream_id]
            return self._info(p)

    def _info(self, p: _Placed) -> ReceiverInfo:
        msg, err, when = p.last_error
        where = p.executor or "nowhere"
        return ReceiverInfo(
            p.stream_id,
            p.receiver.name(),
            p.active,
            location=where,
            executorId=where,
            lastErrorMessage=msg,
            lastError=err,
            lastErrorTime=when,
        )

    # -- events from executors ------------------------------------------------------------------
    def _loop(self) -> None:
        from dstreams.scheduler.events import (
            ExecutorAdded,
            ExecutorLost,
            ExecutorResponsive,
            ExecutorUnresponsive,
            ReceiverMessage,
        )

        events = self._backend.receiver_events
        while True:
            ev = events.get()
            if ev is None:
                if self._stopping:
                    return
                continue
            try:
                if isinstance(ev, ReceiverMessage):
                    self._on_message(ev)
                elif isinstance(ev, ExecutorAdded):
                    self._on_executor_added(ev.executor_id, ev.address)
                elif isinstance(ev, ExecutorLost):
                    self._on_executor_lost(ev.executor_id)
                elif isinstance(ev, (ExecutorUnresponsive, ExecutorResponsive)):
                    with self._cond:
                        if isinstance(ev, ExecutorUnresponsive):
                            self._silent.add(ev.executor_id)
                        else:
                            self._silent.discard(ev.executor_id)
                        self._repick_replicas()
            except Exception:  # noqa: BLE001 - the tracker must keep running
                _log.exception("receiver tracker failed on %r", ev)

    def _on_message(self, ev: Any) -> None:
        kind, stream_id, body = ev.kind, ev.stream_id, ev.body
        with self._cond:
            p = self._placed.get(stream_id)
            current = p is not None and p.executor == ev.executor_id
            if kind == "block":
                info, reliable = body
                _kill_point("receive")
                ok = self.blocks.add_block(info)
                self._note_segment(info)
                if not ok:
                    _log.warning("refused late block %s of stream %s", info.seq, stream_id)
                if reliable:
                    self._backend.receiver_command(ev.executor_id, stream_id, ("ack", info.seq, ok))
            elif kind == "flushed":
                self._flushed.add(body)
                self._cond.notify_all()
            elif kind == "started" and current and p is not None:
                p.active = True
                self._cond.notify_all()
                self.bus.post(StreamingListenerReceiverStarted(self._info(p)))
            elif kind == "error" and p is not None:
                p.last_error = body
                self.bus.post(StreamingListenerReceiverError(self._info(p)))
            elif kind == "stopped" and p is not None and (current or p.executor is None):
                p.active = False
                self._cond.notify_all()
                self.bus.post(StreamingListenerReceiverStopped(self._info(p)))

    def _on_executor_added(self, executor_id: str, address: Any) -> None:
        with self._cond:
            self._executors[executor_id] = address
            if self._stopping:
                return
            for p in self._placed.values():
                if p.executor is None and p.wanted:
                    self._launch(p)  # it was waiting for an executor
                elif p.executor is not None:
                    replica = self._replica(p.executor)
                    self._backend.receiver_command(p.executor, p.stream_id, ("peer", replica))

    def _on_executor_lost(self, executor_id: str) -> None:
        with self._cond:
            self._executors.pop(executor_id, None)
            self._silent.discard(executor_id)
            for p in self._placed.values():
                if p.executor == executor_id and p.wanted and not self._stopping:
                    p.active = False
                    p.last_error = (
                        f"executor {executor_id} was lost; restarting the receiver elsewhere",
                        "",
                        self.clock.getTimeMillis(),
                    )
                    self.bus.post(StreamingListenerReceiverError(self._info(p)))
                    self._launch(p)
                elif p.executor is not None and not self._stopping:
                    replica = self._replica(p.executor)
                    self._backend.receiver_command(p.executor, p.stream_id, ("peer", replica))

    def placements(self) -> dict[int, str | None]:
        """Stream id -> the executor its receiver runs on."""
        with self._cond:
            return {sid: p.executor for sid, p in self._placed.items()}

    def executors_with_receivers(self) -> set[str]:
        with self._cond:
            return {p.executor for p in self._placed.values() if p.executor is not None}


def _stream_of(path: str) -> int:
    """The stream id of a log segment path (``.../receivedData/<id>/log-...``)."""
    try:
        return int(path.rstrip("/").rsplit("/", 2)[-2])
    except (ValueError, IndexError):
        return -1
