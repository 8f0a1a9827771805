"""Receivers and received blocks: how pushed data becomes a batch's partitions.

Flow: a :class:`Receiver` ``store()``s records into its :class:`BlockGenerator`,
which cuts the buffer into a block every block interval
(``dstreams.streaming.blockInterval``, default 200 ms, read on the injected clock)
and hands it to the :class:`ReceivedBlockTracker`.  At each batch time the job
generator calls :meth:`ReceiverTracker.allocate_blocks_to_batch`, which first
flushes every generator (so everything stored before the batch time is in it)
and then assigns all unallocated blocks to that batch; the receiver's input
stream turns them into an RDD with one partition per block.

:class:`ReceiverTracker` also supervises receivers: a receiver that raises or
calls ``restart()`` is stopped, reported to the listeners (``onReceiverError``)
and started again after ``dstreams.streaming.receiverRestartDelay`` ms.

Deliberate difference from Spark: receivers run as threads in the driver process,
not as long-running tasks on executors, and blocks live in driver memory until
their batch is cleaned up.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import deque
from collections.abc import Iterable
from typing import Any

from dstreams.streaming.clock import Clock
from dstreams.streaming.listener import (
    ListenerBus,
    ReceiverInfo,
    StreamingListenerReceiverError,
    StreamingListenerReceiverStarted,
    StreamingListenerReceiverStopped,
)
from dstreams.streaming.ratecontrol import RateConfig, RateLimiter

__all__ = ["BlockGenerator", "ReceivedBlockTracker", "Receiver", "ReceiverTracker"]

_log = logging.getLogger(__name__)


class Receiver:
    """Base class of receivers: ``onStart`` starts reading (in its own thread), ``onStop`` ends it.

    Contract: ``onStart`` must not block; it starts whatever thread reads the data
    and returns.  That thread calls ``store``/``storeMany`` for data, ``restart``
    when the source breaks, and should exit once ``isStopped()`` is true.
    """

    def __init__(self, storageLevel: Any = None) -> None:
        self.storageLevel = storageLevel
        self.streamId: int = -1
        self._supervisor: _Supervisor | None = None

    def onStart(self) -> None:
        """Start receiving (non-blocking)."""
        raise NotImplementedError

    def onStop(self) -> None:
        """Stop receiving and release resources."""

    def name(self) -> str:
        """Return the receiver's name, shown in listener events."""
        return type(self).__name__

    def store(self, item: Any) -> None:
        """Store one record."""
        assert self._supervisor is not None, "receiver is not started"
        self._supervisor.generator.add_many((item,))

    def storeMany(self, items: Iterable[Any]) -> None:
        """Store many records at once (cheaper than ``store`` in a loop)."""
        assert self._supervisor is not None, "receiver is not started"
        self._supervisor.generator.add_many(items)

    def isStopped(self) -> bool:
        """Return True once the receiver was asked to stop (or is restarting)."""
        sup = self._supervisor
        return sup is None or sup.stopped_or_restarting()

    def reportError(self, message: str, error: BaseException | None = None) -> None:
        """Report an error to the listeners without restarting."""
        if self._supervisor is not None:
            self._supervisor.report_error(message, error)

    def restart(self, message: str, error: BaseException | None = None) -> None:
        """Report ``message`` and restart the receiver after the restart delay."""
        if self._supervisor is not None:
            self._supervisor.restart(message, error)


class BlockGenerator:
    """Buffers a receiver's records and cuts them into blocks on the clock."""

    def __init__(
        self,
        stream_id: int,
        clock: Clock,
        block_interval_ms: int,
        tracker: ReceivedBlockTracker,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.stream_id, self.clock, self.interval = stream_id, clock, block_interval_ms
        self.tracker = tracker
        self.limiter = limiter if limiter is not None else RateLimiter(clock)
        self._buffer: list[Any] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_many(self, items: Iterable[Any]) -> None:
        """Append records to the current block, waiting first for the rate limit."""
        if self.limiter.rate is not None:
            items = items if isinstance(items, (list, tuple)) else list(items)
            if not self.limiter.acquire(len(items), self._stop):
                return  # stopped while throttled: the records stay in the source
        with self._lock:
            before = len(self._buffer)
            self._buffer.extend(items)
            added = len(self._buffer) - before
        self.tracker.note_received(added)

    def cut(self) -> None:
        """Turn the buffered records (if any) into a block now."""
        with self._lock:
            block, self._buffer = self._buffer, []
        if block:
            self.tracker.add_block(self.stream_id, block)

    def start(self) -> None:
        """Start the block timer thread."""
        self._thread = threading.Thread(
            target=self._run, name=f"block-generator-{self.stream_id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        next_time = (self.clock.getTimeMillis() // self.interval + 1) * self.interval
        while not self._stop.is_set():
            self.clock.waitTillTime(next_time, self._stop)
            if self._stop.is_set():
                break
            self.cut()
            now = self.clock.getTimeMillis()
            next_time = max(next_time + self.interval, (now // self.interval + 1) * self.interval)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the timer and flush the last block."""
        self._stop.set()
        wake = getattr(self.clock, "wake", None)
        if wake is not None:
            wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self.cut()


class ReceivedBlockTracker:
    """Blocks not yet in a batch, and the blocks each batch got (per stream)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._unallocated: dict[int, deque[list[Any]]] = {}
        self._allocated: dict[int, dict[int, list[list[Any]]]] = {}
        self._received = 0

    def note_received(self, n: int) -> None:
        """Count ``n`` more stored records (for :meth:`wait_for_received`)."""
        with self._lock:
            self._received += n
            self._lock.notify_all()

    def add_block(self, stream_id: int, block: list[Any]) -> None:
        """Queue a block of ``stream_id`` for the next batch."""
        with self._lock:
            self._unallocated.setdefault(stream_id, deque()).append(block)

    def allocate(self, time_ms: int) -> None:
        """Give every unallocated block to batch ``time_ms``."""
        with self._lock:
            batch = {sid: list(q) for sid, q in self._unallocated.items() if q}
            for q in self._unallocated.values():
                q.clear()
            self._allocated[time_ms] = batch

    def blocks_of_batch(self, time_ms: int, stream_id: int) -> list[list[Any]]:
        """Return the blocks of ``stream_id`` allocated to batch ``time_ms``."""
        with self._lock:
            return list(self._allocated.get(time_ms, {}).get(stream_id, []))

    def cleanup_old_batches(self, threshold_ms: int, stream_id: int | None = None) -> None:
        """Forget the blocks of batches at or before ``threshold_ms``."""
        with self._lock:
            for t in [t for t in self._allocated if t <= threshold_ms]:
                if stream_id is None:
                    del self._allocated[t]
                else:
                    self._allocated[t].pop(stream_id, None)
                    if not self._allocated[t]:
                        del self._allocated[t]

    def total_received(self) -> int:
        """Return how many records have been stored so far."""
        with self._lock:
            return self._received

    def wait_for_received(self, n: int, timeout: float = 10.0) -> bool:
        """Block until at least ``n`` records have been stored; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._received >= n, timeout)

    def is_unallocated_empty(self) -> bool:
        """Return True when every stored block has been given to a batch."""
        with self._lock:
            return not any(self._unallocated.values())

    def is_empty(self) -> bool:
        """Return True when no block is held."""
        with self._lock:
            return not self._allocated and not any(self._unallocated.values())

    def clear(self) -> None:
        """Drop every block."""
        with self._lock:
            self._allocated.clear()
            self._unallocated.clear()


class _Supervisor:
    """Runs one receiver: start, restart on failure, report to listeners, stop."""

    def __init__(
        self,
        receiver: Receiver,
        generator: BlockGenerator,
        bus: ListenerBus,
        clock: Clock,
        restart_delay_ms: int,
    ) -> None:
        self.receiver, self.generator, self.bus = receiver, generator, bus
        self.clock, self.restart_delay = clock, restart_delay_ms / 1000.0
        self._stopped = threading.Event()
        self._restarting = threading.Event()
        self._lock = threading.Lock()
        self.last_error: tuple[str, str, int] = ("", "", -1)
        receiver._supervisor = self

    def info(self, active: bool) -> ReceiverInfo:
        msg, err, when = self.last_error
        return ReceiverInfo(
            self.receiver.streamId,
            self.receiver.name(),
            active,
            lastErrorMessage=msg,
            lastError=err,
            lastErrorTime=when,
        )

    def stopped_or_restarting(self) -> bool:
        return self._stopped.is_set() or self._restarting.is_set()

    def start(self) -> None:
        self.generator.start()
        self._start_receiver()

    def _start_receiver(self) -> None:
        try:
            self.receiver.onStart()
        except Exception as e:  # noqa: BLE001 - any receiver failure is reported and retried
            self.restart(f"Error starting receiver {self.receiver.streamId}", e)
            return
        self.bus.post(StreamingListenerReceiverStarted(self.info(True)))

    def report_error(self, message: str, error: BaseException | None) -> None:
        text = "".join(traceback.format_exception(error)) if error is not None else ""
        full = f"{message}: {error!r}" if error is not None else message
        self.last_error = (full, text, self.clock.getTimeMillis())
        _log.warning("receiver %s: %s", self.receiver.streamId, full)
        self.bus.post(StreamingListenerReceiverError(self.info(True)))

    def restart(self, message: str, error: BaseException | None = None) -> None:
        with self._lock:
            if self._stopped.is_set() or self._restarting.is_set():
                return
            self._restarting.set()
        self.report_error(message, error)
        threading.Thread(
            target=self._do_restart, name=f"receiver-restart-{self.receiver.streamId}", daemon=True
        ).start()

    def _do_restart(self) -> None:
        self._call_on_stop()
        if self._stopped.wait(self.restart_delay):
            return
        self._restarting.clear()
        self._start_receiver()

    def _call_on_stop(self) -> None:
        try:
            self.receiver.onStop()
        except Exception:  # noqa: BLE001
            _log.exception("receiver %s raised in onStop", self.receiver.streamId)

    def stop(self, timeout: float = 1.0) -> None:
        self._stopped.set()
        self._call_on_stop()
        self.generator.stop(timeout)
        self.bus.post(StreamingListenerReceiverStopped(self.info(False)))


class ReceiverTracker:
    """Starts, supervises and stops every receiver; owns the block tracker."""

    def __init__(
        self,
        clock: Clock,
        bus: ListenerBus,
        block_interval_ms: int,
        restart_delay_ms: int,
        rates: RateConfig | None = None,
    ) -> None:
        self.clock, self.bus = clock, bus
        self.block_interval, self.restart_delay = block_interval_ms, restart_delay_ms
        self.rates = rates or RateConfig()
        self.blocks = ReceivedBlockTracker()
        self._supervisors: list[_Supervisor] = []

    def start(self, receivers: list[Receiver]) -> None:
        """Start ``receivers`` (each with its own block generator and rate limiter)."""
        for r in receivers:
            limiter = RateLimiter(self.clock, self.rates.starting_rate())
            gen = BlockGenerator(r.streamId, self.clock, self.block_interval, self.blocks, limiter)
            sup = _Supervisor(r, gen, self.bus, self.clock, self.restart_delay)
            self._supervisors.append(sup)
            sup.start()

    def update_rate(self, stream_id: int, rate: float) -> None:
        """Throttle the receiver of ``stream_id`` to ``rate`` records/s (backpressure)."""
        for sup in self._supervisors:
            if sup.receiver.streamId == stream_id:
                sup.generator.limiter.set_rate(self.rates.clamp(rate))

    def rate_of(self, stream_id: int) -> float | None:
        """The current limit of the receiver of ``stream_id`` (None: unlimited)."""
        for sup in self._supervisors:
            if sup.receiver.streamId == stream_id:
                return sup.generator.limiter.rate
        return None

    def allocate_blocks_to_batch(self, time_ms: int) -> None:
        """Flush every block generator, then give all pending blocks to batch ``time_ms``."""
        for sup in self._supervisors:
            sup.generator.cut()
        self.blocks.allocate(time_ms)

    def blocks_of_batch(self, time_ms: int, stream_id: int) -> list[list[Any]]:
        """Return the blocks of ``stream_id`` in batch ``time_ms``."""
        return self.blocks.blocks_of_batch(time_ms, stream_id)

    def cleanup_old_batches(self, threshold_ms: int, stream_id: int | None = None) -> None:
        """Forget blocks of batches at or before ``threshold_ms``."""
        self.blocks.cleanup_old_batches(threshold_ms, stream_id)

    def stop_receivers(self, timeout: float = 1.0) -> None:
        """Stop every receiver, keeping the blocks they stored (graceful stop)."""
        for sup in self._supervisors:
            sup.stop(timeout / max(1, len(self._supervisors)))
        self._supervisors.clear()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop every receiver and drop the blocks."""
        self.stop_receivers(timeout)
        self.blocks.clear()
