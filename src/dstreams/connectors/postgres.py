"""An exactly-once PostgreSQL sink on the transactional output API (``DStream.writeToSink``).

:class:`PostgresSink` writes each partition of each batch in one transaction. The
transaction holds the rows (bulk-loaded with ``COPY``) and a commit marker row, keyed by
(sink name, batch time, partition), in ``dstreams_commits``:

* ``open`` finds the marker of a partition that was already committed and skips the partition.
  This is how a retried task, a speculative copy or a batch re-run after a driver restart
  skips it.
* ``commit`` inserts the marker with ``ON CONFLICT DO NOTHING``. When two attempts of a
  partition are live, the second waits for the first transaction's outcome. If the first
  committed, the second finds the conflict and rolls back, so only one lands.
* ``append`` mode copies the rows into the table. ``upsert`` mode copies them into a temporary
  table, then ``INSERT ... ON CONFLICT (key) DO UPDATE``. A key that appears twice in one
  partition keeps its last row, as row-by-row upserts would.

The sink name is the program's choice and must stay the same across restarts. It uses
``psycopg`` 3 (the ``postgres`` extra).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from dstreams.streaming.sinks import _check_name, as_row, is_committed, table_spec

__all__ = ["PostgresSink"]

_COMMITS = (
    "CREATE TABLE IF NOT EXISTS dstreams_commits (sink text NOT NULL, batch_time bigint NOT "
    "NULL, part integer NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (sink, batch_time, part))"
)


class PostgresSink:
    """Rows to a PostgreSQL table, each partition of each batch exactly once.

    Args:
        conninfo: a libpq connection string or URL (``postgresql://user@host:port/db``).
        table: the target table (``schema.table`` allowed).
        name: the sink's stable name (it keys the commit markers).
        columns: the table's columns, in the order of each record's fields. A dict
            ``{column: SQL type}`` also creates the table if it is missing (with the key as
            primary key in upsert mode).
        mode: ``append`` or ``upsert``.
        key: the key columns, for ``upsert`` (the table needs a unique index on them).
    """

    def __init__(
        self,
        conninfo: str,
        table: str,
        name: str,
        columns: Iterable[str] | dict[str, str],
        mode: str = "append",
        key: Iterable[str] = (),
    ) -> None:
        self.conninfo = conninfo
        self.name = _check_name(name)
        types = dict(columns) if isinstance(columns, dict) else None
        self.table, self.columns, self.key = table_spec(table, types or columns, mode, key)
        self.types = types
        if types is not None:
            for c, t in types.items():
                if not isinstance(t, str) or not t.strip() or ";" in t:
                    raise ValueError(f"column {c!r} needs an SQL type such as 'text', got {t!r}")
        self.mode = mode
        self._conn: Any = None
        self._partition = -1
        self._batch = -1
        self._rows = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_conn"] = None
        return state

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError:
            raise ImportError(
                "the PostgreSQL sink needs psycopg 3: pip install 'dstreams[postgres]'"
            ) from None
        conn = psycopg.connect(self.conninfo, autocommit=True)
        try:
            _ensure(conn, _COMMITS)
            if self.types is not None:
                cols = ", ".join(f"{c} {t}" for c, t in self.types.items())
                pk = f", PRIMARY KEY ({', '.join(self.key)})" if self.key else ""
                _ensure(conn, f"CREATE TABLE IF NOT EXISTS {self.table} ({cols}{pk})")
        except BaseException:
            conn.close()
            raise
        conn.autocommit = False
        return conn

    def open(self, partition: int, batch_time: int) -> bool:
        self._partition, self._batch = partition, batch_time
        self._conn = self._connect()
        if is_committed(self._conn, self, "%s"):
            self._conn.rollback()
            self._close()
            return False
        return True

    def write(self, records: Iterator[Any]) -> None:
        conn = self._conn
        cols = ", ".join(self.columns)
        target = self.table
        if self.mode == "upsert":
            target = "dstreams_upsert_rows"
            conn.execute(
                f"CREATE TEMP TABLE {target} ON COMMIT DROP AS SELECT {cols}, 0::bigint AS "
                f"dstreams_ord FROM {self.table} WITH NO DATA"
            )
            cols += ", dstreams_ord"
        count = 0
        with conn.cursor() as cur, cur.copy(f"COPY {target} ({cols}) FROM STDIN") as copy:
            for r in records:
                row = as_row(self, r)
                copy.write_row((*row, count) if self.mode == "upsert" else row)
                count += 1
        if self.mode == "upsert" and count:
            plain = ", ".join(self.columns)
            keys = ", ".join(self.key)
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns if c not in self.key)
            action = f"UPDATE SET {updates}" if updates else "NOTHING"
            conn.execute(
                f"INSERT INTO {self.table} ({plain}) SELECT DISTINCT ON ({keys}) {plain} FROM "
                f"{target} ORDER BY {keys}, dstreams_ord DESC ON CONFLICT ({keys}) DO {action}"
            )
        self._rows = count

    def commit(self) -> None:
        conn = self._conn
        try:
            cur = conn.execute(
                "INSERT INTO dstreams_commits (sink, batch_time, part) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (self.name, self._batch, self._partition),
            )
            if cur.rowcount == 1:
                conn.commit()
            else:
                conn.rollback()  # another attempt of this partition committed first
        except BaseException:
            conn.rollback()
            raise
        finally:
            self._close()

    def abort(self, error: BaseException | None) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            finally:
                self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _ensure(conn: Any, ddl: str) -> None:
    """Run a ``CREATE ... IF NOT EXISTS`` that concurrent tasks may race on."""
    import psycopg

    try:
        conn.execute(ddl)
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
        pass  # another task created it at the same moment
