"""BlockStore: the memory budget for cached partitions, eviction, spilling to disk."""

from __future__ import annotations

from pathlib import Path

from dstreams.storage.blocks import BlockStore


def rdd_block(rdd: int, split: int) -> tuple[str, int, int]:
    return ("rdd", rdd, split)


def test_without_a_limit_everything_stays_in_memory():
    store = BlockStore()
    for i in range(5):
        assert store.put_cached(rdd_block(1, i), b"x" * 1000)
    assert store.memory_used == 5000
    assert store.drain_evicted() == []


def test_least_recently_used_partitions_of_other_rdds_are_dropped(tmp_path: Path):
    store = BlockStore(memory_limit=3000, disk_dir=str(tmp_path))
    assert store.put_cached(rdd_block(1, 0), b"a" * 1000)
    assert store.put_cached(rdd_block(1, 1), b"b" * 1000)
    assert store.put_cached(rdd_block(2, 0), b"c" * 1000)
    store.get(rdd_block(1, 0))  # touched: rdd 1 partition 1 is now the oldest
    assert store.put_cached(rdd_block(3, 0), b"d" * 1000)
    assert store.drain_evicted() == [rdd_block(1, 1)]
    assert store.get(rdd_block(1, 1)) is None
    assert store.get(rdd_block(1, 0)) == b"a" * 1000
    assert store.memory_used == 3000


def test_an_rdd_never_evicts_its_own_partitions():
    store = BlockStore(memory_limit=2000)
    assert store.put_cached(rdd_block(1, 0), b"a" * 1000)
    assert store.put_cached(rdd_block(1, 1), b"b" * 1000)
    assert not store.put_cached(rdd_block(1, 2), b"c" * 1000)  # not cached: recomputed later
    assert store.drain_evicted() == []
    assert store.get(rdd_block(1, 2)) is None


def test_levels_with_disk_spill_instead_of_dropping(tmp_path: Path):
    store = BlockStore(memory_limit=1500, disk_dir=str(tmp_path))
    assert store.put_cached(rdd_block(1, 0), b"a" * 1000, use_disk=True)
    assert store.put_cached(rdd_block(2, 0), b"b" * 1000)  # pushes rdd 1 to disk
    assert store.drain_evicted() == []
    assert store.get(rdd_block(1, 0)) == b"a" * 1000
    assert len(list(tmp_path.iterdir())) == 1
    # too big for memory at all, but allowed on disk
    assert store.put_cached(rdd_block(3, 0), b"c" * 5000, use_disk=True)
    assert store.get(rdd_block(3, 0)) == b"c" * 5000
    # disk only never uses memory
    assert store.put_cached(rdd_block(4, 0), b"d" * 10, use_memory=False, use_disk=True)
    assert store.memory_used == 1000


def test_removing_an_rdd_frees_memory_and_files(tmp_path: Path):
    store = BlockStore(memory_limit=1500, disk_dir=str(tmp_path))
    store.put_cached(rdd_block(1, 0), b"a" * 1000, use_disk=True)
    store.put_cached(rdd_block(1, 1), b"b" * 1000, use_memory=False, use_disk=True)
    store.put(("shuffle", 1, 0, 0), b"s")
    assert store.remove_matching("rdd", 1) == 2
    assert store.memory_used == 0
    assert list(tmp_path.iterdir()) == []
    assert store.get(("shuffle", 1, 0, 0)) == b"s"


def test_a_fetch_interrupted_between_request_and_answer_does_not_shift_later_answers(
    monkeypatch,
):
    from multiprocessing.connection import Connection

    from dstreams.storage.blocks import BlockClient, BlockServer

    store = BlockStore()
    store.put(("shuffle", 1, 0, 0), b"first")
    store.put(("shuffle", 1, 1, 0), b"second")
    key = b"k" * 32
    server = BlockServer(store, key)
    client = BlockClient(key)
    assert client.fetch(server.address, [("shuffle", 1, 0, 0)]) == [b"first"]

    real_recv = Connection.recv_bytes

    def interrupted(self, *args):
        raise KeyboardInterrupt  # as a task kill lands after the request went out

    monkeypatch.setattr(Connection, "recv_bytes", interrupted)
    try:
        client.fetch(server.address, [("shuffle", 1, 0, 0)])
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(Connection, "recv_bytes", real_recv)
    # the unread answer to the interrupted request must not be taken for this one
    assert client.fetch(server.address, [("shuffle", 1, 1, 0)]) == [b"second"]
