"""Configuration: :class:`Conf` (SparkConf's surface) and the registry of every key.

Every configuration key the engine reads is declared once in :data:`KEYS`, with its default and
meaning; ``docs/configuration.md`` is generated from the same table (see
``python -m dstreams.conf``). Keys use the ``dstreams.`` prefix and mirror Spark's names; the same
key with a ``spark.`` prefix is accepted as an alias so ported programs keep their settings.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

#: what a redacted value is shown as (Spark's text)
REDACTED = "*********(redacted)"

#: environment variable through which ``dstreams submit`` hands settings to the program's Conf
SUBMIT_ENV = "DSTREAMS_SUBMIT_CONF"

#: set to ``1`` by ``dstreams submit`` on a terminal without ``--quiet``: show live progress
CONSOLE_ENV = "DSTREAMS_CONSOLE_PROGRESS"

__all__ = [
    "CONSOLE_ENV",
    "REDACTED",
    "SUBMIT_ENV",
    "parse_size_bytes",
    "Conf",
    "ConfigKey",
    "KEYS",
    "canonical_key",
    "parse_duration_ms",
    "parse_master",
]


@dataclass(frozen=True)
class ConfigKey:
    """One documented configuration key."""

    name: str
    default: str | None
    doc: str


def _k(name: str, default: str | None, doc: str) -> tuple[str, ConfigKey]:
    return name, ConfigKey(name, default, doc)


KEYS: dict[str, ConfigKey] = dict(
    [
        _k(
            "dstreams.master",
            "local[*]",
            "Where tasks run: `local`, `local[N]`, `local[*]`, `ray` (the Ray cluster of "
            "`RAY_ADDRESS`, a running local one, or a new private one) or `ray://host:port` "
            "(Ray Client).",
        ),
        _k("dstreams.app.name", "dstreams", "Application name shown in logs."),
        _k(
            "dstreams.default.parallelism",
            None,
            "Default number of partitions for parallelize and shuffles; "
            "defaults to the number of local workers.",
        ),
        _k(
            "dstreams.task.maxFailures",
            "4",
            "Attempts per task before its job fails (Spark's meaning: 1 means no retry).",
        ),
        _k(
            "dstreams.speculation", "false", "Relaunch tasks that run much longer than their peers."
        ),
        _k(
            "dstreams.speculation.multiplier",
            "1.5",
            "A task is speculatable when it runs this many times longer than the median.",
        ),
        _k(
            "dstreams.speculation.quantile",
            "0.75",
            "Fraction of a stage's tasks that must finish before speculation starts.",
        ),
        _k(
            "dstreams.speculation.minTaskRuntime",
            "100ms",
            "Tasks younger than this are never speculated.",
        ),
        _k(
            "dstreams.speculation.task.duration.threshold",
            None,
            "In a stage with no more tasks than one executor has slots (streaming batches are "
            "often that small), speculate a task running longer than this even before "
            "`quantile` of the stage is done (Spark's setting; unset: off).",
        ),
        _k(
            "dstreams.task.reaper.killTimeout",
            "10s",
            "A task that has not stopped this long after it was killed (a speculative loser, a "
            "cancelled job) gets its worker process killed and replaced; 0 disables it.",
        ),
        _k(
            "dstreams.executor.heartbeatInterval",
            "100ms",
            "How often the driver pings the executors and checks for stragglers.",
        ),
        _k(
            "dstreams.executor.unresponsiveTimeout",
            "300ms",
            "An executor silent this long (a stopped or wedged process) is offered no new "
            "tasks, and the tasks queued on it are copied to other executors; with "
            "speculation, so is the one it is running, and the map outputs it holds are "
            "recomputed elsewhere for the running job. It is not declared lost.",
        ),
        _k(
            "dstreams.executor.instances",
            "2",
            "Executors (Ray actors) on a `ray` master; `local[N]` has N.",
        ),
        _k(
            "dstreams.executor.cores",
            "1",
            "Task processes per executor on a `ray` master (each reserves one Ray CPU; a core "
            "is a process, never a thread).",
        ),
        _k(
            "dstreams.driver.host",
            None,
            "Address the executors connect to on a `ray` master (default: this node's Ray "
            "address; loopback for a Ray started by dstreams).",
        ),
        _k(
            "dstreams.executor.storageMemory",
            "2g",
            "Memory per worker for cached partitions; beyond it, least recently used partitions "
            "of other RDDs spill to disk (levels with disk) or are dropped and recomputed.",
        ),
        _k(
            "dstreams.local.dir",
            None,
            "Scratch directory for broadcast files; defaults to a fresh temporary directory.",
        ),
        _k("dstreams.log.level", "WARN", "Log level of the `dstreams` logger (setLogLevel)."),
        _k(
            "dstreams.executorEnv.<NAME>",
            None,
            "Environment variable NAME for the worker processes (Conf.setExecutorEnv).",
        ),
        _k(
            "dstreams.checkpoint.dir",
            None,
            "Default reliable checkpoint directory (any fsspec URL); "
            "setCheckpointDir overrides it.",
        ),
        _k(
            "dstreams.redaction.regex",
            r"(?i)secret|password|token|access[.]?key",
            "Keys matching this regular expression have their values replaced wherever the "
            "configuration is logged or shown (Spark's `spark.redaction.regex`).",
        ),
        # --- streaming keys ---
        _k(
            "dstreams.streaming.blockInterval",
            "200ms",
            "Receivers cut received data into one block (one partition) per interval.",
        ),
        _k(
            "dstreams.streaming.receiverRestartDelay",
            "2000ms",
            "How long a failed receiver waits before it is started again.",
        ),
        _k(
            "dstreams.streaming.checkpointInterval",
            "10s",
            "Default checkpoint interval of state streams (rounded up to a multiple of the slide).",
        ),
        _k(
            "dstreams.streaming.gracefulStopTimeout",
            None,
            "Longest a graceful stop waits for received data to be processed "
            "(default: 10 batch intervals).",
        ),
        _k(
            "dstreams.streaming.unpersist",
            "true",
            "Unpersist the RDDs a stream generated once they fall out of its remember window.",
        ),
        _k(
            "dstreams.streaming.clock",
            "system",
            "Clock driving batch times: `system`, or `manual` (tests; advance it yourself).",
        ),
        _k(
            "dstreams.streaming.backpressure.enabled",
            "false",
            "Throttle receivers to the rate batches are processed at (a PID estimator "
            "fed by every completed batch), so a slow batch does not start a cascade.",
        ),
        _k(
            "dstreams.streaming.backpressure.initialRate",
            None,
            "Records/s each receiver may store before the first estimate (default: "
            "`dstreams.streaming.receiver.maxRate`, else unlimited).",
        ),
        _k(
            "dstreams.streaming.backpressure.pid.proportional",
            "1.0",
            "PID estimator: weight of the difference between the last rate and the "
            "processing rate.",
        ),
        _k(
            "dstreams.streaming.backpressure.pid.integral",
            "0.2",
            "PID estimator: weight of the backlog (scheduling delay times processing rate).",
        ),
        _k(
            "dstreams.streaming.backpressure.pid.derived",
            "0.0",
            "PID estimator: weight of the error's change per second.",
        ),
        _k(
            "dstreams.streaming.backpressure.pid.minRate",
            "100",
            "PID estimator: the lowest rate (records/s) it ever sets.",
        ),
        _k(
            "dstreams.streaming.receiver.maxRate",
            None,
            "Most records/s one receiver stores, with or without backpressure (unset or 0: "
            "no limit).",
        ),
        _k(
            "dstreams.streaming.dynamicAllocation.enabled",
            "false",
            "Scale the executors with the load of a running stream (Spark's streaming dynamic "
            "allocation): more when processing approaches the batch interval, fewer when idle.",
        ),
        _k(
            "dstreams.streaming.dynamicAllocation.scalingInterval",
            "60s",
            "How often the executors are rescaled (on the streaming clock).",
        ),
        _k(
            "dstreams.streaming.dynamicAllocation.scalingUpRatio",
            "0.9",
            "Ask for max(round(ratio), 1) more executors when the average processing time over "
            "the batch interval reaches this ratio.",
        ),
        _k(
            "dstreams.streaming.dynamicAllocation.scalingDownRatio",
            "0.3",
            "Remove one executor (never one that runs a receiver) when the ratio is at most this.",
        ),
        _k(
            "dstreams.streaming.dynamicAllocation.minExecutors",
            None,
            "Fewest executors (default: the number of receivers, at least 1).",
        ),
        _k(
            "dstreams.streaming.dynamicAllocation.maxExecutors",
            None,
            "Most executors (default: no limit).",
        ),
        _k(
            "dstreams.streaming.receiver.replicaTimeout",
            "1s",
            "Longest a receiver waits for its replica executor to take a block; past it the "
            "block is kept with one copy (and the write-ahead log, when on) and a warning is "
            "logged, so a stopped peer does not stop ingestion.",
        ),
        _k(
            "dstreams.streaming.receiver.writeAheadLog.enable",
            "false",
            "Write every received block to a log in the checkpoint directory before it counts "
            "as received, so a driver restart reads it back (needs `ssc.checkpoint(dir)`).",
        ),
        _k(
            "dstreams.streaming.receiver.writeAheadLog.rollingIntervalSecs",
            "60",
            "Seconds of blocks per write-ahead-log segment; a segment is deleted once every "
            "batch that used it is checkpointed.",
        ),
        _k(
            "dstreams.streaming.stopGracefullyOnShutdown",
            "false",
            "On SIGTERM, stop the active StreamingContext gracefully (receivers stop, received "
            "data is processed) before the process exits; otherwise SIGTERM stops at once, "
            "as Ctrl-C does.",
        ),
        _k(
            "dstreams.streaming.recordErrors",
            "fail",
            "What a record whose function raises does: `fail` its batch (PySpark's "
            "behaviour), or `deadLetter`: skip it and write it, with the operator, batch time "
            "and traceback, to `dstreams.streaming.recordErrors.path` (see docs/streaming.md).",
        ),
        _k(
            "dstreams.streaming.recordErrors.path",
            None,
            "Directory (any fsspec URL) for dead-lettered records; needed by `deadLetter`.",
        ),
        # --- observability keys ---
        _k(
            "dstreams.ui.enabled",
            "true",
            "Serve the web UI, the REST API (`/api/v1`) and Prometheus metrics (`/metrics`) "
            "from the driver (needs `pip install 'dstreams[ui]'`; without it the UI is off and "
            "one log line says so).",
        ),
        _k(
            "dstreams.ui.port",
            "4040",
            "The UI's port; when it is taken, the next free one up to `dstreams.port.maxRetries` "
            "ports on (as Spark). 0 picks any free port.",
        ),
        _k(
            "dstreams.ui.host",
            "127.0.0.1",
            "Where the UI binds. Any address but loopback needs `dstreams.ui.authToken` or "
            "`dstreams.ui.authDisabled=true`.",
        ),
        _k(
            "dstreams.ui.authToken",
            None,
            "A token the UI asks for: `Authorization: Bearer <token>`, or `?token=<token>` once "
            "(it is then kept in a cookie). Redacted wherever the configuration is shown.",
        ),
        _k(
            "dstreams.ui.authDisabled",
            "false",
            "Serve a UI bound to a non-loopback address without a token (anyone who reaches the "
            "port can read it; the UI is read-only).",
        ),
        _k("dstreams.port.maxRetries", "16", "Ports tried after a busy UI port (Spark's)."),
        _k(
            "dstreams.ui.retainedJobs",
            "1000",
            "Jobs the UI keeps (older ones are forgotten; counters still count them).",
        ),
        _k("dstreams.ui.retainedStages", "1000", "Stages the UI keeps."),
        _k("dstreams.ui.retainedTasks", "1000", "Tasks the UI keeps per stage."),
        _k(
            "dstreams.streaming.ui.retainedBatches",
            "1000",
            "Completed batches the streaming page and the REST API keep.",
        ),
        _k(
            "dstreams.streaming.views.retainedBatches",
            "10",
            "Batches each `registerView` view keeps for `ssc.view(name, at=...)`.",
        ),
        _k(
            "dstreams.ui.showConsoleProgress",
            "true",
            "`dstreams submit` on a terminal: a live status line and stage progress bars "
            "(needs `rich`; `--quiet` turns it off; never shown when output is not a TTY).",
        ),
        _k(
            "dstreams.locality.wait",
            "3s",
            "How long a task whose cached input lives on another executor waits for a free slot "
            "there before it runs elsewhere and fetches the input (Spark's delay scheduling). "
            "Executors that do not answer are not waited for; received blocks never are.",
        ),
        _k(
            "dstreams.scheduler.mode",
            "FAIR",
            "How jobs that run at once share the executors: `FAIR` (pools, see "
            "`dstreams.scheduler.allocation.file`; a job's pool is its `spark.scheduler.pool` "
            "local property, else `streaming` for a streaming batch's jobs, else `default`) or "
            "`FIFO` (the oldest job's tasks first). Spark's default is FIFO.",
        ),
        _k(
            "dstreams.scheduler.allocation.file",
            None,
            "A Spark `fairscheduler.xml` file (any fsspec path) defining named pools: "
            "`schedulingMode`, `weight`, `minShare`. Pools it does not define get weight 1, "
            "minShare 0, FIFO.",
        ),
        _k(
            "dstreams.scheduler.pool.streaming.weight",
            "2",
            "The weight of the `streaming` pool, when the allocation file does not define it: "
            "under contention it runs this many tasks for each one of a weight-1 pool.",
        ),
        _k(
            "dstreams.scheduler.pool.streaming.minShare",
            "1",
            "Task slots the `streaming` pool is served first up to, when the allocation file "
            "does not define it.",
        ),
        _k(
            "dstreams.scheduler.listenerbus.eventqueue.capacity",
            "10000",
            "Events the application's listener bus queues before it drops (and counts) them.",
        ),
        _k(
            "dstreams.eventLog.enabled",
            "false",
            "Write every listener event as a JSON line under `dstreams.eventLog.dir`, for "
            "`dstreams history`.",
        ),
        _k(
            "dstreams.eventLog.dir",
            "/tmp/dstreams-events",
            "Where event logs go (any fsspec URL); one directory per application.",
        ),
        _k(
            "dstreams.eventLog.rolling.maxFileSize",
            "128m",
            "An event log file rolls over to a new one at this size (Spark's rolling logs).",
        ),
        # --- end observability keys ---
        # --- end streaming keys ---
    ]
)

_BY_LOWER = {name.lower(): name for name in KEYS}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNITS_MS = {"ms": 1.0, "s": 1000.0, "m": 60000.0, "min": 60000.0, "h": 3600000.0}


def parse_duration_ms(value: str | int | float, key: str = "duration") -> int:
    """Parse ``"200ms"``, ``"2s"``, ``"1min"`` or a bare number of milliseconds."""
    if isinstance(value, (int, float)):
        return int(value)
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"{key}={value!r} is not a duration; write e.g. '200ms', '2s' or '1min'")
    return int(float(m.group(1)) * _UNITS_MS[m.group(2) or "ms"])


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.IGNORECASE)
_UNITS_BYTES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size_bytes(value: str | int, key: str = "size") -> int:
    """Parse ``"512m"``, ``"2g"``, ``"64k"`` or a bare number of bytes."""
    if isinstance(value, int):
        return value
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"{key}={value!r} is not a size; write e.g. '512m' or '2g'")
    return int(float(m.group(1)) * _UNITS_BYTES[m.group(2).lower()])


def parse_master(master: str) -> int:
    """Return the number of local workers a master URL asks for.

    ``local`` is one worker, ``local[N]`` is N, ``local[*]`` is one per CPU core.
    """
    if master == "local":
        return 1
    m = re.fullmatch(r"local\[(\*|\d+)(?:,\s*\d+)?\]", master.strip())
    if not m:
        raise ValueError(
            f"master {master!r} is not supported; use 'local', 'local[N]' or 'local[*]'"
        )
    n = (os.cpu_count() or 1) if m.group(1) == "*" else int(m.group(1))
    if n < 1:
        raise ValueError(f"master {master!r} asks for {n} workers; N must be at least 1")
    return n


def canonical_key(key: str) -> str:
    """Map a ``spark.*`` alias to its ``dstreams.*`` key."""
    if not isinstance(key, str):
        raise TypeError(f"configuration keys are strings, got {key!r}")
    return "dstreams." + key[len("spark.") :] if key.startswith("spark.") else key


class Conf:
    """Configuration for a :class:`~dstreams.Context`, with SparkConf's methods.

    Example:
        >>> conf = Conf().setMaster("local[2]").setAppName("wc").set("spark.task.maxFailures", "2")
        >>> conf.get("dstreams.task.maxFailures")
        '2'
    """

    def __init__(self, loadDefaults: bool = True) -> None:
        self._settings: dict[str, str] = {}
        if loadDefaults:
            submitted = os.environ.get(SUBMIT_ENV)
            if submitted:  # set by `dstreams submit --master/--conf`
                for k, v in json.loads(submitted).items():
                    self.set(k, v)
            for name, value in os.environ.items():
                if name.startswith("DSTREAMS_CONF_"):
                    key = "dstreams." + name[len("DSTREAMS_CONF_") :].lower().replace("__", ".")
                    # environment names are upper case: recover camelCase registered keys
                    self._settings[_BY_LOWER.get(key, key)] = value

    def set(self, key: str, value: object) -> Conf:
        """Set a key (``spark.`` aliases accepted); returns self for chaining."""
        self._settings[canonical_key(key)] = str(value)
        return self

    def setIfMissing(self, key: str, value: object) -> Conf:
        if not self.contains(key):
            self.set(key, value)
        return self

    def setMaster(self, value: str) -> Conf:
        return self.set("dstreams.master", value)

    def setAppName(self, value: str) -> Conf:
        return self.set("dstreams.app.name", value)

    def setSparkHome(self, value: str) -> Conf:
        """Accepted for compatibility; there is no Spark installation to point at."""
        return self.set("dstreams.home", value)

    def setExecutorEnv(
        self,
        key: str | None = None,
        value: str | None = None,
        pairs: list[tuple[str, str]] | None = None,
    ) -> Conf:
        """Environment variables for the worker processes (``dstreams.executorEnv.NAME``)."""
        if (key is not None and pairs is not None) or (key is None and pairs is None):
            raise ValueError("Either pass one key-value pair or a list of pairs")
        for k, v in [(key, value)] if key is not None else (pairs or []):
            self.set(f"dstreams.executorEnv.{k}", v)
        return self

    def setAll(self, pairs: Iterable[tuple[str, object]]) -> Conf:
        for k, v in pairs:
            self.set(k, v)
        return self

    def get(self, key: str, defaultValue: str | None = None) -> str | None:
        """The value set for ``key``, else ``defaultValue`` (as SparkConf.get)."""
        return self._settings.get(canonical_key(key), defaultValue)

    def getAll(self) -> list[tuple[str, str]]:
        return sorted(self._settings.items())

    def contains(self, key: str) -> bool:
        return canonical_key(key) in self._settings

    def redacted(self) -> list[tuple[str, str]]:
        """``getAll()`` with the values of keys matching ``dstreams.redaction.regex`` hidden."""
        pattern = self._settings.get("dstreams.redaction.regex")
        try:
            rx = re.compile(pattern or KEYS["dstreams.redaction.regex"].default or "")
        except re.error as e:
            raise ValueError(
                f"dstreams.redaction.regex={pattern!r} is not a regular expression: {e}"
            ) from None
        return [(k, REDACTED if rx.search(k) else v) for k, v in self.getAll()]

    def toDebugString(self) -> str:
        """One ``key=value`` per line, secrets redacted (as SparkConf's)."""
        return "\n".join(f"{k}={v}" for k, v in self.redacted())

    # typed accessors used by the engine: they fall back to the registry's defaults
    def _value(self, key: str) -> str | None:
        if key not in KEYS:
            raise KeyError(f"{key!r} is not a registered configuration key")
        v = self._settings.get(key)
        return KEYS[key].default if v is None else v

    def get_int(self, key: str) -> int | None:
        v = self._value(key)
        if v is None:
            return None
        try:
            return int(v)
        except ValueError:
            raise ValueError(f"{key}={v!r} must be an integer") from None

    def get_float(self, key: str) -> float:
        v = self._value(key)
        try:
            return float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"{key}={v!r} must be a number") from None

    def get_bool(self, key: str) -> bool:
        v = (self._value(key) or "false").strip().lower()
        if v not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{key}={v!r} must be true or false")
        return v in ("true", "1", "yes")

    def get_size_bytes(self, key: str) -> int:
        return parse_size_bytes(self._value(key) or "0", key)

    def get_duration_ms(self, key: str) -> int:
        return parse_duration_ms(self._value(key) or "0", key)

    def get_str(self, key: str) -> str | None:
        return self._value(key)

    def copy(self) -> Conf:
        c = Conf(loadDefaults=False)
        c._settings = dict(self._settings)
        return c

    def __repr__(self) -> str:
        return f"Conf({dict(self.redacted())!r})"


def _markdown() -> str:
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for k in KEYS.values():
        lines.append(f"| `{k.name}` | `{k.default}` | {k.doc} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(_markdown())
