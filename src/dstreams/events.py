"""The application's event vocabulary and the asynchronous bus that delivers it.

Everything the web UI, the REST API, the Prometheus metrics, the event log and the terminal
status show comes from these events (as Spark's ``SparkListenerEvent``s feed its
``AppStatusStore``): the job runner posts job, stage, task and executor events, the streaming
side posts its batch, output-operation and receiver events and the recovery markers. Each event
is a small dataclass named as Spark names the concept; :func:`to_json` and :func:`from_json`
turn it into one JSON object with an ``"Event"`` field (Spark's event-log shape) and back.

:class:`EventBus` delivers events to its listeners on one thread of its own, in posting order,
through a bounded queue (``dstreams.scheduler.listenerbus.eventqueue.capacity``, Spark's
10000): posting never blocks the engine. An event that finds the queue full is dropped, and
the drop is counted, logged (the first time, then at every power of two) and reported to the
listeners as an :class:`EventsDropped` event once the queue has room again. Posting does not
wake the bus thread: it delivers what was posted every 50 ms (or at once when the queue is half
full), so a batch's events cost one wake-up, not one each. With no listener, posting costs one
attribute test.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "AppEnd",
    "AppStart",
    "BatchCompleted",
    "BatchStarted",
    "BatchSubmitted",
    "CheckpointWritten",
    "Event",
    "EventBus",
    "EventsDropped",
    "ExecutorAdded",
    "ExecutorMetrics",
    "ExecutorRemoved",
    "ExecutorResponsive",
    "JobEnd",
    "JobStart",
    "OutputOperationCompleted",
    "OutputOperationStarted",
    "RateUpdate",
    "ReceiverError",
    "ReceiverStarted",
    "ReceiverStopped",
    "Recovery",
    "StageCompleted",
    "StageSubmitted",
    "StreamingStarted",
    "TaskEnd",
    "TaskStart",
    "from_json",
    "now_ms",
    "to_json",
]

_log = logging.getLogger("dstreams.events")

#: how often the bus thread delivers what was posted (seconds)
DELIVERY_INTERVAL_S = 0.05


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (what event times are)."""
    return int(time.time() * 1000)


@dataclass(slots=True)
class Event:
    """Base: ``time`` is when it happened, in wall-clock ms."""

    time: int
    #: the name in the event log (Spark's, where there is one)
    kind: ClassVar[str] = "Event"


@dataclass(slots=True)
class AppStart(Event):
    kind: ClassVar[str] = "ApplicationStart"
    app_id: str = ""
    app_name: str = ""
    master: str = ""
    user: str = ""
    version: str = ""
    #: the configuration, secrets redacted
    conf: list[list[str]] = field(default_factory=list)


@dataclass(slots=True)
class AppEnd(Event):
    kind: ClassVar[str] = "ApplicationEnd"


@dataclass(slots=True)
class ExecutorAdded(Event):
    kind: ClassVar[str] = "ExecutorAdded"
    executor_id: str = ""
    host: str = ""
    cores: int = 1


@dataclass(slots=True)
class ExecutorRemoved(Event):
    kind: ClassVar[str] = "ExecutorRemoved"
    executor_id: str = ""
    reason: str = ""


@dataclass(slots=True)
class ExecutorResponsive(Event):
    """An executor stopped answering (``responsive=False``) or answers again."""

    kind: ClassVar[str] = "ExecutorResponsive"
    executor_id: str = ""
    responsive: bool = True


@dataclass(slots=True)
class ExecutorMetrics(Event):
    """An executor's block store, from its heartbeat (sent when it changed)."""

    kind: ClassVar[str] = "ExecutorMetricsUpdate"
    executor_id: str = ""
    memory_used: int = 0
    blocks: int = 0


@dataclass(slots=True)
class JobStart(Event):
    kind: ClassVar[str] = "JobStart"
    job_id: int = 0
    description: str = ""
    #: the streaming batch the job belongs to (ms), or -1
    batch_time: int = -1
    output_op_id: int = -1


@dataclass(slots=True)
class JobEnd(Event):
    kind: ClassVar[str] = "JobEnd"
    job_id: int = 0
    succeeded: bool = True
    error: str = ""


@dataclass(slots=True)
class StageSubmitted(Event):
    kind: ClassVar[str] = "StageSubmitted"
    job_id: int = 0
    stage_id: int = 0
    attempt: int = 0
    name: str = ""
    num_tasks: int = 0
    shuffle_map: bool = False


@dataclass(slots=True)
class StageCompleted(Event):
    kind: ClassVar[str] = "StageCompleted"
    job_id: int = 0
    stage_id: int = 0
    attempt: int = 0
    failure: str = ""


@dataclass(slots=True)
class TaskStart(Event):
    kind: ClassVar[str] = "TaskStart"
    stage_id: int = 0
    stage_attempt: int = 0
    task_id: int = 0
    partition: int = 0
    attempt: int = 0
    executor_id: str = ""
    speculative: bool = False
    #: its stage ran before and lost outputs (an executor died): lineage recomputation
    recomputed: bool = False


@dataclass(slots=True)
class TaskEnd(Event):
    kind: ClassVar[str] = "TaskEnd"
    stage_id: int = 0
    stage_attempt: int = 0
    task_id: int = 0
    executor_id: str = ""
    #: SUCCESS, FAILED or KILLED (Spark's TaskState names)
    status: str = "SUCCESS"
    reason: str = ""
    run_ms: float = 0.0


@dataclass(slots=True)
class StreamingStarted(Event):
    kind: ClassVar[str] = "StreamingListenerStreamingStarted"
    batch_duration: int = 0


@dataclass(slots=True)
class _Batch(Event):
    batch_time: int = 0
    submission_time: int = -1
    processing_start: int = -1
    processing_end: int = -1
    #: stream id -> records in this batch
    records: dict[int, int] = field(default_factory=dict)
    #: stream id -> source metadata (offset ranges, lag)
    metadata: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: output op id -> {"name", "description", "start", "end", "failure"}
    outputs: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: state stream id -> {"operation", "keys", "bytes"} of its state after the batch
    state: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class BatchSubmitted(_Batch):
    kind: ClassVar[str] = "StreamingListenerBatchSubmitted"


@dataclass(slots=True)
class BatchStarted(_Batch):
    kind: ClassVar[str] = "StreamingListenerBatchStarted"


@dataclass(slots=True)
class BatchCompleted(_Batch):
    kind: ClassVar[str] = "StreamingListenerBatchCompleted"


@dataclass(slots=True)
class _Output(Event):
    batch_time: int = 0
    output_op_id: int = 0
    name: str = ""
    start: int = -1
    end: int = -1
    failure: str = ""


@dataclass(slots=True)
class OutputOperationStarted(_Output):
    kind: ClassVar[str] = "StreamingListenerOutputOperationStarted"


@dataclass(slots=True)
class OutputOperationCompleted(_Output):
    kind: ClassVar[str] = "StreamingListenerOutputOperationCompleted"


@dataclass(slots=True)
class _Receiver(Event):
    stream_id: int = 0
    name: str = ""
    active: bool = False
    executor_id: str = ""
    location: str = ""
    last_error: str = ""
    last_error_message: str = ""
    last_error_time: int = -1


@dataclass(slots=True)
class ReceiverStarted(_Receiver):
    kind: ClassVar[str] = "StreamingListenerReceiverStarted"


@dataclass(slots=True)
class ReceiverError(_Receiver):
    kind: ClassVar[str] = "StreamingListenerReceiverError"


@dataclass(slots=True)
class ReceiverStopped(_Receiver):
    kind: ClassVar[str] = "StreamingListenerReceiverStopped"


@dataclass(slots=True)
class Recovery(Event):
    """The driver restarted from a metadata checkpoint; these batches run again."""

    kind: ClassVar[str] = "Recovery"
    checkpoint_time: int = 0
    rerun_batches: list[int] = field(default_factory=list)


@dataclass(slots=True)
class RateUpdate(Event):
    """Backpressure set a receiver's rate (records per second)."""

    kind: ClassVar[str] = "RateUpdate"
    stream_id: int = 0
    rate: float = 0.0


@dataclass(slots=True)
class CheckpointWritten(Event):
    """A metadata checkpoint was written (for batch ``batch_time``)."""

    kind: ClassVar[str] = "CheckpointWritten"
    batch_time: int = 0
    duration_ms: float = 0.0
    size_bytes: int = 0


@dataclass(slots=True)
class EventsDropped(Event):
    """Events were dropped because the queue was full (``total`` since the start)."""

    kind: ClassVar[str] = "EventsDropped"
    count: int = 0
    total: int = 0


_BY_KIND: dict[str, type[Event]] = {}


def _register(cls: type[Event]) -> None:
    for sub in cls.__subclasses__():
        if not sub.__name__.startswith("_"):
            _BY_KIND[sub.kind] = sub
        _register(sub)


_register(Event)


def to_json(event: Event) -> dict[str, Any]:
    """One event as a JSON-ready dict: ``{"Event": kind, ...fields}``."""
    out: dict[str, Any] = {"Event": event.kind}
    for f in dataclasses.fields(event):
        out[f.name] = getattr(event, f.name)
    return out


def from_json(obj: dict[str, Any]) -> Event | None:
    """The event :func:`to_json` wrote (None for a kind this version does not know)."""
    cls = _BY_KIND.get(obj.get("Event", ""))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in obj.items() if k in names}
    for key in ("records", "metadata", "outputs", "state"):  # JSON object keys are strings
        if isinstance(kwargs.get(key), dict):
            kwargs[key] = {int(k): v for k, v in kwargs[key].items()}
    return cls(**kwargs)


class EventBus:
    """Delivers events to listeners on one thread, in order, through a bounded queue.

    A listener is any object with ``on_event(event)``; one that raises is logged and kept.
    """

    def __init__(self, capacity: int = 10000) -> None:
        if capacity < 1:
            raise ValueError(
                f"dstreams.scheduler.listenerbus.eventqueue.capacity={capacity} must be >= 1"
            )
        self.capacity = capacity
        self.active = False  # True while a listener is registered: posting is then worth it
        self.dropped = 0  # events dropped since the start
        self._unreported = 0
        self._queue: deque[Event] = deque()
        self._listeners: list[Any] = []
        self._cond = threading.Condition()
        self._busy = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    def add_listener(self, listener: Any) -> None:
        with self._cond:
            self._listeners.append(listener)
            self.active = True
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._run, name="dstreams-listener-bus", daemon=True
                )
                self._thread.start()

    def remove_listener(self, listener: Any) -> None:
        with self._cond:
            if listener in self._listeners:
                self._listeners.remove(listener)
            self.active = bool(self._listeners)

    def post(self, event: Event) -> None:
        """Queue ``event`` (never blocks; counted and dropped when the queue is full)."""
        if not self.active:
            return
        with self._cond:
            if self._stopped:
                return
            if len(self._queue) >= self.capacity:
                self.dropped += 1
                self._unreported += 1
                if self.dropped & (self.dropped - 1) == 0:  # 1, 2, 4, 8...
                    _log.warning(
                        "the listener bus queue is full (%d events): %d event(s) dropped so "
                        "far; raise dstreams.scheduler.listenerbus.eventqueue.capacity or "
                        "remove slow listeners",
                        self.capacity,
                        self.dropped,
                    )
                return
            if self._unreported and len(self._queue) < self.capacity - 1:
                self._queue.append(EventsDropped(now_ms(), self._unreported, self.dropped))
                self._unreported = 0
            self._queue.append(event)
            # no wake-up per event: the bus thread drains every DELIVERY_INTERVAL_S (a batch
            # of events per wake-up costs the engine's threads far less), or at once when the
            # queue is half full
            if len(self._queue) * 2 >= self.capacity:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait(DELIVERY_INTERVAL_S)
                if not self._queue:
                    self._busy = False
                    self._cond.notify_all()
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._busy = True
                listeners = list(self._listeners)
            for event in batch:
                for listener in listeners:
                    try:
                        listener.on_event(event)
                    except Exception:  # noqa: BLE001 - a broken listener must not stop the bus
                        _log.exception("listener %r failed on %s", listener, event.kind)

    def wait_until_empty(self, timeout: float = 10.0) -> bool:
        """Block until every event posted so far was delivered; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()  # deliver now, not at the next interval
            while (self._queue or self._busy) and self._thread is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
