"""Received blocks: their metadata, a receiver's settings, and the RDD that reads them.

A receiver runs on an executor (``receiver_host.py``) and stores each block there, in the
executor's block store under ``("input", stream id, epoch, n)``, replicated to a second
executor and written to a write-ahead log when so configured. The driver only ever sees a
:class:`BlockInfo`: where the block lives, how many records it holds, its log handle and the
receiver's own metadata for it. A batch's blocks become one :class:`ReceivedBlockRDD`, one
partition per block, whose tasks prefer the executors that hold their block and read it from
the local store, from a peer, or from the write-ahead log, in that order.

Block sequence numbers ``(epoch, n)`` grow with every block of a stream: ``n`` counts the
blocks of one receiver incarnation and ``epoch`` counts incarnations (a restart, on this or
another executor, or after a driver restart), so a later block always sorts after an earlier
one.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dstreams.core.rdd import RDD
from dstreams.errors import DStreamsError

if TYPE_CHECKING:
    from dstreams.core.context import Context
    from dstreams.scheduler.task import Location, TaskContext
    from dstreams.streaming.wal import WALHandle

__all__ = ["BlockInfo", "BlockLostError", "ReceivedBlockRDD", "ReceiverSettings", "block_key"]

Seq = tuple[int, int]


def block_key(stream_id: int, seq: Seq) -> tuple[Any, ...]:
    """The block-store id of one received block."""
    return ("input", stream_id, seq[0], seq[1])


@dataclass(frozen=True)
class BlockInfo:
    """What the driver knows of one received block."""

    stream_id: int
    seq: Seq
    num_records: int
    #: executors holding a copy (the receiver's first, then its replica)
    locations: tuple[Location, ...] = ()
    wal: WALHandle | None = None
    #: what the receiver passed to ``storeMany(records, metadata)`` (for example an offset)
    metadata: Any = None


@dataclass(frozen=True)
class ReceiverSettings:
    """What an executor needs to run one receiver."""

    stream_id: int
    epoch: int
    block_interval_ms: int
    rate: float | None = None
    #: write every block to this write-ahead-log directory first (None: no log)
    wal_dir: str | None = None
    wal_rolling_ms: int = 60_000
    #: a peer executor to replicate each block to before it counts (None: no replica)
    replica: Location | None = None
    #: how long a block waits for the replica before it goes on with one copy
    replica_timeout_ms: int = 1000
    #: the metadata of the newest block the driver has (``Receiver.lastStoredMetadata``)
    last_metadata: Any = None
    restart_delay_ms: int = 2000
    extra: dict[str, Any] = field(default_factory=dict)


class BlockLostError(DStreamsError):
    """A received block is gone from every executor and there is no write-ahead log."""


class ReceivedBlockRDD(RDD[Any]):
    """The blocks a receiver stream got in one batch: partition ``i`` reads block ``i``."""

    def __init__(self, ctx: Context, blocks: list[BlockInfo]) -> None:
        super().__init__(ctx, [], len(blocks))
        self.blocks = list(blocks)

    def preferred_executors(self, split: int) -> list[str]:
        return [loc[0] for loc in self.blocks[split].locations]

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        info = self.blocks[split]
        data = tctx.read_input_block(info)
        if data is None and info.wal is not None:
            # a log record is (stream, seq, records, metadata, the block's pickled records)
            data = pickle.loads(_read_wal(info.wal))[4]
        if data is None:
            where = ", ".join(loc[0] for loc in info.locations) or "no executor"
            raise BlockLostError(
                f"received block {info.seq} of stream {info.stream_id} ({info.num_records} "
                f"records) is lost: it was held by {where}, which are gone, and there is no "
                "write-ahead log; set dstreams.streaming.receiver.writeAheadLog.enable=true "
                "(and ssc.checkpoint(dir)) so that received data survives"
            )
        return iter(pickle.loads(data) if isinstance(data, bytes) else data)

    def __repr__(self) -> str:
        return f"ReceivedBlockRDD[{self._id}]"


def _read_wal(handle: WALHandle) -> bytes:
    import fsspec

    from dstreams.streaming.wal import read_record

    fs, _, _ = fsspec.get_fs_token_paths(handle.path)
    return read_record(fs, handle)
