"""The exception hierarchy: every error the engine raises on purpose is a :class:`DStreamsError`.

Worker-side failures come back to the driver as :class:`TaskFailedError`, which carries the remote
exception's type name, message and formatted traceback, so the user sees where *their* function
failed.
"""

from __future__ import annotations

__all__ = [
    "DStreamsError",
    "TaskFailedError",
    "JobAbortedError",
    "SerializationError",
    "ExecutorLostError",
    "FetchFailedError",
    "ContextStoppedError",
    "TaskKilledError",
    "CacheMissingError",
    "CorruptCheckpointError",
    "CheckpointWriteFailedError",
    "JobCancelledError",
    "OffsetRangeUnavailableError",
]


class DStreamsError(Exception):
    """Base class of every deliberate dstreams error."""


class TaskFailedError(DStreamsError):
    """A task failed ``maxFailures`` times; carries the user's exception and remote traceback.

    Attributes:
        exc_type_name: qualified name of the exception raised in the worker.
        exc_message: its ``str()``.
        remote_traceback: the formatted traceback from the worker process.
        cause: the original exception object when it could be unpickled, else None.
    """

    def __init__(
        self,
        message: str,
        exc_type_name: str = "",
        exc_message: str = "",
        remote_traceback: str = "",
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.exc_type_name = exc_type_name
        self.exc_message = exc_message
        self.remote_traceback = remote_traceback
        self.cause = cause

    def __str__(self) -> str:
        base = super().__str__()
        if self.remote_traceback:
            return f"{base}\n\nRemote traceback (most recent call last):\n{self.remote_traceback}"
        return base


class JobAbortedError(DStreamsError):
    """A job could not run to its end for a reason other than a user function failing."""


class SerializationError(DStreamsError):
    """A closure or record could not be pickled."""


class ExecutorLostError(DStreamsError):
    """A worker process died; raised only when no replacement could be started."""


class FetchFailedError(DStreamsError):
    """A reduce task could not fetch a map output from another executor."""

    def __init__(self, executor_id: str, shuffle_id: int, message: str = "") -> None:
        super().__init__(message or f"could not fetch shuffle {shuffle_id} from {executor_id}")
        self.executor_id = executor_id
        self.shuffle_id = shuffle_id

    def __reduce__(self):  # keep the attributes across pickling
        return (FetchFailedError, (self.executor_id, self.shuffle_id, str(self)))


class CacheMissingError(DStreamsError):
    """A task expected a cached partition that its executor no longer has (internal).

    The scheduler answers by forgetting that location and planning the stage again with the
    lineage behind the partition, so the partition is recomputed; users never see it.
    """

    def __init__(self, rdd_id: int, split: int) -> None:
        super().__init__(f"cached partition {split} of RDD {rdd_id} is missing")
        self.rdd_id = rdd_id
        self.split = split

    def __reduce__(self):  # keep the attributes across pickling
        return (CacheMissingError, (self.rdd_id, self.split))


class CorruptCheckpointError(DStreamsError):
    """A checkpoint file of an RDD is missing, truncated or damaged (its name is in the text).

    The scheduler recomputes the partition from the RDD's lineage when it was kept (state
    streams keep it until their next checkpoint); otherwise the job fails with this error.
    """

    def __init__(self, rdd_id: int, split: int, message: str) -> None:
        super().__init__(message)
        self.rdd_id = rdd_id
        self.split = split

    def __reduce__(self):  # keep the attributes across pickling
        return (CorruptCheckpointError, (self.rdd_id, self.split, str(self)))


class CheckpointWriteFailedError(DStreamsError, OSError):
    """An RDD checkpoint could not be written (a full disk, a refused write).

    ``errno`` and ``filename`` are the failing write's; the text names the file and the fix.
    Nothing of the attempt is left behind, and the RDD keeps its lineage.
    """

    def __init__(self, errno_: int | None, message: str, filename: str | None = None) -> None:
        OSError.__init__(self, errno_, message, filename)

    def __str__(self) -> str:
        return f"[Errno {self.errno}] {self.strerror}" if self.errno else str(self.strerror)

    def __reduce__(self):  # keep the attributes across pickling
        return (CheckpointWriteFailedError, (self.errno, self.strerror, self.filename))


class JobCancelledError(JobAbortedError):
    """A running job was cancelled (for example by ``StreamingContext.stop``)."""


class ContextStoppedError(DStreamsError):
    """The Context was stopped; create a new one."""


class TaskKilledError(DStreamsError):
    """Raised inside a worker to stop a task the driver no longer needs."""


class OffsetRangeUnavailableError(DStreamsError):
    """A direct source's planned range can no longer be read in full (trimmed, deleted).

    The batch fails with this error: its records are gone from the broker, and skipping them
    would lose data silently. The message names the source, the partition and the range.
    """
