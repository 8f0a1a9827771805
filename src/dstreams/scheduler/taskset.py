"""TaskSetManager: the launches of one stage attempt, as a pure state machine.

It decides *which partition runs next on a given executor* and what a finished, failed or lost
task means for the attempt. It performs no I/O and reads no clock: the DAG scheduler passes
``now`` in. States of a partition::

    pending --offer--> running --success--> done
       ^                  |  \\--failure (count < maxFailures)--> pending
       |                  |   \\--failure (count = maxFailures)--> abort the task set
       +--executor lost---+

Speculation (Spark's rules): once ``max(floor(quantile * n), 1)`` partitions have succeeded, a
partition whose only copy has been running longer than ``multiplier`` x the median successful
duration (and at least ``min_runtime``) becomes speculatable. Before that, in a stage with no
more tasks than one executor has slots, ``duration_threshold`` (when set) is the bar instead.
``offer`` then launches a second copy on a different executor, and the first copy to finish
wins. The DAG scheduler can also mark a partition speculatable directly
(``make_speculatable``): a task queued on an executor that stopped answering is copied at once.

Locality: ``offer(executor)`` prefers a pending partition whose input lives on that executor,
then one without preference, then any (the task will fetch its input remotely). Delay
scheduling (Spark's ``spark.locality.wait``) holds back a partition whose *cached* input lives
on other executors that can take tasks (``usable``): it runs elsewhere only once the task set
has launched nothing where its data is for ``locality_wait`` seconds. Fetching a large cached
partition (a state of a million keys) costs far more than waiting for a slot where it lives.
Inputs that are cheap to move (received blocks) are preferences only, never waited for.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

__all__ = ["TaskSetManager", "Offer", "RunningTask", "SpeculationConfig"]


@dataclass(frozen=True, slots=True)
class SpeculationConfig:
    enabled: bool = False
    multiplier: float = 1.5
    quantile: float = 0.75
    min_runtime: float = 0.1
    #: seconds; speculate in stages of at most one executor's slots before the quantile
    duration_threshold: float | None = None


@dataclass(slots=True)
class RunningTask:
    partition: int
    executor_id: str
    start: float
    speculative: bool
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class Offer:
    """A launch decision: run ``partition`` (attempt number ``attempt``) on the executor."""

    partition: int
    attempt: int
    speculative: bool


@dataclass
class TaskSetManager:
    stage_id: int
    stage_attempt: int
    partitions: list[int]
    max_failures: int
    preferred: dict[int, set[str]] = field(default_factory=dict)
    speculation: SpeculationConfig = field(default_factory=SpeculationConfig)
    slots_per_executor: int = 1
    #: partition -> executors holding its cached input (waited for up to ``locality_wait``)
    cached_on: dict[int, set[str]] = field(default_factory=dict)
    locality_wait: float = 0.0

    def __post_init__(self) -> None:
        self.pending: list[int] = list(self.partitions)
        self.running: dict[int, RunningTask] = {}
        self.copies: dict[int, set[int]] = {}
        self.done: set[int] = set()
        self.failures: dict[int, int] = {}
        self.attempts: dict[int, int] = {}
        self.durations: list[float] = []
        self.speculatable: set[int] = set()
        self.zombie = False
        self._all = set(self.partitions)
        self._local_at: float | None = None  # the last launch where the data was (or start)

    # -- launching -----------------------------------------------------------------------------
    def offer(
        self,
        executor_id: str,
        task_id: int,
        now: float,
        usable: Collection[str] | None = None,
    ) -> Offer | None:
        """Pick a partition to run on ``executor_id`` as task ``task_id``, or None.

        ``usable``: the executors that can take tasks now (for delay scheduling; None: all).
        """
        if self.zombie:
            return None
        if self._local_at is None:
            self._local_at = now
        p = self._pick_pending(executor_id, now, usable)
        speculative = False
        if p is None:
            p = self._pick_speculatable(executor_id)
            if p is None:
                return None
            speculative = True
        attempt = self.attempts.get(p, 0)
        self.attempts[p] = attempt + 1
        self.running[task_id] = RunningTask(p, executor_id, now, speculative, attempt)
        self.copies.setdefault(p, set()).add(task_id)
        return Offer(p, attempt, speculative)

    def _pick_pending(
        self, executor_id: str, now: float, usable: Collection[str] | None
    ) -> int | None:
        if not self.pending:
            return None
        if not self.preferred and not self.cached_on:
            return self.pending.pop(0)
        fallback = None  # no preference at all
        movable = None  # preferences, but no cached input that could wait where it lives
        for i, p in enumerate(self.pending):
            held = self.cached_on.get(p)
            prefs = self.preferred.get(p)
            if (held and executor_id in held) or (prefs and executor_id in prefs):
                self._local_at = now
                return self.pending.pop(i)
            if fallback is None and not prefs and not held:
                fallback = i
            if movable is None and not self._waits(held, usable):
                movable = i
        if fallback is not None:
            return self.pending.pop(fallback)
        if movable is not None:
            return self.pending.pop(movable)
        assert self._local_at is not None
        if now - self._local_at >= self.locality_wait:
            return self.pending.pop(0)
        return None

    def _waits(self, held: set[str] | None, usable: Collection[str] | None) -> bool:
        """Whether a partition whose cached input is on ``held`` waits for one of them."""
        if not held or self.locality_wait <= 0:
            return False
        return usable is None or any(e in usable for e in held)

    def _pick_speculatable(self, executor_id: str) -> int | None:
        for p in sorted(self.speculatable):
            on = {self.running[t].executor_id for t in self.copies.get(p, ())}
            if executor_id not in on:
                self.speculatable.discard(p)
                return p
        return None

    # -- outcomes ------------------------------------------------------------------------------
    def on_success(self, task_id: int, now: float) -> int | None:
        """Record a success; return the partition if this is its first success."""
        rt = self.running.pop(task_id, None)
        if rt is None:
            return None
        self.copies[rt.partition].discard(task_id)
        if rt.partition in self.done:
            return None
        self.done.add(rt.partition)
        self.speculatable.discard(rt.partition)
        self.durations.append(now - rt.start)
        return rt.partition

    def on_failure(
        self, task_id: int, counts: bool = True, withdrawn: bool = False
    ) -> tuple[int | None, bool]:
        """Record a failed attempt; return (partition, abort?).

        A ``withdrawn`` attempt never started, so its attempt number is given back.
        """
        rt = self.running.pop(task_id, None)
        if rt is None:
            return None, False
        p = rt.partition
        if withdrawn and self.attempts.get(p) == rt.attempt + 1:
            self.attempts[p] = rt.attempt
        self.copies[p].discard(task_id)
        if p in self.done:
            return p, False
        if counts:
            self.failures[p] = self.failures.get(p, 0) + 1
            if self.failures[p] >= self.max_failures:
                self.zombie = True
                return p, True
        if not self.copies[p] and p not in self.pending:
            self.pending.insert(0, p)
        return p, False

    def executor_lost(self, executor_id: str) -> list[int]:
        """Requeue the tasks that were running on a dead executor; return their task ids."""
        lost = [t for t, rt in self.running.items() if rt.executor_id == executor_id]
        for t in lost:
            self.on_failure(t, counts=False)
        return lost

    def resubmit(self, partitions: Iterable[int]) -> None:
        """Run partitions again: their map output was on a lost executor.

        A partition outside this attempt (its output came from an earlier attempt or job, so
        the attempt did not include it) joins the attempt.
        """
        for p in partitions:
            if p in self.done:
                self.done.discard(p)
                if not self.copies.get(p) and p not in self.pending:
                    self.pending.append(p)
            elif p not in self._all and not self.zombie:
                self._all.add(p)
                self.partitions.append(p)
                self.pending.append(p)

    def make_speculatable(self, partition: int) -> bool:
        """Let ``partition`` get a copy now (its only copy cannot make progress)."""
        if (
            self.zombie
            or partition in self.done
            or partition in self.speculatable
            or len(self.copies.get(partition, ())) != 1
        ):
            return False
        self.speculatable.add(partition)
        return True

    def check_speculation(self, now: float) -> list[int]:
        """Mark straggling partitions speculatable; return the newly marked ones."""
        cfg = self.speculation
        if not cfg.enabled or self.zombie:
            return []
        n = len(self._all)
        if n == 1 and cfg.duration_threshold is None:
            return []
        if self.durations and len(self.durations) >= max(int(cfg.quantile * n), 1):
            threshold = max(cfg.min_runtime, cfg.multiplier * statistics.median(self.durations))
        elif cfg.duration_threshold is not None and n <= self.slots_per_executor:
            threshold = cfg.duration_threshold
        else:
            return []
        marked = []
        for rt in self.running.values():
            p = rt.partition
            if (
                p not in self.done
                and p not in self.speculatable
                and len(self.copies.get(p, ())) == 1
                and now - rt.start > threshold
            ):
                self.speculatable.add(p)
                marked.append(p)
        return marked

    def is_finished(self) -> bool:
        return self.done >= self._all

    def has_work(self) -> bool:
        return not self.zombie and (bool(self.pending) or bool(self.speculatable))

    def validate_state(self) -> None:
        """Invariants, asserted after every step in tests."""
        running_parts = {rt.partition for rt in self.running.values()}
        assert set(self.pending) <= self._all
        assert len(self.pending) == len(set(self.pending)), "a partition is queued twice"
        assert not (set(self.pending) & self.done), "a done partition is pending"
        assert not (set(self.pending) & running_parts), "a running partition is pending"
        for p, ts in self.copies.items():
            assert ts == {t for t, rt in self.running.items() if rt.partition == p}
        if not self.zombie:
            accounted = set(self.pending) | running_parts | self.done
            assert accounted == self._all, f"lost partitions {self._all - accounted}"
