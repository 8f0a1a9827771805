"""Stateful and windowed pipelines with a plain-Python model of every batch's output.

Each pipeline is a pair: ``build(pairs, B)`` adds DStream operators to a stream of
``(word, 1)`` pairs with batch interval ``B`` seconds, and ``model(batches, B)`` computes, with
dicts and lists only, what each batch's output must be. The long-run tests feed hundreds or
thousands of batches through both and compare every batch.

Input (``make_batches``) is seeded and varied on purpose: some batches are empty, keys come and
go (so inverse windows reach zero and state entries get deleted), and batch sizes change.
"""

from __future__ import annotations

import operator
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["PIPELINES", "make_batches", "Pipeline"]

WINDOW_BATCHES = 20  # a 1 s window at 50 ms batches


def make_batches(n: int, seed: int = 7) -> list[list[str]]:
    rng = random.Random(seed)
    out: list[list[str]] = []
    for b in range(n):
        if b % 13 == 5:
            out.append([])  # empty batches
            continue
        phase = (b // 150) % 4  # the active vocabulary drifts, so keys leave windows and state
        vocab = [f"k{phase * 10 + i}" for i in range(25)]
        size = rng.choice([1, 3, 8, 20, 40])
        out.append([rng.choice(vocab) for _ in range(size)])
    return out


def _counts(batches: list[list[str]]) -> list[Counter[str]]:
    return [Counter(b) for b in batches]


def _window_sums(per: list[dict[str, int]], i: int, width: int) -> Counter[str]:
    total: Counter[str] = Counter()
    for c in per[max(0, i - width + 1) : i + 1]:
        total.update(c)
    return total


# -- updateStateByKey -----------------------------------------------------------------------
def update(values: list[int], state: int | None) -> int | None:
    new = (state or 0) + sum(values)
    return None if new % 17 == 0 else new  # deletes keys now and then


def state_model(batches: list[list[str]], B: float) -> list[list[tuple[str, int]]]:
    state: dict[str, int] = {}
    out = []
    for c in _counts(batches):
        for k in set(state) | set(c):
            v = update([1] * c.get(k, 0), state.get(k))
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        out.append(sorted(state.items()))
    return out


def state_build(pairs: Any, B: float) -> Any:
    return pairs.updateStateByKey(update)


# -- windows ---------------------------------------------------------------------------------
def inverse_window_model(batches: list[list[str]], B: float) -> list[list[tuple[str, int]]]:
    """reduceByKeyAndWindow(add, sub, 20B, B): keys stay once seen (value 0 when gone)."""
    per = _counts(batches)
    seen: set[str] = set()
    out = []
    for i in range(len(per)):
        seen |= set(per[i])
        w = _window_sums(per, i, WINDOW_BATCHES)
        out.append(sorted((k, w.get(k, 0)) for k in seen))
    return out


def inverse_window_build(pairs: Any, B: float) -> Any:
    return pairs.reduceByKeyAndWindow(operator.add, operator.sub, WINDOW_BATCHES * B, B)


def filtered_window_model(batches: list[list[str]], B: float) -> list[list[tuple[str, int]]]:
    """reduceByKeyAndWindow(add, sub, 20B, 2B, filterFunc=v > 0): every second batch."""
    per = _counts(batches)
    out = []
    for i in range(1, len(per), 2):
        w = _window_sums(per, i, WINDOW_BATCHES)
        out.append(sorted((k, v) for k, v in w.items() if v > 0))
    return out


def filtered_window_build(pairs: Any, B: float) -> Any:
    return pairs.reduceByKeyAndWindow(
        lambda a, b: a + b,
        lambda a, b: a - b,
        WINDOW_BATCHES * B,
        2 * B,
        filterFunc=lambda kv: kv[1] > 0,
    )


def plain_window_model(batches: list[list[str]], B: float) -> list[list[tuple[str, int]]]:
    """reduceByKeyAndWindow(add, None, 20B, B): only the keys in the window."""
    per = _counts(batches)
    return [sorted(_window_sums(per, i, WINDOW_BATCHES).items()) for i in range(len(per))]


def plain_window_build(pairs: Any, B: float) -> Any:
    return pairs.reduceByKeyAndWindow(operator.add, None, WINDOW_BATCHES * B, B)


def count_by_value_model(batches: list[list[str]], B: float) -> list[list[tuple[str, int]]]:
    """countByValueAndWindow(10B, B) over the words."""
    per = _counts(batches)
    out = []
    for i in range(len(per)):
        w = _window_sums(per, i, 10)
        out.append(sorted((k, v) for k, v in w.items() if v > 0))
    return out


def count_by_value_build(pairs: Any, B: float) -> Any:
    return pairs.map(lambda kv: kv[0]).countByValueAndWindow(10 * B, B)


# -- state and windows combined --------------------------------------------------------------
def _running(batches: list[list[str]]) -> list[dict[str, int]]:
    state: Counter[str] = Counter()
    snaps = []
    for c in _counts(batches):
        state.update(c)
        snaps.append(dict(state))
    return snaps


def state_into_window_model(batches: list[list[str]], B: float) -> list[list[tuple[str, int]]]:
    """updateStateByKey(sum) then reduceByKeyAndWindow(add, sub, 20B, 4B): every 4th batch."""
    snaps = _running(batches)
    seen: set[str] = set()
    out = []
    for i in range(len(snaps)):
        seen |= set(snaps[i])
        if (i + 1) % 4 == 0:
            w = _window_sums(snaps, i, WINDOW_BATCHES)
            out.append(sorted((k, w.get(k, 0)) for k in seen))
    return out


def state_into_window_build(pairs: Any, B: float) -> Any:
    state = pairs.updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    return state.reduceByKeyAndWindow(operator.add, operator.sub, WINDOW_BATCHES * B, 4 * B)


def window_into_state_model(batches: list[list[str]], B: float) -> list[list[tuple[str, int]]]:
    """reduceByKeyAndWindow(add, sub, 5B, B, v > 0) then updateStateByKey(sum of sums)."""
    per = _counts(batches)
    state: Counter[str] = Counter()
    out = []
    for i in range(len(per)):
        w = _window_sums(per, i, 5)
        state.update({k: v for k, v in w.items() if v > 0})
        out.append(sorted(state.items()))
    return out


def window_into_state_build(pairs: Any, B: float) -> Any:
    window = pairs.reduceByKeyAndWindow(
        operator.add, operator.sub, 5 * B, B, filterFunc=lambda kv: kv[1] > 0
    )
    return window.updateStateByKey(lambda vs, s: (s or 0) + sum(vs))


Pipeline = tuple[Callable[[Any, float], Any], Callable[[list[list[str]], float], list[Any]]]

PIPELINES: dict[str, Pipeline] = {
    "updateStateByKey": (state_build, state_model),
    "reduceByKeyAndWindow-inverse": (inverse_window_build, inverse_window_model),
    "reduceByKeyAndWindow-inverse-filtered-slide2": (filtered_window_build, filtered_window_model),
    "reduceByKeyAndWindow-no-inverse": (plain_window_build, plain_window_model),
    "countByValueAndWindow": (count_by_value_build, count_by_value_model),
    "state-into-window": (state_into_window_build, state_into_window_model),
    "window-into-state": (window_into_state_build, window_into_state_model),
}
