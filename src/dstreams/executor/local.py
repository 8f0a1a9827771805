"""``local[N]``: N long-lived worker processes on this machine (the default backend).

The driver listens on a Unix-domain socket (no Nagle delays, cheaper than TCP on one
machine); each worker (``python -m dstreams.executor.worker``)
connects back with a shared secret, announces its block-server address, and then takes tasks
over that one connection. One reader thread per worker turns replies into scheduler events.

Failure detection: a worker that dies (even by SIGKILL) closes its socket, so its reader
thread sees end-of-file at once; a monitor thread also polls the processes every heartbeat
interval. Either way the backend posts ``ExecutorLost`` and starts a replacement, which joins
under a new executor id. The monitor also pings every worker each heartbeat; a worker that has
said nothing for ``dstreams.executor.unresponsiveTimeout`` is reported ``ExecutorUnresponsive``,
and ``ExecutorResponsive`` once it answers again. Its process is left alone: it may resume.
Silence alone is not enough where the kernel says more (Linux ``/proc``): a silent worker
whose CPU time still grows is busy (a task in a long C call holds the GIL, so its reply thread
cannot run: pickling a large state, say), and is not reported; one that is stopped (SIGSTOP)
or has used no CPU for the whole timeout (wedged) is. A slow task on a busy worker is a
straggler, which speculation handles by task duration.

Workers are started with ``subprocess`` rather than ``multiprocessing`` so that the user's
``__main__`` is never re-imported in a worker (PySpark scripts often have no
``if __name__ == "__main__"`` guard); functions defined there travel by value via cloudpickle.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Listener
from typing import Any

import dstreams
from dstreams.conf import Conf
from dstreams.errors import ExecutorLostError
from dstreams.executor.base import ExecutorBackend
from dstreams.scheduler.dag import (
    ExecutorAdded,
    ExecutorLost,
    ExecutorResponsive,
    ExecutorUnresponsive,
    TaskFailed,
    TaskFinished,
)
from dstreams.scheduler.events import ExecutorStorage, ReceiverMessage
from dstreams.scheduler.task import TaskSpec
from dstreams.serde import dumps_code
from dstreams.storage.blocks import no_delay, socket_path

__all__ = ["LocalBackend", "process_cpu"]

log = logging.getLogger("dstreams.executor")

START_TIMEOUT = 60.0
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(dstreams.__file__)))
#: tasks in flight per worker: one running and one queued behind it hides the round trip
SLOTS_PER_WORKER = 2


@dataclass
class _Worker:
    executor_id: str
    #: the process: a ``subprocess.Popen``, or anything with its ``poll``, ``returncode``,
    #: ``kill``, ``wait`` and ``pid`` (a remote process, ``executor/ray.py``)
    proc: Any
    conn: Connection | None = None
    pid: int = 0
    address: Any = None
    alive: bool = True
    payloads: set[int] = field(default_factory=set)  # payload ids this worker holds
    forget: list[int] = field(default_factory=list)  # payloads to drop, sent with a task
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_heard: float = 0.0  # monotonic time of the last message from the worker
    unresponsive: bool = False
    storage: Any = None  # (memory used, blocks) of its block store, from the last pong
    cpu: int = -1  # CPU clock ticks of the process at the last look (-1: unknown)
    cpu_moved: float = 0.0  # monotonic time its CPU time last grew


class LocalBackend(ExecutorBackend):
    """N worker processes on this machine; see the module docstring."""

    def __init__(self, num_workers: int, conf: Conf, scratch_dir: str | None = None) -> None:
        self.events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.receiver_events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.num_workers = num_workers
        # every setting is read before anything is created, so a bad one leaks nothing
        self._heartbeat = conf.get_duration_ms("dstreams.executor.heartbeatInterval") / 1000.0
        self._silence = conf.get_duration_ms("dstreams.executor.unresponsiveTimeout") / 1000.0
        self._storage_memory = conf.get_size_bytes("dstreams.executor.storageMemory")
        prefix = "dstreams.executorEnv."
        self._executor_env = {k[len(prefix) :]: v for k, v in conf.getAll() if k.startswith(prefix)}
        self._authkey = os.urandom(32)
        # workers spill cached partitions under here; a directory we create, we also remove
        self._own_scratch = scratch_dir is None
        self._scratch = scratch_dir or tempfile.mkdtemp(prefix="dstreams-backend-")
        self._listener = self._make_listener()
        self._workers: dict[str, _Worker] = {}
        self._target = num_workers  # worker processes to keep (a lost one is replaced)
        self._removing: set[str] = set()  # removed on purpose: not replaced
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._stopping = False
        self._registered = threading.Condition(self._lock)
        threading.Thread(target=self._accept_loop, name="dstreams-accept", daemon=True).start()
        for _ in range(num_workers):
            self._spawn()
        deadline = time.monotonic() + START_TIMEOUT
        with self._lock:
            while sum(1 for w in self._workers.values() if w.conn) < num_workers:
                left = deadline - time.monotonic()
                if left <= 0 or self._dead_before_start():
                    self._stopping = True
                    break
                self._registered.wait(min(left, 0.1))
        if self._stopping:
            self.stop()
            raise ExecutorLostError(
                f"could not start {num_workers} worker processes within {START_TIMEOUT:.0f}s; "
                f"check that '{sys.executable} -m dstreams.executor.worker' runs"
            )
        threading.Thread(target=self._monitor, name="dstreams-monitor", daemon=True).start()

    def _make_listener(self) -> Listener:
        """Where workers connect: a Unix socket in the scratch directory (removed with it)."""
        return Listener(socket_path(self._scratch, "driver"), "AF_UNIX", 128, self._authkey)

    def _worker_env(self, eid: str) -> dict[str, str]:
        """The environment a worker process starts with (any backend's)."""
        env = dict(os.environ)
        env.update(self._executor_env)
        # the worker must find this very dstreams even when the driver got it through a
        # sys.path edit rather than an install or PYTHONPATH
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p
        )
        env["DSTREAMS_AUTHKEY"] = self._authkey.hex()
        env["DSTREAMS_DRIVER_PID"] = str(os.getpid())  # for the crash tests' kill points
        env["DSTREAMS_STORAGE_MEMORY"] = str(self._storage_memory)
        env["DSTREAMS_WORKER_DIR"] = os.path.join(self._scratch, f"worker-{eid}")
        env["DSTREAMS_SYS_PATH"] = os.pathsep.join(p for p in sys.path if p)
        return env

    def _dead_before_start(self) -> bool:
        return any(w.proc.poll() is not None and w.conn is None for w in self._workers.values())

    # -- processes ---------------------------------------------------------------------------
    def _spawn(self) -> None:
        eid = str(next(self._ids))
        proc = subprocess.Popen(
            [sys.executable, "-m", "dstreams.executor.worker", self._listener.address, eid],
            env=self._worker_env(eid),
            stdin=subprocess.DEVNULL,
        )
        self._workers[eid] = _Worker(eid, proc)

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                conn = no_delay(self._listener.accept())
                hello = pickle.loads(conn.recv_bytes())
            except Exception:
                if self._stopping:
                    return
                continue
            _, eid, pid, address = hello
            with self._lock:
                w = self._workers.get(eid)
                if w is None or not w.alive:
                    conn.close()
                    continue
                w.conn, w.pid, w.address = conn, pid, address
                w.last_heard = time.monotonic()
                # announced before anyone waiting for registration wakes: the first job
                # must see every worker the Context started
                added = ExecutorAdded(eid, address, SLOTS_PER_WORKER)
                self.events.put(added)
                self.receiver_events.put(added)
                self._registered.notify_all()
            threading.Thread(
                target=self._reader, args=(w,), name=f"dstreams-reader-{eid}", daemon=True
            ).start()

    def _reader(self, w: _Worker) -> None:
        assert w.conn is not None
        recv = w.conn.recv_bytes
        put = self.events.put
        try:
            while True:
                msg = pickle.loads(recv())
                kind = msg[0]
                w.last_heard = time.monotonic()
                if kind == "pong":
                    if msg[1] is not None and msg[1] != w.storage:
                        w.storage = msg[1]
                        put(ExecutorStorage(w.executor_id, *msg[1]))
                    continue
                if kind == "receiver":
                    _, stream_id, what, body = msg
                    self.receiver_events.put(ReceiverMessage(w.executor_id, stream_id, what, body))
                    continue
                body = msg[1]
                put(TaskFinished(body) if kind == "done" else TaskFailed(body))
        except (EOFError, OSError):
            self._lost(w, "its connection closed")
        except Exception as e:  # a reply that could not be decoded
            log.exception("bad reply from executor %s", w.executor_id)
            self._lost(w, f"it sent an unreadable reply: {e}")

    def _monitor(self) -> None:
        ping = pickle.dumps(("ping",), 5)
        while not self._stopping:
            time.sleep(self._heartbeat)
            now = time.monotonic()
            for w in list(self._workers.values()):
                if not w.alive:
                    continue
                if w.proc.poll() is not None:
                    self._lost(w, f"its process exited with code {w.proc.returncode}")
                    continue
                if w.conn is None:
                    continue
                silent = now - w.last_heard
                if silent > self._silence and not w.unresponsive and self._busy(w, now):
                    pass  # computing, not stopped: a long C call keeps its reply thread out
                elif silent > self._silence and not w.unresponsive:
                    w.unresponsive = True
                    log.warning("executor %s has not answered for %.1fs", w.executor_id, silent)
                    event: Any = ExecutorUnresponsive(w.executor_id, silent)
                    self.events.put(event)
                    self.receiver_events.put(event)  # receivers stop replicating to it
                elif silent <= self._silence and w.unresponsive:
                    w.unresponsive = False
                    event = ExecutorResponsive(w.executor_id)
                    self.events.put(event)
                    self.receiver_events.put(event)
                # a worker stopped mid-send holds the lock: never block the monitor on it
                if w.lock.acquire(blocking=False):
                    try:
                        w.conn.send_bytes(ping)
                    except OSError:
                        pass  # its reader sees the closed connection and reports the loss
                    finally:
                        w.lock.release()

    def _busy(self, w: _Worker, now: float) -> bool:
        """Whether a silent worker process is running and has used CPU within the timeout."""
        if not isinstance(w.proc, subprocess.Popen):
            return False  # not a process of this machine: silence is all there is
        seen = process_cpu(w.proc.pid)
        if seen is None:
            return False
        state, ticks = seen
        if ticks != w.cpu:  # grew since the last look (the first look counts as growth)
            w.cpu_moved = now
            w.cpu = ticks
        return state not in ("T", "t", "Z", "X") and now - w.cpu_moved <= self._silence

    def _lost(self, w: _Worker, reason: str) -> None:
        with self._lock:
            if not w.alive:
                return
            w.alive = False
            self._workers.pop(w.executor_id, None)
            stopping = self._stopping
        if stopping:
            return
        log.warning("executor %s (pid %s) lost: %s", w.executor_id, w.pid, reason)
        try:
            w.proc.kill()
        except OSError:
            pass
        if w.conn is not None:
            w.conn.close()
        removed = w.executor_id in self._removing
        self._removing.discard(w.executor_id)
        lost = ExecutorLost(w.executor_id, "removed (killExecutors)" if removed else reason)
        self.events.put(lost)
        self.receiver_events.put(lost)
        with self._lock:
            alive = sum(1 for x in self._workers.values() if x.alive)
            if not self._stopping and alive < self._target:
                self._spawn()

    # -- the protocol --------------------------------------------------------------------------
    def launch(self, executor_id: str, spec: TaskSpec, payload: bytes) -> None:
        w = self._workers.get(executor_id)
        if w is None or w.conn is None:
            return  # lost meanwhile: the scheduler already got (or will get) ExecutorLost
        send_payload = spec.payload_id not in w.payloads
        forget, w.forget = w.forget, []
        msg = pickle.dumps(("task", spec, payload if send_payload else None, forget), 5)
        try:
            with w.lock:
                w.conn.send_bytes(msg)
            if send_payload:
                w.payloads.add(spec.payload_id)
        except OSError:
            self._lost(w, "sending a task failed")

    def kill_task(self, executor_id: str, task_id: int, only_if_queued: bool = False) -> None:
        w = self._workers.get(executor_id)
        if w is None or w.conn is None:
            return
        kind = "revoke" if only_if_queued else "kill"
        try:
            with w.lock:
                w.conn.send_bytes(pickle.dumps((kind, [task_id]), 5))
        except OSError:
            self._lost(w, "sending a kill failed")

    def _broadcast(self, msg: tuple[Any, ...]) -> None:
        data = pickle.dumps(msg, 5)
        for w in list(self._workers.values()):
            if w.conn is None:
                continue
            try:
                with w.lock:
                    w.conn.send_bytes(data)
            except OSError:
                self._lost(w, "sending a message failed")

    def remove_blocks(self, kind: str, ident: int) -> None:
        self._broadcast(("remove", kind, ident))

    def forget_payloads(self, payload_ids: list[int]) -> None:
        if not payload_ids:
            return
        # no message of its own: the list rides on each worker's next task (fewer wake-ups
        # between the small jobs of a streaming application)
        for w in self._workers.values():
            dropped = w.payloads.intersection(payload_ids)
            if dropped:
                w.payloads.difference_update(dropped)
                w.forget.extend(dropped)

    def request_executors(self, n: int) -> bool:
        if n < 1:
            raise ValueError(f"numAdditionalExecutors={n} must be at least 1")
        with self._lock:
            if self._stopping:
                return False
            self._target += n
            self.num_workers = self._target
            for _ in range(n):
                self._spawn()
        return True

    def remove_executors(self, executor_ids: list[str]) -> bool:
        stop = pickle.dumps(("stop",), 5)
        removed = False
        for eid in executor_ids:
            w = self._workers.get(eid)
            if w is None or not w.alive:
                continue
            with self._lock:
                self._target -= 1
                self.num_workers = self._target
                self._removing.add(eid)
            removed = True
            try:
                if w.conn is not None:
                    with w.lock:
                        w.conn.send_bytes(stop)  # it exits; its reader reports the loss
                else:
                    w.proc.kill()
            except OSError:
                self._lost(w, "removed")
        return removed

    def kill_executor(self, executor_id: str) -> None:
        w = self._workers.get(executor_id)
        if w is not None:
            w.proc.kill()  # SIGKILL, as a crash

    def executor_ids(self) -> list[str]:
        return [eid for eid, w in self._workers.items() if w.alive and w.conn is not None]

    def executor_addresses(self) -> dict[str, Any]:
        return {eid: w.address for eid, w in self._workers.items() if w.alive and w.conn}

    def _send(self, executor_id: str, msg: tuple[Any, ...]) -> None:
        w = self._workers.get(executor_id)
        if w is None or w.conn is None:
            return  # lost: ExecutorLost is (or will be) posted
        try:
            with w.lock:
                w.conn.send_bytes(pickle.dumps(msg, 5))
        except OSError:
            self._lost(w, "sending a message failed")

    def start_receiver(
        self, executor_id: str, stream_id: int, receiver: Any, settings: Any
    ) -> None:
        payload = dumps_code(receiver, f"the receiver {receiver.name()} of stream {stream_id}")
        self._send(executor_id, ("receiver", stream_id, ("start", settings, payload)))

    def receiver_command(self, executor_id: str, stream_id: int, command: tuple[Any, ...]) -> None:
        self._send(executor_id, ("receiver", stream_id, command))

    def remove_input_blocks(self, stream_id: int, upto: tuple[int, int]) -> None:
        self._broadcast(("remove_input", stream_id, upto))

    def worker_pids(self) -> dict[str, int]:
        """Executor id -> process id of the live workers."""
        return {eid: w.proc.pid for eid, w in self._workers.items() if w.alive}

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            workers = list(self._workers.values())
        for w in workers:
            if w.conn is not None:
                try:
                    with w.lock:
                        w.conn.send_bytes(pickle.dumps(("stop",), 5))
                except OSError:
                    pass
        deadline = time.monotonic() + 1.0  # then a worker stuck in a task is killed
        for w in workers:
            try:
                w.proc.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            if w.conn is not None:
                w.conn.close()
        self._listener.close()
        if self._own_scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)


def process_cpu(pid: int) -> tuple[str, int] | None:
    """``(state, user + system CPU ticks)`` of a process from ``/proc``, None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # after "pid (comm) "
    try:
        return fields[0], int(fields[11]) + int(fields[12])
    except (IndexError, ValueError):
        return None
