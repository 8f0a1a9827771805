"""StreamingListener, its events, and the bus that delivers them.

The event and info classes answer the accessor calls PySpark's listener code makes
on the Java objects py4j hands it (``batchInfo().processingDelay()``,
``batchTime().milliseconds()``, ``outputOperationInfos()``...), so a PySpark
``StreamingListener`` subclass runs unchanged.  A value not known yet is ``-1``,
as in PySpark.

The :class:`ListenerBus` is owned by the job scheduler (``jobs.py``) and by the
receiver tracker (``receiver.py``).  It delivers events synchronously on the
posting thread, in posting order; a listener that raises is logged and skipped,
never allowed to break the engine.  Each event is also handed, as a plain
application event (``dstreams/events.py``, :func:`app_event`), to the
application's asynchronous bus, which feeds the UI, the metrics and the event log.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from dstreams import events as app

__all__ = [
    "BatchExtras",
    "BatchInfo",
    "ListenerBus",
    "OutputOperationInfo",
    "ReceiverInfo",
    "StreamInputInfo",
    "StreamingListener",
    "StreamingListenerBatchCompleted",
    "StreamingListenerBatchStarted",
    "StreamingListenerBatchSubmitted",
    "StreamingListenerOutputOperationCompleted",
    "StreamingListenerOutputOperationStarted",
    "StreamingListenerReceiverError",
    "StreamingListenerReceiverStarted",
    "StreamingListenerReceiverStopped",
    "StreamingListenerStreamingStarted",
    "Time",
    "app_event",
]

_log = logging.getLogger(__name__)


class Time:
    """A batch time, in milliseconds (Spark's ``org.apache.spark.streaming.Time``)."""

    __slots__ = ("_ms",)

    def __init__(self, millis: int) -> None:
        self._ms = int(millis)

    def milliseconds(self) -> int:
        """Return the time in milliseconds."""
        return self._ms

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Time) and other._ms == self._ms

    def __lt__(self, other: Time) -> bool:
        return self._ms < other._ms

    def __hash__(self) -> int:
        return hash(self._ms)

    def __repr__(self) -> str:
        return f"{self._ms} ms"


class StreamInputInfo:
    """Records one input stream contributed to one batch (``JavaStreamInputInfo``)."""

    #: the metadata key Spark uses for a human-readable description
    METADATA_KEY_DESCRIPTION = "Description"

    def __init__(
        self,
        inputStreamId: int,
        numRecords: int,
        metadataDescription: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if numRecords < 0:
            raise ValueError(f"numRecords must not be negative, got {numRecords}")
        self._id = inputStreamId
        self._n = numRecords
        self._desc = metadataDescription
        self._meta = dict(metadata or {})

    def inputStreamId(self) -> int:
        """Return the input stream's id."""
        return self._id

    def numRecords(self) -> int:
        """Return the number of records the stream put in the batch."""
        return self._n

    def metadata(self) -> dict[str, Any]:
        """Return the metadata map (a file stream's ``files``, a direct stream's offsets)."""
        return dict(self._meta)

    def metadataDescription(self) -> str:
        """Return a human-readable description of the input, or ``""``."""
        return self._desc


class OutputOperationInfo:
    """One output operation of one batch (``JavaOutputOperationInfo``)."""

    def __init__(
        self,
        batchTime: int,
        id: int,
        name: str,
        description: str,
        startTime: int = -1,
        endTime: int = -1,
        failureReason: str | None = None,
    ) -> None:
        self._batch = Time(batchTime)
        self._id = id
        self._name = name
        self._desc = description
        self._start = startTime
        self._end = endTime
        self._failure = failureReason

    def batchTime(self) -> Time:
        """Return the batch's time."""
        return self._batch

    def id(self) -> int:
        """Return the output operation's id (its index in the graph's outputs)."""
        return self._id

    def name(self) -> str:
        """Return the operation's name, e.g. ``"foreachRDD"``."""
        return self._name

    def description(self) -> str:
        """Return where the operation was created."""
        return self._desc

    def startTime(self) -> int:
        """Return when the operation started (ms), or -1."""
        return self._start

    def endTime(self) -> int:
        """Return when the operation ended (ms), or -1."""
        return self._end

    def failureReason(self) -> str | None:
        """Return the failure's text, or None if it succeeded."""
        return self._failure

    def duration(self) -> int:
        """Return ``endTime - startTime``, or -1 while unknown."""
        return self._end - self._start if self._start >= 0 and self._end >= 0 else -1


class BatchExtras:
    """What dstreams reports about a batch beyond PySpark's ``BatchInfo``.

    Reached through :meth:`BatchInfo.extras`, so that PySpark's own accessors stay exactly as
    they are. Counts not known yet are ``-1``.
    """

    def __init__(
        self,
        numSkippedRecords: int = 0,
        stateSizes: dict[int, tuple[str, int, int]] | None = None,
        numLateRecords: int = 0,
        watermarks: dict[int, float] | None = None,
    ) -> None:
        self._skipped = numSkippedRecords
        self._state = dict(stateSizes or {})
        self._late = numLateRecords
        self._marks = dict(watermarks or {})

    def numLateRecords(self) -> int:
        """Records that event-time windows dropped as older than their watermark."""
        return self._late

    def watermarks(self) -> dict[int, float]:
        """The watermark (epoch seconds) each event-time window stream applied, by stream id."""
        return dict(self._marks)

    def numSkippedRecords(self) -> int:
        """Records skipped and dead-lettered (``dstreams.streaming.recordErrors=deadLetter``)."""
        return self._skipped

    def stateSizes(self) -> dict[int, tuple[str, int, int]]:
        """Each state stream's state after the batch: ``{stream id: (operation, keys, bytes)}``.

        State streams are those of ``updateStateByKey`` and of windows with an inverse
        function. The sizes are those of the cached state partitions (bytes as stored,
        pickled); a partition that was not cached in the batch is not counted.
        """
        return dict(self._state)

    def __repr__(self) -> str:
        return (
            f"BatchExtras(numSkippedRecords={self._skipped}, stateSizes={self._state}, "
            f"numLateRecords={self._late})"
        )


class BatchInfo:
    """One batch's timings and sizes (``JavaBatchInfo``); unknown values are -1."""

    def __init__(
        self,
        batchTime: int,
        streamIdToInputInfo: dict[int, StreamInputInfo],
        submissionTime: int,
        processingStartTime: int = -1,
        processingEndTime: int = -1,
        outputOperationInfos: dict[int, OutputOperationInfo] | None = None,
        extras: BatchExtras | None = None,
    ) -> None:
        self._batch = Time(batchTime)
        self._inputs = dict(streamIdToInputInfo)
        self._submitted = submissionTime
        self._pstart = processingStartTime
        self._pend = processingEndTime
        self._outputs = dict(outputOperationInfos or {})
        self._extras = extras or BatchExtras()

    def batchTime(self) -> Time:
        """Return the batch's time."""
        return self._batch

    def streamIdToInputInfo(self) -> dict[int, StreamInputInfo]:
        """Return the input info of each input stream, by stream id."""
        return dict(self._inputs)

    def submissionTime(self) -> int:
        """Return when the batch's jobs were submitted (ms)."""
        return self._submitted

    def processingStartTime(self) -> int:
        """Return when the first job started (ms), or -1."""
        return self._pstart

    def processingEndTime(self) -> int:
        """Return when the last job ended (ms), or -1."""
        return self._pend

    def schedulingDelay(self) -> int:
        """Return the time from submission to the first job's start (ms), or -1."""
        return self._pstart - self._submitted if self._pstart >= 0 else -1

    def processingDelay(self) -> int:
        """Return the time the batch's jobs took (ms), or -1."""
        return self._pend - self._pstart if self._pstart >= 0 and self._pend >= 0 else -1

    def totalDelay(self) -> int:
        """Return scheduling delay plus processing delay (ms), or -1."""
        s, p = self.schedulingDelay(), self.processingDelay()
        return s + p if s >= 0 and p >= 0 else -1

    def numRecords(self) -> int:
        """Return the number of records the input streams put in the batch."""
        return sum(info.numRecords() for info in self._inputs.values())

    def outputOperationInfos(self) -> dict[int, OutputOperationInfo]:
        """Return the batch's output operations, by id."""
        return dict(self._outputs)

    def extras(self) -> BatchExtras:
        """What dstreams adds to PySpark's batch info (dead-lettered records, ...)."""
        return self._extras

    def __repr__(self) -> str:
        return (
            f"BatchInfo(batchTime={self._batch!r}, numRecords={self.numRecords()}, "
            f"schedulingDelay={self.schedulingDelay()}, "
            f"processingDelay={self.processingDelay()})"
        )


class ReceiverInfo:
    """A receiver's state (``JavaReceiverInfo``)."""

    def __init__(
        self,
        streamId: int,
        name: str,
        active: bool,
        location: str = "driver",
        executorId: str = "driver",
        lastErrorMessage: str = "",
        lastError: str = "",
        lastErrorTime: int = -1,
    ) -> None:
        self._fields = (
            streamId,
            name,
            active,
            location,
            executorId,
            lastErrorMessage,
            lastError,
            lastErrorTime,
        )

    def streamId(self) -> int:
        """Return the id of the receiver's input stream."""
        return self._fields[0]

    def name(self) -> str:
        """Return the receiver's name."""
        return self._fields[1]

    def active(self) -> bool:
        """Return whether the receiver is running."""
        return self._fields[2]

    def location(self) -> str:
        """Return where the receiver runs (always the driver here)."""
        return self._fields[3]

    def executorId(self) -> str:
        """Return the executor id (``"driver"``: receivers run as driver threads)."""
        return self._fields[4]

    def lastErrorMessage(self) -> str:
        """Return the last error's message, or ``""``."""
        return self._fields[5]

    def lastError(self) -> str:
        """Return the last error's traceback text, or ``""``."""
        return self._fields[6]

    def lastErrorTime(self) -> int:
        """Return when the last error happened (ms), or -1."""
        return self._fields[7]


class _Event:
    def __repr__(self) -> str:
        return f"{type(self).__name__}({vars(self)})"


class StreamingListenerStreamingStarted(_Event):
    """Posted once when the streaming context starts."""

    def __init__(self, time: int) -> None:
        self._time = time

    def time(self) -> int:
        """Return when streaming started (ms)."""
        return self._time


class _ReceiverEvent(_Event):
    def __init__(self, receiverInfo: ReceiverInfo) -> None:
        self._info = receiverInfo

    def receiverInfo(self) -> ReceiverInfo:
        """Return the receiver's state."""
        return self._info


class StreamingListenerReceiverStarted(_ReceiverEvent):
    """Posted when a receiver starts (again)."""


class StreamingListenerReceiverError(_ReceiverEvent):
    """Posted when a receiver reports an error."""


class StreamingListenerReceiverStopped(_ReceiverEvent):
    """Posted when a receiver stops."""


class _BatchEvent(_Event):
    def __init__(self, batchInfo: BatchInfo) -> None:
        self._info = batchInfo

    def batchInfo(self) -> BatchInfo:
        """Return the batch's info."""
        return self._info


class StreamingListenerBatchSubmitted(_BatchEvent):
    """Posted when a batch's jobs are submitted."""


class StreamingListenerBatchStarted(_BatchEvent):
    """Posted when a batch's first job starts."""


class StreamingListenerBatchCompleted(_BatchEvent):
    """Posted when all of a batch's jobs are done (succeeded or failed)."""


class _OutputEvent(_Event):
    def __init__(self, outputOperationInfo: OutputOperationInfo) -> None:
        self._info = outputOperationInfo

    def outputOperationInfo(self) -> OutputOperationInfo:
        """Return the output operation's info."""
        return self._info


class StreamingListenerOutputOperationStarted(_OutputEvent):
    """Posted when an output operation's job starts."""


class StreamingListenerOutputOperationCompleted(_OutputEvent):
    """Posted when an output operation's job ends."""


class StreamingListener:
    """Receives the streaming engine's events; override the callbacks you need.

    Example:
        >>> class Printer(StreamingListener):
        ...     def onBatchCompleted(self, batchCompleted):
        ...         print(batchCompleted.batchInfo().processingDelay())
    """

    def __init__(self) -> None:
        pass

    def onStreamingStarted(self, streamingStarted: StreamingListenerStreamingStarted) -> None:
        """Called when the streaming context has started."""

    def onReceiverStarted(self, receiverStarted: StreamingListenerReceiverStarted) -> None:
        """Called when a receiver has started."""

    def onReceiverError(self, receiverError: StreamingListenerReceiverError) -> None:
        """Called when a receiver has reported an error."""

    def onReceiverStopped(self, receiverStopped: StreamingListenerReceiverStopped) -> None:
        """Called when a receiver has stopped."""

    def onBatchSubmitted(self, batchSubmitted: StreamingListenerBatchSubmitted) -> None:
        """Called when a batch's jobs have been submitted."""

    def onBatchStarted(self, batchStarted: StreamingListenerBatchStarted) -> None:
        """Called when a batch's processing has started."""

    def onBatchCompleted(self, batchCompleted: StreamingListenerBatchCompleted) -> None:
        """Called when a batch's processing has completed."""

    def onOutputOperationStarted(
        self, outputOperationStarted: StreamingListenerOutputOperationStarted
    ) -> None:
        """Called when an output operation's job has started."""

    def onOutputOperationCompleted(
        self, outputOperationCompleted: StreamingListenerOutputOperationCompleted
    ) -> None:
        """Called when an output operation's job has completed."""


_CALLBACKS: dict[type, str] = {
    StreamingListenerStreamingStarted: "onStreamingStarted",
    StreamingListenerReceiverStarted: "onReceiverStarted",
    StreamingListenerReceiverError: "onReceiverError",
    StreamingListenerReceiverStopped: "onReceiverStopped",
    StreamingListenerBatchSubmitted: "onBatchSubmitted",
    StreamingListenerBatchStarted: "onBatchStarted",
    StreamingListenerBatchCompleted: "onBatchCompleted",
    StreamingListenerOutputOperationStarted: "onOutputOperationStarted",
    StreamingListenerOutputOperationCompleted: "onOutputOperationCompleted",
}


def _batch(cls: type[app._Batch], info: BatchInfo) -> app.Event:
    outputs = {
        i: {
            "name": o.name(),
            "description": o.description(),
            "start": o.startTime(),
            "end": o.endTime(),
            "failure": o.failureReason() or "",
        }
        for i, o in info._outputs.items()
    }
    return cls(
        app.now_ms(),
        info._batch.milliseconds(),
        info._submitted,
        info._pstart,
        info._pend,
        {i: s.numRecords() for i, s in info._inputs.items()},
        {i: s._meta for i, s in info._inputs.items() if s._meta},
        outputs,
        {
            i: {"operation": op, "keys": keys, "bytes": size}
            for i, (op, keys, size) in info._extras._state.items()
        },
    )


def _receiver(cls: type[app._Receiver], info: ReceiverInfo) -> app.Event:
    f = info._fields
    return cls(app.now_ms(), f[0], f[1], f[2], f[4], f[3], f[6], f[5], f[7])


def app_event(event: _Event) -> app.Event | None:
    """``event`` as the application event the UI and the event log read."""
    if isinstance(event, StreamingListenerBatchCompleted):
        return _batch(app.BatchCompleted, event._info)
    if isinstance(event, StreamingListenerBatchStarted):
        return _batch(app.BatchStarted, event._info)
    if isinstance(event, StreamingListenerBatchSubmitted):
        return _batch(app.BatchSubmitted, event._info)
    if isinstance(event, _OutputEvent):
        o = event._info
        cls = (
            app.OutputOperationCompleted
            if isinstance(event, StreamingListenerOutputOperationCompleted)
            else app.OutputOperationStarted
        )
        return cls(
            app.now_ms(),
            o.batchTime().milliseconds(),
            o.id(),
            o.name(),
            o.startTime(),
            o.endTime(),
            o.failureReason() or "",
        )
    if isinstance(event, StreamingListenerReceiverStarted):
        return _receiver(app.ReceiverStarted, event._info)
    if isinstance(event, StreamingListenerReceiverError):
        return _receiver(app.ReceiverError, event._info)
    if isinstance(event, StreamingListenerReceiverStopped):
        return _receiver(app.ReceiverStopped, event._info)
    return None  # StreamingStarted: posted with the batch duration by the context


class ListenerBus:
    """Delivers events to listeners, synchronously and in order (and to the app's bus)."""

    def __init__(self, app_bus: app.EventBus | None = None) -> None:
        self._listeners: list[Any] = []
        self._lock = threading.RLock()
        self._app_bus = app_bus

    def addListener(self, listener: Any) -> None:
        """Register ``listener`` (any object with some of the ``on...`` callbacks)."""
        with self._lock:
            self._listeners.append(listener)

    def removeListener(self, listener: Any) -> None:
        """Unregister ``listener`` if present."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @property
    def listeners(self) -> list[Any]:
        """Return a copy of the registered listeners."""
        with self._lock:
            return list(self._listeners)

    def post(self, event: _Event) -> None:
        """Call the matching callback of every listener; log and skip a listener that raises."""
        name = _CALLBACKS[type(event)]
        if self._app_bus is not None and self._app_bus.active:
            converted = app_event(event)
            if converted is not None:
                self._app_bus.post(converted)
        with self._lock:
            for listener in list(self._listeners):
                callback = getattr(listener, name, None)
                if callback is None:
                    continue
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - a broken listener must not break the engine
                    _log.exception("StreamingListener %r raised in %s", listener, name)
