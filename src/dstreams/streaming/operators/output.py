"""Output operators: the only streams that turn into jobs.

:class:`ForEachDStream` is registered with the graph by ``foreachRDD``, ``pprint``
and ``saveAsTextFiles``.  At each batch time the job generator asks it for a job;
the job (run later by the job scheduler, in batch order) calls the user function
on the driver with the batch's ``datetime`` and RDD.

``take_and_print`` prints PySpark's exact ``pprint`` text; ``rdd_to_file_name``
names ``saveAsTextFiles`` outputs exactly as PySpark does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from dstreams.streaming._util import to_datetime
from dstreams.streaming.dstream import DerivedDStream, DStream

__all__ = [
    "BatchCommits",
    "ForEachDStream",
    "rdd_to_file_name",
    "save_atomically",
    "take_and_print",
]

_DASHES = "-------------------------------------------"


class ForEachDStream(DerivedDStream[Any]):
    """Runs ``func(time, rdd)`` on the driver for every RDD of ``parent``."""

    def __init__(
        self, parent: DStream[Any], func: Callable[[datetime, Any], Any], name: str
    ) -> None:
        super().__init__(parent)
        self.func, self.name = func, name

    def _compute(self, time_ms: int) -> Any:
        return None

    def _generate_job(self, time_ms: int) -> Callable[[], Any] | None:
        """Return the job body for ``time_ms``, or None if the parent has no RDD then."""
        rdd = self.parent._get_or_compute(time_ms)
        if rdd is None:
            return None
        func, when = self.func, to_datetime(time_ms)
        return lambda: func(when, rdd)


def take_and_print(time: datetime, rdd: Any, num: int) -> None:
    """Print up to ``num`` records of ``rdd`` under PySpark's ``pprint`` header."""
    taken = rdd.take(num + 1)
    lines = [_DASHES, f"Time: {time}", _DASHES]
    lines.extend(str(record) for record in taken[:num])
    if len(taken) > num:
        lines.append("...")
    lines.append("")
    print("\n".join(lines))


def rdd_to_file_name(prefix: str, suffix: str | None, timestamp: datetime | int) -> str:
    """Return ``prefix-<time in ms>`` or ``prefix-<time in ms>.suffix``."""
    if isinstance(timestamp, datetime):
        timestamp = round(timestamp.timestamp() * 1000)
    if suffix is None:
        return f"{prefix}-{timestamp}"
    return f"{prefix}-{timestamp}.{suffix}"


def save_atomically(rdd: Any, path: str) -> None:
    """``rdd.saveAsTextFile(path)`` through a temporary directory renamed at the end.

    An existing ``path`` is a batch written before (it is kept, as PySpark keeps it); leftovers
    of attempts that died are removed first.
    """
    import uuid

    import fsspec

    fs, _, (final,) = fsspec.get_fs_token_paths(path)
    if fs.exists(final):
        return
    parent, base = final.rsplit("/", 1)
    try:
        for stale in fs.ls(parent, detail=False):
            if stale.rsplit("/", 1)[-1].startswith(f".{base}.tmp-"):
                fs.rm(stale, recursive=True)
    except FileNotFoundError:
        pass
    tmp = f"{parent}/.{base}.tmp-{uuid.uuid4().hex[:12]}"
    rdd.saveAsTextFile(fs.unstrip_protocol(tmp))
    if fs.exists(final):  # another run finished first
        fs.rm(tmp, recursive=True)
        return
    fs.mv(tmp, final, recursive=True)


class BatchCommits:
    """Runs a driver-side function once per batch, with markers in the checkpoint directory.

    A marker is needed only while a recovery could run its batch again: recovery re-runs the
    batches pending in one of the newest checkpoints, a handful of batches back. Markers older
    than ``KEEP_BATCHES`` batch intervals are deleted, every ``SWEEP_EVERY`` batches.
    """

    KEEP_BATCHES = 100
    SWEEP_EVERY = 50

    def __init__(self, stream: DStream[Any], name: str) -> None:
        # the stream, not its context: the stream is re-attached to the context that recovers
        # it, and a checkpointed graph cannot hold a context
        self._stream, self.name = stream, name
        self._runs = 0

    def _directory(self) -> str | None:
        ssc = self._stream._ssc
        directory = ssc._checkpoint_dir or ssc._sc._checkpoint_root
        if not directory:
            return None
        return f"{directory.rstrip('/')}/commits/{self.name}"

    def run_once(self, batch_id: int, func: Callable[[int], Any]) -> None:
        import fsspec

        directory = self._directory()
        if directory is None:  # no checkpoint directory: nothing survives a restart anyway
            func(batch_id)
            return
        fs, _, (root,) = fsspec.get_fs_token_paths(directory)
        path = f"{root}/{batch_id}"
        if fs.exists(path):
            return  # this batch's function ran before (a re-run after a restart)
        func(batch_id)
        fs.makedirs(root, exist_ok=True)
        with fs.open(path, "wb") as fh:
            fh.write(b"done\n")
        self._runs += 1
        if self._runs % self.SWEEP_EVERY == 0:
            batch_ms = self._stream._ssc._batch_ms
            self._sweep(fs, root, batch_id - self.KEEP_BATCHES * batch_ms)

    @staticmethod
    def _sweep(fs: Any, root: str, before: int) -> None:
        for name in fs.ls(root, detail=False):
            base = name.rstrip("/").rsplit("/", 1)[-1]
            if base.isdigit() and int(base) < before:
                try:
                    fs.rm(name)
                except FileNotFoundError:
                    pass
