"""Shared variables: :class:`Broadcast` (read-only values) and :class:`Accumulator` (adders).

A broadcast value is pickled once by the driver into the Context's local directory; tasks read
and cache it per worker process the first time ``.value`` is used, so a large model is shipped
once per worker, not once per task or per stage.

An accumulator travels inside closures as its id and zero value. Each task adds into a private
copy; the deltas ride back with the task's result, and the driver merges them once per successful
task (a retried or speculative duplicate attempt is not counted twice).
"""

from __future__ import annotations

import copy
import os
import pickle
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import cloudpickle

__all__ = [
    "Broadcast",
    "Accumulator",
    "AccumulatorParam",
    "load_with_accumulators",
    "drop_worker_broadcast",
    "remove_broadcast_file",
]

T = TypeVar("T")

# worker-side caches (one per worker process)
_broadcast_cache: dict[int, Any] = {}
# weak: an accumulator lives on a worker only as long as a cached stage closure refers to it
_accumulator_registry: weakref.WeakValueDictionary[int, Accumulator[Any]] = (
    weakref.WeakValueDictionary()
)
_collecting: list[Accumulator[Any]] | None = None
_on_driver = threading.local()


class Broadcast(Generic[T]):
    """A read-only value shipped to each worker once (``sc.broadcast(v)``)."""

    def __init__(
        self,
        bid: int,
        path: str,
        value: Any = None,
        on_driver: bool = False,
        release: Callable[[int], None] | None = None,
    ) -> None:
        self._id = bid
        self._path = path
        self._value = value
        self._on_driver = on_driver
        self._release = release  # driver only: tells every worker to drop its copy

    @property
    def id(self) -> int:
        return self._id

    @property
    def value(self) -> T:
        if self._on_driver:
            return self._value
        if self._id not in _broadcast_cache:
            try:
                with open(self._path, "rb") as fh:
                    _broadcast_cache[self._id] = pickle.load(fh)
            except FileNotFoundError:
                raise RuntimeError(
                    f"broadcast {self._id} was destroyed or its Context stopped; "
                    "do not use a Broadcast after destroy()"
                ) from None
        return _broadcast_cache[self._id]

    def unpersist(self, blocking: bool = False) -> None:
        """Drop the workers' copies; a task that uses the value again re-reads it."""
        _broadcast_cache.pop(self._id, None)
        if self._release is not None:
            self._release(self._id)

    def destroy(self, blocking: bool = False) -> None:
        """Remove the value everywhere; it can no longer be used."""
        if self._on_driver:
            remove_broadcast_file(self._path)
        self.unpersist()
        self._value = None

    def dump(self, value: Any, f: Any) -> None:
        cloudpickle.dump(value, f, 5)

    def __reduce__(self) -> Any:
        return (Broadcast, (self._id, self._path))


def remove_broadcast_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def drop_worker_broadcast(bid: int) -> None:
    """Forget a worker's cached copy of broadcast ``bid`` (the driver released it)."""
    _broadcast_cache.pop(bid, None)


class AccumulatorParam(Generic[T]):
    """How to add values of an accumulator: ``zero`` and ``addInPlace`` (as PySpark)."""

    def zero(self, value: T) -> T:
        raise NotImplementedError

    def addInPlace(self, value1: T, value2: T) -> T:
        raise NotImplementedError


class _AddingParam(AccumulatorParam[Any]):
    def __init__(self, zero_value: Any) -> None:
        self.zero_value = zero_value

    def zero(self, value: Any) -> Any:
        return self.zero_value

    def addInPlace(self, value1: Any, value2: Any) -> Any:
        value1 += value2
        return value1


def default_param(value: Any) -> AccumulatorParam[Any]:
    if isinstance(value, bool) or not isinstance(value, (int, float, complex)):
        raise TypeError(
            f"no default AccumulatorParam for {value!r} ({type(value).__name__}); "
            "pass accum_param=<an AccumulatorParam> to sc.accumulator"
        )
    return _AddingParam(type(value)(0))


class Accumulator(Generic[T]):
    """A value tasks can only add to; the driver reads ``.value`` (``sc.accumulator(0)``)."""

    def __init__(self, aid: int, value: T, accum_param: AccumulatorParam[T], driver: bool) -> None:
        self.aid = aid
        self.accum_param = accum_param
        self._value = value
        self._driver = driver
        self._lock = threading.Lock()

    @property
    def value(self) -> T:
        if not self._driver:
            raise RuntimeError("Accumulator.value cannot be accessed inside tasks")
        return self._value

    @value.setter
    def value(self, value: T) -> None:
        if not self._driver:
            raise RuntimeError("Accumulator.value cannot be accessed inside tasks")
        self._value = value

    def add(self, term: T) -> None:
        with self._lock:
            self._value = self.accum_param.addInPlace(self._value, term)

    def __iadd__(self, term: T) -> Accumulator[T]:
        self.add(term)
        return self

    def _merge(self, delta: T) -> None:
        self.add(delta)

    def __reduce__(self) -> Any:
        zero = self.accum_param.zero(self._value)
        return (_worker_accumulator, (self.aid, zero, self.accum_param))

    def __getstate__(self) -> Any:  # pragma: no cover - __reduce__ is used
        raise TypeError

    def __str__(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        return f"Accumulator<id={self.aid}, value={self._value}>"


def _worker_accumulator(aid: int, zero: Any, param: AccumulatorParam[Any]) -> Accumulator[Any]:
    acc = _accumulator_registry.get(aid)
    if acc is None:
        # the running value must not alias the zero: addInPlace may mutate it in place
        acc = Accumulator(aid, copy.deepcopy(zero), param, driver=False)
        acc._zero = zero  # type: ignore[attr-defined]
        _accumulator_registry[aid] = acc
    if _collecting is not None and acc not in _collecting:
        _collecting.append(acc)
    return acc


def load_with_accumulators(load: Callable[[], T]) -> tuple[T, list[Accumulator[Any]]]:
    """Run ``load`` (an unpickling) and return what it made plus the accumulators in it.

    A worker resets and reports exactly the accumulators of the stage a task runs.
    """
    global _collecting
    _collecting = []
    try:
        return load(), _collecting
    finally:
        _collecting = None
