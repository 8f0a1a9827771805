"""The executor side of receivers: run them, cut blocks, make blocks durable, report them.

An executor process has one :class:`ReceiverHost`. The driver's receiver tracker sends it
commands (``start``, ``stop``, ``rate``, ``flush``, ``peer``, ``ack``); it answers with
messages (``started``, ``error``, ``stopped``, ``block``, ``flushed``) through the ``send``
callable the executor gives it. Commands run on the host's own thread, except ``ack``, which
only wakes a waiting ``storeMany`` (so a flush never waits behind a store that waits for its
acknowledgement).

Each running receiver has a supervisor (restarts after failures, reports errors) and a
:class:`BlockGenerator`: records from ``store``/``storeBuffered`` are buffered and cut into a
block every block interval, on ``flush`` (the driver flushes every receiver before it gives a
batch its blocks) and at stop. Pushing a block, under one lock so blocks are reported in
sequence order:

1. store it in this executor's block store (memory, then disk);
2. replicate it to the peer executor the driver named (``MEMORY_AND_DISK_SER_2`` semantics);
3. with a write-ahead log, append it there;
4. report a :class:`~dstreams.streaming.blocks.BlockInfo` to the driver; ``storeMany`` also
   waits for the driver's acknowledgement.

A receiver's thread is a thread of the executor process: it does not take a task slot, but it
shares the process's interpreter lock with the task running there.
"""

from __future__ import annotations

import logging
import pickle
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from dstreams.errors import DStreamsError
from dstreams.streaming.blocks import BlockInfo, ReceiverSettings, block_key
from dstreams.streaming.clock import Clock
from dstreams.streaming.ratecontrol import RateLimiter

__all__ = ["BlockGenerator", "ReceiverHost"]

_log = logging.getLogger(__name__)

#: how long storeMany waits for the driver to accept a block (Spark's blockStoreTimeout)
ACK_TIMEOUT = 30.0
#: seconds before a replica that timed out is tried again (unless the driver names one)
REPLICA_RETRY_S = 10.0


class BlockGenerator:
    """Buffers one receiver's records and pushes them as blocks (see the module docstring)."""

    def __init__(
        self,
        settings: ReceiverSettings,
        clock: Clock,
        push: Callable[[list[Any], Any, bool], BlockInfo | None],
    ) -> None:
        self.settings, self.clock, self._push = settings, clock, push
        self.limiter = RateLimiter(clock, settings.rate)
        self._buffer: list[Any] = []
        self._lock = threading.Lock()
        self.push_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stored = 0

    def add(self, items: Iterable[Any]) -> None:
        items = items if isinstance(items, (list, tuple)) else list(items)
        if self.limiter.rate is None:
            with self._lock:
                self._buffer.extend(items)
                self.stored += len(items)
            return
        i = 0
        while i < len(items):  # a burst at a time: blocks fill at the rate, as it changes
            granted = self.limiter.acquire_some(len(items) - i, self._stop)
            if granted == 0:
                return  # stopped while throttled
            with self._lock:
                self._buffer.extend(items[i : i + granted])
                self.stored += granted
            i += granted

    def store_block(self, records: list[Any], metadata: Any) -> BlockInfo | None:
        if self.limiter.rate is not None and not self.limiter.acquire(len(records), self._stop):
            raise DStreamsError("the receiver was stopped while its store was throttled")
        with self.push_lock:
            self.cut_locked()  # what was buffered before goes first, in order
            info = self._push(records, metadata, True)
            self.stored += len(records)
            return info

    def cut(self) -> None:
        """Push the buffered records (if any) as a block now."""
        with self.push_lock:
            self.cut_locked()

    def cut_locked(self) -> None:
        with self._lock:
            block, self._buffer = self._buffer, []
        if block:
            self._push(block, None, False)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"block-generator-{self.settings.stream_id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        interval = self.settings.block_interval_ms
        next_time = (self.clock.getTimeMillis() // interval + 1) * interval
        while not self._stop.is_set():
            self.clock.waitTillTime(next_time, self._stop)
            if self._stop.is_set():
                break
            try:
                self.cut()
            except Exception:  # noqa: BLE001 - a failed push is reported by the pusher
                _log.exception("receiver %s could not push a block", self.settings.stream_id)
            now = self.clock.getTimeMillis()
            next_time = max(next_time + interval, (now // interval + 1) * interval)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the timer and push the last block."""
        self._stop.set()
        wake = getattr(self.clock, "wake", None)
        if wake is not None:
            wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.cut()


class _Supervisor:
    """Runs one receiver: start, restart after failures, report, stop. Its ``_host``."""

    def __init__(self, host: ReceiverHost, receiver: Any, settings: ReceiverSettings) -> None:
        self.host, self.receiver, self.settings = host, receiver, settings
        self.stream_id = settings.stream_id
        self.generator = BlockGenerator(settings, host.clock, self._push)
        self.last_metadata = settings.last_metadata
        self._n = 0
        self._wal: Any = None
        self._stopped = threading.Event()
        self._restarting = threading.Event()
        self._lock = threading.Lock()
        self._acks: dict[tuple[int, int], tuple[threading.Event, list[bool]]] = {}
        self._client = host.new_client()  # replicas: this receiver's own connections
        #: a replica that timed out, and when to try it again
        self._benched: tuple[Any, float] | None = None
        receiver.streamId = self.stream_id
        receiver._host = self

    # -- called by the receiver -----------------------------------------------------------------
    def buffer(self, items: Iterable[Any]) -> None:
        self.generator.add(items)

    def store_block(self, records: list[Any], metadata: Any) -> None:
        self.generator.store_block(records, metadata)

    def stopped_or_restarting(self) -> bool:
        return self._stopped.is_set() or self._restarting.is_set()

    def report_error(self, message: str, error: BaseException | None) -> None:
        text = "".join(traceback.format_exception(error)) if error is not None else ""
        full = f"{message}: {error!r}" if error is not None else message
        _log.warning("receiver %s: %s", self.stream_id, full)
        self.host.send(self.stream_id, "error", (full, text, self.host.clock.getTimeMillis()))

    def restart(self, message: str, error: BaseException | None = None) -> None:
        with self._lock:
            if self._stopped.is_set() or self._restarting.is_set():
                return
            self._restarting.set()
        self.report_error(message, error)
        threading.Thread(
            target=self._do_restart, name=f"receiver-restart-{self.stream_id}", daemon=True
        ).start()

    def stop_for_good(self, message: str, error: BaseException | None) -> None:
        self.report_error(message, error)
        threading.Thread(target=self.stop, daemon=True).start()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.settings.wal_dir:
            from dstreams.streaming.wal import WriteAheadLog

            self._wal = WriteAheadLog(self.settings.wal_dir, self.settings.wal_rolling_ms)
        self.generator.start()
        self._start_receiver()

    def _start_receiver(self) -> None:
        try:
            self.receiver.onStart()
        except Exception as e:  # noqa: BLE001 - any receiver failure is reported and retried
            self.restart(f"Error starting receiver {self.stream_id}", e)
            return
        self.host.send(self.stream_id, "started", None)

    def _do_restart(self) -> None:
        self._call_on_stop()
        if self._stopped.wait(self.settings.restart_delay_ms / 1000.0):
            return
        self._restarting.clear()
        self._start_receiver()

    def _call_on_stop(self) -> None:
        try:
            self.receiver.onStop()
        except Exception:  # noqa: BLE001
            _log.exception("receiver %s raised in onStop", self.stream_id)

    def stop(self, timeout: float = 1.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._call_on_stop()
        try:
            self.generator.stop(timeout)
        finally:
            if self._wal is not None:
                self._wal.close()
            for event, _ in list(self._acks.values()):
                event.set()  # a store still waiting: it fails (not acknowledged)
            self.host.send(self.stream_id, "stopped", None)

    # -- pushing blocks (under the generator's push lock) --------------------------------------
    def _push(self, records: list[Any], metadata: Any, reliable: bool) -> BlockInfo | None:
        seq = (self.settings.epoch, self._n)
        self._n += 1
        payload = pickle.dumps(records, 5)
        key = block_key(self.stream_id, seq)
        host = self.host
        locations: list[Any] = []
        if host.store.put_cached(key, payload, True, True):
            locations.append((host.executor_id, host.address))
        peer = self.settings.replica
        benched = self._benched
        if peer is None and benched is not None and time.monotonic() >= benched[1]:
            peer, self._benched = benched[0], None  # try the slow peer again
            self.set_replica(peer)
        if peer is not None and self._replicate(peer, key, payload):
            locations.append(peer)
        handle = None
        if self._wal is not None:
            record = pickle.dumps((self.stream_id, seq, len(records), metadata, payload), 5)
            handle = self._wal.write(record, host.clock.getTimeMillis())
        info = BlockInfo(self.stream_id, seq, len(records), tuple(locations), handle, metadata)
        if not locations and handle is None:
            raise DStreamsError(
                f"receiver {self.stream_id} could not keep block {seq} anywhere (the block store "
                "is full and there is no write-ahead log)"
            )
        ack: tuple[threading.Event, list[bool]] | None = None
        if reliable:
            ack = (threading.Event(), [])
            self._acks[seq] = ack
        host.send(self.stream_id, "block", (info, reliable))
        if metadata is not None:
            self.last_metadata = metadata
        if ack is None:
            return info
        try:
            if not ack[0].wait(ACK_TIMEOUT) or not ack[1] or not ack[1][0]:
                raise DStreamsError(
                    f"the driver did not accept block {seq} of stream {self.stream_id}: it is "
                    "not durable, so the source must not be acknowledged"
                )
        finally:
            self._acks.pop(seq, None)
        return info

    def set_replica(self, peer: Any) -> None:
        """Replicate to ``peer`` from now on (None: keep one copy)."""
        if peer is not None:
            self._benched = None
        self.settings = _with(self.settings, replica=peer)
        self.generator.settings = self.settings

    def _replicate(self, peer: Any, key: Any, payload: bytes) -> bool:
        """Put a copy of the block on ``peer``; False if it failed or took too long.

        The put runs in a helper thread so that a peer that stopped answering (a stopped
        process does not read its socket) holds this receiver for at most
        ``replica_timeout_ms``; the connection it is stuck on is abandoned with it.
        """
        done, failure = threading.Event(), []
        client = self._client

        def put() -> None:
            try:
                client.put(peer[1], [(key, payload)])
            except BaseException as e:  # noqa: BLE001 - reported below
                failure.append(e)
            finally:
                done.set()

        threading.Thread(target=put, name=f"replicate-{self.stream_id}", daemon=True).start()
        if not done.wait(self.settings.replica_timeout_ms / 1000.0):
            self._client = self.host.new_client()  # the old one is stuck in the put
            if self.settings.replica == peer:
                # one stall per stopped peer, not one per block: not again until the driver
                # names a replica (when this one answers again, or another) or, for a peer
                # that was only slow, until REPLICA_RETRY_S have passed
                self.set_replica(None)
                self._benched = (peer, time.monotonic() + REPLICA_RETRY_S)
            _log.warning(
                "receiver %s: replica %s did not take block %s within %d ms; it is kept with "
                "one copy, and blocks are not replicated until the driver names a replica",
                self.stream_id,
                peer[0],
                key,
                self.settings.replica_timeout_ms,
            )
            return False
        if failure:
            _log.warning(
                "receiver %s: replica %s unavailable: %s", self.stream_id, peer[0], failure[0]
            )
            return False
        return True

    def acknowledged(self, seq: tuple[int, int], ok: bool) -> None:
        ack = self._acks.get(seq)
        if ack is not None:
            ack[1].append(ok)
            ack[0].set()


class ReceiverHost:
    """The receivers running in one executor (see the module docstring)."""

    def __init__(
        self,
        executor_id: str,
        address: Any,
        store: Any,
        new_client: Callable[[], Any],
        send: Callable[[tuple[Any, ...]], None],
        clock: Clock,
    ) -> None:
        self.executor_id, self.address = executor_id, address
        #: makes a block client (one per receiver: clients are not thread-safe)
        self.new_client = new_client
        self.store, self.clock = store, clock
        self._send = send
        self._supervisors: dict[int, _Supervisor] = {}
        self._commands: queue.SimpleQueue[Any] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="receiver-host", daemon=True).start()

    def send(self, stream_id: int, kind: str, body: Any) -> None:
        self._send(("receiver", stream_id, kind, body))

    def handle(self, stream_id: int, command: tuple[Any, ...]) -> None:
        """Accept a driver command (from the executor's reader thread: never blocks)."""
        if command[0] in ("ack", "peer"):
            # applied at once: a new replica must not wait behind a flush that is itself
            # waiting on the old one (a stopped peer)
            sup = self._supervisors.get(stream_id)
            if sup is None:
                return
            if command[0] == "ack":
                sup.acknowledged(command[1], command[2])
            else:
                sup.set_replica(command[1])
            return
        self._commands.put((stream_id, command))

    def _loop(self) -> None:
        while True:
            stream_id, command = self._commands.get()
            try:
                self._apply(stream_id, command)
            except Exception as e:  # noqa: BLE001 - reported to the driver, never fatal here
                _log.exception("receiver command %s failed", command[0])
                self.send(stream_id, "error", (f"{command[0]} failed: {e!r}", "", -1))

    def _apply(self, stream_id: int, command: tuple[Any, ...]) -> None:
        kind = command[0]
        sup = self._supervisors.get(stream_id)
        if kind == "start":
            settings, payload = command[1], command[2]
            if sup is not None:
                sup.stop()
            receiver = pickle.loads(payload) if isinstance(payload, bytes) else payload
            sup = _Supervisor(self, receiver, settings)
            self._supervisors[stream_id] = sup
            sup.start()
        elif sup is None:
            if kind == "flush":
                self.send(stream_id, "flushed", command[1])
            return
        elif kind == "stop":
            del self._supervisors[stream_id]
            sup.stop()
        elif kind == "rate":
            sup.generator.limiter.set_rate(command[1])
        elif kind == "flush":
            sup.generator.cut()
            self.send(stream_id, "flushed", command[1])
        else:
            raise ValueError(f"unknown receiver command {kind!r}")

    def stop_all(self, driver_gone: bool = False) -> None:
        """Stop every receiver; with ``driver_gone`` (its connection closed), quickly.

        A driver that is gone allocates nothing more, and peers go with it: the last blocks are
        still cut and logged (the write-ahead log is what a recovered driver reads), but not
        replicated, and the receivers get a short time to stop.
        """
        for sup in list(self._supervisors.values()):
            if driver_gone:
                sup.settings = _with(sup.settings, replica=None)
            sup.stop(timeout=0.2 if driver_gone else 1.0)
        self._supervisors.clear()


def _with(settings: ReceiverSettings, **changes: Any) -> ReceiverSettings:
    from dataclasses import replace

    return replace(settings, **changes)
