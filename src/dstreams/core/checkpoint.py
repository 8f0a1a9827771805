"""Reliable RDD checkpointing through fsspec.

``rdd.checkpoint()`` only marks the RDD. After the next job that computes it, the Context runs
one more job that writes every partition to ``<checkpoint dir>/rdd-<id>/part-NNNNN`` (written to
a temporary name, then renamed, so a reader never sees half a file). The RDD then reads from
:class:`CheckpointRDD` and drops its dependencies, which truncates the lineage. The directory
must be visible to the driver and every worker (a local path here, or shared storage).
"""

from __future__ import annotations

import pickle
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dstreams.core.rdd import RDD

if TYPE_CHECKING:
    from dstreams.core.context import Context
    from dstreams.scheduler.task import TaskContext

__all__ = ["CheckpointRDD", "write_checkpoint", "pending_checkpoints", "remove_checkpoint_dir"]


class CheckpointRDD(RDD[Any]):
    """Partitions read back from checkpoint files."""

    def __init__(self, ctx: Context, path: str, num_partitions: int) -> None:
        super().__init__(ctx, [], num_partitions)
        self.path = path

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        import fsspec

        name = f"{self.path}/part-{split:05d}"
        try:
            with fsspec.open(name, "rb") as fh:
                data = pickle.load(fh)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"checkpoint file {name!r} is missing; the checkpoint directory must be "
                "shared by the driver and all workers and must not be cleaned while in use"
            ) from None
        except (pickle.UnpicklingError, EOFError) as e:
            raise ValueError(f"checkpoint file {name!r} is corrupt: {e}") from e
        return iter(data)


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
    died mid-write are removed too. When the engine made the checkpoint for its own use
    (``rdd._engine_checkpoint``, set by state streams), the files are deleted once the RDD is
    garbage-collected, since nothing can read them after that.
    """
    import fsspec

    assert ctx._checkpoint_dir is not None
    path = f"{ctx._checkpoint_dir.rstrip('/')}/rdd-{rdd.id()}"
    fs, _, (root,) = fsspec.get_fs_token_paths(path)
    fs.makedirs(root, exist_ok=True)

    def write(it: Iterator[Any]) -> list[int]:
        from dstreams.scheduler.task import TaskContext

        tctx = TaskContext.get()
        assert tctx is not None
        split = tctx.partitionId()
        tmp = f"{root}/.part-{split:05d}.attempt-{tctx.taskAttemptId()}"
        try:
            with fs.open(tmp, "wb") as fh:
                pickle.dump(list(it), fh, 5)
            fs.mv(tmp, f"{root}/part-{split:05d}")
        except BaseException:
            _remove_quietly(fs, tmp)
            raise
        return []

    rdd._checkpoint_requested = False  # the write job must not trigger itself
    try:
        ctx.runJob(rdd, write)
    finally:
        for leftover in _temporary_files(fs, root):
            _remove_quietly(fs, leftover)
    rdd._mark_checkpointed(CheckpointRDD(ctx, path, rdd.getNumPartitions()))
    if getattr(rdd, "_engine_checkpoint", False):
        weakref.finalize(rdd, remove_checkpoint_dir, fs, root)


def _temporary_files(fs: Any, root: str) -> list[str]:
    try:
        names = fs.ls(root, detail=False)
    except FileNotFoundError:
        return []
    return [n for n in names if n.rstrip("/").rsplit("/", 1)[-1].startswith(".part-")]


def _remove_quietly(fs: Any, path: str) -> None:
    try:
        fs.rm(path)
    except (FileNotFoundError, OSError):
        pass


def remove_checkpoint_dir(fs: Any, root: str) -> None:
    """Delete one RDD's checkpoint directory (a missing one is fine)."""
    try:
        fs.rm(root, recursive=True)
    except (FileNotFoundError, OSError):
        pass
