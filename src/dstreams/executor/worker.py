"""The worker process: its main loop, the task runner, and the task context it gives RDDs.

A worker is a long-lived process (``python -m dstreams.executor.worker``) started by a backend.
It connects back to the driver, starts a :class:`~dstreams.storage.blocks.BlockServer`, then
runs tasks one at a time as they arrive. For each task it:

1. decodes the stage payload (``core/shipping.py``) the first time it sees it (closures ship
   once per stage),
2. computes the partition through ``rdd.iterator`` (narrow operators are pipelined generators),
3. for a shuffle-map task, buckets the records by the partitioner and stores one pickled block
   per bucket; for a result task, pickles ``func(iterator)``;
4. replies with the result, the accumulator updates and the blocks it cached, or with the
   failure: the exception's type, message and formatted traceback.
"""

from __future__ import annotations

import copy
import os
import pickle
import queue
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from multiprocessing.connection import Client, Connection
from typing import Any

from dstreams.core.pairs import not_a_pair
from dstreams.core.shared import drop_worker_broadcast, load_with_accumulators
from dstreams.core.shipping import MATERIALIZE_EVERY, decode_stage, materialize_deep_lineage
from dstreams.errors import (
    CacheMissingError,
    CorruptCheckpointError,
    FetchFailedError,
    SerializationError,
    TaskKilledError,
)
from dstreams.scheduler.task import TaskContext, TaskError, TaskResult, TaskSpec
from dstreams.storage.blocks import BlockClient, BlockServer, BlockStore, no_delay

__all__ = ["Worker", "WorkerTaskContext", "main"]

_STAGE_CACHE = 256


class WorkerTaskContext(TaskContext):
    """Block access for one task running in this worker."""

    def __init__(self, spec: TaskSpec, worker: Worker) -> None:
        super().__init__(spec)
        self._w = worker

    def fetch_shuffle(self, shuffle_id: int, reduce_id: int) -> Iterator[Any]:
        locs = self.spec.map_locations.get(shuffle_id)
        if locs is None:
            # a cached input was lost after this task was planned: it recomputes through a
            # shuffle the stage did not read; the scheduler runs that shuffle's maps first
            raise FetchFailedError("", shuffle_id, f"shuffle {shuffle_id} was not planned")
        w = self._w
        by_exec: dict[str, list[int]] = {}
        for map_id, (eid, _) in enumerate(locs):
            by_exec.setdefault(eid, []).append(map_id)
        blocks: dict[int, Any] = {}
        for eid, map_ids in by_exec.items():
            ids = [("shuffle", shuffle_id, m, reduce_id) for m in map_ids]
            if eid == w.executor_id:
                values = [w.store.get(b) for b in ids]
            else:
                try:
                    values = w.client.fetch(locs[map_ids[0]][1], ids)
                except OSError as e:
                    raise FetchFailedError(eid, shuffle_id, str(e)) from None
            blocks.update(zip(map_ids, values))
        return _chain_blocks([blocks[m] for m in range(len(locs))])

    def get_cached(self, rdd_id: int, split: int) -> list[Any] | None:
        key = ("rdd", rdd_id, split)
        v = self._w.store.get(key)
        if v is None:
            loc = self.spec.block_locations.get((rdd_id, split))
            if loc is not None and loc[0] != self._w.executor_id:
                try:
                    v = self._w.client.fetch(loc[1], [key])[0]
                except OSError:
                    v = None  # the peer is gone: recompute from lineage
        if v is None:
            return None
        return pickle.loads(v) if isinstance(v, bytes) else v

    def read_input_block(self, info: Any) -> bytes | None:
        """A received block's records (pickled): from here, else from an executor holding it."""
        from dstreams.streaming.blocks import block_key

        key = block_key(info.stream_id, info.seq)
        w = self._w
        v = w.store.get(key)
        if v is not None:
            return bytes(v)
        for eid, address in info.locations:
            if eid == w.executor_id:
                continue
            try:
                got = w.client.fetch(address, [key])[0]
            except OSError:
                continue  # that executor is gone: try the next copy
            if got is not None:
                return bytes(got)
        return None

    def has_cached(self, rdd_id: int, split: int) -> bool:
        key = ("rdd", rdd_id, split)
        return self._w.store.get(key) is not None or (rdd_id, split) in self.spec.block_locations

    def put_cached(self, rdd_id: int, split: int, data: list[Any], level: Any) -> None:
        if len(data) == 1 and getattr(data[0], "_keep_live", False):
            size = data[0]._live_size()
            if self._w.store.put_live(("rdd", rdd_id, split), data, size):
                self.cached_now.append((rdd_id, split, 1, size))
            return
        blob = pickle.dumps(data, 5)
        stored = self._w.store.put_cached(
            ("rdd", rdd_id, split), blob, level.useMemory, level.useDisk
        )
        if stored:
            self.cached_now.append((rdd_id, split, len(data), len(blob)))


def _chain_blocks(values: list[Any]) -> Iterator[Any]:
    for v in values:
        if v is not None:
            yield from pickle.loads(v)


def write_shuffle(
    store: BlockStore, shuffle_id: int, map_id: int, it: Iterator[Any], partitioner: Any
) -> list[int]:
    """Bucket ``it`` by key and store one pickled block per non-empty bucket; return sizes."""
    n = partitioner.numPartitions
    func = partitioner.partitionFunc
    buckets: list[list[Any]] = [[] for _ in range(n)]
    appends = [b.append for b in buckets]
    for kv in it:
        try:
            k = kv[0]
            if len(kv) != 2:
                raise TypeError
        except (TypeError, IndexError, KeyError):
            raise not_a_pair(kv, "partitionBy") from None
        appends[func(k) % n](kv)
    sizes = [len(b) for b in buckets]
    what = f"the shuffle output of partition {map_id}"
    store.put_all(
        {
            ("shuffle", shuffle_id, map_id, r): _pickle_records(b, what)
            for r, b in enumerate(buckets)
            if b
        }
    )
    return sizes


def _pickle_records(records: Any, what: str) -> bytes:
    try:
        return pickle.dumps(records, 5)
    except Exception as e:
        raise SerializationError(
            f"could not serialize {what}: {type(e).__name__}: {e}. Records must be picklable: "
            "return lists or tuples rather than generators, and no open files, sockets or locks"
        ) from e


class Worker:
    """Runs tasks sent by the driver over ``conn``."""

    def __init__(
        self,
        executor_id: str,
        conn: Connection,
        authkey: bytes,
        memory_limit: int | None = None,
        disk_dir: str | None = None,
    ) -> None:
        self.executor_id = executor_id
        self.conn = conn
        self.store = BlockStore(memory_limit, disk_dir)
        # on a cluster, peers on other machines fetch over TCP at this host
        host = os.environ.get("DSTREAMS_BLOCK_HOST") or None
        self.server = BlockServer(self.store, authkey, disk_dir, host)
        self.client = BlockClient(authkey)
        self._authkey = authkey
        self._payloads: OrderedDict[int, Any] = OrderedDict()
        self._host: Any = None  # receivers running here (streaming/receiver_host.py)
        self._send_lock = threading.Lock()

    def serve(self) -> None:
        """Run messages from the driver until it says stop or goes away.

        A reader thread takes messages off the connection, so the driver can act on tasks
        while another one runs. Task states, guarded by ``_qlock``: *queued* (read, not
        started), *running*, or done. A ``kill`` stops a running task (SIGUSR1, handled in
        this, the main, thread) or withdraws a queued one; a ``revoke`` only withdraws a queued
        one. A withdrawn task is answered at once, by the reader, and skipped when dequeued.
        """
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._qlock = threading.Lock()
        self._queued: set[int] = set()
        self._withdrawn: set[int] = set()
        self._running: int | None = None
        self._kill_running: int | None = None
        self._main = threading.get_ident()
        signal.signal(signal.SIGUSR1, self._on_kill_signal)
        self._send(("hello", self.executor_id, os.getpid(), self.server.address))
        threading.Thread(target=self._read, name="driver-reader", daemon=True).start()
        get = self._inbox.get
        while True:
            msg = get()
            kind = msg[0]
            if kind == "task":
                spec, payload = msg[1], msg[2]
                for sid in msg[3]:
                    self._payloads.pop(sid, None)
                try:
                    with self._qlock:
                        withdrawn = spec.task_id in self._withdrawn
                        if withdrawn:
                            self._withdrawn.discard(spec.task_id)
                        else:
                            self._queued.discard(spec.task_id)
                            self._running = spec.task_id
                    if withdrawn:  # already answered by the reader
                        if payload is not None:
                            self._stage_payload(spec.payload_id, payload)
                        continue
                    reply: Any = self.run_task(spec, payload)
                except TaskKilledError:  # the kill landed outside the task's own handler
                    reply = ("failed", self._killed_error(spec.task_id))
                finally:
                    with self._qlock:
                        self._running = None
                self._send(reply)
            elif kind == "remove":
                if msg[1] == "broadcast":
                    drop_worker_broadcast(msg[2])
                else:
                    self.store.remove_matching(msg[1], msg[2])
            elif kind == "stop":
                if self._host is not None:
                    self._host.stop_all(driver_gone=msg[1:] == ("gone",))
                return

    def _send(self, reply: Any) -> None:
        data = pickle.dumps(reply, 5)
        with self._send_lock:  # the reader answers withdrawn tasks itself
            self.conn.send_bytes(data)

    def _read(self) -> None:
        recv, put = self.conn.recv_bytes, self._inbox.put
        while True:
            try:
                msg = pickle.loads(recv())
            except (EOFError, OSError):
                put(("stop", "gone"))  # the driver is gone
                return
            kind = msg[0]
            if kind == "task":
                with self._qlock:
                    self._queued.add(msg[1].task_id)
                put(msg)
            elif kind in ("kill", "revoke"):
                for task_id in msg[1]:
                    self._withdraw_or_kill(task_id, kill_running=kind == "kill")
            elif kind == "ping":
                # answered here, even while a task runs; with the block store's size, for the UI
                self._send(("pong", (self.store.memory_used, len(self.store))))
            elif kind == "receiver":
                self._receivers().handle(msg[1], msg[2])
            elif kind == "remove_input":
                self.store.remove_input_upto(msg[1], msg[2])
            else:
                put(msg)

    def _receivers(self) -> Any:
        """This executor's receiver host, created when the first receiver arrives."""
        if self._host is None:
            from dstreams.streaming.clock import SystemClock
            from dstreams.streaming.receiver_host import ReceiverHost

            self._host = ReceiverHost(
                self.executor_id,
                self.server.address,
                self.store,
                lambda: BlockClient(self._authkey),  # their own: tasks use self.client
                self._send,
                SystemClock(),
            )
        return self._host

    def _withdraw_or_kill(self, task_id: int, kill_running: bool) -> None:
        with self._qlock:
            if task_id in self._queued:
                self._queued.discard(task_id)
                self._withdrawn.add(task_id)
                answer = True
            else:
                answer = False
                if kill_running and task_id == self._running:
                    self._kill_running = task_id
                    signal.pthread_kill(self._main, signal.SIGUSR1)
        if answer:
            self._send(("failed", self._killed_error(task_id, withdrawn=True)))

    def _on_kill_signal(self, signum: int, frame: Any) -> None:
        running = self._running
        if running is not None and running == self._kill_running:
            self._kill_running = None
            raise TaskKilledError(f"task {running} was killed by the driver")

    def _uncached(self) -> list[tuple[int, int]]:
        return [(b[1], b[2]) for b in self.store.drain_evicted()]

    def _killed_error(self, task_id: int, withdrawn: bool = False) -> TaskError:
        return TaskError(
            task_id,
            self.executor_id,
            "TaskKilledError",
            "withdrawn before it started" if withdrawn else "killed",
            "",
            killed=True,
            withdrawn=withdrawn,
        )

    def _stage_payload(self, payload_id: int, payload: bytes) -> None:
        self._payloads[payload_id] = payload
        self._payloads.move_to_end(payload_id)
        while len(self._payloads) > _STAGE_CACHE:
            self._payloads.popitem(last=False)

    def _stage(self, payload_id: int, payload: bytes | None) -> Any:
        if payload is not None:
            self._stage_payload(payload_id, payload)
        entry = self._payloads[payload_id]
        if isinstance(entry, bytes):
            # functions were pickled with cloudpickle; note the accumulators they carry
            data = entry
            stage, accs = load_with_accumulators(lambda: decode_stage(data))
            entry = (stage.rdd, stage.func, stage.partitioner, accs, stage.height)
            self._payloads[payload_id] = entry
        return entry

    def run_task(self, spec: TaskSpec, payload: bytes | None) -> tuple[str, Any]:
        tctx = WorkerTaskContext(spec, self)
        start = time.perf_counter()
        TaskContext._current = tctx
        try:
            rdd, func, partitioner, accs, height = self._stage(spec.payload_id, payload)
            for a in accs:
                a._value = copy.deepcopy(a._zero)  # type: ignore[attr-defined]
            if height > MATERIALIZE_EVERY:
                materialize_deep_lineage(rdd, spec.partition, tctx)
            it = rdd.iterator(spec.partition, tctx)
            if spec.shuffle_id is None:
                value: Any = _pickle_records(func(it), f"the result of partition {spec.partition}")
            else:
                value = write_shuffle(self.store, spec.shuffle_id, spec.partition, it, partitioner)
            tctx._complete(True)  # e.g. dead-lettered records are written now
            self._running = None  # from here on a kill signal is ignored
            updates = {a.aid: a._value for a in accs if a._value != a._zero}  # type: ignore[attr-defined]
            return (
                "done",
                TaskResult(
                    spec.task_id,
                    self.executor_id,
                    value,
                    updates,
                    tctx.cached_now,
                    time.perf_counter() - start,
                    self._uncached(),
                ),
            )
        except FetchFailedError as e:
            return ("failed", self._error(spec, e, tctx, (e.executor_id, e.shuffle_id)))
        except CacheMissingError as e:
            err = self._error(spec, e, tctx, None)
            err.missing_block = (e.rdd_id, e.split)
            return ("failed", err)
        except CorruptCheckpointError as e:
            err = self._error(spec, e, tctx, None)
            err.corrupt_checkpoint = (e.rdd_id, e.split)
            return ("failed", err)
        except TaskKilledError:
            return ("failed", self._killed_error(spec.task_id))
        except BaseException as e:
            return ("failed", self._error(spec, e, tctx, None))
        finally:
            self._running = None
            if tctx._on_completion:
                tctx._complete(False)
            TaskContext._current = None

    def _error(
        self,
        spec: TaskSpec,
        e: BaseException,
        tctx: TaskContext,
        fetch_failed: tuple[str, int] | None,
    ) -> TaskError:
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        try:
            data = pickle.dumps(e, 5)
            pickle.loads(data)  # only send what the driver can rebuild
            exc_pickle: bytes | None = data
        except Exception:
            exc_pickle = None
        name = type(e).__qualname__
        module = type(e).__module__
        if module not in ("builtins", "__main__"):
            name = f"{module}.{name}"
        return TaskError(
            spec.task_id,
            self.executor_id,
            name,
            str(e),
            tb,
            exc_pickle,
            fetch_failed,
            tctx.cached_now,
            uncached=self._uncached(),
        )


def _driver_address(address: str) -> tuple[Any, str]:
    """``tcp://host:port`` (a cluster) or a Unix socket path (this machine)."""
    if address.startswith("tcp://"):
        host, _, port = address[len("tcp://") :].rpartition(":")
        return (host, int(port)), "AF_INET"
    return address, "AF_UNIX"


def _die_with_parent() -> None:
    """Be killed with the process that started this one (a Ray actor that is killed)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    """Entry point: ``python -m dstreams.executor.worker DRIVER_ADDRESS EXECUTOR_ID``."""
    address, executor_id = sys.argv[1], sys.argv[2]
    # Ctrl-C in a terminal, or a SIGTERM to the process group, reaches every process: the
    # driver handles it (it aborts the job, which kills running tasks, or drains gracefully,
    # then stops the workers); a worker must not die of it first. A worker whose driver is
    # gone sees its connection close and exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    authkey = bytes.fromhex(os.environ.pop("DSTREAMS_AUTHKEY"))
    extra = os.environ.get("DSTREAMS_SYS_PATH", "")
    for p in reversed([p for p in extra.split(os.pathsep) if p]):
        if p not in sys.path:
            sys.path.insert(0, p)
    limit = os.environ.get("DSTREAMS_STORAGE_MEMORY")
    disk_dir = os.environ.get("DSTREAMS_WORKER_DIR") or None
    if disk_dir is not None:
        os.makedirs(disk_dir, exist_ok=True)
    if os.environ.get("DSTREAMS_DIE_WITH_PARENT"):
        _die_with_parent()
    target, family = _driver_address(address)
    try:
        conn = no_delay(Client(target, family=family, authkey=authkey))
    except (ConnectionRefusedError, FileNotFoundError):
        # the driver went away while this worker started (it was killed, or stopped): there
        # is nobody to serve, and nothing to report
        if disk_dir is not None:
            shutil.rmtree(disk_dir, ignore_errors=True)
        os._exit(0)
    try:
        Worker(executor_id, conn, authkey, int(limit) if limit else None, disk_dir).serve()
    finally:
        if disk_dir is not None:
            shutil.rmtree(disk_dir, ignore_errors=True)
        os._exit(0)


if __name__ == "__main__":
    main()
