"""Blocks on an executor: the in-memory store, and the server/client that move them between
executors.

Block ids are tuples: ``("shuffle", shuffle_id, map_id, reduce_id)`` for one bucket of a map
output, and ``("rdd", rdd_id, split)`` for a cached partition. Values are pickled bytes (a
reader always gets fresh objects, so a user function that mutates its input cannot corrupt a
block), except cached partitions persisted with a ``deserialized`` storage level.

Each worker runs a :class:`BlockServer` on a Unix-domain socket; peers fetch many blocks in
one round trip
with :class:`BlockClient`, which keeps one authenticated connection per peer.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections import OrderedDict
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

__all__ = ["BlockStore", "BlockServer", "BlockClient", "BlockId", "socket_path"]

BlockId = tuple[Any, ...]


class BlockStore:
    """A worker's blocks: shuffle buckets, and cached partitions within a memory budget.

    Cached partitions (``("rdd", rdd_id, split)``) count against ``memory_limit`` bytes. To make
    room for a new one, the least recently used partitions of *other* RDDs leave memory: to a
    file in ``disk_dir`` if their storage level allows disk, otherwise they are dropped and will
    be recomputed from lineage when needed (Spark's MEMORY_ONLY rule). A partition that does not
    fit at all goes to disk if its level allows, else it is not cached. Dropped block ids are
    collected in ``evicted`` so the executor can tell the driver. Shuffle blocks are neither
    counted nor evicted. Reads are lock-free; writes take a lock.
    """

    def __init__(self, memory_limit: int | None = None, disk_dir: str | None = None) -> None:
        self._blocks: dict[BlockId, Any] = {}
        self._files: dict[BlockId, str] = {}
        self._lru: OrderedDict[BlockId, tuple[int, bool]] = OrderedDict()  # id -> (size, disk?)
        self._used = 0
        self._limit = memory_limit
        self._disk_dir = disk_dir
        self._lock = threading.Lock()
        self.evicted: list[BlockId] = []

    def put(self, block_id: BlockId, value: Any) -> None:
        """Store an uncounted block (a shuffle bucket)."""
        self._blocks[block_id] = value

    def put_all(self, blocks: dict[BlockId, Any]) -> None:
        """Store several uncounted blocks at once: a single dict update, so a task killed
        while storing its map output leaves all of it or none of it."""
        self._blocks.update(blocks)

    def put_cached(
        self, block_id: BlockId, data: bytes, use_memory: bool = True, use_disk: bool = False
    ) -> bool:
        """Store a cached partition as the storage level allows; False if it was not kept."""
        size = len(data)
        with self._lock:
            if use_memory and self._make_room(size, block_id[:2]):
                self._blocks[block_id] = data
                self._lru[block_id] = (size, use_disk)
                self._used += size
                return True
            if use_disk and self._disk_dir is not None:
                self._write_file(block_id, data)
                return True
            return False

    def put_live(self, block_id: BlockId, value: Any, size: int) -> bool:
        """Keep a cached partition as the object itself (no pickled copy), counted as ``size``.

        For objects that the next batch continues in place (``mapWithState``'s state). Evicted,
        it is dropped (recomputed from lineage), never written to disk; a peer that fetches it
        gets it pickled then.
        """
        with self._lock:
            if self._make_room(size, block_id[:2]):
                self._blocks[block_id] = value
                self._lru[block_id] = (size, False)
                self._used += size
                return True
            return False

    def _make_room(self, size: int, owner: tuple[Any, ...]) -> bool:
        if self._limit is None:
            return True
        if size > self._limit:
            return False
        for victim in list(self._lru):
            if self._used + size <= self._limit:
                break
            if victim[:2] == owner:
                continue  # never evict the same RDD's partitions to cache another of them
            vsize, to_disk = self._lru.pop(victim)
            data = self._blocks.pop(victim)
            self._used -= vsize
            if to_disk and self._disk_dir is not None:
                self._write_file(victim, data)
            else:
                self.evicted.append(victim)
        return self._used + size <= self._limit

    def _write_file(self, block_id: BlockId, data: bytes) -> None:
        assert self._disk_dir is not None
        path = os.path.join(self._disk_dir, "-".join(map(str, block_id)))
        with open(path, "wb") as fh:
            fh.write(data)
        self._files[block_id] = path

    def get(self, block_id: BlockId) -> Any:
        v = self._blocks.get(block_id)
        if v is not None:
            if block_id in self._lru:
                try:
                    self._lru.move_to_end(block_id)
                except KeyError:
                    pass  # evicted meanwhile
            return v
        path = self._files.get(block_id)
        if path is not None:
            try:
                with open(path, "rb") as fh:
                    return fh.read()
            except FileNotFoundError:
                return None
        return None

    def remove_matching(self, kind: str, ident: int) -> int:
        with self._lock:
            keys = [k for k in list(self._blocks) if k[0] == kind and k[1] == ident]
            for k in keys:
                self._blocks.pop(k, None)
                entry = self._lru.pop(k, None)
                if entry is not None:
                    self._used -= entry[0]
            files = [k for k in list(self._files) if k[0] == kind and k[1] == ident]
            for k in files:
                path = self._files.pop(k)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            return len(keys) + len(files)

    def remove_input_upto(self, stream_id: int, upto: tuple[int, int]) -> int:
        """Drop the received blocks of ``stream_id`` with sequence up to ``upto``."""
        with self._lock:
            keys = [
                k
                for k in [*self._blocks, *self._files]
                if k[0] == "input" and k[1] == stream_id and (k[2], k[3]) <= upto
            ]
        for k in keys:
            self._drop(k)
        return len(keys)

    def _drop(self, key: BlockId) -> None:
        with self._lock:
            self._blocks.pop(key, None)
            entry = self._lru.pop(key, None)
            if entry is not None:
                self._used -= entry[0]
            path = self._files.pop(key, None)
        if path is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def drain_evicted(self) -> list[BlockId]:
        with self._lock:
            out, self.evicted = self.evicted, []
            return out

    @property
    def memory_used(self) -> int:
        """Bytes of cached partitions held in memory."""
        return self._used

    def __len__(self) -> int:
        return len(self._blocks) + len(self._files)

    def ids(self) -> list[BlockId]:
        return list(self._blocks) + list(self._files)


def no_delay(conn: Connection) -> Connection:
    """Turn Nagle's algorithm off on a TCP connection (a no-op on a Unix socket); return it.

    Tasks, replies and block requests are small messages, often two in a row: with Nagle on,
    the second waits for the peer's delayed ACK, 40 ms a time.
    """
    import socket

    try:
        # a duplicate of the descriptor, its family read from it: the connection keeps its own
        s = socket.socket(fileno=os.dup(conn.fileno()))
    except OSError:
        return conn
    try:
        if s.family in (socket.AF_INET, socket.AF_INET6):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    finally:
        s.close()
    return conn


def socket_path(directory: str | None, name: str) -> str | None:
    """A Unix socket path inside ``directory`` (None: let multiprocessing pick one).

    Keeping sockets in a scratch directory means removing the directory removes them, even
    after a crash. Socket paths are limited to about 100 bytes; a longer one falls back.
    """
    if directory is None:
        return None
    path = os.path.join(directory, f"{name}.sock")
    return path if len(path.encode()) < 100 else None


class BlockServer:
    """Serves ``("get", [block ids])`` requests from peers with a list of values (or None)."""

    def __init__(
        self,
        store: BlockStore,
        authkey: bytes,
        directory: str | None = None,
        host: str | None = None,
    ) -> None:
        """Serve on a Unix socket in ``directory``, or on TCP at ``host`` (other machines)."""
        self._store = store
        if host is not None:
            self._listener = Listener((host, 0), "AF_INET", 64, authkey)
        else:
            self._listener = Listener(socket_path(directory, "blocks"), "AF_UNIX", 16, authkey)
        self.address = self._listener.address
        threading.Thread(target=self._accept, name="block-server", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn = no_delay(self._listener.accept())
            except Exception:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        store = self._store
        try:
            while True:
                kind, ids = pickle.loads(conn.recv_bytes())
                if kind == "get":
                    values = [store.get(b) for b in ids]
                    values = [v if v is None or isinstance(v, bytes) else _ser(v) for v in values]
                    conn.send_bytes(pickle.dumps(values, 5))
                elif kind == "put":  # a replica of another executor's received block
                    ok = [store.put_cached(key, data, True, True) for key, data in ids]
                    conn.send_bytes(pickle.dumps(ok, 5))
        except (EOFError, OSError):
            conn.close()


def _ser(v: Any) -> bytes:
    return pickle.dumps(v, 5)


class BlockClient:
    """Fetches blocks from peers (and puts replicas); one cached connection per peer address.

    Not thread-safe: each thread that talks to peers uses its own client.
    """

    def __init__(self, authkey: bytes) -> None:
        self._authkey = authkey
        self._conns: dict[Any, Connection] = {}

    def fetch(self, address: Any, ids: list[BlockId]) -> list[Any]:
        """Values for ``ids`` (None where missing); raises OSError if the peer is gone."""
        return self._call(address, ("get", ids))  # type: ignore[no-any-return]

    def put(self, address: Any, blocks: list[tuple[BlockId, bytes]]) -> None:
        """Store ``blocks`` in a peer's block store (raises OSError if it is gone or full)."""
        ok = self._call(address, ("put", blocks))
        if not all(ok):
            raise OSError(f"the executor at {address} had no room for a replica")

    def _call(self, address: Any, request: Any) -> Any:
        conn = self._conns.get(address)
        try:
            if conn is None:
                conn = no_delay(Client(address, authkey=self._authkey))
                self._conns[address] = conn
            conn.send_bytes(pickle.dumps(request, 5))
            return pickle.loads(conn.recv_bytes())
        except (EOFError, OSError, ConnectionError) as e:
            self._drop(address)
            raise OSError(f"could not fetch blocks from {address}: {e}") from e
        except BaseException:
            # interrupted between request and answer (a killed task): the answer would be
            # read by the next request, so this connection must never be used again
            self._drop(address)
            raise

    def _drop(self, address: Any) -> None:
        conn = self._conns.pop(address, None)
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass
