"""Clocks for the streaming engine: the only place that reads wall-clock time.

Every streaming component (the job generator's timer, the block generator, the
listener timestamps) reads time through a :class:`Clock`.  Production code uses
:class:`SystemClock`; tests and benchmarks inject a :class:`ManualClock` and move
time forward explicitly, so that no test ever sleeps to wait for a batch.

Times are integers in milliseconds, as in Spark's ``org.apache.spark.util.Clock``.

Threading: both clocks are safe to share between threads.  ``waitTillTime``
blocks the calling thread only; it returns early when the optional ``interrupt``
event is set, which is how timers are stopped.
"""

from __future__ import annotations

import threading
import time as _time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What the streaming engine needs from a clock (times in milliseconds)."""

    def getTimeMillis(self) -> int:
        """Return the current time in milliseconds."""
        ...

    def waitTillTime(self, targetTime: int, interrupt: threading.Event | None = None) -> int:
        """Block until the clock reaches ``targetTime`` or ``interrupt`` is set.

        Returns:
            The clock's time when the wait ended.
        """
        ...


class SystemClock:
    """The wall clock (``time.time()``), in milliseconds."""

    def getTimeMillis(self) -> int:
        """Return the wall-clock time in milliseconds since the epoch."""
        return int(_time.time() * 1000)

    def waitTillTime(self, targetTime: int, interrupt: threading.Event | None = None) -> int:
        """Block until the wall clock reaches ``targetTime`` (or ``interrupt`` is set)."""
        waiter = interrupt if interrupt is not None else threading.Event()
        while True:
            now = self.getTimeMillis()
            remaining = targetTime - now
            if remaining <= 0 or waiter.is_set():
                return now
            waiter.wait(remaining / 1000.0)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that only moves when told to; for tests and benchmarks.

    Example:
        >>> clock = ManualClock()
        >>> clock.advance(1000)
        >>> clock.getTimeMillis()
        1000
    """

    def __init__(self, startTime: int = 0) -> None:
        """Create a clock reading ``startTime`` milliseconds."""
        self._time = int(startTime)
        self._cond = threading.Condition()

    def getTimeMillis(self) -> int:
        """Return the clock's current time in milliseconds."""
        with self._cond:
            return self._time

    def setTime(self, timeToSet: int) -> None:
        """Set the clock to ``timeToSet`` ms and wake every waiter."""
        with self._cond:
            self._time = int(timeToSet)
            self._cond.notify_all()

    def advance(self, timeToAdd: int) -> None:
        """Move the clock forward by ``timeToAdd`` ms and wake every waiter."""
        if timeToAdd < 0:
            raise ValueError(
                f"cannot move a ManualClock backwards (timeToAdd={timeToAdd}); "
                "use setTime() to set an absolute time"
            )
        with self._cond:
            self._time += int(timeToAdd)
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake every waiter so it can re-check its interrupt event."""
        with self._cond:
            self._cond.notify_all()

    def waitTillTime(self, targetTime: int, interrupt: threading.Event | None = None) -> int:
        """Block until the clock reaches ``targetTime`` or ``interrupt`` is set."""
        with self._cond:
            while self._time < targetTime:
                if interrupt is not None and interrupt.is_set():
                    break
                # The timeout only bounds how late an interrupt is noticed.
                self._cond.wait(0.05 if interrupt is not None else None)
            return self._time

    def __repr__(self) -> str:
        return f"ManualClock(time={self.getTimeMillis()})"
