"""Streaming dynamic allocation, wired: batch times in, executors requested and removed.

:class:`ExecutorAllocationManager` is Spark's streaming ``ExecutorAllocationManager``: a
listener that feeds each completed batch's processing time to the pure policy
(``scheduler/allocation.py``), and a timer on the streaming clock that, every
``dstreams.streaming.dynamicAllocation.scalingInterval``, applies its decision through the
Context's ``requestExecutors`` / ``killExecutors``. The executors that run receivers are never
removed. On a ManualClock the decisions follow the clock, so they are tested without sleeping.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dstreams.scheduler.allocation import AllocationConfig, StreamingAllocation
from dstreams.streaming.jobs import RecurringTimer

if TYPE_CHECKING:
    from dstreams.streaming.context import StreamingContext

__all__ = ["ExecutorAllocationManager", "allocation_config"]

_log = logging.getLogger(__name__)

_PREFIX = "dstreams.streaming.dynamicAllocation."


def allocation_config(ssc: StreamingContext) -> AllocationConfig | None:
    """The policy's settings from the conf (None: dynamic allocation is off)."""
    if not ssc._conf_bool(_PREFIX + "enabled", False):
        return None

    def number(name: str) -> str:
        return ssc._conf_get(_PREFIX + name).strip()

    def ratio(name: str, default: float) -> float:
        text = number(name)
        try:
            return float(text) if text else default
        except ValueError:
            raise ValueError(f"{_PREFIX}{name}={text!r} must be a number") from None

    def count(name: str) -> int | None:
        text = number(name)
        try:
            return int(text) if text else None
        except ValueError:
            raise ValueError(f"{_PREFIX}{name}={text!r} must be a whole number") from None

    return AllocationConfig(
        batch_ms=ssc._batch_ms,
        scaling_interval_ms=ssc._conf_int(_PREFIX + "scalingInterval", 60_000),
        scale_up_ratio=ratio("scalingUpRatio", 0.9),
        scale_down_ratio=ratio("scalingDownRatio", 0.3),
        min_executors=count("minExecutors"),
        max_executors=count("maxExecutors"),
    )


class ExecutorAllocationManager:
    """Scales a running StreamingContext's executors (see the module docstring)."""

    def __init__(self, ssc: StreamingContext, config: AllocationConfig) -> None:
        self.ssc = ssc
        self.policy = StreamingAllocation(config)
        self.timer = RecurringTimer(
            ssc._clock, config.scaling_interval_ms, self._manage, "ExecutorAllocationManager"
        )

    # -- a StreamingListener ----------------------------------------------------------------
    def onBatchCompleted(self, batchCompleted: Any) -> None:
        delay = batchCompleted.batchInfo().processingDelay()
        if delay is not None:
            self.policy.batch_completed(float(delay))

    def start(self) -> None:
        self.timer.start(self.timer.start_time())

    def stop(self, timeout: float = 1.0) -> None:
        self.timer.stop(timeout)

    def _manage(self, time_ms: int) -> None:
        sc = self.ssc._sc
        try:
            executors = sc.executorIds()
            placed = self.ssc._receiver_tracker.placements().values()
            receivers = {e for e in placed if e is not None}
            decision = self.policy.decide(executors, receivers)
            if decision.add:
                _log.info("dynamic allocation: asking for %d more executors", decision.add)
                sc.requestExecutors(decision.add)
            if decision.remove:
                _log.info("dynamic allocation: removing executors %s", list(decision.remove))
                sc.killExecutors(list(decision.remove))
        except Exception:  # noqa: BLE001 - scaling must never stop the stream
            _log.exception("dynamic allocation failed at %d ms", time_ms)
