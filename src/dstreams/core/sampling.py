"""Per-partition samplers for ``sample``, ``randomSplit``, ``sampleByKey`` and ``takeSample``.

Partition ``i`` draws from ``random.Random(seed ^ i)``, stirred by ten throw-away draws (the
seeds of neighbouring partitions are close), then one uniform draw per element (Bernoulli) or a
Poisson count per element (with replacement: Knuth's method below a mean of 20, sums of
exponentials above). These are PySpark's rules, so a given seed and partitioning select the same
elements as PySpark does.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["Sampler", "RangeSampler", "StratifiedSampler", "default_seed"]


def default_seed() -> int:
    return random.randint(0, sys.maxsize)


class _Base:
    def __init__(self, seed: int | None) -> None:
        self.seed = seed if seed is not None else default_seed()

    def rng(self, split: int) -> random.Random:
        r = random.Random(self.seed ^ split)
        for _ in range(10):
            r.randint(0, 1)
        return r


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson-distributed count with the given mean."""
    if mean < 20.0:
        limit = math.exp(-mean)
        p = rng.random()
        k = 0
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    p = rng.expovariate(mean)
    k = 0
    while p < 1.0:
        k += 1
        p += rng.expovariate(mean)
    return k


class Sampler(_Base):
    """``sample(withReplacement, fraction, seed)``."""

    def __init__(self, withReplacement: bool, fraction: float, seed: int | None) -> None:
        super().__init__(seed)
        self.withReplacement, self.fraction = withReplacement, fraction

    def func(self, split: int, it: Iterable[Any]) -> Iterator[Any]:
        rng = self.rng(split)
        frac = self.fraction
        if self.withReplacement:
            for obj in it:
                for _ in range(poisson(rng, frac)):
                    yield obj
        else:
            draw = rng.random
            for obj in it:
                if draw() < frac:
                    yield obj


class RangeSampler(_Base):
    """One piece of ``randomSplit``: elements whose draw falls in ``[lb, ub)``."""

    def __init__(self, lb: float, ub: float, seed: int | None) -> None:
        super().__init__(seed)
        self.lb, self.ub = lb, ub

    def func(self, split: int, it: Iterable[Any]) -> Iterator[Any]:
        draw = self.rng(split).random
        lb, ub = self.lb, self.ub
        for obj in it:
            if lb <= draw() < ub:
                yield obj


class StratifiedSampler(_Base):
    """``sampleByKey``: a fraction per key."""

    def __init__(self, withReplacement: bool, fractions: dict[Any, float], seed: int | None):
        super().__init__(seed)
        self.withReplacement, self.fractions = withReplacement, fractions

    def func(self, split: int, it: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
        rng = self.rng(split)
        fractions = self.fractions
        if self.withReplacement:
            for key, val in it:
                for _ in range(poisson(rng, fractions[key])):
                    yield key, val
        else:
            for key, val in it:
                if rng.random() < fractions[key]:
                    yield key, val


SamplerFunc = Callable[[int, Iterable[Any]], Iterator[Any]]
