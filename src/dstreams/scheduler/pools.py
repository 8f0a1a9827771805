"""Scheduling pools: which active stage a free task slot goes to (Spark's FIFO and FAIR modes).

Pure functions over plain data, used by the DAG scheduler at every launch decision:

- ``FIFO``: the stages of the oldest job first (then the oldest stage).
- ``FAIR``: every job runs in a pool (``sc.setLocalProperty("spark.scheduler.pool", name)``;
  streaming batches use the ``streaming`` pool, other jobs ``default``). Pools are ordered as
  Spark's ``FairSchedulingAlgorithm`` orders them: a pool running fewer tasks than its
  ``minShare`` comes first (the neediest relative to its share first), then the pool with the
  fewest running tasks per unit of ``weight``. Within a pool, stages are taken FIFO, or, in a
  pool whose own mode is ``FAIR``, the stage running the fewest tasks first.

Slots are offered one task at a time and the order is recomputed after each launch, so a query
job's one task gets the next free slot while a streaming batch is running, and a streaming
pool with ``minShare`` slots never drops below them while it has work.

Pools are configured as in Spark: an allocation file (``dstreams.scheduler.allocation.file``,
Spark's ``fairscheduler.xml`` format) defines named pools; a job in a pool that is not defined
gets ``weight=1, minShare=0, FIFO``. The ``streaming`` pool has its own defaults
(``dstreams.scheduler.pool.streaming.weight`` and ``.minShare``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

__all__ = [
    "Pool",
    "SchedulingMode",
    "order_stages",
    "parse_allocations",
    "DEFAULT_POOL",
    "STREAMING_POOL",
]

SchedulingMode = Literal["FIFO", "FAIR"]

#: the pool of a job that names none
DEFAULT_POOL = "default"
#: the pool of the jobs a streaming batch runs, unless the program names another
STREAMING_POOL = "streaming"


@dataclass(frozen=True)
class Pool:
    name: str
    mode: SchedulingMode = "FIFO"
    weight: float = 1.0
    min_share: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("FIFO", "FAIR"):
            raise ValueError(
                f"pool {self.name!r}: schedulingMode {self.mode!r} is not FIFO or FAIR"
            )
        if not self.weight > 0:
            raise ValueError(f"pool {self.name!r}: weight {self.weight!r} must be positive")
        if self.min_share < 0:
            raise ValueError(f"pool {self.name!r}: minShare {self.min_share!r} must be >= 0")


class _Schedulable(Protocol):
    id: int
    pool: str
    first_job: int


S = TypeVar("S", bound=_Schedulable)


def order_stages(
    stages: Iterable[S],
    running: Callable[[S], int],
    pools: Mapping[str, Pool],
    mode: SchedulingMode,
) -> list[S]:
    """``stages`` in the order free slots should be offered to them.

    ``running(stage)`` is how many of the stage's tasks are in flight now.
    """
    items = list(stages)
    if mode == "FIFO":
        return sorted(items, key=lambda s: (s.first_job, s.id))
    by_pool: dict[str, list[S]] = {}
    for st in items:
        by_pool.setdefault(st.pool, []).append(st)
    # a pool's running count covers all its stages in flight, not only those with work left
    load: dict[str, int] = {name: sum(running(s) for s in group) for name, group in by_pool.items()}

    def pool_key(name: str) -> tuple[bool, float, str]:
        pool = pools.get(name) or Pool(name)
        n = load[name]
        needy = n < pool.min_share
        # needy pools first, by how far below their share; the rest by tasks per weight
        first = n / max(pool.min_share, 1) if needy else n / pool.weight
        return (not needy, first, name)

    out: list[S] = []
    for name in sorted(by_pool, key=pool_key):
        group = by_pool[name]
        pool = pools.get(name) or Pool(name)
        if pool.mode == "FAIR":
            group.sort(key=lambda s: (running(s), s.first_job, s.id))
        else:
            group.sort(key=lambda s: (s.first_job, s.id))
        out.extend(group)
    return out


def parse_allocations(text: str, source: str) -> dict[str, Pool]:
    """The pools of a Spark ``fairscheduler.xml`` allocation file (``source`` names it)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError(f"scheduler allocation file {source}: not valid XML ({e})") from None
    pools: dict[str, Pool] = {}
    for el in root.iter("pool"):
        name = el.get("name")
        if not name:
            raise ValueError(f"scheduler allocation file {source}: a <pool> has no name=")

        mode = _text(el, "schedulingMode", "FIFO").upper()
        try:
            weight = float(_text(el, "weight", "1"))
            min_share = int(_text(el, "minShare", "0"))
        except ValueError as e:
            raise ValueError(
                f"scheduler allocation file {source}: pool {name!r}: {e}; weight is a "
                "positive number and minShare a whole number"
            ) from None
        try:
            pools[name] = Pool(name, mode, weight, min_share)  # type: ignore[arg-type]
        except ValueError as e:
            raise ValueError(f"scheduler allocation file {source}: {e}") from None
    return pools


def _text(el: ET.Element, tag: str, default: str) -> str:
    child = el.find(tag)
    return default if child is None or child.text is None else child.text.strip()
