"""StreamingContext: the entry point of a streaming program (PySpark's API).

It owns one streaming application's pieces and their lifecycle
(INITIALIZED -> ACTIVE -> STOPPED): the :class:`~dstreams.streaming.graph.DStreamGraph`,
the injected clock, the job generator and scheduler (``jobs.py``), the receiver
tracker (``receiver.py``), the listener bus and the waiter that carries
asynchronous errors to ``awaitTermination``.  It creates input streams and
delegates everything else.

The clock is the system clock unless a ``clock`` is passed (tests pass a
:class:`~dstreams.streaming.clock.ManualClock`) or the conf key
``dstreams.streaming.clock`` is ``"manual"``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from dstreams.errors import SerializationError
from dstreams.events import RateUpdate, StreamingStarted, now_ms
from dstreams.shutdown import add_shutdown_hook, remove_shutdown_hook
from dstreams.streaming._util import Deadline, to_ms
from dstreams.streaming.checkpoint import Checkpoint
from dstreams.streaming.clock import Clock, ManualClock, SystemClock
from dstreams.streaming.deadletter import DeadLetters, RecordErrorPolicy
from dstreams.streaming.dstream import DStream
from dstreams.streaming.graph import DStreamGraph
from dstreams.streaming.jobs import ContextWaiter, JobGenerator, JobScheduler
from dstreams.streaming.listener import ListenerBus, StreamingListenerStreamingStarted
from dstreams.streaming.ratecontrol import RateConfig, RateController
from dstreams.streaming.receiver_tracker import ReceiverTracker
from dstreams.streaming.recovery import MetadataCheckpointer
from dstreams.streaming.scaling import ExecutorAllocationManager, allocation_config

__all__ = ["StreamingContext"]

_log = logging.getLogger(__name__)

INITIALIZED, ACTIVE, STOPPED = "INITIALIZED", "ACTIVE", "STOPPED"

#: a non-graceful stop waits at most this long for the engine's threads
_STOP_SECONDS = 1.5

_DEFAULTS: dict[str, str] = {
    "dstreams.streaming.blockInterval": "200ms",
    "dstreams.streaming.receiverRestartDelay": "2000ms",
    "dstreams.streaming.checkpointInterval": "10s",
    "dstreams.streaming.gracefulStopTimeout": "",
    "dstreams.streaming.unpersist": "true",
    "dstreams.streaming.clock": "system",
    "dstreams.streaming.stopGracefullyOnShutdown": "false",
    "dstreams.streaming.receiver.writeAheadLog.enable": "false",
    "dstreams.streaming.receiver.writeAheadLog.rollingIntervalSecs": "60",
    "dstreams.streaming.receiver.replicaTimeout": "1s",
}


def _parse_ms(value: Any, key: str) -> int:
    """Parse ``200``, ``"200ms"``, ``"2s"`` or ``"1min"`` to milliseconds."""
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip().lower()
    for suffix, scale in (("ms", 1), ("min", 60000), ("s", 1000)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * scale)
    try:
        return int(float(text))
    except ValueError:
        raise ValueError(
            f"config {key}={value!r} is not a duration; use e.g. '200ms' or '2s'"
        ) from None


class StreamingContext:
    """Main entry point for streaming: cuts time into batches and runs the DStream graph.

    Args:
        sparkContext: The batch :class:`dstreams.Context` that runs each batch's jobs.
        batchDuration: The batch interval, in seconds.
        jssc: Accepted for PySpark compatibility; must be None.
        clock: Optional clock (e.g. a ``ManualClock`` in tests).

    Example:
        >>> ssc = StreamingContext(sc, 1)  # doctest: +SKIP
        >>> ssc.socketTextStream("localhost", 9999).pprint()  # doctest: +SKIP
        >>> ssc.start(); ssc.awaitTermination()  # doctest: +SKIP
    """

    _activeContext: ClassVar[StreamingContext | None] = None
    _class_lock: ClassVar[threading.RLock] = threading.RLock()

    def __init__(
        self,
        sparkContext: Any,
        batchDuration: float | None = None,
        jssc: Any = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        if jssc is not None:
            raise ValueError(
                "jssc is a PySpark/JVM detail and is not supported; pass "
                "StreamingContext(sparkContext, batchDuration)"
            )
        if batchDuration is None:
            raise ValueError(
                "batchDuration is required: StreamingContext(sc, batchDuration) "
                "with the batch interval in seconds"
            )
        from dstreams.core.context import Context

        if not isinstance(sparkContext, Context):
            raise TypeError(
                f"StreamingContext needs a dstreams Context, got {sparkContext!r}; "
                "create one with Context(master, appName)"
            )
        self._sc = sparkContext
        self._batch_ms = to_ms(batchDuration, "batchDuration")
        self._clock: Clock = clock if clock is not None else self._conf_clock()
        self._state = INITIALIZED
        self._checkpoint_dir: str | None = None
        self._graph = DStreamGraph(self._batch_ms)
        self._bus = ListenerBus(self._sc._runner.bus)
        self._waiter = ContextWaiter()
        self._rates = RateConfig.from_conf(self._conf_get)
        self._allocation: ExecutorAllocationManager | None = None
        self._record_errors = RecordErrorPolicy.from_conf(self._conf_get)
        self._letters: DeadLetters | None = None
        from dstreams.streaming.views import ViewRegistry

        self._views = ViewRegistry(self._conf_int("dstreams.streaming.views.retainedBatches", 10))
        self._receiver_tracker = ReceiverTracker(
            self._clock,
            self._bus,
            self._conf_ms("dstreams.streaming.blockInterval"),
            self._conf_ms("dstreams.streaming.receiverRestartDelay"),
            self._rates,
            self._wal_dir,
            self._conf_ms("dstreams.streaming.receiver.replicaTimeout"),
        )
        self._scheduler = JobScheduler(self)
        self._generator = JobGenerator(self)
        self._start_ms: int | None = None
        self._program = ""  # the program's fingerprint (set by getOrCreate)
        self._checkpointer: MetadataCheckpointer | None = None
        self._recovered_from: Checkpoint | None = None

    def __getstate__(self) -> Any:
        raise SerializationError(
            "It appears that you are attempting to reference StreamingContext from a broadcast "
            "variable, action, or transformation. StreamingContext can only be used on the "
            "driver, not in code that runs on workers or that is checkpointed: create what "
            "the function needs inside it instead."
        )

    def _adopt(self, graph: Any, cp: Checkpoint, store: Any, program: str) -> None:
        """Take over a graph and state read back from checkpoint ``cp`` (``recovery.py``)."""
        if graph.batch_ms != self._batch_ms:
            raise ValueError(f"checkpoint batch {graph.batch_ms} ms != {self._batch_ms} ms")
        self._graph = graph
        graph.attach(self)
        self._checkpoint_dir = store.directory
        self._sc.setCheckpointDir(store.directory)
        graph.restore_checkpoint(cp.streams)
        self._remove_orphaned_checkpoints(store.directory)
        self._receiver_tracker.restore(cp.receivers, self._wal_dir)
        self._program = program
        self._recovered_from = cp
        self._checkpointer = MetadataCheckpointer(self, store, program, cp.graph_file)

    # ------------------------------------------------------------------ config

    def _conf_get(self, key: str) -> str:
        try:
            value = self._sc.getConf().get(key, None)
        except Exception:  # noqa: BLE001 - a bare Context without conf still works
            value = None
        return _DEFAULTS.get(key, "") if value is None else str(value)

    def _conf_ms(self, key: str) -> int:
        return _parse_ms(self._conf_get(key), key)

    def _conf_int(self, key: str, default: int) -> int:
        text = self._conf_get(key)
        return _parse_ms(text, key) if text else default

    def _conf_bool(self, key: str, default: bool) -> bool:
        text = self._conf_get(key).strip().lower()
        return default if not text else text in ("1", "true", "yes")

    def _conf_clock(self) -> Clock:
        kind = self._conf_get("dstreams.streaming.clock").strip().lower()
        if kind == "manual":
            return ManualClock()
        if kind in ("", "system"):
            return SystemClock()
        raise ValueError(
            f"dstreams.streaming.clock={kind!r} is not a clock; use 'system' or 'manual'"
        )

    # ------------------------------------------------------------ constructors

    @classmethod
    def getOrCreate(
        cls, checkpointPath: str, setupFunc: Callable[[], StreamingContext]
    ) -> StreamingContext:
        """Recover the context from the newest checkpoint in ``checkpointPath``, or create one.

        As PySpark: when the directory holds a checkpoint, the context (its Context, streams,
        functions, state and the batches that were pending) is rebuilt from it and
        ``setupFunc`` is not called; otherwise ``setupFunc()`` creates it and
        ``checkpoint(checkpointPath)`` is set on it. ``start()`` the result either way.

        Raises:
            CheckpointError: a checkpoint exists but cannot be used (all corrupt, or written by
                another program or dstreams version); the message says how to upgrade.
        """
        if not callable(setupFunc):
            raise TypeError("setupFunc should be callable.")
        from dstreams.streaming.checkpoint import program_fingerprint
        from dstreams.streaming.recovery import recover

        recovered = recover(checkpointPath, setupFunc)
        if recovered is not None:
            return recovered
        ssc = setupFunc()
        if not isinstance(ssc, StreamingContext):
            raise TypeError(f"setupFunc must return a StreamingContext, got {ssc!r}")
        ssc._program = program_fingerprint(setupFunc)
        ssc.checkpoint(checkpointPath)
        return ssc

    @classmethod
    def getActive(cls) -> StreamingContext | None:
        """Return the active (started, not stopped) StreamingContext, or None."""
        with cls._class_lock:
            return cls._activeContext

    @classmethod
    def getActiveOrCreate(
        cls, checkpointPath: str | None, setupFunc: Callable[[], StreamingContext]
    ) -> StreamingContext:
        """Return the active context, or create one (``getOrCreate`` or ``setupFunc()``)."""
        if not callable(setupFunc):
            raise TypeError("setupFunc should be callable.")
        active = cls.getActive()
        if active is not None:
            return active
        if checkpointPath is not None:
            return cls.getOrCreate(checkpointPath, setupFunc)
        return setupFunc()

    @property
    def sparkContext(self) -> Any:
        """Return the batch Context this streaming context runs on."""
        return self._sc

    @property
    def context(self) -> Any:
        """Alias of :attr:`sparkContext`."""
        return self._sc

    @property
    def clock(self) -> Clock:
        """Return the clock that drives batch times."""
        return self._clock

    # ---------------------------------------------------------------- lifecycle

    def _check_can_add_stream(self) -> None:
        if self._state == ACTIVE:
            raise RuntimeError(
                "Adding new inputs, transformations, and output operations after "
                "starting a context is not supported; build the whole graph "
                "before StreamingContext.start()"
            )
        if self._state == STOPPED:
            raise RuntimeError(
                "Adding new inputs, transformations, and output operations after "
                "stopping a context is not supported; create a new StreamingContext"
            )

    def start(self) -> None:
        """Start the execution of the streams (first batch at the next batch boundary)."""
        with StreamingContext._class_lock:
            if self._state == ACTIVE:
                _log.warning("StreamingContext has already been started")
                return
            if self._state == STOPPED:
                raise RuntimeError("StreamingContext has already been stopped; create a new one")
            active = StreamingContext._activeContext
            if active is not None and active is not self:
                raise RuntimeError(
                    "Only one StreamingContext may be started in this process; "
                    "stop the active one first (StreamingContext.getActive().stop())"
                )
            scaling = allocation_config(self)  # a bad setting fails before anything starts
            recovered = self._recovered_from
            if recovered is None:
                first = self._generator.timer.start_time()
                self._graph.start(first - self._batch_ms)
            else:
                first = self._generator.restart_time(recovered)
                self._graph.restart()
            self._start_ms = first
            if self._checkpoint_dir and self._checkpointer is None:
                from dstreams.streaming.checkpoint import CheckpointStore

                store = CheckpointStore(self._checkpoint_dir)
                self._checkpointer = MetadataCheckpointer(self, store, self._program)
            if self._checkpointer is not None:
                from dstreams.streaming.operators.input import QueueInputDStream

                if any(isinstance(i, QueueInputDStream) for i in self._graph.inputs):
                    _log.warning(
                        "queueStream's queued RDDs are not checkpointed: after a recovery from "
                        "%s the queue stream starts empty",
                        self._checkpoint_dir,
                    )
                try:
                    self._checkpointer.write_graph()  # a function that cannot be pickled fails here
                    if recovered is None:
                        self._checkpointer.write(first - self._batch_ms, [], None)
                except BaseException:
                    self._graph.stop()
                    self._state = STOPPED
                    raise
            self._scheduler.start()
            self._sc._checkpoint_failure_handler = self._state_checkpoint_failed
            receivers = [s.receiver for s in self._graph.inputs if hasattr(s, "receiver")]
            if receivers and self._wal_enabled() and not self._checkpoint_dir:
                raise ValueError(
                    "Cannot enable receiver write-ahead log without checkpoint directory set. "
                    "Please use streamingContext.checkpoint() to set the checkpoint directory."
                )
            if self._rates.enabled:
                for r in receivers:
                    self._bus.addListener(self._rate_controller(r.streamId))
            if receivers:
                self._receiver_tracker.start(
                    self._sc._backend, receivers, self._receiver_tracker.next_epoch()
                )
            if scaling is not None:
                self._allocation = ExecutorAllocationManager(self, scaling)
                self._bus.addListener(self._allocation)
                self._allocation.start()
            if recovered is None:
                self._generator.start(first)
            else:
                self._generator.restart(recovered, first)
            self._state = ACTIVE
            StreamingContext._activeContext = self
            if self._conf_bool("dstreams.streaming.stopGracefullyOnShutdown", False):
                add_shutdown_hook(self._stop_on_shutdown)
        self._bus.post(StreamingListenerStreamingStarted(self._clock.getTimeMillis()))
        self._sc._runner.bus.post(StreamingStarted(now_ms(), self._batch_ms))

    def _state_checkpoint_failed(self, rdd: Any, error: BaseException) -> None:
        """A state RDD's checkpoint could not be written: the batch's output stands.

        The stream keeps its lineage to the last checkpoint that was written and tries again
        at its next checkpoint interval; ``awaitTermination`` raises the error meanwhile.
        """
        self._scheduler.report_error(
            f"The checkpoint of state RDD {rdd.id()} could not be written; batches go on with "
            "a longer lineage",
            error,
        )

    def _wal_enabled(self) -> bool:
        return self._conf_bool("dstreams.streaming.receiver.writeAheadLog.enable", False)

    def _wal_dir(self, stream_id: int) -> str | None:
        """Where the receiver of ``stream_id`` logs its blocks (None: no write-ahead log)."""
        if not self._wal_enabled() or not self._checkpoint_dir:
            return None
        return f"{self._checkpoint_dir.rstrip('/')}/receivedData/{stream_id}"

    def _dead_letters(self) -> DeadLetters | None:
        """The dead-letter sink under ``recordErrors=deadLetter`` (None under ``fail``)."""
        if not self._record_errors.dead_letter:
            return None
        if self._letters is None:
            self._letters = DeadLetters(self._sc, self._record_errors)
        return self._letters

    def _rate_controller(self, stream_id: int) -> RateController:
        tracker = self._receiver_tracker

        bus = self._sc._runner.bus

        def publish(rate: float) -> None:
            tracker.update_rate(stream_id, rate)
            bus.post(RateUpdate(now_ms(), stream_id, rate))

        estimator = self._rates.estimator(self._batch_ms)
        return RateController(stream_id, estimator, publish, self._rates)

    def awaitTermination(self, timeout: float | None = None) -> None:
        """Wait until the context stops (or ``timeout`` seconds); raise a failed batch's error."""
        self._waiter.wait_for_stop_or_error(timeout)

    def awaitTerminationOrTimeout(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; return True if stopped; raise a failed batch's error."""
        return self._waiter.wait_for_stop_or_error(timeout)

    def stop(self, stopSparkContext: bool = True, stopGraceFully: bool = False) -> None:
        """Stop the streams (and the Context unless ``stopSparkContext=False``).

        With ``stopGraceFully`` the receivers stop first and the batches already
        received or queued are processed before stopping (bounded by
        ``dstreams.streaming.gracefulStopTimeout``, default 10 batch intervals).
        """
        remove_shutdown_hook(self._stop_on_shutdown)
        with StreamingContext._class_lock:
            state, self._state = self._state, STOPPED
            if StreamingContext._activeContext is self:
                StreamingContext._activeContext = None
        if state == ACTIVE:
            self._stop_running(stopGraceFully)
            if self._sc._checkpoint_failure_handler == self._state_checkpoint_failed:
                self._sc._checkpoint_failure_handler = None
        self._waiter.notify_stop()
        if stopSparkContext:
            self._sc.stop()

    def _stop_on_shutdown(self) -> None:
        """SIGTERM with ``stopGracefullyOnShutdown``: process what was received, then stop."""
        _log.warning("SIGTERM: stopping the StreamingContext gracefully")
        self.stop(stopSparkContext=True, stopGraceFully=True)

    def _stop_running(self, graceful: bool) -> None:
        """Stop generating, running and receiving; a non-graceful stop takes under 2 s."""
        if graceful:
            self._receiver_tracker.stop_receivers()
            timeout_ms = self._conf_int(
                "dstreams.streaming.gracefulStopTimeout", 10 * self._batch_ms
            )
            self._wait_drained(timeout_ms / 1000.0)
        deadline = Deadline(_STOP_SECONDS)
        if self._allocation is not None:
            self._allocation.stop(deadline.left() / 8)
        self._generator.stop_timer(deadline.left() / 4)
        self._scheduler.stop(drop_pending=not graceful, timeout=deadline.left() / 2)
        self._receiver_tracker.stop(deadline.left() / 2)
        self._generator.stop(deadline.left())
        self._graph.stop()

    def _wait_drained(self, timeout: float) -> None:
        """Wait until received data is in batches and those batches ran (at most ``timeout``).

        With a ManualClock no new batch can come, so only the batches already generated count.
        """
        deadline = Deadline(timeout)
        pause = threading.Event()
        if not isinstance(self._clock, ManualClock):
            self._receiver_tracker.flush(deadline.left())
            while not self._receiver_tracker.blocks.is_unallocated_empty():
                if deadline.left(0) <= 0:
                    _log.warning("graceful stop: received data was still waiting for a batch")
                    return
                pause.wait(0.02)
        last = self._generator.last_generated_ms  # the batch that took the last blocks
        if last is not None and not self._scheduler.wait_for_batch(last, deadline.left()):
            _log.warning("graceful stop: batch %d ms did not finish in time", last)

    def view(self, name: str, at: Any = None) -> Any:
        """The newest RDD of the view ``name`` (``DStream.registerView``), or batch ``at``'s.

        ``at`` is a batch time (a ``datetime`` or milliseconds). The RDD is whole and cached;
        run any RDD query on it, from any thread.
        """
        return self._views.get(name, at)

    def remember(self, duration: float) -> None:
        """Keep every stream's RDDs for at least ``duration`` seconds (e.g. for ``slice``)."""
        self._graph.remember(to_ms(duration, "remember duration"))

    def _remove_orphaned_checkpoints(self, directory: str) -> None:
        """Delete the RDD checkpoints of earlier drivers that the recovered state does not use."""
        from dstreams.core.checkpoint import remove_orphaned_runs

        keep = [info[1] for s in self._graph._all_streams() for info in s._ckpt_rdds.values()]
        current = self._sc.getCheckpointDir()
        assert current is not None
        removed = remove_orphaned_runs(directory, current, keep)
        if removed:
            _log.info(
                "removed %d RDD checkpoints that earlier drivers left in %s", removed, directory
            )

    def checkpoint(self, directory: str) -> None:
        """Checkpoint to ``directory`` (any fsspec URL): state RDDs, and the driver's metadata.

        With it set, ``start()`` writes the graph (so every function in it must pickle), and
        every batch writes a metadata checkpoint, so that ``getOrCreate`` can recover the
        driver. ``sc.setCheckpointDir`` alone checkpoints state RDDs only, as in Spark.
        """
        self._sc.setCheckpointDir(directory)
        self._checkpoint_dir = directory

    # ------------------------------------------------------------------- inputs

    def socketTextStream(self, hostname: str, port: int, storageLevel: Any = None) -> DStream[str]:
        """Receive UTF-8 text lines from a TCP server at ``hostname:port``."""
        from dstreams.streaming.operators.input import ReceiverInputDStream
        from dstreams.streaming.sources import SocketReceiver

        if not isinstance(hostname, str) or not hostname:
            raise ValueError(f"hostname must be a non-empty string, got {hostname!r}")
        try:
            port_number = int(port)
        except (TypeError, ValueError):
            raise ValueError(f"port must be an integer from 1 to 65535, got {port!r}") from None
        if not 0 < port_number < 65536:
            raise ValueError(f"port must be an integer from 1 to 65535, got {port!r}")
        return ReceiverInputDStream(self, SocketReceiver(hostname, port_number, storageLevel))

    def receiverStream(self, receiver: Any) -> DStream[Any]:
        """Return a stream fed by a custom :class:`~dstreams.streaming.receiver.Receiver`."""
        from dstreams.streaming.operators.input import ReceiverInputDStream

        return ReceiverInputDStream(self, receiver)

    def textFileStream(self, directory: str) -> DStream[str]:
        """Stream the lines of new files appearing in ``directory`` (not those present at start)."""
        from dstreams.streaming.operators.input import FileInputDStream

        _check_directory(directory)
        return FileInputDStream(self, directory)

    def binaryRecordsStream(self, directory: str, recordLength: int) -> DStream[bytes]:
        """Stream the fixed-length ``recordLength``-byte records of new files in ``directory``."""
        from dstreams.streaming.operators.input import FileInputDStream

        _check_directory(directory)
        if not isinstance(recordLength, int) or recordLength <= 0:
            raise ValueError(f"recordLength must be a positive int, got {recordLength!r}")
        return FileInputDStream(self, directory, recordLength)

    def queueStream(
        self, rdds: list[Any], oneAtATime: bool = True, default: Any = None
    ) -> DStream[Any]:
        """Stream a queue of RDDs (or lists): one per batch, or all at once.

        When the queue is empty each batch gets ``default`` (an RDD or list), or an
        empty one-partition RDD.
        """
        from dstreams.streaming.operators.input import QueueInputDStream

        def as_rdd(x: Any) -> Any:
            return x if hasattr(x, "mapPartitions") else self._sc.parallelize(x)

        rdd_list = [as_rdd(r) for r in rdds]
        default_rdd = as_rdd(default) if default is not None else None
        return QueueInputDStream(self, rdd_list, oneAtATime, default_rdd)

    # ---------------------------------------------------------------- combining

    def transform(
        self, dstreams: list[DStream[Any]], transformFunc: Callable[[list[Any]], Any]
    ) -> DStream[Any]:
        """Return a stream whose RDD is ``transformFunc([rdd of each stream])``."""
        from dstreams.streaming.operators.mapped import MultiTransformedDStream

        return MultiTransformedDStream(list(dstreams), transformFunc)

    def union(self, *dstreams: DStream[Any]) -> DStream[Any]:
        """Union several streams of the same slide duration."""
        from dstreams.streaming.operators.mapped import UnionDStream

        if not dstreams:
            raise ValueError("should have at least one DStream to union")
        if len(dstreams) == 1:
            return dstreams[0]
        return UnionDStream(list(dstreams))

    def addStreamingListener(self, streamingListener: Any) -> None:
        """Register a :class:`~dstreams.streaming.listener.StreamingListener`."""
        self._bus.addListener(streamingListener)

    def __repr__(self) -> str:
        return f"<StreamingContext batch={self._batch_ms}ms state={self._state}>"


def _check_directory(directory: Any) -> None:
    if not isinstance(directory, str) or not directory:
        raise ValueError(
            f"directory must be a non-empty path or fsspec URL to watch, got {directory!r}"
        )
