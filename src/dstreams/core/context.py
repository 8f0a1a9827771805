"""Context: the driver's entry point (PySpark's ``SparkContext``).

It owns the configuration, the executor backend (``local[N]`` worker processes by default), the
job runner that schedules every action, shared variables, and the checkpoint directory. It
creates source RDDs (``parallelize``, ``range``, ``textFile``...) and runs jobs (``runJob``).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import cloudpickle

from dstreams.conf import CONSOLE_ENV, Conf
from dstreams.core.checkpoint import pending_checkpoints, write_checkpoint
from dstreams.core.io import (
    BinaryRecordsRDD,
    ParallelCollectionRDD,
    PickleFileRDD,
    TextFileRDD,
    WholeTextFilesRDD,
    slice_like_pyspark,
)
from dstreams.core.primitives import UnionRDD
from dstreams.core.rdd import RDD
from dstreams.core.shared import (
    Accumulator,
    AccumulatorParam,
    Broadcast,
    default_param,
    remove_broadcast_file,
)
from dstreams.errors import CheckpointWriteFailedError, ContextStoppedError, SerializationError
from dstreams.shutdown import (
    SCRATCH_PREFIX,
    install_sigterm,
    remove_orphans,
    uninstall_sigterm,
    write_owner,
)

__all__ = ["Context"]

log = logging.getLogger("dstreams")
_wall_time = time.time  # only for startTime (a timestamp users read), never for scheduling

_LEVELS = {
    "ALL": logging.NOTSET,
    "DEBUG": logging.DEBUG,
    "TRACE": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "OFF": logging.CRITICAL + 10,
}


class Context:
    """The driver of a dstreams application (PySpark's ``SparkContext``).

    Args:
        master: ``local``, ``local[N]`` or ``local[*]``; defaults to ``dstreams.master``.
        appName: a name for logs.
        conf: a :class:`~dstreams.Conf`; ``spark.*`` keys are accepted as aliases.

    Other SparkContext arguments (``sparkHome``, ``pyFiles``, ``batchSize``...) are accepted and
    ignored, so that ported programs start unchanged.

    Example:
        >>> with Context("local[2]", "example") as sc:
        ...     sc.parallelize(range(10)).filter(lambda x: x % 2).sum()
        25
    """

    _active: ClassVar[Context | None] = None
    _lock: ClassVar[threading.RLock] = threading.RLock()

    def __init__(
        self,
        master: str | None = None,
        appName: str | None = None,
        sparkHome: str | None = None,
        pyFiles: Any = None,
        environment: Any = None,
        batchSize: int = 0,
        serializer: Any = None,
        conf: Conf | None = None,
        gateway: Any = None,
        jsc: Any = None,
        profiler_cls: Any = None,
    ) -> None:
        if conf is not None and not isinstance(conf, Conf):
            raise TypeError(f"conf must be a dstreams.Conf, got {conf!r}")
        self._conf = conf.copy() if conf is not None else Conf()
        if master is not None:
            self._conf.setMaster(master)
        if appName is not None:
            self._conf.setAppName(appName)
        self.master = self._conf.get_str("dstreams.master") or "local[*]"
        self.appName = self._conf.get_str("dstreams.app.name") or "dstreams"
        from dstreams.runtime import (
            create_backend,
            start_observers,
            validate_master,
            validate_observers,
        )

        validate_master(self.master)
        validate_observers(self._conf)
        # validate every setting read here before anything is started or registered
        parallelism = self._conf.get_int("dstreams.default.parallelism")
        if parallelism is not None and parallelism < 1:
            raise ValueError(
                f"dstreams.default.parallelism={parallelism} must be a positive integer"
            )
        log_level = self._conf.get_str("dstreams.log.level") or "WARN"
        if str(log_level).upper() not in _LEVELS:
            raise ValueError(f"dstreams.log.level={log_level!r} is not one of {', '.join(_LEVELS)}")
        with Context._lock:
            if Context._active is not None:
                raise ValueError(
                    f"Cannot run multiple Contexts at once; existing Context"
                    f"(app={Context._active.appName}, master={Context._active.master}); "
                    "call stop() on it first or use Context.getOrCreate()"
                )
            Context._active = self
        self._stopped = False
        self._thread_props = threading.local()
        self._start_ms = int(_wall_time() * 1000)
        self._app_id = f"app-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{os.getpid():05d}"
        #: ``dstreams submit`` on a terminal shows progress (see cli.submit and ui/console.py)
        self._console_progress = (
            os.environ.get(CONSOLE_ENV) == "1"
            and bool(self._conf.get_bool("dstreams.ui.showConsoleProgress"))
            and sys.stderr.isatty()
        )
        self._observers: Any = None
        self._rdd_ids = itertools.count()
        self._ids = itertools.count()
        #: the directory given to ``setCheckpointDir`` (None: not set); RDD checkpoints go in
        #: ``_checkpoint_dir``, a subdirectory of it that belongs to this Context alone
        self._checkpoint_root: str | None = None
        self._checkpoint_dir: str | None = None
        configured = self._conf.get_str("dstreams.checkpoint.dir")
        if configured:
            self.setCheckpointDir(configured)
        #: told of an engine checkpoint (``rdd._engine_checkpoint``) that could not be written,
        #: instead of failing the job that computed the RDD (a StreamingContext sets it)
        self._checkpoint_failure_handler: Callable[[RDD[Any], BaseException], None] | None = None
        local_dir = self._conf.get_str("dstreams.local.dir")
        remove_orphans(local_dir or tempfile.gettempdir())  # left by drivers killed outright
        self._local_dir = tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=local_dir)
        write_owner(self._local_dir)
        self._accumulators: dict[int, Accumulator[Any]] = {}
        self.setLogLevel(log_level)
        backend = None
        try:
            from dstreams.events import EventBus
            from dstreams.scheduler.runner import JobRunner

            capacity = self._conf.get_int("dstreams.scheduler.listenerbus.eventqueue.capacity")
            bus = EventBus(10000 if capacity is None else capacity)
            backend, num_workers = create_backend(self.master, self._conf, self._local_dir)
            self._backend = backend
            self._runner = JobRunner(self._backend, self._conf, self._accumulators, bus=bus)
            self._observers = start_observers(self, bus)
        except BaseException:
            if backend is not None:
                backend.stop()  # a bad setting read by the runner must not leak workers
            with Context._lock:
                Context._active = None
            shutil.rmtree(self._local_dir, ignore_errors=True)
            raise
        self.defaultParallelism: int = parallelism or num_workers
        atexit.register(self.stop)  # as PySpark: workers never outlive the driver program
        self._sigterm = install_sigterm()  # SIGTERM cleans up as Ctrl-C does

    # -- lifecycle -----------------------------------------------------------------------------
    @classmethod
    def getOrCreate(cls, conf: Conf | None = None) -> Context:
        """The active Context, or a new one from ``conf``."""
        with cls._lock:
            if cls._active is not None:
                return cls._active
        return cls(conf=conf)

    def __repr__(self) -> str:
        return f"<Context master={self.master} appName={self.appName}>"

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __getstate__(self) -> Any:
        # PySpark's wording (ported tests match on it), then what it means here
        raise SerializationError(
            "[CONTEXT_ONLY_VALID_ON_DRIVER] It appears that you are attempting to reference "
            "SparkContext from a broadcast variable, action, or transformation. SparkContext "
            "can only be used on the driver, not in code that runs on workers. For more "
            "information, see SPARK-5063. (In dstreams the SparkContext is the Context; a "
            "function in a checkpointed stream graph must not capture it either: use "
            "rdd.context inside the function instead.)"
        )

    def stop(self) -> None:
        """Stop the workers and release every resource. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self._sigterm:
            uninstall_sigterm()
        try:
            self._runner.cancel_all("the Context was stopped")  # a running job ends at once
            self._runner.stop()
            self._backend.stop()
            if self._observers is not None:
                self._observers.stop()
        finally:
            shutil.rmtree(self._local_dir, ignore_errors=True)
            with Context._lock:
                if Context._active is self:
                    Context._active = None

    def _check_alive(self) -> None:
        if self._stopped:
            raise ContextStoppedError(
                "this Context was stopped; create a new Context to run more jobs"
            )

    # -- properties ----------------------------------------------------------------------------
    @property
    def version(self) -> str:
        from dstreams import __version__

        return __version__

    @property
    def defaultMinPartitions(self) -> int:
        return min(self.defaultParallelism, 2)

    @property
    def applicationId(self) -> str:
        return self._app_id

    @property
    def uiWebUrl(self) -> str | None:
        """The web UI's address (None when it is off)."""
        return self._observers.url if self._observers is not None else None

    def getConf(self) -> Conf:
        return self._conf.copy()

    def setLogLevel(self, logLevel: str) -> None:
        """Set the ``dstreams`` logger's level (ALL, DEBUG, INFO, WARN, ERROR, FATAL, OFF)."""
        level = _LEVELS.get(str(logLevel).upper())
        if level is None:
            raise ValueError(f"logLevel={logLevel!r} is not one of {', '.join(_LEVELS)}")
        log.setLevel(level)

    def setCheckpointDir(self, dirName: str) -> None:
        """Directory (any fsspec URL shared by all workers) for reliable RDD checkpoints.

        As in Spark, the RDD checkpoints go in a new subdirectory named by a UUID, which
        ``getCheckpointDir`` returns: RDD ids start again in every Context, so two Contexts
        (a driver and the one that recovers it) must never write to the same ``rdd-<id>``.
        """
        if not isinstance(dirName, str) or not dirName:
            raise ValueError(f"dirName={dirName!r} must be a non-empty path or URL")
        import uuid

        import fsspec

        run_dir = f"{dirName.rstrip('/')}/{uuid.uuid4()}"
        fs, _, (root,) = fsspec.get_fs_token_paths(run_dir)
        fs.makedirs(root, exist_ok=True)
        self._checkpoint_root = dirName
        self._checkpoint_dir = run_dir

    def getCheckpointDir(self) -> str | None:
        return self._checkpoint_dir

    # -- elastic executors (Spark's developer API; PySpark does not expose it) ---------------
    def requestExecutors(self, numAdditionalExecutors: int) -> bool:
        """Add executors while the application runs (``local[N]``: processes; Ray: actors).

        Returns True when the request was accepted; the executors announce themselves when
        they start, and take tasks from the next stage that has some.
        """
        if not isinstance(numAdditionalExecutors, int) or numAdditionalExecutors < 1:
            raise ValueError(
                f"numAdditionalExecutors={numAdditionalExecutors!r} must be an int >= 1"
            )
        return bool(self._backend.request_executors(numAdditionalExecutors))

    def killExecutors(self, executorIds: list[str]) -> bool:
        """Remove these executors for good (no replacement is started).

        Nothing is handed off: their tasks run again elsewhere and their blocks are recomputed
        from lineage or read from replicas. Returns False when none of them was alive.
        """
        ids = [executorIds] if isinstance(executorIds, str) else list(executorIds)
        alive = set(self._backend.executor_ids())
        known = [e for e in ids if e in alive]
        return bool(known) and bool(self._backend.remove_executors(known))

    def killExecutor(self, executorId: str) -> bool:
        """Remove one executor for good (``killExecutors([executorId])``)."""
        return self.killExecutors([executorId])

    def executorIds(self) -> list[str]:
        """The executors alive now (a dstreams addition, for scaling decisions and tests)."""
        return sorted(self._backend.executor_ids(), key=lambda e: (len(e), e))

    def setJobGroup(self, groupId: str, description: str, interruptOnCancel: bool = False) -> None:
        """Recorded as local properties (jobs are not grouped or cancellable yet)."""
        self.setLocalProperty("spark.jobGroup.id", groupId)
        self.setLocalProperty("spark.job.description", description)

    def setJobDescription(self, value: str) -> None:
        self.setLocalProperty("spark.job.description", value)

    def setLocalProperty(self, key: str, value: str | None) -> None:
        """A property of the calling thread (PySpark's thread-local properties)."""
        props = self._thread_props.__dict__
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value

    def getLocalProperty(self, key: str) -> str | None:
        return self._thread_props.__dict__.get(key)

    @property
    def startTime(self) -> int:
        """When this Context started, in milliseconds since the epoch."""
        return self._start_ms

    def sparkUser(self) -> str:
        import getpass

        return getpass.getuser()

    def _new_rdd_id(self) -> int:
        return next(self._rdd_ids)

    # -- creating RDDs -------------------------------------------------------------------------
    def parallelize(self, c: Iterable[Any], numSlices: int | None = None) -> RDD[Any]:
        """Distribute a local collection into ``numSlices`` partitions (PySpark's slicing)."""
        self._check_alive()
        n = self.defaultParallelism if numSlices is None else numSlices
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"numSlices={numSlices!r} must be a positive integer")
        if isinstance(c, range):
            size = len(c)
            if size == 0:
                return self.parallelize([], n)
            step = c[1] - c[0] if size > 1 else 1
            start0 = c[0]

            def start(split: int) -> int:
                return start0 + int(split * size / n) * step

            return ParallelCollectionRDD(
                self, [range(start(i), start(i + 1), step) for i in range(n)]
            )
        try:
            data = list(c)
        except TypeError:
            raise TypeError(f"parallelize expects an iterable, got {c!r}") from None
        return ParallelCollectionRDD(self, slice_like_pyspark(data, n))

    def _parallelize_partitions(self, parts: list[list[Any]]) -> RDD[Any]:
        """An RDD with exactly these partitions (received blocks: one partition per block)."""
        self._check_alive()
        return ParallelCollectionRDD(self, [list(p) for p in parts] or [[]])

    def range(
        self, start: int, end: int | None = None, step: int = 1, numSlices: int | None = None
    ) -> RDD[int]:
        """Integers from ``start`` to ``end`` (exclusive) by ``step``."""
        if end is None:
            start, end = 0, start
        return self.parallelize(range(start, end, step), numSlices)

    def emptyRDD(self) -> RDD[Any]:
        """An RDD with no partitions."""
        self._check_alive()
        return ParallelCollectionRDD(self, [])

    def textFile(
        self, name: str, minPartitions: int | None = None, use_unicode: bool = True
    ) -> RDD[str]:
        """Lines of a file, a directory, a glob or a comma-separated list (any fsspec URL)."""
        self._check_alive()
        n = self.defaultMinPartitions if minPartitions is None else minPartitions
        return TextFileRDD(self, name, n, use_unicode)

    def wholeTextFiles(
        self, path: str, minPartitions: int | None = None, use_unicode: bool = True
    ) -> RDD[tuple[str, str]]:
        """``(path, content)`` for each file under ``path`` (any fsspec URL)."""
        self._check_alive()
        n = self.defaultMinPartitions if minPartitions is None else minPartitions
        return WholeTextFilesRDD(self, path, n, use_unicode)

    def binaryFiles(self, path: str, minPartitions: int | None = None) -> RDD[tuple[str, bytes]]:
        """``(path, bytes)`` for each file under ``path`` (any fsspec URL; not decompressed)."""
        self._check_alive()
        n = self.defaultMinPartitions if minPartitions is None else minPartitions
        return WholeTextFilesRDD(self, path, n, use_unicode=False, decompress=False)

    def binaryRecords(self, path: str, recordLength: int) -> RDD[bytes]:
        """Fixed-length ``recordLength``-byte records of flat binary files (any fsspec URL)."""
        self._check_alive()
        return BinaryRecordsRDD(self, path, recordLength, self.defaultMinPartitions)

    def pickleFile(self, name: str, minPartitions: int | None = None) -> RDD[Any]:
        """Records written by ``RDD.saveAsPickleFile``."""
        self._check_alive()
        return PickleFileRDD(self, name)

    def union(self, rdds: list[RDD[Any]]) -> RDD[Any]:
        """Concatenate the partitions of several RDDs."""
        self._check_alive()
        rdds = list(rdds)
        for r in rdds:
            if not isinstance(r, RDD):
                raise TypeError(f"union expects RDDs, got {r!r}")
        if not rdds:
            raise ValueError("union needs at least one RDD")
        return UnionRDD(self, rdds)

    # -- shared variables ----------------------------------------------------------------------
    def broadcast(self, value: Any) -> Broadcast[Any]:
        """Ship ``value`` to each worker once; read it with ``.value`` inside functions."""
        self._check_alive()
        bid = next(self._ids)
        path = os.path.join(self._local_dir, f"broadcast-{bid}")
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as fh:
                cloudpickle.dump(value, fh, 5)
        except Exception as e:
            raise SerializationError(f"could not serialize the broadcast value: {e}") from e
        os.replace(tmp, path)
        b: Broadcast[Any] = Broadcast(
            bid, path, value, on_driver=True, release=self._release_broadcast
        )
        # once the driver drops the Broadcast, its file and every worker's copy go too
        weakref.finalize(b, self._forget_broadcast, bid, path)
        return b

    def _release_broadcast(self, bid: int) -> None:
        if not self._stopped:
            self._runner.post_cleanup(("broadcast", bid))

    def _forget_broadcast(self, bid: int, path: str) -> None:
        remove_broadcast_file(path)
        self._release_broadcast(bid)

    def accumulator(
        self, value: Any, accum_param: AccumulatorParam[Any] | None = None
    ) -> Accumulator[Any]:
        """A counter that tasks add to and the driver reads (``acc.value``)."""
        param = accum_param if accum_param is not None else default_param(value)
        aid = next(self._ids)
        acc: Accumulator[Any] = Accumulator(aid, value, param, driver=True)
        self._accumulators[aid] = acc
        return acc

    # -- running jobs --------------------------------------------------------------------------
    def runJob(
        self,
        rdd: RDD[Any],
        partitionFunc: Callable[[Iterator[Any]], Iterable[Any]],
        partitions: list[int] | None = None,
        allowLocal: bool = False,
    ) -> list[Any]:
        """Run ``partitionFunc`` on the given partitions and return all produced elements."""
        results = self._run_job_per_partition(rdd, lambda it: list(partitionFunc(it)), partitions)
        return [x for part in results for x in part]

    def _run_job_per_partition(
        self,
        rdd: RDD[Any],
        func: Callable[[Iterator[Any]], Any],
        partitions: list[int] | None = None,
    ) -> list[Any]:
        """One ``func(iterator)`` result per requested partition, in order."""
        self._check_alive()
        if rdd.ctx is not self:
            raise ValueError(f"{rdd!r} belongs to another Context")
        n = rdd.getNumPartitions()
        parts = list(range(n)) if partitions is None else list(partitions)
        for p in parts:
            if not isinstance(p, int) or not 0 <= p < n:
                raise ValueError(f"partition {p!r} is out of range for {rdd!r} with {n} partitions")
        if not parts:
            return []
        results = self._runner.run_job(rdd, func, parts, self._thread_props.__dict__)
        for r in pending_checkpoints(rdd):
            try:
                write_checkpoint(self, r)
            except CheckpointWriteFailedError as e:
                # the job's results are good: an engine checkpoint that cannot be written
                # only leaves the lineage longer, so its owner hears of it and they return
                handler = self._checkpoint_failure_handler
                if not getattr(r, "_engine_checkpoint", False) or handler is None:
                    raise
                handler(r, e)
        return results

    # -- cleanup hooks (called from weakref finalizers, any thread) -----------------------------
    def _unpersist_rdd_id(self, rdd_id: int) -> None:
        if not self._stopped:
            self._runner.post_cleanup(("rdd", rdd_id))

    def _remove_shuffle(self, shuffle_id: int) -> None:
        if not self._stopped:
            self._runner.post_cleanup(("shuffle", shuffle_id))
