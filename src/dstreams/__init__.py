"""dstreams: discretized-stream processing for Python, with PySpark's API.

The public surface is exactly ``__all__`` (pinned by ``tests/test_public_api.py``).
"""

from __future__ import annotations

from dstreams.conf import Conf
from dstreams.core.context import Context
from dstreams.core.dependency import Partitioner
from dstreams.core.rdd import RDD
from dstreams.core.shared import Accumulator, AccumulatorParam, Broadcast
from dstreams.hashing import portable_hash
from dstreams.scheduler.task import TaskContext
from dstreams.storage.level import StorageLevel
from dstreams.streaming import DStream, StreamingContext, StreamingListener

__version__ = "0.1.0"

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
    "TaskContext",
    "portable_hash",
    "__version__",
]
