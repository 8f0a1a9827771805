"""Benchmark: fetching a map output from another executor, direct TCP against Ray's object store.

What a reduce task does for each map output it reads, timed from the reader's side. One Ray
actor plays the map side: it stores ``--count`` distinct blocks of each size in a dstreams
block store served over TCP, and also puts the same bytes into Ray's object store (one object
per block, owned by the actor). The reader, another process, then fetches every block once
each way:

* direct: ``BlockClient.fetch`` from the actor's block server (what dstreams does);
* object store: ``ray.get`` of the block's ``ObjectRef`` (the alternative the Ray backend could
  use: map tasks ``ray.put`` their outputs and the driver hands reducers the refs).

Both run on this one machine: the object store's transfer is then shared memory, its best
case; between nodes both pay the network. Prints the median per fetch for each size.

Run:  python benchmarks/ray_fetch.py [--count 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _streaming import load_note

SIZES = [1_000, 100_000, 1_000_000, 10_000_000]


class MapSide:
    """Holds blocks in a dstreams block store and in Ray's object store."""

    def __init__(self, authkey: bytes) -> None:
        from dstreams.storage.blocks import BlockServer, BlockStore

        self.store = BlockStore(None, None)
        self.server = BlockServer(self.store, authkey, None, "127.0.0.1")

    def make(self, size: int, count: int) -> tuple[Any, list[Any]]:
        import ray

        refs = []
        for i in range(count):
            data = os.urandom(size)
            self.store.put_all({("shuffle", size, i, 0): data})
            refs.append(ray.put(data))
        return self.server.address, refs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200)
    a = ap.parse_args()
    from dstreams.executor.ray import start_local_ray
    from dstreams.storage.blocks import BlockClient

    ray = start_local_ray(num_cpus=2)
    try:
        authkey = os.urandom(16)
        side = ray.remote(num_cpus=1)(MapSide).remote(authkey)
        client = BlockClient(authkey)
        print(f"# one block fetched by another process, median of {a.count}; {load_note()}")
        print("| block | direct TCP (dstreams) | Ray object store (ray.get) |")
        print("|---|---|---|")
        for size in SIZES:
            count = a.count if size < 10_000_000 else max(20, a.count // 10)
            address, refs = ray.get(side.make.remote(size, count))
            direct, store = [], []
            client.fetch(address, [("shuffle", size, 0, 0)])  # connect once
            for i in range(count):
                t = time.perf_counter()
                (v,) = client.fetch(address, [("shuffle", size, i, 0)])
                direct.append(time.perf_counter() - t)
                assert len(v) == size
                t = time.perf_counter()
                w = ray.get(refs[i])
                store.append(time.perf_counter() - t)
                assert len(w) == size
            d, s = statistics.median(direct) * 1000, statistics.median(store) * 1000
            print(f"| {size / 1e3:g} kB | {d:.3f} ms | {s:.3f} ms |")
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
