"""Metadata checkpoints of a streaming application, as Spark Streaming's ``Checkpoint``.

With ``ssc.checkpoint(dir)`` the driver writes, under ``<dir>/metadata/``:

* the DStream graph once, with every user function pickled by cloudpickle, in a file named by
  its content (``graph-<hash>``): the graph does not change after ``start()``, so it is not
  written again every batch;
* a small checkpoint every batch, at generation (the batch's plan: its input blocks, files or
  offset ranges, recorded before any of its jobs runs) and at completion (the batch is done,
  and the state checkpoints it wrote are recorded): a :class:`Checkpoint` with the batch
  duration, the conf, the zero time, the batches generated but not completed, each stream's
  checkpoint data and the receivers' next epoch.

Each file is ``MAGIC | format | length | CRC-32 | pickled body``, written to a temporary name
and renamed into place, so a reader never takes a half-written file for a checkpoint. A write
that fails (a full disk, a permission) raises :class:`CheckpointWriteError` naming the file
and leaves nothing behind. The newest ``keep`` checkpoints are kept (10, as Spark).

:func:`read_latest` returns the newest checkpoint that reads back intact, skipping (with a
warning naming the file) any that is truncated or corrupt. :func:`program_fingerprint` names a
program by the code of its setup function, so that a checkpoint written by a different program
is refused instead of silently running the old one's code.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import re
import struct
import types
import zlib
from dataclasses import dataclass, field
from typing import Any

from dstreams.errors import DStreamsError

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "CheckpointWriteError",
    "FORMAT",
    "program_fingerprint",
]

_log = logging.getLogger(__name__)

FORMAT = 1
MAGIC = b"DSTRMCK1"
_HEADER = struct.Struct(">8sIQI")  # magic, format, body length, CRC-32
_NAME = re.compile(r"^checkpoint-(\d+)$")


class CheckpointError(DStreamsError):
    """A checkpoint cannot be used (corrupt, of another program, or of another version)."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written; nothing a later recovery would read was left."""


@dataclass
class Checkpoint:
    """One metadata checkpoint (plain data; the graph is in its own file)."""

    seq: int
    time_ms: int  #: the batch it was written for
    version: str
    program: str  #: the program's fingerprint ("" when not known)
    app_name: str
    master: str
    batch_ms: int
    zero_ms: int
    conf: list[tuple[str, str]]
    graph_file: str
    #: batches generated but not completed, oldest first
    pending: list[int] = field(default_factory=list)
    #: the newest batch generated
    last_generated_ms: int | None = None
    #: per stream id: what that stream needs to be rebuilt (files, state checkpoints, plans)
    streams: dict[int, Any] = field(default_factory=dict)
    #: the receiver tracker's allocations and epoch
    receivers: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT


def _frame(body: bytes) -> bytes:
    return _HEADER.pack(MAGIC, FORMAT, len(body), zlib.crc32(body)) + body


def _unframe(data: bytes, name: str) -> bytes:
    if len(data) < _HEADER.size:
        raise CheckpointError(f"{name} is truncated ({len(data)} bytes)")
    magic, fmt, length, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError(f"{name} is not a dstreams checkpoint")
    if fmt != FORMAT:
        raise CheckpointError(
            f"{name} was written in checkpoint format {fmt}; this dstreams reads format "
            f"{FORMAT}. To upgrade, stop the old program gracefully, then start the new one "
            "with a fresh checkpoint directory (sources resume from their committed offsets)"
        )
    body = data[_HEADER.size :]
    if len(body) != length:
        raise CheckpointError(f"{name} is truncated ({len(body)} of {length} bytes)")
    if zlib.crc32(body) != crc:
        raise CheckpointError(f"{name} is corrupt (its checksum does not match)")
    return body


class CheckpointStore:
    """Reads and writes the metadata checkpoints under ``<directory>/metadata``."""

    def __init__(self, directory: str, keep: int = 10) -> None:
        import fsspec

        self.directory = directory.rstrip("/")
        self.keep = keep
        self._fs, _, (root,) = fsspec.get_fs_token_paths(self.directory + "/metadata")
        self.root = root
        self._seq = -1
        self.last_bytes = 0  # size of the newest checkpoint written

    # -- writing ------------------------------------------------------------------------------
    def _write(self, name: str, data: bytes, what: str) -> None:
        final = f"{self.root}/{name}"
        tmp = f"{self.root}/.{name}.tmp"
        try:
            self._fs.makedirs(self.root, exist_ok=True)
            with self._fs.open(tmp, "wb") as fh:
                fh.write(data)
            _kill_point("checkpoint-write")
            self._fs.mv(tmp, final)
        except OSError as e:
            try:
                self._fs.rm(tmp)
            except (OSError, FileNotFoundError):
                pass
            raise CheckpointWriteError(
                e.errno,
                f"could not write {what} to {final}: {e.strerror or e}; free space or fix the "
                "permissions of the checkpoint directory (nothing was left that recovery would "
                "read)",
            ) from e

    def write_graph(self, graph_bytes: bytes) -> str:
        """Write the pickled graph once; return its file name."""
        name = f"graph-{hashlib.sha256(graph_bytes).hexdigest()[:20]}"
        try:
            exists = self._fs.exists(f"{self.root}/{name}")
        except OSError:
            exists = False
        if not exists:
            self._write(name, _frame(graph_bytes), "the streaming graph")
        return name

    def write(self, cp: Checkpoint) -> str:
        """Write ``cp`` as the newest checkpoint; keep the newest ``keep``."""
        if self._seq < 0:
            self._seq = max((s for s, _ in self._listing()), default=-1)
        self._seq += 1
        cp.seq = self._seq
        name = f"checkpoint-{cp.seq:012d}"
        data = _frame(pickle.dumps(cp, 5))
        self._write(name, data, f"the checkpoint of batch {cp.time_ms}")
        self.last_bytes = len(data)
        for _, old in self._listing()[: -self.keep]:
            try:
                self._fs.rm(old)
            except (OSError, FileNotFoundError):
                pass
        return f"{self.root}/{name}"

    # -- reading ------------------------------------------------------------------------------
    def _listing(self) -> list[tuple[int, str]]:
        try:
            names = self._fs.ls(self.root, detail=False)
        except (FileNotFoundError, OSError):
            return []
        out = []
        for n in names:
            m = _NAME.match(n.rstrip("/").rsplit("/", 1)[-1])
            if m:
                out.append((int(m.group(1)), n))
        return sorted(out)

    def exists(self) -> bool:
        return bool(self._listing())

    def read_latest(self) -> Checkpoint | None:
        """The newest checkpoint that reads back intact (None if there are none).

        Raises:
            CheckpointError: there are checkpoint files, but none of them is intact.
        """
        listing = self._listing()
        errors = []
        for _, path in reversed(listing):
            try:
                with self._fs.open(path, "rb") as fh:
                    cp = pickle.loads(_unframe(fh.read(), path))
                if not isinstance(cp, Checkpoint):
                    raise CheckpointError(f"{path} does not hold a checkpoint")
                self._seq = max(self._seq, listing[-1][0])
                return cp
            except (CheckpointError, pickle.UnpicklingError, EOFError, OSError) as e:
                if isinstance(e, CheckpointError) and "format" in str(e):
                    raise
                _log.warning("skipping checkpoint %s: %s", path, e)
                errors.append(f"{path}: {e}")
        if errors:
            raise CheckpointError(f"no checkpoint in {self.root} can be read: " + "; ".join(errors))
        return None

    def read_graph(self, name: str) -> bytes:
        path = f"{self.root}/{name}"
        try:
            with self._fs.open(path, "rb") as fh:
                return _unframe(fh.read(), path)
        except FileNotFoundError:
            raise CheckpointError(f"the checkpoint's graph file {path} is missing") from None


def program_fingerprint(func: Any) -> str:
    """A name for a program: a hash of its setup function's code and the functions it uses.

    Byte code, constants and names count; file names and line numbers do not, so moving code
    around or editing comments keeps the fingerprint, while changing what it does changes it.
    """
    h = hashlib.sha256()
    seen: set[int] = set()

    def code(c: types.CodeType) -> None:
        h.update(c.co_code)
        h.update(repr(c.co_names).encode())
        h.update(repr(c.co_varnames).encode())
        for k in c.co_consts:
            if isinstance(k, types.CodeType):
                code(k)
            else:
                h.update(repr(k).encode())

    def visit(f: Any) -> None:
        if id(f) in seen:
            return
        seen.add(id(f))
        c = getattr(f, "__code__", None)
        if c is None:
            return
        code(c)
        globs = getattr(f, "__globals__", {})
        for name in c.co_names:
            g = globs.get(name)
            if isinstance(g, types.FunctionType) and g.__module__ == f.__module__:
                visit(g)
        for cell in getattr(f, "__closure__", None) or ():
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            if isinstance(v, types.FunctionType):
                visit(v)

    visit(func)
    return h.hexdigest()[:16]


def _kill_point(name: str) -> None:
    from dstreams.faults import kill_point

    kill_point(name)
