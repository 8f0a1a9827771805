"""dstreams.streaming: PySpark-compatible streaming on top of the batch core.

Public names: :class:`StreamingContext`, :class:`DStream`, :class:`StreamingListener`
(and its event/info classes in ``listener``), the clocks and :class:`Receiver`.
See ``docs/streaming.md`` for the model and every deliberate difference from PySpark.
"""

from dstreams.streaming.clock import Clock, ManualClock, SystemClock
from dstreams.streaming.context import StreamingContext
from dstreams.streaming.dstream import DStream
from dstreams.streaming.listener import StreamingListener
from dstreams.streaming.operators.mapwithstate import State, StateSpec
from dstreams.streaming.receiver import Receiver

__all__ = [
    "Clock",
    "DStream",
    "ManualClock",
    "Receiver",
    "State",
    "StateSpec",
    "StreamingContext",
    "StreamingListener",
    "SystemClock",
]
