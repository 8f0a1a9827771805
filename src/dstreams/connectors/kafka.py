"""Kafka as a direct source, with PySpark 2.x's ``KafkaUtils`` API, on ``confluent-kafka``.

PySpark dropped ``pyspark.streaming.kafka`` in 3.0. A program that used it ports by changing
its imports to ``from dstreams.connectors.kafka import KafkaUtils, OffsetRange,
TopicAndPartition``:

* ``KafkaUtils.createDirectStream(ssc, topics, kafkaParams, fromOffsets=None,
  keyDecoder=utf8_decoder, valueDecoder=utf8_decoder, messageHandler=None)``: records are
  ``(key, value)``, or what ``messageHandler`` makes of each :class:`MessageAndMetadata`;
* ``KafkaUtils.createRDD(sc, kafkaParams, offsetRanges, ...)`` reads fixed ranges as a batch RDD;
* the batch RDDs have ``offsetRanges()`` (call it on the stream's own RDDs, in ``transform`` or
  ``foreachRDD``, as in PySpark).

The adapter (the shared core is :mod:`dstreams.connectors.direct`) reads with ``assign()``,
never a group ``subscribe()``. A range is ``[fromOffset, untilOffset)``; its end is the
partition's high watermark when the batch is planned, capped by the rate limit. A task reads
its range and fails with :class:`~dstreams.errors.OffsetRangeUnavailableError` when the broker
no longer has it (deleted by retention). Offsets that a compacted topic or a transaction
marker skipped are not an error. With ``group.id`` in ``kafkaParams``, each batch's ends are
committed for the group after its output, so lag dashboards work.
``auto.offset.reset`` accepts Kafka 0.8's ``smallest`` and ``largest`` as well as ``earliest``
and ``latest``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from dstreams.connectors.direct import DirectInputDStream, Range, RangeRDD
from dstreams.errors import OffsetRangeUnavailableError

__all__ = [
    "KafkaAdapter",
    "KafkaUtils",
    "MessageAndMetadata",
    "OffsetRange",
    "TopicAndPartition",
    "utf8_decoder",
]


def utf8_decoder(s: bytes | None) -> str | None:
    """Decode UTF-8 bytes (None stays None), as PySpark's."""
    return None if s is None else s.decode("utf-8")


class TopicAndPartition:
    """A topic's partition (a key of ``fromOffsets``)."""

    def __init__(self, topic: str, partition: int) -> None:
        self._topic, self._partition = topic, partition

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TopicAndPartition) and (self._topic, self._partition) == (
            other._topic,
            other._partition,
        )

    def __hash__(self) -> int:
        return hash((self._topic, self._partition))

    def __repr__(self) -> str:
        return f"TopicAndPartition(topic: {self._topic}, partition: {self._partition})"


class OffsetRange:
    """The offsets ``[fromOffset, untilOffset)`` of one topic partition, as PySpark's."""

    def __init__(self, topic: str, partition: int, fromOffset: int, untilOffset: int) -> None:
        self.topic, self.partition = topic, partition
        self.fromOffset, self.untilOffset = fromOffset, untilOffset

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OffsetRange) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[str, int, int, int]:
        return (self.topic, self.partition, self.fromOffset, self.untilOffset)

    def count(self) -> int:
        return self.untilOffset - self.fromOffset

    def __str__(self) -> str:
        return (
            f"OffsetRange(topic: {self.topic}, partition: {self.partition}, range: "
            f"[{self.fromOffset} -> {self.untilOffset}])"
        )

    __repr__ = __str__


class MessageAndMetadata:
    """One message, for ``messageHandler`` (PySpark's ``KafkaMessageAndMetadata``)."""

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        message: bytes | None,
        decoders: tuple[Callable[[Any], Any], Callable[[Any], Any]] = (utf8_decoder, utf8_decoder),
    ) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self._rawKey, self._rawMessage = key, message
        self._decoders = decoders

    @property
    def key(self) -> Any:
        return self._decoders[0](self._rawKey)

    @property
    def message(self) -> Any:
        return self._decoders[1](self._rawMessage)

    def __repr__(self) -> str:
        return (
            f"KafkaMessageAndMetadata(topic: {self.topic}, partition: {self.partition}, "
            f"offset: {self.offset})"
        )


_CONSUMERS: dict[tuple[tuple[str, str], ...], Any] = {}
_LOCK = threading.Lock()

#: how long a task waits for one fetch before it calls the range unavailable (seconds)
FETCH_TIMEOUT_S = 30.0


class KafkaAdapter:
    """The Kafka :class:`~dstreams.connectors.direct.Adapter` (module docstring)."""

    def __init__(
        self,
        topics: list[str],
        kafkaParams: dict[str, str],
        fromOffsets: dict[Any, int] | None,
        keyDecoder: Callable[[Any], Any],
        valueDecoder: Callable[[Any], Any],
        messageHandler: Callable[[MessageAndMetadata], Any] | None,
    ) -> None:
        params = dict(kafkaParams)
        servers = params.pop("metadata.broker.list", None) or params.get("bootstrap.servers")
        if not servers:
            raise ValueError(
                "kafkaParams needs 'bootstrap.servers' (or Kafka 0.8's 'metadata.broker.list')"
            )
        params["bootstrap.servers"] = servers
        reset = params.pop("auto.offset.reset", "largest")
        self.reset = {"smallest": "earliest", "largest": "latest"}.get(reset, reset)
        if self.reset not in ("earliest", "latest"):
            raise ValueError(
                f"auto.offset.reset={reset!r}: use 'smallest'/'earliest' or 'largest'/'latest'"
            )
        self.group = params.get("group.id")
        self.params = params
        self.topics = list(topics)
        self.from_offsets = {_tp(k): int(v) for k, v in (fromOffsets or {}).items()}
        self.decoders = (keyDecoder, valueDecoder)
        self.handler = messageHandler
        self.name = f"kafka {servers} {','.join(self.topics)}"
        self._driver: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_driver"] = None
        return state

    def _config(self, purpose: str) -> dict[str, Any]:
        config: dict[str, Any] = {
            k: v for k, v in self.params.items() if k not in ("group.id", "enable.auto.commit")
        }
        config.update(
            {
                "group.id": self.group or "dstreams-direct",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "error",
                "client.id": f"dstreams-{purpose}",
            }
        )
        # a task reads records that exist already: a fetch need not wait for more to arrive
        config.setdefault("fetch.wait.max.ms", 10)
        return config

    def _consumer(self, purpose: str) -> Any:
        """The driver's consumer (this stream's own), or a task thread's (cached per thread)."""
        from confluent_kafka import Consumer

        if purpose == "driver":
            if self._driver is None:
                self._driver = Consumer(self._config(purpose))
            return self._driver

        # a task's consumer is its thread's: assign() replaces the assignment
        key = tuple(sorted((k, str(v)) for k, v in self._config(purpose).items()))
        key += (("thread", str(threading.get_ident())),)
        with _LOCK:
            c = _CONSUMERS.get(key)
            if c is None:
                c = _CONSUMERS[key] = Consumer(self._config(purpose))
            return c

    def close(self) -> None:
        """Close the driver's consumer (the stream stopped)."""
        c, self._driver = self._driver, None
        if c is not None:
            c.close()

    # -- driver -------------------------------------------------------------------------------
    def partitions(self) -> list[tuple[str, int]]:
        c = self._consumer("driver")
        out = []
        for topic in self.topics:
            meta = c.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                reason = meta.error if meta is not None else "not in the metadata"
                raise ValueError(f"{self.name}: topic {topic!r} cannot be read: {reason}")
            out += [(topic, p) for p in sorted(meta.partitions)]
        return out

    def _watermarks(self, partition: tuple[str, int]) -> tuple[int, int]:
        from confluent_kafka import TopicPartition

        low, high = self._consumer("driver").get_watermark_offsets(
            TopicPartition(*partition), timeout=10, cached=False
        )
        return int(low), int(high)

    def resolve(self, partition: tuple[str, int], start_from: Any) -> int:
        if partition in self.from_offsets:
            return self.from_offsets[partition]
        low, high = self._watermarks(partition)
        return low if self.reset == "earliest" else high

    def backlog(self, partition: tuple[str, int], position: int) -> int:
        return max(0, self._watermarks(partition)[1] - position)

    def span(
        self, partition: tuple[str, int], position: int, limit: int | None, split: int | None
    ) -> tuple[int, int, list[int]]:
        high = self._watermarks(partition)[1]
        end = high if limit is None else min(high, position + limit)
        end = max(end, position)
        cuts = list(range(position + split, end, split)) if split else []
        return end - position, end, cuts

    def commit(self, ends: dict[tuple[str, int], int]) -> None:
        if not self.group:
            return
        from confluent_kafka import TopicPartition

        self._consumer("driver").commit(
            offsets=[TopicPartition(t, p, end) for (t, p), end in ends.items()],
            asynchronous=False,
        )

    def describe(self, r: Range) -> dict[str, Any]:
        topic, part = r.partition
        return {
            "partition": f"{topic}-{part}",
            "topic": topic,
            "from": r.start,
            "until": r.end,
            "count": r.count,
        }

    def offset_range(self, r: Range) -> OffsetRange:
        return OffsetRange(r.partition[0], r.partition[1], r.start, r.end)

    # -- tasks --------------------------------------------------------------------------------
    def read(self, r: Range) -> Iterator[Any]:
        from confluent_kafka import KafkaError, TopicPartition

        if r.end <= r.start:
            return
        topic, part = r.partition
        c = self._consumer("task")
        c.assign([TopicPartition(topic, part, r.start)])
        handler, (kd, vd) = self.handler, self.decoders
        last, at = r.end - 1, r.start
        idle_since = time.monotonic()
        try:
            while True:
                # no more than the range holds (consume() waits until it has them all), in
                # short waits, so that an end-of-partition event is seen at once
                batch = c.consume(min(1000, last - at + 1), timeout=0.05)
                if not batch:
                    if time.monotonic() - idle_since > FETCH_TIMEOUT_S:
                        self._gone(r, f"the broker sent nothing for {FETCH_TIMEOUT_S:.0f} s")
                    continue
                idle_since = time.monotonic()
                for m in batch:
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            if m.offset() <= last:
                                self._gone(r, f"the partition ends at offset {m.offset()}")
                            return
                        if err.code() in (
                            KafkaError.OFFSET_OUT_OF_RANGE,
                            KafkaError._AUTO_OFFSET_RESET,
                        ):
                            self._gone(r, str(err))
                        raise RuntimeError(f"{self.name}: reading {topic}-{part}: {err}")
                    off = m.offset()
                    if off > last:
                        return
                    at = off + 1
                    if handler is not None:
                        yield handler(
                            MessageAndMetadata(topic, part, off, m.key(), m.value(), (kd, vd))
                        )
                    else:
                        yield (kd(m.key()), vd(m.value()))
                    if off == last:
                        return
        finally:
            c.unassign()

    def _gone(self, r: Range, why: str) -> None:
        topic, part = r.partition
        raise OffsetRangeUnavailableError(
            f"{self.name}: topic {topic!r} partition {part} offsets [{r.start}, {r.end}) "
            f"planned for the batch cannot be read in full ({why}): the broker deleted them "
            "(retention) before the batch read them. Keep them longer than batches take to run."
        )


def _tp(key: Any) -> tuple[str, int]:
    if isinstance(key, TopicAndPartition):
        return (key._topic, key._partition)
    if isinstance(key, tuple) and len(key) == 2:
        return (str(key[0]), int(key[1]))
    raise ValueError(f"fromOffsets key {key!r}: use TopicAndPartition(topic, partition)")


def _require() -> None:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        raise ImportError(
            "the Kafka source needs confluent-kafka: pip install 'dstreams[kafka]'"
        ) from None


class KafkaUtils:
    """PySpark 2.x's ``KafkaUtils`` (direct streams; receiver-based streams are not offered)."""

    @staticmethod
    def createDirectStream(
        ssc: Any,
        topics: list[str],
        kafkaParams: dict[str, str],
        fromOffsets: dict[Any, int] | None = None,
        keyDecoder: Callable[[Any], Any] = utf8_decoder,
        valueDecoder: Callable[[Any], Any] = utf8_decoder,
        messageHandler: Callable[[MessageAndMetadata], Any] | None = None,
        maxRecordsPerBatch: int | None = None,
        splitRecords: int | None = None,
    ) -> DirectInputDStream:
        """A direct stream of ``topics``: each batch an offset range per partition.

        ``maxRecordsPerBatch`` and ``splitRecords`` are dstreams' (see
        ``dstreams.connectors.redis.createDirectStream``). Spark's
        ``spark.streaming.kafka.maxRatePerPartition`` is not read.
        """
        _require()
        if isinstance(topics, str) or not topics or not all(isinstance(t, str) for t in topics):
            raise ValueError(f"topics={topics!r} must be a list of topic names")
        if not isinstance(kafkaParams, dict):
            raise TypeError(f"kafkaParams must be a dict, got {type(kafkaParams).__name__}")
        adapter = KafkaAdapter(
            list(topics), kafkaParams, fromOffsets, keyDecoder, valueDecoder, messageHandler
        )
        return DirectInputDStream(
            ssc, adapter, None, maxRecordsPerBatch, splitRecords, bool(adapter.group)
        )

    @staticmethod
    def createRDD(
        sc: Any,
        kafkaParams: dict[str, str],
        offsetRanges: list[OffsetRange],
        leaders: Any = None,
        keyDecoder: Callable[[Any], Any] = utf8_decoder,
        valueDecoder: Callable[[Any], Any] = utf8_decoder,
        messageHandler: Callable[[MessageAndMetadata], Any] | None = None,
    ) -> RangeRDD:
        """The records of fixed ``offsetRanges``, as a batch RDD (one partition per range)."""
        _require()
        topics = sorted({o.topic for o in offsetRanges})
        adapter = KafkaAdapter(topics, kafkaParams, None, keyDecoder, valueDecoder, messageHandler)
        ranges = [
            Range((o.topic, o.partition), o.fromOffset, o.untilOffset, o.count())
            for o in offsetRanges
        ]
        return RangeRDD(sc, adapter, ranges, ranges)
