"""Streaming dynamic allocation: the policy, as a pure state machine (Spark's streaming rules).

:class:`StreamingAllocation` takes numbers and returns decisions; it never touches a backend or
a clock. The StreamingContext feeds it each completed batch's processing time and, every
``scalingInterval`` on the streaming clock, asks it what to do:

* the average processing time of the batches since the last decision, over the batch
  interval, is the *ratio*;
* ratio >= ``scalingUpRatio`` (0.9): ask for ``max(round(ratio), 1)`` more executors, at most
  up to ``maxExecutors``;
* ratio <= ``scalingDownRatio`` (0.3): remove one executor, never below ``minExecutors`` and
  never one that runs a receiver (as Spark). Spark picks it at random; here it is the newest
  (the highest id), so decisions are reproducible;
* no batch completed since the last decision: nothing.

Settings (``spark.`` aliases): ``dstreams.streaming.dynamicAllocation.enabled`` (false),
``.scalingInterval`` (60 s), ``.scalingUpRatio`` (0.9), ``.scalingDownRatio`` (0.3),
``.minExecutors`` (default: the number of receivers, at least 1) and ``.maxExecutors``
(default: no limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AllocationConfig", "Decision", "StreamingAllocation"]


@dataclass(frozen=True)
class AllocationConfig:
    batch_ms: int
    scaling_interval_ms: int = 60_000
    scale_up_ratio: float = 0.9
    scale_down_ratio: float = 0.3
    min_executors: int | None = None  # None: the number of receivers, at least 1
    max_executors: int | None = None  # None: no limit

    def __post_init__(self) -> None:
        if not 0 < self.scale_down_ratio < self.scale_up_ratio:
            raise ValueError(
                f"dstreams.streaming.dynamicAllocation.scalingDownRatio="
                f"{self.scale_down_ratio} must be above 0 and below scalingUpRatio="
                f"{self.scale_up_ratio}"
            )
        lo, hi = self.min_executors, self.max_executors
        if (lo is not None and lo < 0) or (hi is not None and hi < 1):
            raise ValueError(f"minExecutors={lo} and maxExecutors={hi} must be >= 0 and >= 1")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"minExecutors={lo} is above maxExecutors={hi}")
        if self.scaling_interval_ms <= 0:
            raise ValueError(f"scalingInterval={self.scaling_interval_ms} ms must be positive")


@dataclass(frozen=True)
class Decision:
    """Executors to ask for (``add``), and the ones to remove."""

    add: int = 0
    remove: tuple[str, ...] = ()


@dataclass
class StreamingAllocation:
    config: AllocationConfig
    _sum_ms: float = 0.0
    _count: int = 0
    decisions: list[Decision] = field(default_factory=list)

    def batch_completed(self, processing_ms: float) -> None:
        self._sum_ms += processing_ms
        self._count += 1

    def decide(self, executors: list[str], receiver_executors: set[str]) -> Decision:
        """What to do now, given the live executors and those running receivers."""
        cfg = self.config
        if self._count == 0:
            return Decision()
        ratio = self._sum_ms / self._count / cfg.batch_ms
        self._sum_ms, self._count = 0.0, 0
        lo = cfg.min_executors if cfg.min_executors is not None else max(1, len(receiver_executors))
        n = len(executors)
        decision = Decision()
        if ratio >= cfg.scale_up_ratio:
            want = n + max(round(ratio), 1)
            if cfg.max_executors is not None:
                want = min(want, cfg.max_executors)
            want = max(want, lo)
            if want > n:
                decision = Decision(add=want - n)
        elif ratio <= cfg.scale_down_ratio and n > lo:
            removable = [e for e in executors if e not in receiver_executors]
            if removable:
                newest = max(removable, key=lambda e: (len(e), e))
                decision = Decision(remove=(newest,))
        if decision != Decision():
            self.decisions.append(decision)
        return decision
