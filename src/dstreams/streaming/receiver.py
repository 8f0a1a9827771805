"""The Receiver API: what a custom source implements to push data into a stream.

A receiver is shipped (pickled) to an executor, as in Spark, and runs there beside the
executor's task slots: ``onStart`` starts a thread that reads the source and stores records;
``onStop`` ends it. The executor side (``receiver_host.py``) cuts the stored records into
blocks, keeps them in the executor's block store, replicates and logs them as configured, and
tells the driver (``receiver_tracker.py``) about each block.

Storing:

* ``store(record)`` buffers one record; the buffer becomes a block every block interval. It
  returns at once and promises nothing about durability (Spark's ``store(item)``).
* ``storeBuffered(records)`` is ``store`` for many records at once (what ``socketTextStream``
  uses for each chunk it reads).
* ``storeMany(records, metadata=None)`` stores the records as one block and **blocks until the
  block is durable**: in the block store, in its replica and in the write-ahead log when
  enabled, and accepted by the driver (Spark's ``store(ArrayBuffer)``). A reliable source
  acknowledges or commits its own position only after it returns; ``metadata`` (for example
  that position) is kept with the block, and ``lastStoredMetadata()`` returns the newest one
  after a restart, so a source can resume exactly where the stored data ends.

Every store waits for the rate limit first (``dstreams.streaming.receiver.maxRate`` and
backpressure).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["Receiver"]


class Receiver:
    """Base class of receivers: ``onStart`` starts reading (in its own thread), ``onStop`` ends it.

    Contract: ``onStart`` must not block; it starts whatever thread reads the data and returns.
    That thread calls ``store``/``storeBuffered``/``storeMany``, calls ``restart`` when the source
    breaks, and should exit once ``isStopped()`` is true. The receiver object must be picklable
    before ``onStart`` (it travels to an executor): create sockets and clients in ``onStart``.
    """

    def __init__(self, storageLevel: Any = None) -> None:
        self.storageLevel = storageLevel
        self.streamId: int = -1
        self._host: Any = None  # the executor-side supervisor, set when it runs

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_host"] = None
        return state

    # -- what subclasses implement -----------------------------------------------------------
    def onStart(self) -> None:
        """Start receiving (non-blocking)."""
        raise NotImplementedError

    def onStop(self) -> None:
        """Stop receiving and release resources."""

    def name(self) -> str:
        """Return the receiver's name, shown in listener events."""
        return type(self).__name__

    def preferredLocation(self) -> str | None:
        """The executor id this receiver should run on, if it matters (Spark's API)."""
        return None

    # -- what the receiving thread calls -----------------------------------------------------
    def _supervisor(self) -> Any:
        host = self._host
        if host is None:
            raise RuntimeError(
                f"{self.name()} is not running: store() is only valid between onStart() and "
                "onStop(), in the receiver's own thread"
            )
        return host

    def store(self, item: Any) -> None:
        """Buffer one record (non-blocking; it goes out with the next block)."""
        self._supervisor().buffer((item,))

    def storeBuffered(self, items: Iterable[Any]) -> None:
        """Buffer many records at once (non-blocking)."""
        self._supervisor().buffer(items)

    def storeMany(self, items: Iterable[Any], metadata: Any = None) -> None:
        """Store ``items`` as one block; return only once it is durable (see module docstring).

        Raises:
            DStreamsError: the block could not be made durable (the receiver should not
                acknowledge its source; it may retry).
        """
        self._supervisor().store_block(list(items), metadata)

    def lastStoredMetadata(self) -> Any:
        """The ``metadata`` of the newest block stored for this stream (None if there is none)."""
        return self._supervisor().last_metadata

    def isStopped(self) -> bool:
        """Return True once the receiver was asked to stop (or is restarting)."""
        host = self._host
        return host is None or host.stopped_or_restarting()

    def reportError(self, message: str, error: BaseException | None = None) -> None:
        """Report an error to the listeners without restarting."""
        if self._host is not None:
            self._host.report_error(message, error)

    def restart(self, message: str, error: BaseException | None = None) -> None:
        """Report ``message`` and restart the receiver after the restart delay."""
        if self._host is not None:
            self._host.restart(message, error)

    def stop(self, message: str, error: BaseException | None = None) -> None:
        """Stop this receiver for good (the stream gets no more data)."""
        if self._host is not None:
            self._host.stop_for_good(message, error)
