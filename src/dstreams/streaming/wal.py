"""Write-ahead logs for received data: append-only segment files of framed records.

A receiver with ``dstreams.streaming.receiver.writeAheadLog.enable`` writes every block it
stores to a log under ``<checkpoint dir>/receivedData/<stream id>/`` before the block counts as
received, so a restarted driver reads back what the dead one had been given. Layout and rules,
after Spark's ``FileBasedWriteAheadLog``:

* Segments are files named ``log-<start ms>-<end ms>-<writer>``: a writer appends to one
  segment until its time range ends (``rollingIntervalSecs``, 60 s by default), then starts
  the next. ``<writer>`` keeps two writers (a receiver and its replacement) out of each other's
  files.
* A record is framed as ``length (4 bytes) | CRC-32 (4 bytes) | payload``, flushed to the
  operating system before ``write`` returns (so a killed process loses nothing it was told was
  written; like Spark's ``hflush``, not a disk sync). ``write`` returns a :class:`WALHandle`
  (file, offset, length) that reads the record back directly.
* A torn record at the end of a segment (the writer died mid-write) ends that segment for
  ``read_all``; a record whose checksum does not match fails loudly with its file and offset.
* ``clean(before_ms)`` deletes the segments that ended before ``before_ms``.

Paths go through fsspec; the directory must support appending (a local or network file
system, as Spark's needs HDFS).
"""

from __future__ import annotations

import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["WALCorruptError", "WALHandle", "WriteAheadLog", "segment_range"]

_HEADER = struct.Struct(">II")


class WALCorruptError(OSError):
    """A write-ahead-log record cannot be read back intact."""


@dataclass(frozen=True)
class WALHandle:
    """Where one record lives: read it back with :meth:`WriteAheadLog.read`."""

    path: str
    offset: int
    length: int


def segment_range(name: str) -> tuple[int, int] | None:
    """``(start ms, end ms)`` of a segment file name, or None for other files."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    parts = base.split("-")
    if len(parts) < 3 or parts[0] != "log":
        return None
    try:
        return int(parts[1]), int(parts[2])
    except ValueError:
        return None


class WriteAheadLog:
    """One writer's log in ``directory`` (see the module docstring). Thread-safe."""

    def __init__(self, directory: str, rolling_ms: int = 60_000) -> None:
        import fsspec

        self.directory = directory.rstrip("/")
        self.rolling_ms = rolling_ms
        self._fs, _, (self._root,) = fsspec.get_fs_token_paths(self.directory)
        self._fs.makedirs(self._root, exist_ok=True)
        self._writer = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._fh: Any = None
        self._path: str | None = None
        self._end = -1

    # -- writing ------------------------------------------------------------------------------
    def write(self, payload: bytes, time_ms: int) -> WALHandle:
        """Append ``payload`` (at ``time_ms`` on the writer's clock); durable when it returns."""
        with self._lock:
            if self._fh is None or time_ms > self._end:
                self._roll(time_ms)
            assert self._fh is not None and self._path is not None
            try:
                offset = self._fh.tell()
                self._fh.write(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
                self._fh.flush()
            except OSError as e:
                self._close()
                raise OSError(
                    e.errno,
                    f"could not write to the write-ahead log {self._path}: {e.strerror or e}; "
                    "check the free space and permissions of the checkpoint directory",
                ) from e
            return WALHandle(self._path, offset, len(payload))

    def _roll(self, time_ms: int) -> None:
        self._close()
        self._end = time_ms + self.rolling_ms
        self._path = f"{self._root}/log-{time_ms}-{self._end}-{self._writer}"
        self._fh = self._fs.open(self._path, "ab")

    def _close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
        self._fh = None

    def close(self) -> None:
        with self._lock:
            self._close()

    # -- reading ------------------------------------------------------------------------------
    def read(self, handle: WALHandle) -> bytes:
        """The record at ``handle``; raises :class:`WALCorruptError` if it is not intact."""
        return read_record(self._fs, handle)

    def segments(self) -> list[str]:
        """Every segment of this directory (all writers), oldest first."""
        try:
            names = self._fs.ls(self._root, detail=False)
        except FileNotFoundError:
            return []
        found = [(segment_range(n), n) for n in names]
        return [n for r, n in sorted((r, n) for r, n in found if r is not None)]

    def read_all(self) -> Iterator[tuple[WALHandle, bytes]]:
        """Every intact record of every segment, oldest segment first (a torn tail ends one)."""
        for path in self.segments():
            yield from _read_segment(self._fs, path)

    def clean(self, before_ms: int) -> list[str]:
        """Delete the segments whose time range ended before ``before_ms``."""
        removed = []
        with self._lock:
            current = self._path
        for path in self.segments():
            r = segment_range(path)
            if r is not None and r[1] < before_ms and path != current:
                try:
                    self._fs.rm(path)
                    removed.append(path)
                except FileNotFoundError:
                    pass
        return removed


def read_record(fs: Any, handle: WALHandle) -> bytes:
    """Read one framed record (used by tasks, which have no log object)."""
    try:
        with fs.open(handle.path, "rb") as fh:
            fh.seek(handle.offset)
            head = fh.read(_HEADER.size)
            payload = fh.read(handle.length)
    except FileNotFoundError:
        raise WALCorruptError(
            f"write-ahead log segment {handle.path} is missing; it was deleted while a batch "
            "still needed it (is the checkpoint directory shared and left alone?)"
        ) from None
    if len(head) < _HEADER.size or len(payload) < handle.length:
        raise WALCorruptError(f"write-ahead log record at {handle.path}:{handle.offset} is cut off")
    length, crc = _HEADER.unpack(head)
    if length != handle.length or zlib.crc32(payload) != crc:
        raise WALCorruptError(
            f"write-ahead log record at {handle.path}:{handle.offset} is corrupt (checksum)"
        )
    return payload


def _read_segment(fs: Any, path: str) -> Iterator[tuple[WALHandle, bytes]]:
    try:
        with fs.open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return  # cleaned meanwhile
    pos = 0
    while pos + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            return  # a torn write at the end: the writer died here
        yield WALHandle(path, pos, length), payload
        pos = start + length
