"""Small helpers shared by the streaming modules: durations, times, callable arity.

Durations come from users in seconds (``int``/``float``, as in PySpark) and are
kept internally as integer milliseconds.  Batch times are integer milliseconds;
user functions see them as ``datetime`` (``datetime.fromtimestamp(ms / 1000)``,
exactly PySpark's conversion).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

__all__ = [
    "Deadline",
    "check_function",
    "fmt_ms",
    "positional_arity",
    "time_arg_to_ms",
    "to_datetime",
    "to_ms",
]


def check_function(f: Any, op: str, arg: str) -> None:
    """Fail when the graph is built, not in a batch, if a function argument is not callable."""
    if not callable(f):
        raise TypeError(f"DStream.{op}: {arg} must be a function, got {f!r} ({type(f).__name__})")


def to_ms(seconds: float, what: str = "duration") -> int:
    """Convert a duration in seconds to whole milliseconds, validating it.

    Raises:
        TypeError: ``seconds`` is not a number.
        ValueError: ``seconds`` is not positive.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(
            f"{what} must be a number of seconds (int or float), "
            f"got {seconds!r} of type {type(seconds).__name__}"
        )
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {seconds!r}")
    return ms


def fmt_ms(ms: int) -> str:
    """Render milliseconds as users write them: ``2000`` -> ``"2s"``, ``250`` -> ``"0.25s"``."""
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms / 1000:g}s"


def to_datetime(ms: int) -> datetime:
    """Convert a batch time in ms to the ``datetime`` PySpark hands user functions."""
    return datetime.fromtimestamp(ms / 1000.0)


def time_arg_to_ms(t: datetime | float) -> int:
    """Convert a user-given time (``datetime`` or seconds since the epoch) to ms."""
    if isinstance(t, datetime):
        return round(t.timestamp() * 1000)
    return round(t * 1000)


def positional_arity(func: Callable[..., Any]) -> int:
    """Return how many positional arguments ``func`` accepts (``-1`` for ``*args``).

    PySpark looks at ``func.__code__.co_argcount``; this also handles bound methods,
    ``functools.partial`` objects and callable instances.
    """
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    n = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return -1
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


class Deadline:
    """A real-time budget for shutting down (thread joins), not a batch time.

    Batch times always come from the injected clock; how long ``stop()`` may wait for a thread
    is a property of the machine, so it is measured on the monotonic clock.
    """

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def left(self, floor: float = 0.01) -> float:
        """Seconds left (at least ``floor``, so a join still gives a thread a moment)."""
        return max(floor, self._end - time.monotonic())
