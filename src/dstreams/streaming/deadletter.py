"""The record-error policy: fail the batch (PySpark's behaviour), or skip and dead-letter.

``dstreams.streaming.recordErrors``:

* ``fail`` (the default): an exception in a user function fails the task and, after its
  retries, the batch. In a stateful stream the bad record stays in the state's lineage, so
  every later batch fails too, exactly as in PySpark.
* ``deadLetter``: a record whose function raises is skipped, and written with the operator,
  the batch time and the traceback to ``dstreams.streaming.recordErrors.path`` (any fsspec
  URL), as Flink's and Beam's dead-letter queues do. It covers the per-record functions of
  ``map``, ``flatMap``, ``filter``, ``mapValues``, ``flatMapValues``, ``reduceByKey`` /
  ``reduce`` (the failing value is left out of the reduction) and ``updateStateByKey`` (the key
  keeps its previous state). Whole-RDD functions (``transform``, ``foreachRDD``) and window
  reductions are not covered: skipping a value inside an inverse reduction would corrupt every
  later window.

Exactly once: a task buffers its skipped records and, only when it succeeds, writes them as one
JSON-lines file named by (batch time, operator, partition), through a temporary name and a
rename. A retried, speculative or recomputed attempt computes the same records in the same
order, so it writes the same file again: there is never a second copy. Counts travel in an
accumulator keyed the same way, so they are not counted twice either; the batch's total is
``batchInfo.extras().numSkippedRecords()``.

File layout: ``<path>/batch-<time ms>/<operator>-<stream id>-part-<NNNNN>.jsonl``, one JSON
object per line with ``batchTime``, ``operator``, ``stream``, ``partition``, ``record``
(``repr``), ``recordPickle`` (base64, when the record pickles), ``error`` and ``traceback``.
"""

from __future__ import annotations

import base64
import json
import pickle
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from dstreams.core.shared import AccumulatorParam

__all__ = ["DeadLetters", "RecordErrorPolicy", "SKIPPED"]


class _Skipped:
    __slots__ = ()

    def __repr__(self) -> str:
        return "SKIPPED"

    def __reduce__(self) -> str:
        return "SKIPPED"


#: what a guarded map function returns for a skipped record (filtered out right after)
SKIPPED: Any = _Skipped()


@dataclass(frozen=True)
class RecordErrorPolicy:
    """``mode`` is ``fail`` or ``deadLetter``; ``path`` is where dead letters go."""

    mode: str = "fail"
    path: str | None = None

    @classmethod
    def from_conf(cls, get: Callable[[str], str]) -> RecordErrorPolicy:
        mode = get("dstreams.streaming.recordErrors").strip() or "fail"
        path = get("dstreams.streaming.recordErrors.path").strip() or None
        if mode not in ("fail", "deadLetter"):
            raise ValueError(
                f"dstreams.streaming.recordErrors={mode!r} is not a policy; "
                "use 'fail' (the default) or 'deadLetter'"
            )
        if mode == "deadLetter" and not path:
            raise ValueError(
                "dstreams.streaming.recordErrors=deadLetter needs a directory: set "
                "dstreams.streaming.recordErrors.path to a path or fsspec URL"
            )
        return cls(mode, path)

    @property
    def dead_letter(self) -> bool:
        return self.mode == "deadLetter"


class _KeyedCounts(AccumulatorParam[dict[Any, int]]):
    """Counts keyed by (batch, operator, partition): a re-run overwrites, never adds."""

    def zero(self, value: dict[Any, int]) -> dict[Any, int]:
        return {}

    def addInPlace(self, value1: dict[Any, int], value2: dict[Any, int]) -> dict[Any, int]:
        value1.update(value2)
        return value1


class DeadLetters:
    """One StreamingContext's dead-letter sink: guards functions, counts what they skipped."""

    def __init__(self, sc: Any, policy: RecordErrorPolicy) -> None:
        self.policy = policy
        self.counts = sc.accumulator({}, _KeyedCounts())

    def skipped_in_batch(self, time_ms: int) -> int:
        """Records skipped so far by the tasks of batch ``time_ms``."""
        return sum(n for (t, _, _), n in self.counts.value.items() if t == time_ms)

    def forget_before(self, time_ms: int) -> None:
        """Drop the counts of batches before ``time_ms`` (their batch info was posted)."""
        counts = self.counts.value
        for key in [k for k in counts if k[0] < time_ms]:
            del counts[key]

    def guard(self, op: str, stream: str, time_ms: int) -> _Guard:
        assert self.policy.path is not None
        return _Guard(self.policy.path, op, stream, time_ms, self.counts)


class _Guard:
    """Catches a user function's exceptions for one operator of one batch (runs in tasks)."""

    def __init__(self, path: str, op: str, stream: str, time_ms: int, counts: Any) -> None:
        self.path, self.op, self.stream, self.time_ms = path.rstrip("/"), op, stream, time_ms
        self.counts = counts

    # -- wrappers ---------------------------------------------------------------------------
    def map(self, f: Callable[[Any], Any]) -> Callable[[Iterable[Any]], Iterator[Any]]:
        def each(x: Any) -> Any:
            try:
                return f(x)
            except Exception as e:  # noqa: BLE001 - the policy says: skip and record it
                self.fail(x, e)
                return SKIPPED

        def partition(it: Iterable[Any]) -> Iterator[Any]:
            return (y for y in map(each, it) if y is not SKIPPED)

        return partition

    def flat_map(self, f: Callable[[Any], Iterable[Any]]) -> Callable[[Any], list[Any]]:
        def each(x: Any) -> list[Any]:
            try:
                return list(f(x))
            except Exception as e:  # noqa: BLE001
                self.fail(x, e)
                return []

        return each

    def predicate(self, f: Callable[[Any], bool]) -> Callable[[Any], bool]:
        def each(x: Any) -> bool:
            try:
                return bool(f(x))
            except Exception as e:  # noqa: BLE001
                self.fail(x, e)
                return False

        return each

    def reducer(self, f: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def merge(a: Any, b: Any) -> Any:
            try:
                return f(a, b)
            except Exception as e:  # noqa: BLE001 - b is left out of the reduction
                self.fail(b, e, accumulated=a)
                return a

        return merge

    def state_update(
        self, f: Callable[[list[Any], Any], Any]
    ) -> Callable[[tuple[Any, tuple[list[Any], Any]]], Any]:
        def update(kv: tuple[Any, tuple[list[Any], Any]]) -> Any:
            key, (values, state) = kv
            try:
                return f(values, state)
            except Exception as e:  # noqa: BLE001 - the key keeps its previous state
                self.fail((key, values), e, accumulated=state)
                return state

        return update

    # -- recording --------------------------------------------------------------------------
    def fail(self, record: Any, error: BaseException, accumulated: Any = None) -> None:
        from dstreams.scheduler.task import TaskContext

        tctx = TaskContext.get()
        if tctx is None:  # computed on the driver (cannot happen for task functions)
            raise error
        buffers: dict[tuple[str, str, int], list[dict[str, Any]]] | None
        buffers = getattr(tctx, "_dead_letters", None)
        if buffers is None:
            buffers = tctx._dead_letters = {}  # type: ignore[attr-defined]
            tctx.add_completion_callback(lambda ok: _flush(tctx, ok))
        key = (self.path, f"{self.op}-{self.stream}", self.time_ms)
        entry: dict[str, Any] = {
            "batchTime": self.time_ms,
            "operator": self.op,
            "stream": self.stream,
            "partition": tctx.partitionId(),
            "record": repr(record),
            "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error)),
        }
        try:
            entry["recordPickle"] = base64.b64encode(pickle.dumps(record, 5)).decode()
        except Exception:  # noqa: BLE001 - the repr is kept
            pass
        if accumulated is not None:
            entry["accumulated"] = repr(accumulated)
        buffers.setdefault(key, []).append(entry)
        _counters(tctx)[key] = self.counts


def _counters(tctx: Any) -> dict[Any, Any]:
    c = getattr(tctx, "_dead_letter_counts", None)
    if c is None:
        c = tctx._dead_letter_counts = {}
    return c


def _flush(tctx: Any, succeeded: bool) -> None:
    """Write each operator's skipped records of this task as one file (on success only)."""
    buffers = getattr(tctx, "_dead_letters", {})
    counters = _counters(tctx)
    tctx._dead_letters = None
    if not succeeded:
        return
    import fsspec

    split = tctx.partitionId()
    for (path, name, time_ms), entries in buffers.items():
        directory = f"{path}/batch-{time_ms}"
        fs, _, (root,) = fsspec.get_fs_token_paths(directory)
        fs.makedirs(root, exist_ok=True)
        final = f"{root}/{name}-part-{split:05d}.jsonl"
        tmp = f"{root}/.{name}-part-{split:05d}.attempt-{tctx.taskAttemptId()}"
        text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
        try:
            with fs.open(tmp, "w") as fh:
                fh.write(text)
            fs.mv(tmp, final)  # a re-run writes the same content over it: still one copy
        except OSError as e:
            raise OSError(
                f"could not write {len(entries)} dead-lettered records to {final}: {e}; "
                "check dstreams.streaming.recordErrors.path"
            ) from e
        counters[(path, name, time_ms)].add({(time_ms, name, split): len(entries)})
