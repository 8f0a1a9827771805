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

import pickle
import threading
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

__all__ = ["BlockStore", "BlockServer", "BlockClient", "BlockId"]

BlockId = tuple[Any, ...]


class BlockStore:
    """A worker's blocks. Reads are lock-free (dict operations are atomic)."""

    def __init__(self) -> None:
        self._blocks: dict[BlockId, Any] = {}

    def put(self, block_id: BlockId, value: Any) -> None:
        self._blocks[block_id] = value

    def get(self, block_id: BlockId) -> Any:
        return self._blocks.get(block_id)

    def remove_matching(self, kind: str, ident: int) -> int:
        keys = [k for k in list(self._blocks) if k[0] == kind and k[1] == ident]
        for k in keys:
            self._blocks.pop(k, None)
        return len(keys)

    def __len__(self) -> int:
        return len(self._blocks)

    def ids(self) -> list[BlockId]:
        return list(self._blocks)


class BlockServer:
    """Serves ``("get", [block ids])`` requests from peers with a list of values (or None)."""

    def __init__(self, store: BlockStore, authkey: bytes) -> None:
        self._store = store
        self._listener = Listener(family="AF_UNIX", authkey=authkey)
        self.address = self._listener.address
        threading.Thread(target=self._accept, name="block-server", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
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
        except (EOFError, OSError):
            conn.close()


def _ser(v: Any) -> bytes:
    return pickle.dumps(v, 5)


class BlockClient:
    """Fetches blocks from peers; one cached connection per peer address."""

    def __init__(self, authkey: bytes) -> None:
        self._authkey = authkey
        self._conns: dict[Any, Connection] = {}

    def fetch(self, address: Any, ids: list[BlockId]) -> list[Any]:
        """Values for ``ids`` (None where missing); raises OSError if the peer is gone."""
        conn = self._conns.get(address)
        try:
            if conn is None:
                conn = Client(address, authkey=self._authkey)
                self._conns[address] = conn
            conn.send_bytes(pickle.dumps(("get", ids), 5))
            return pickle.loads(conn.recv_bytes())
        except (EOFError, OSError, ConnectionError) as e:
            self._conns.pop(address, None)
            raise OSError(f"could not fetch blocks from {address}: {e}") from e
