"""Ad-hoc queries on live streams: ``dstream.registerView(name)`` and ``ssc.view(name)``.

A view is an output operation of the stream. After batch t's other outputs, it makes sure
the stream's RDD at t is materialized and cached, then publishes it. ``ssc.view(name)`` returns
the newest published RDD, whole and consistent at a batch boundary, and ``at=`` returns an
older one while it is retained. Any thread may call it and run ordinary RDD queries on the
result (``lookup``, ``filter``, ``collect``, ``join`` with a static RDD).

:class:`ViewRegistry` keeps the ``dstreams.streaming.views.retainedBatches`` newest RDDs of
each view (10 by default). An RDD that the view itself persisted is unpersisted when it falls
out; a state stream's RDDs are left to the stream.

Query jobs share the executors with the streaming jobs through the scheduler's FAIR pools
(``scheduler/pools.py``): batches run in the ``streaming`` pool, queries in ``default``, and a
query's tasks take free slots between streaming tasks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

__all__ = ["ViewRegistry"]


class ViewRegistry:
    """The views of one StreamingContext (see the module docstring)."""

    def __init__(self, retained: int = 10) -> None:
        if retained < 1:
            raise ValueError(
                f"dstreams.streaming.views.retainedBatches={retained} must be at least 1"
            )
        self.retained = retained
        self._lock = threading.Lock()
        self._views: dict[str, OrderedDict[int, tuple[Any, bool]]] = {}

    def declare(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a view's name must be a non-empty string, got {name!r}")
        with self._lock:
            if name in self._views:
                raise ValueError(f"a view named {name!r} is already registered")
            self._views[name] = OrderedDict()

    def publish(self, name: str, time_ms: int, rdd: Any, owned: bool) -> None:
        """Batch ``time_ms``'s RDD is complete: make it the newest (``owned``: we persisted it)."""
        gone = []
        with self._lock:
            kept = self._views.setdefault(name, OrderedDict())  # a recovered program's view
            kept[time_ms] = (rdd, owned)
            while len(kept) > self.retained:
                gone.append(kept.popitem(last=False)[1])
        for old, was_owned in gone:
            if was_owned:
                old.unpersist()

    def get(self, name: str, at: Any = None) -> Any:
        """The view's newest RDD, or batch ``at``'s."""
        return self.entry(name, at)[1]

    def entry(self, name: str, at: Any = None) -> tuple[int, Any]:
        """``(batch time, RDD)`` of the view's newest batch, or of batch ``at``."""
        with self._lock:
            kept = self._views.get(name)
            if kept is None:
                known = ", ".join(sorted(self._views)) or "none"
                raise KeyError(f"no view named {name!r} (registered: {known})")
            if not kept:
                raise LookupError(f"view {name!r} has no completed batch yet")
            if at is None:
                t = next(reversed(kept))
                return t, kept[t][0]
            ms = _ms(at)
            got = kept.get(ms)
            if got is None:
                times = list(kept)
                raise LookupError(
                    f"view {name!r} does not hold batch {ms} ms: it keeps the "
                    f"{len(times)} newest ({times[0]} .. {times[-1]} ms); raise "
                    "dstreams.streaming.views.retainedBatches to keep more"
                )
            return ms, got[0]


def _ms(at: Any) -> int:
    if isinstance(at, datetime):
        return round(at.timestamp() * 1000)
    if isinstance(at, bool) or not isinstance(at, int):
        raise TypeError(f"at={at!r} must be a batch time: a datetime or milliseconds (int)")
    return at
