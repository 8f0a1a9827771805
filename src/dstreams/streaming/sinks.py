"""Exactly-once output: the transactional sink protocol, and the sinks built on it.

A :class:`Sink` writes one partition of one batch as a transaction. For every partition of
every batch the engine runs, in a task::

    if sink.open(partition, batch_time):     # False: already committed, skip it
        try:
            sink.write(records)               # an iterator of the partition's records
            sink.commit()                      # atomic: all of it, once, or nothing
        except BaseException as e:
            sink.abort(e)
            raise

The contract, which ``DStream.writeToSink`` relies on:

* ``name`` is chosen by the program and stays the same across restarts (never a run id): a
  sink's commits are keyed by (name, batch time, partition).
* A batch's plan is fixed when it is generated and checkpointed, so a re-run (a retried or
  speculative task, a recomputation, a batch re-run after the driver restarts) writes the same
  records to the same (batch time, partition).
* ``commit`` must be atomic and must refuse a second commit of the same key: two attempts of a
  partition can both be live (a stopped worker that resumes after its copy committed), and only
  one may land. The marker that proves a commit goes in the same transaction as the data (a row
  of a commit table; a file created only if it does not exist).
* Each task works on its own copy of the sink (``copy.copy``): create connections in ``open``.

:class:`FileSink` and :class:`SQLiteSink` are the two sinks dstreams ships.
``DStream.foreachBatch`` runs a
whole-batch function on the driver once per batch, with a commit marker in the checkpoint
directory; the function gets the batch id so that what it writes can be idempotent too (a
crash between the function and its marker runs it again).
"""

from __future__ import annotations

import copy
import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "FileSink",
    "SQLiteSink",
    "Sink",
    "as_row",
    "is_committed",
    "partition_writer",
    "table_spec",
]


@runtime_checkable
class Sink(Protocol):
    """A transactional, per-partition output (see the module docstring)."""

    name: str

    def open(self, partition: int, batch_time: int) -> bool:
        """Begin writing ``partition`` of the batch at ``batch_time`` (ms); False: skip it."""
        ...

    def write(self, records: Iterator[Any]) -> None:
        """Write the partition's records (not visible until ``commit``)."""
        ...

    def commit(self) -> None:
        """Make what was written visible, with the commit marker, atomically and once."""
        ...

    def abort(self, error: BaseException | None) -> None:
        """Discard what was written (the task failed or was killed)."""
        ...


def partition_writer(sink: Sink, batch_time: int) -> Callable[[int, Iterator[Any]], list[int]]:
    """The task function that runs ``sink``'s protocol on one partition."""
    from dstreams.faults import kill_point

    def write(split: int, records: Iterator[Any]) -> list[int]:
        mine = copy.copy(sink)
        if not mine.open(split, batch_time):
            return [0]
        try:
            mine.write(records)
            kill_point("commit")
            mine.commit()
        except BaseException as e:
            mine.abort(e)
            raise
        return [1]

    return write


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(
            f"a sink's name must be a non-empty string without '/', stable across restarts "
            f"(it keys the commits), got {name!r}"
        )
    return name


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


def _check_identifier(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a plain SQL identifier (letters, digits and '_', not "
            "starting with a digit); rename it or create the table yourself under such a name"
        )
    return value


class FileSink:
    """Writes ``<path>/<name>/batch-<time ms>/part-<NNNNN>`` text files, each exactly once.

    The part file is the commit marker: it is written under a temporary name and linked into
    place only if it does not exist yet, so a second attempt never replaces the first. Records
    are written one per line (``str`` of each). ``path`` is a local directory.
    """

    def __init__(self, path: str, name: str, encoding: str = "utf-8") -> None:
        self.path, self.name, self.encoding = str(path), _check_name(name), encoding
        self._tmp: str | None = None
        self._final: str | None = None

    def _batch_dir(self, batch_time: int) -> str:
        return os.path.join(self.path, self.name, f"batch-{batch_time}")

    def open(self, partition: int, batch_time: int) -> bool:
        directory = self._batch_dir(batch_time)
        self._final = os.path.join(directory, f"part-{partition:05d}")
        if os.path.exists(self._final):
            return False
        os.makedirs(directory, exist_ok=True)
        self._tmp = os.path.join(directory, f".part-{partition:05d}.{uuid.uuid4().hex}")
        return True

    def write(self, records: Iterator[Any]) -> None:
        assert self._tmp is not None
        with open(self._tmp, "w", encoding=self.encoding) as fh:
            for r in records:
                fh.write(f"{r}\n")
            fh.flush()
            os.fsync(fh.fileno())

    def commit(self) -> None:
        assert self._tmp is not None and self._final is not None
        try:
            os.link(self._tmp, self._final)  # atomic, and fails if the part exists
        except FileExistsError:
            pass  # another attempt committed first: this one is discarded
        finally:
            self.abort(None)

    def abort(self, error: BaseException | None) -> None:
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None

    def committed(self) -> dict[int, dict[int, list[str]]]:
        """What was committed: batch time -> partition -> lines (for checks and tests)."""
        out: dict[int, dict[int, list[str]]] = {}
        root = os.path.join(self.path, self.name)
        if not os.path.isdir(root):
            return out
        for d in sorted(os.listdir(root)):
            if not d.startswith("batch-"):
                continue
            t = int(d.split("-", 1)[1])
            for f in sorted(os.listdir(os.path.join(root, d))):
                if f.startswith("part-"):
                    with open(os.path.join(root, d, f), encoding=self.encoding) as fh:
                        out.setdefault(t, {})[int(f[5:])] = fh.read().splitlines()
        return out


def table_spec(
    table: str, columns: Iterable[str], mode: str, key: Iterable[str]
) -> tuple[str, list[str], list[str]]:
    """A table sink's checked ``(table, columns, key)`` (SQLite's, PostgreSQL's)."""
    table = _check_identifier("table", table)
    cols = [_check_identifier("column", c) for c in columns]
    keys = [_check_identifier("key column", c) for c in key]
    missing = [k for k in keys if k not in cols]
    if missing:
        raise ValueError(f"key columns {missing} are not among columns {cols}")
    if mode not in ("append", "upsert"):
        raise ValueError(f"mode={mode!r} must be 'append' or 'upsert'")
    if mode == "upsert" and not keys:
        raise ValueError("mode='upsert' needs key=[the key columns]")
    if not cols:
        raise ValueError("columns must name the table's columns")
    return table, cols, keys


def is_committed(conn: Any, sink: Any, mark: str) -> bool:
    """Whether ``sink``'s open partition has its marker in ``dstreams_commits`` (DB-API
    ``conn``; ``mark`` is the driver's placeholder, ``?`` or ``%s``)."""
    row = conn.execute(
        f"SELECT 1 FROM dstreams_commits WHERE sink = {mark} AND batch_time = {mark} "
        f"AND part = {mark}",
        (sink.name, sink._batch, sink._partition),
    ).fetchone()
    return row is not None


def as_row(sink: Any, record: Any) -> tuple[Any, ...]:
    """``record`` as a row of ``sink``'s table, or an error naming the record and the table."""
    row = tuple(record)
    if len(row) != len(sink.columns):
        raise ValueError(
            f"{sink.name}: a record has {len(row)} fields, the table {sink.table} has "
            f"{len(sink.columns)} columns {sink.columns}: {row!r:.80}"
        )
    return row


class SQLiteSink:
    """Writes rows to a SQLite table; rows and the commit marker go in one transaction.

    Args:
        database: the database file (shared by the workers: a local path).
        table: the table the rows go to (created with ``columns`` if it does not exist).
        name: the sink's stable name.
        columns: the table's columns; each record is a tuple in this order.
        mode: ``append`` (insert every row) or ``upsert`` (``INSERT ... ON CONFLICT(key) DO
            UPDATE``: a row whose key exists replaces the other columns).
        key: the key columns, for ``upsert``.

    The marker is a row of ``dstreams_commits (sink, batch_time, part)`` whose primary key
    refuses a second commit of the same partition: the losing attempt's transaction rolls back.
    """

    def __init__(
        self,
        database: str,
        table: str,
        name: str,
        columns: Iterable[str],
        mode: str = "append",
        key: Iterable[str] = (),
    ) -> None:
        self.database, self.name = str(database), _check_name(name)
        self.table, self.columns, self.key = table_spec(table, columns, mode, key)
        self.mode = mode
        self._conn: sqlite3.Connection | None = None
        self._partition = -1
        self._batch = -1
        self._rows: list[tuple[Any, ...]] = []

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.database, timeout=60, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS dstreams_commits (sink TEXT NOT NULL, batch_time "
            "INTEGER NOT NULL, part INTEGER NOT NULL, PRIMARY KEY (sink, batch_time, part))"
        )
        cols = ", ".join(self.columns)
        unique = f", PRIMARY KEY ({', '.join(self.key)})" if self.key else ""
        conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} ({cols}{unique})")
        return conn

    def _marked(self, conn: sqlite3.Connection) -> bool:
        return is_committed(conn, self, "?")

    def open(self, partition: int, batch_time: int) -> bool:
        self._partition, self._batch = partition, batch_time
        self._conn = self._connect()
        if self._marked(self._conn):
            self._conn.close()
            self._conn = None
            return False
        return True

    def write(self, records: Iterator[Any]) -> None:
        self._rows = [as_row(self, r) for r in records]

    def commit(self) -> None:
        conn = self._conn
        assert conn is not None
        marks = ", ".join("?" for _ in self.columns)
        sql = f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({marks})"
        if self.mode == "upsert":
            updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c not in self.key)
            sql += f" ON CONFLICT ({', '.join(self.key)}) DO " + (
                f"UPDATE SET {updates}" if updates else "NOTHING"
            )
        try:
            conn.execute("BEGIN IMMEDIATE")  # one writer at a time: the marker check is exact
            if self._marked(conn):
                conn.execute("ROLLBACK")  # another attempt committed meanwhile
                return
            conn.executemany(sql, self._rows)
            conn.execute(
                "INSERT INTO dstreams_commits (sink, batch_time, part) VALUES (?, ?, ?)",
                (self.name, self._batch, self._partition),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
            self._conn = None

    def abort(self, error: BaseException | None) -> None:
        if self._conn is not None:
            try:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            finally:
                self._conn.close()
                self._conn = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_conn=None, _rows=[])
        return state
