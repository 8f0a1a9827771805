"""Prometheus metrics (``/metrics``) read from a :class:`~dstreams.ui.status.StatusStore`.

A ``prometheus_client`` collector on a registry of its own (one per application, never the
process-wide default), so that nothing is counted twice and nothing is updated on the engine's
path: each scrape reads the store. Names follow Prometheus' conventions: the ``dstreams_``
prefix, base units in the name (``_seconds``, ``_bytes``, ``_records``), ``_total`` on
counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import generate_latest

from dstreams.ui.status import Histogram, StatusStore

__all__ = ["StoreCollector", "registry_for", "render"]


def _hist(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
    buckets, acc = [], 0
    for bound, count in zip((*h.bounds, float("inf")), h.counts):
        acc += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), acc))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=h.total)


class StoreCollector:
    """Collects the store's numbers at each scrape."""

    def __init__(self, store: StatusStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        s = self.store
        with s.lock:
            c = dict(s.counters)
            yield _hist(
                "dstreams_streaming_batch_processing_seconds",
                "Processing time of each completed batch.",
                s.processing_time,
            )
            yield _hist(
                "dstreams_streaming_batch_scheduling_delay_seconds",
                "Time each batch waited for the batch before it.",
                s.scheduling_delay,
            )
            yield _hist(
                "dstreams_streaming_batch_total_delay_seconds",
                "From a batch's time to the end of its processing.",
                s.total_delay,
            )
            yield _hist(
                "dstreams_streaming_batch_records",
                "Records in each completed batch.",
                s.records_per_batch,
            )
            active = len(s.active_batches())
            alive = sum(1 for x in s.executors.values() if x["active"])
            rates = {sid: s.receiver_rate(sid) for sid in s.receivers}
            backpressure = dict(s.rates)
            lags: dict[int, float] = {}
            state: dict[int, dict[str, Any]] = {}
            done = s.completed_batches()
            if done:
                state = dict(done[-1].get("state", {}))
                for sid, meta in done[-1].get("metadata", {}).items():
                    if isinstance(meta, dict) and isinstance(meta.get("lag"), (int, float)):
                        lags[sid] = float(meta["lag"])
            ck = dict(s.checkpoint)
        counters = [
            ("dstreams_streaming_batches_completed", "Batches completed.", "batches_completed"),
            ("dstreams_streaming_records_received", "Records received.", "records_received"),
            ("dstreams_streaming_records_processed", "Records processed.", "records_processed"),
            ("dstreams_tasks_failed", "Task attempts that failed.", "tasks_failed"),
            (
                "dstreams_tasks_speculative",
                "Speculative task copies launched.",
                "tasks_speculative",
            ),
            (
                "dstreams_partitions_recomputed",
                "Map partitions computed again from lineage after their output was lost.",
                "partitions_recomputed",
            ),
            ("dstreams_executors_lost", "Executors lost or removed.", "executors_lost"),
            ("dstreams_receiver_restarts", "Receivers started again.", "receiver_restarts"),
            ("dstreams_driver_recoveries", "Driver restarts from a checkpoint.", "recoveries"),
            (
                "dstreams_listener_events_dropped",
                "Listener events dropped because the bus queue was full.",
                "events_dropped",
            ),
        ]
        for name, doc, key in counters:
            yield CounterMetricFamily(name, doc, value=c[key])
        yield CounterMetricFamily(
            "dstreams_checkpoints_written", "Metadata checkpoints written.", value=ck["count"]
        )
        yield GaugeMetricFamily(
            "dstreams_streaming_active_batches", "Batches queued or running.", value=active
        )
        yield GaugeMetricFamily("dstreams_executors_alive", "Executors alive.", value=alive)
        if ck["count"]:
            yield GaugeMetricFamily(
                "dstreams_checkpoint_duration_seconds",
                "Time the newest metadata checkpoint took to write.",
                value=ck["last_ms"] / 1000.0,
            )
            yield GaugeMetricFamily(
                "dstreams_checkpoint_size_bytes",
                "Size of the newest metadata checkpoint.",
                value=ck["last_bytes"],
            )
        per_stream = [
            (
                "dstreams_streaming_input_rate_records_per_second",
                "Each input stream's rate over the last 10 batches.",
                rates,
            ),
            (
                "dstreams_streaming_backpressure_rate_records_per_second",
                "The rate backpressure set for each receiver.",
                backpressure,
            ),
            (
                "dstreams_streaming_source_lag_records",
                "Records (or offsets) a source is behind its newest, as the source reports it.",
                lags,
            ),
        ]
        for name, doc, values in per_stream:
            g = GaugeMetricFamily(name, doc, labels=["stream"])
            for sid, value in sorted(values.items()):
                g.add_metric([str(sid)], value)
            yield g
        for name, doc, field in (
            ("dstreams_streaming_state_keys", "Keys in each state stream's state.", "keys"),
            (
                "dstreams_streaming_state_bytes",
                "Bytes of each state stream's cached state (as stored, pickled).",
                "bytes",
            ),
        ):
            g = GaugeMetricFamily(name, doc, labels=["stream", "operation"])
            for sid, st in sorted(state.items()):
                g.add_metric([str(sid), str(st.get("operation", ""))], float(st.get(field, 0)))
            yield g


def registry_for(store: StatusStore) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))  # type: ignore[arg-type]
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format."""
    return bytes(generate_latest(registry))
