"""Backpressure: the PID rate estimator, the receivers' rate limiter, and the controller between.

Spark's ``spark.streaming.backpressure.*``, ported:

* :class:`PIDRateEstimator` is a pure function of batch statistics (it keeps only its own
  last rate, error and time). Given a completed batch's end time, record count, processing delay
  and scheduling delay, it returns a new ingestion rate in records per second, or None when the
  batch says nothing (no records, no processing time, or not newer than the last one). The very
  first qualifying batch only primes the estimator, as in Spark.
* :class:`RateLimiter` throttles a receiver's ``store`` calls to a rate, on the injected clock.
  Unlike Spark, bulk stores are throttled too (Spark lets ``store(ArrayBuffer)`` bypass it):
  dstreams' socket receiver stores whole chunks of lines, and backpressure must reach it.
  Blocking the receiver's thread leaves the data in the source (a TCP window fills, a broker
  keeps its offsets), which is the point.
* :class:`RateController` listens for completed batches of one input stream and publishes each
  new estimate to a callback (the receiver tracker, or a direct stream that sizes its next
  offset ranges with it).

``RateConfig.from_conf`` reads the settings (``dstreams.streaming.backpressure.enabled``,
``.initialRate``, ``.pid.proportional`` (1.0), ``.pid.integral`` (0.2), ``.pid.derived`` (0.0),
``.pid.minRate`` (100) and ``dstreams.streaming.receiver.maxRate``), with ``spark.`` aliases.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dstreams.streaming.clock import Clock

__all__ = ["PIDRateEstimator", "RateConfig", "RateController", "RateLimiter"]


class PIDRateEstimator:
    """Spark's PID estimator of the rate a stream can be processed at (records per second).

    Args:
        batch_interval_ms: the batch interval.
        proportional: weight of the current error (latest rate minus processing rate).
        integral: weight of the accumulated error, estimated from the scheduling delay.
        derivative: weight of the error's change per second.
        min_rate: the estimate never goes below this.
    """

    def __init__(
        self,
        batch_interval_ms: int,
        proportional: float = 1.0,
        integral: float = 0.2,
        derivative: float = 0.0,
        min_rate: float = 100.0,
    ) -> None:
        for name, value, ok in (
            ("batch interval", batch_interval_ms, batch_interval_ms > 0),
            ("dstreams.streaming.backpressure.pid.proportional", proportional, proportional >= 0),
            ("dstreams.streaming.backpressure.pid.integral", integral, integral >= 0),
            ("dstreams.streaming.backpressure.pid.derived", derivative, derivative >= 0),
            ("dstreams.streaming.backpressure.pid.minRate", min_rate, min_rate > 0),
        ):
            if not ok:
                bound = "> 0" if name in ("batch interval",) or "minRate" in name else ">= 0"
                raise ValueError(f"{name}={value!r} must be {bound}")
        self.batch_interval_ms = batch_interval_ms
        self.kp, self.ki, self.kd, self.min_rate = proportional, integral, derivative, min_rate
        self._first = True
        self._latest_time = -1
        self._latest_rate = -1.0
        self._latest_error = -1.0

    def compute(
        self, time_ms: int, num_elements: int, processing_delay_ms: int, scheduling_delay_ms: int
    ) -> float | None:
        """The new rate after a batch that ended at ``time_ms``, or None (state unchanged)."""
        if not (time_ms > self._latest_time and num_elements > 0 and processing_delay_ms > 0):
            return None
        since_update = (time_ms - self._latest_time) / 1000.0
        processing_rate = num_elements / processing_delay_ms * 1000.0
        error = self._latest_rate - processing_rate
        # the records waiting for the next batch, as a rate: the integral term
        historical_error = scheduling_delay_ms * processing_rate / self.batch_interval_ms
        d_error = (error - self._latest_error) / since_update
        new_rate = max(
            self._latest_rate - self.kp * error - self.ki * historical_error - self.kd * d_error,
            self.min_rate,
        )
        self._latest_time = time_ms
        if self._first:  # the first batch only tells the processing rate
            self._latest_rate = processing_rate
            self._latest_error = 0.0
            self._first = False
            return None
        self._latest_rate = new_rate
        self._latest_error = error
        return new_rate


class RateLimiter:
    """Lets ``acquire(n)`` through at ``rate`` records per second on ``clock`` (None: no limit).

    A request may run ahead of the rate by at most ``burst_ms`` (so small stores pass at once
    and big ones wait for their share). Thread-safe; ``acquire`` blocks the caller only, and
    returns early (False) when ``interrupt`` is set.
    """

    def __init__(self, clock: Clock, rate: float | None = None, burst_ms: int = 100) -> None:
        self.clock = clock
        self._rate = rate if rate is None or rate > 0 else None
        self._burst_ms = burst_ms
        self._next_free = float(clock.getTimeMillis())  # when the next permit is available
        self._lock = threading.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> bool:
        """Whether a caller is throttled (blocked in ``acquire``) right now."""
        return self._waiting > 0

    @property
    def rate(self) -> float | None:
        """The current limit in records per second (None: unlimited)."""
        return self._rate

    def set_rate(self, rate: float | None) -> None:
        """Change the limit; a rate of 0 or less is ignored (as Spark's ``updateRate``)."""
        if rate is not None and rate <= 0:
            return
        with self._lock:
            self._rate = rate

    def acquire(self, n: int, interrupt: threading.Event | None = None) -> bool:
        """Block until ``n`` permits are granted at the current rate; True when granted."""
        left = n
        while left > 0:
            granted = self.acquire_some(left, interrupt)
            if granted == 0:
                return False
            left -= granted
        return True

    def acquire_some(self, n: int, interrupt: threading.Event | None = None) -> int:
        """Grant up to ``n`` permits, at most one burst's worth; block until then.

        Returns how many were granted (0: interrupted). Taking a big request a burst at a
        time lets a new rate take effect in the middle of it: a store of 10,000 records that
        arrives when the rate is 100/s does not hold the receiver for 100 s after backpressure
        has raised the rate again.
        """
        if n <= 0:
            return 0
        with self._lock:
            rate = self._rate
            if rate is None:
                return n
            take = min(n, max(1, math.ceil(rate * self._burst_ms / 1000.0)))
            # the generic cell rate algorithm: ``_next_free`` is the theoretical arrival time
            now = float(self.clock.getTimeMillis())
            start = max(self._next_free, now)
            self._next_free = start + take * 1000.0 / rate
            wait_until = self._next_free - self._burst_ms
        if wait_until > now:
            with self._lock:
                self._waiting += 1
            try:
                self.clock.waitTillTime(math.ceil(wait_until), interrupt)
            finally:
                with self._lock:
                    self._waiting -= 1
            if interrupt is not None and interrupt.is_set():
                return 0
        return take


@dataclass(frozen=True)
class RateConfig:
    """The backpressure and receiver-rate settings."""

    enabled: bool = False
    initial_rate: float | None = None
    max_rate: float | None = None
    proportional: float = 1.0
    integral: float = 0.2
    derivative: float = 0.0
    min_rate: float = 100.0

    @classmethod
    def from_conf(cls, get: Callable[[str], str]) -> RateConfig:
        """Read the settings through ``get(key) -> str`` ("" when unset)."""

        def number(key: str) -> float | None:
            text = get(key).strip()
            if not text:
                return None
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"{key}={text!r} must be a number of records per second") from None

        def flag(key: str) -> bool:
            text = get(key).strip().lower()
            if text in ("", "false", "0", "no"):
                return False
            if text in ("true", "1", "yes"):
                return True
            raise ValueError(f"{key}={text!r} must be true or false")

        p = "dstreams.streaming.backpressure."
        max_rate = number("dstreams.streaming.receiver.maxRate")
        if max_rate is not None and max_rate <= 0:
            max_rate = None  # Spark: 0 or less means no limit
        return cls(
            enabled=flag(p + "enabled"),
            initial_rate=number(p + "initialRate"),
            max_rate=max_rate,
            proportional=_or(number(p + "pid.proportional"), 1.0),
            integral=_or(number(p + "pid.integral"), 0.2),
            derivative=_or(number(p + "pid.derived"), 0.0),
            min_rate=_or(number(p + "pid.minRate"), 100.0),
        )

    def starting_rate(self) -> float | None:
        """A receiver's first limit: ``initialRate`` (under backpressure), capped by maxRate."""
        rate = self.initial_rate if self.enabled else None
        if rate is None or rate <= 0:
            return self.max_rate
        return rate if self.max_rate is None else min(rate, self.max_rate)

    def clamp(self, rate: float) -> float:
        """A published estimate, capped by ``maxRate``."""
        return rate if self.max_rate is None else min(rate, self.max_rate)

    def estimator(self, batch_interval_ms: int) -> PIDRateEstimator:
        return PIDRateEstimator(
            batch_interval_ms, self.proportional, self.integral, self.derivative, self.min_rate
        )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


class RateController:
    """Feeds one input stream's completed batches to an estimator; publishes new rates.

    A ``StreamingListener``: register it on the listener bus. ``publish(rate)`` receives each
    new estimate (already capped by ``maxRate``); ``latest_rate`` is the last one (None before
    the first estimate).
    """

    def __init__(
        self,
        stream_id: int,
        estimator: PIDRateEstimator,
        publish: Callable[[float], None],
        config: RateConfig | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.estimator = estimator
        self._publish = publish
        self._config = config or RateConfig(enabled=True)
        self.latest_rate: float | None = None

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        inputs = info.streamIdToInputInfo()
        stream = inputs.get(self.stream_id)
        if stream is None or info.processingEndTime() < 0:
            return  # this stream reported nothing for the batch: no estimate (as Spark)
        rate = self.estimator.compute(
            info.processingEndTime(),
            stream.numRecords(),
            info.processingDelay(),
            info.schedulingDelay(),
        )
        if rate is not None:
            rate = self._config.clamp(float(int(rate)))  # Spark publishes whole records/s
            self.latest_rate = rate
            self._publish(rate)
