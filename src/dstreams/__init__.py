"""dstreams: discretized-stream processing for Python, with PySpark's API.

The public surface is exactly ``__all__`` (pinned by ``tests/test_public_api.py``).

Names are imported on first use (PEP 562): worker processes import only the engine modules
their tasks need, which keeps a replacement worker's start-up short.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dstreams.conf import Conf
    from dstreams.core.context import Context
    from dstreams.core.dependency import Partitioner
    from dstreams.core.rdd import RDD
    from dstreams.core.shared import Accumulator, AccumulatorParam, Broadcast
    from dstreams.hashing import portable_hash
    from dstreams.scheduler.task import TaskContext
    from dstreams.storage.level import StorageLevel
    from dstreams.streaming import DStream, StateSpec, StreamingContext, StreamingListener

__version__ = "0.1.0"

_WHERE = {
    "Accumulator": "dstreams.core.shared",
    "AccumulatorParam": "dstreams.core.shared",
    "Broadcast": "dstreams.core.shared",
    "Conf": "dstreams.conf",
    "Context": "dstreams.core.context",
    "Partitioner": "dstreams.core.dependency",
    "RDD": "dstreams.core.rdd",
    "StorageLevel": "dstreams.storage.level",
    "DStream": "dstreams.streaming",
    "StreamingContext": "dstreams.streaming",
    "StreamingListener": "dstreams.streaming",
    "StateSpec": "dstreams.streaming",
    "TaskContext": "dstreams.scheduler.task",
    "portable_hash": "dstreams.hashing",
}

__all__ = [
    "Accumulator",
    "AccumulatorParam",
    "Broadcast",
    "Conf",
    "Context",
    "Partitioner",
    "RDD",
    "StorageLevel",
    "DStream",
    "StreamingContext",
    "StreamingListener",
    "StateSpec",
    "TaskContext",
    "portable_hash",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dstreams' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
