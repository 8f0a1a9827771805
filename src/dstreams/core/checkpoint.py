"""Reliable RDD checkpointing through fsspec.

``rdd.checkpoint()`` only marks the RDD. After the next job that computes it, the Context runs
one more job that writes every partition to ``<checkpoint dir>/rdd-<id>/part-NNNNN`` (written to
a temporary name, then renamed, so a reader never sees half a file). The checkpoint dir is the
Context's own subdirectory of the one given to ``setCheckpointDir`` (see there). The RDD then
reads from :class:`CheckpointRDD` and drops its dependencies, which truncates the lineage. The
directory must be visible to the driver and every worker (a local path here, or shared storage).

Each part file is ``MAGIC | length | CRC-32 | pickled records``: a truncated or damaged file is
recognised (:class:`~dstreams.errors.CorruptCheckpointError`, naming it) instead of being read
wrong. A checkpoint the engine made for a state stream (``rdd._engine_checkpoint``) keeps its
lineage aside as a fallback (``_fallback_deps``) until the stream's next checkpoint: if one of
its files cannot be read, the scheduler puts the lineage back and the partition is recomputed.
"""

from __future__ import annotations

import pickle
import struct
import weakref
import zlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from dstreams.core.rdd import RDD
from dstreams.errors import CheckpointWriteFailedError, CorruptCheckpointError

if TYPE_CHECKING:
    from dstreams.core.context import Context
    from dstreams.core.dependency import Partitioner
    from dstreams.scheduler.task import TaskContext

__all__ = [
    "CheckpointRDD",
    "write_checkpoint",
    "pending_checkpoints",
    "remove_checkpoint_dir",
    "remove_orphaned_runs",
    "remove_when_unused",
    "verify_checkpoint",
    "read_part",
    "write_part",
]

_MAGIC = b"DSRDDCK1"
_HEADER = struct.Struct(">8sQI")


def write_part(fh: Any, records: list[Any]) -> None:
    """Write one checkpoint part: header with length and checksum, then the pickle."""
    body = pickle.dumps(records, 5)
    fh.write(_HEADER.pack(_MAGIC, len(body), zlib.crc32(body)))
    fh.write(body)


def read_part(name: str, owner: int, split: int) -> list[Any]:
    """Read one checkpoint part; raise CorruptCheckpointError if it is missing or damaged."""
    import fsspec

    try:
        with fsspec.open(name, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise CorruptCheckpointError(
            owner,
            split,
            f"checkpoint file {name!r} is missing; the checkpoint directory must be shared by "
            "the driver and all workers and must not be cleaned while in use",
        ) from None
    if len(data) < _HEADER.size or data[:8] != _MAGIC:
        raise CorruptCheckpointError(owner, split, f"checkpoint file {name!r} is not intact")
    _, length, crc = _HEADER.unpack_from(data)
    body = data[_HEADER.size :]
    if len(body) != length:
        raise CorruptCheckpointError(
            owner, split, f"checkpoint file {name!r} is truncated ({len(body)} of {length} bytes)"
        )
    if zlib.crc32(body) != crc:
        raise CorruptCheckpointError(owner, split, f"checkpoint file {name!r} is corrupt")
    try:
        records: list[Any] = pickle.loads(body)
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise CorruptCheckpointError(
            owner, split, f"checkpoint file {name!r} is corrupt: {e}"
        ) from e
    return records


class CheckpointRDD(RDD[Any]):
    """Partitions read back from checkpoint files."""

    def __init__(
        self,
        ctx: Context,
        path: str,
        num_partitions: int,
        partitioner: Partitioner | None = None,
        owner: int = -1,
    ) -> None:
        super().__init__(ctx, [], num_partitions, partitioner)
        self.path = path
        self.owner = owner  #: the id of the RDD these files checkpoint

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        return iter(read_part(f"{self.path}/part-{split:05d}", self.owner, split))


def pending_checkpoints(rdd: RDD[Any]) -> list[RDD[Any]]:
    """RDDs in the lineage of ``rdd`` that were marked for checkpointing and are not written.

    As Spark's ``doCheckpoint``, every RDD is searched once in its life: an RDD a previous job
    already searched is not entered again, so a long lineage (a state stream's) costs each job
    only its new RDDs. Mark an RDD with ``checkpoint()`` before the first job that uses it.
    """
    out: list[RDD[Any]] = []
    seen: set[int] = set()
    stack = [rdd]
    while stack:
        r = stack.pop()
        if r._id in seen:
            continue
        seen.add(r._id)
        if r._checkpoint_requested and not r.is_checkpointed:
            out.append(r)
            continue  # its ancestors are truncated with it
        if r._checkpoint_searched:
            continue
        r._checkpoint_searched = True
        stack.extend(d.rdd for d in r.dependencies())
    return out


def write_checkpoint(ctx: Context, rdd: RDD[Any]) -> None:
    """Write every partition of ``rdd`` and truncate its lineage.

    Each attempt writes a temporary file and renames it into place; an attempt that fails or
    is killed removes its temporary file, and once the job is done any left by a worker that
    died mid-write are removed too. A write the file system refuses (``OSError``: a full disk,
    no permission) is not retried: the parts already written are removed, the RDD keeps its
    lineage, and :class:`~dstreams.errors.CheckpointWriteFailedError` names the file.
    """
    import fsspec

    assert ctx._checkpoint_dir is not None
    path = f"{ctx._checkpoint_dir.rstrip('/')}/rdd-{rdd.id()}"
    fs, _, (root,) = fsspec.get_fs_token_paths(path)
    try:
        fs.makedirs(root, exist_ok=True)
    except OSError as e:
        raise _write_failed(e, root) from e

    def write(it: Iterator[Any]) -> list[tuple[int | None, str, str]]:
        from dstreams.scheduler.task import TaskContext

        tctx = TaskContext.get()
        assert tctx is not None
        split = tctx.partitionId()
        final = f"{root}/part-{split:05d}"
        tmp = f"{root}/.part-{split:05d}.attempt-{tctx.taskAttemptId()}"
        try:
            with fs.open(tmp, "wb") as fh:
                write_part(fh, list(it))
            fs.mv(tmp, final)
        except OSError as e:  # the disk, not the task: retrying cannot help
            _remove_quietly(fs, tmp)
            return [(e.errno, e.strerror or str(e), final)]
        except BaseException:
            _remove_quietly(fs, tmp)
            raise
        return []

    rdd._checkpoint_requested = False  # the write job must not trigger itself
    try:
        failures = ctx.runJob(rdd, write)
    finally:
        for leftover in _temporary_files(fs, root):
            _remove_quietly(fs, leftover)
    if failures:
        remove_checkpoint_dir(path)
        errno_, strerror, name = failures[0]
        raise CheckpointWriteFailedError(
            errno_,
            f"could not write checkpoint file {name} of RDD {rdd.id()}: {strerror}; nothing of "
            "this checkpoint was kept and the RDD keeps its lineage. Free space in the "
            "checkpoint directory or point it at a larger, writable one.",
            name,
        )
    # an engine checkpoint (a state stream's) keeps its lineage for a while; its stream
    # decides when its files go (``DStream._record_checkpoint``); a user's stays, as Spark's
    engine = getattr(rdd, "_engine_checkpoint", False)
    ckpt = CheckpointRDD(ctx, path, rdd.getNumPartitions(), rdd.partitioner, rdd.id())
    rdd._mark_checkpointed(ckpt, keep_lineage=engine)


def _write_failed(e: OSError, name: str) -> CheckpointWriteFailedError:
    return CheckpointWriteFailedError(
        e.errno,
        f"could not create checkpoint directory {name}: {e.strerror or e}. Free space in the "
        "checkpoint directory or point it at a larger, writable one.",
        name,
    )


def _temporary_files(fs: Any, root: str) -> list[str]:
    try:
        names = fs.ls(root, detail=False)
    except FileNotFoundError:
        return []
    return [n for n in names if n.rstrip("/").rsplit("/", 1)[-1].startswith(".part-")]


def _remove_quietly(fs: Any, path: str, recursive: bool = False) -> None:
    try:
        fs.rm(path, recursive=recursive)
    except (FileNotFoundError, OSError):
        pass


def remove_checkpoint_dir(path: str) -> None:
    """Delete one RDD's checkpoint directory (a missing one is fine)."""
    import fsspec

    try:
        fs, _, (root,) = fsspec.get_fs_token_paths(path)
        fs.rm(root, recursive=True)
    except (FileNotFoundError, OSError):
        pass


def remove_orphaned_runs(root: str, current: str, keep: Iterable[str]) -> int:
    """Delete the RDD checkpoints that earlier Contexts left under ``root``; return how many.

    Every Context writes its RDD checkpoints in a directory of its own under ``root`` (a
    UUID, see ``Context.setCheckpointDir``). A driver that recovers from a metadata checkpoint
    needs only the files that checkpoint names (``keep``); every other ``rdd-<id>`` of an
    earlier run is an orphan (written by a driver that was killed before it recorded it, or
    superseded), and so is a run directory left empty. The current run's directory is left
    alone, and so is anything in ``root`` that is not named by a UUID.
    """
    import uuid

    import fsspec

    wanted = {tuple(p.rstrip("/").rsplit("/", 2)[-2:]) for p in keep}
    fs, _, (base,) = fsspec.get_fs_token_paths(root)
    mine = current.rstrip("/").rsplit("/", 1)[-1]
    removed = 0
    try:
        entries = fs.ls(base, detail=True)
    except FileNotFoundError:
        return 0
    for entry in entries:
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if entry.get("type") != "directory" or name == mine:
            continue
        try:
            uuid.UUID(name)
        except ValueError:
            continue
        left = 0
        for child in fs.ls(entry["name"], detail=False):
            rdd_name = str(child).rstrip("/").rsplit("/", 1)[-1]
            if (name, rdd_name) in wanted:
                left += 1
                continue
            _remove_quietly(fs, child, recursive=True)
            removed += 1
        if not left:
            _remove_quietly(fs, entry["name"], recursive=True)
    return removed


def verify_checkpoint(path: str, num_partitions: int) -> str | None:
    """Read every part of a checkpoint back; the first problem found, or None if intact."""
    for split in range(num_partitions):
        try:
            read_part(f"{path}/part-{split:05d}", -1, split)
        except CorruptCheckpointError as e:
            return str(e)
    return None


def remove_when_unused(rdd: RDD[Any]) -> None:
    """Delete ``rdd``'s checkpoint files once nothing refers to ``rdd`` any more.

    ``rdd`` is a checkpointed RDD, or a :class:`CheckpointRDD` restored by a recovery.
    """
    path = rdd.getCheckpointFile() or getattr(rdd, "path", None)
    if path is not None:
        rdd.release_lineage()
        weakref.finalize(rdd, remove_checkpoint_dir, path)
