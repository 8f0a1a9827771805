"""Backpressure: the PID estimator and rate limiter as pure pieces, then the whole loop.

The loop runs on a manual clock with a simulated backend whose tasks take 1 ms of clock time
per record: a receiver is fed 2,000 records/s, about twice what the job can process. Without
backpressure every batch takes longer than the last one's interval and the scheduling delay
grows without bound; with it, the receiver is throttled and the delay stays bounded.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import simulated

from dstreams import Conf, Context
from dstreams.errors import DStreamsError
from dstreams.streaming import ManualClock, Receiver, StreamingContext, StreamingListener
from dstreams.streaming.ratecontrol import (
    PIDRateEstimator,
    RateConfig,
    RateController,
    RateLimiter,
)

# -- the estimator, as a pure function ------------------------------------------------------


def test_first_batch_primes_and_second_gives_the_pid_formula() -> None:
    est = PIDRateEstimator(1000, proportional=1.0, integral=0.2, derivative=0.0, min_rate=100)
    assert est.compute(1000, 2000, 1000, 0) is None  # primes: latest rate = 2000 rec/s
    # 1000 records in 2 s: processing rate 500; error 2000 - 500 = 1500;
    # backlog 1500 ms * 500 / 1000 = 750 -> 2000 - 1.0 * 1500 - 0.2 * 750 = 350
    assert est.compute(2000, 1000, 2000, 1500) == pytest.approx(350.0)


def test_the_derivative_term_uses_the_error_change_per_second() -> None:
    est = PIDRateEstimator(1000, 0.0, 0.0, 0.5, 1)
    est.compute(1000, 1000, 1000, 0)  # latest rate 1000, latest error 0
    # rate 500: error 500, change 500 over 2 s = 250/s -> 1000 - 0.5 * 250
    assert est.compute(3000, 500, 1000, 0) == pytest.approx(875.0)


def test_batches_that_tell_nothing_leave_the_estimator_alone() -> None:
    est = PIDRateEstimator(1000)
    assert est.compute(1000, 0, 100, 0) is None  # no records
    assert est.compute(1000, 10, 0, 0) is None  # no processing time
    assert est.compute(1000, 1000, 1000, 0) is None  # the first real batch primes
    assert est.compute(1000, 10, 10, 0) is None  # not newer than the last
    assert est.compute(2000, 1000, 1000, 0) == pytest.approx(1000.0)


def test_the_estimate_never_goes_below_min_rate() -> None:
    est = PIDRateEstimator(100, min_rate=250)
    est.compute(100, 10_000, 100, 0)
    assert est.compute(200, 10, 1000, 5000) == 250


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_interval_ms": 0}, "batch interval"),
        ({"proportional": -1}, "pid.proportional=-1"),
        ({"integral": -0.1}, "pid.integral"),
        ({"derivative": -2}, "pid.derived"),
        ({"min_rate": 0}, "pid.minRate=0 must be > 0"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict[str, Any], message: str) -> None:
    args = {"batch_interval_ms": 1000} | kwargs
    with pytest.raises(ValueError, match=message):
        PIDRateEstimator(**args)


def test_a_closed_loop_converges_to_the_processing_rate() -> None:
    """A system that processes 1,000 records/s, fed without limit: the rate settles there."""
    interval, capacity = 1000, 1000.0
    est = PIDRateEstimator(interval)
    rate, backlog_ms, t = 5000.0, 0.0, 0
    delays = []
    for _ in range(60):
        t += interval
        records = int(rate * interval / 1000)
        processing = records / capacity * 1000
        scheduling = backlog_ms
        backlog_ms = max(0.0, backlog_ms + processing - interval)
        delays.append(scheduling)
        new = est.compute(
            t + int(scheduling + processing), records, int(processing), int(scheduling)
        )
        if new is not None:
            rate = new
    assert 850 <= rate <= 1100
    assert max(delays[-20:]) < 500


# -- the limiter, on a manual clock ---------------------------------------------------------


def _acquire_in_thread(limiter: RateLimiter, n: int) -> threading.Event:
    done = threading.Event()
    threading.Thread(target=lambda: (limiter.acquire(n), done.set()), daemon=True).start()
    return done


def test_the_limiter_lets_a_burst_through_and_makes_the_rest_wait() -> None:
    clock = ManualClock(0)
    limiter = RateLimiter(clock, rate=100, burst_ms=100)  # 10 records per 100 ms burst
    assert limiter.acquire(10)  # within the burst: at once
    done = _acquire_in_thread(limiter, 10)
    assert not done.wait(0.2), "the next 10 records must wait 100 ms of clock time"
    clock.advance(99)
    assert not done.wait(0.2)
    clock.advance(1)
    assert done.wait(5)


def test_a_big_store_picks_up_a_new_rate_midway() -> None:
    """10,000 records at 100/s would take 100 s; once the rate is raised they pass at once."""
    clock = ManualClock(0)
    limiter = RateLimiter(clock, rate=100, burst_ms=100)
    done = _acquire_in_thread(limiter, 10_000)
    for _ in range(3):  # a few bursts go through at the low rate
        assert not done.wait(0.05)
        clock.advance(100)
    limiter.set_rate(1_000_000)
    deadline = time.monotonic() + 5
    while not done.is_set() and time.monotonic() < deadline:
        clock.advance(10)  # the next burst is granted at the new rate
        done.wait(0.02)
    assert done.is_set() and clock.getTimeMillis() < 1000


def test_the_limiter_follows_rate_changes_and_ignores_nonsense() -> None:
    clock = ManualClock(0)
    limiter = RateLimiter(clock)
    assert limiter.rate is None and limiter.acquire(10**9)  # unlimited
    limiter.set_rate(1000)
    limiter.set_rate(0)  # ignored, as Spark's updateRate
    limiter.set_rate(-5)
    assert limiter.rate == 1000
    assert limiter.acquire(100)  # the 100 ms burst at 1,000/s: at once
    stop = threading.Event()
    stop.set()
    assert limiter.acquire(1000, stop) is False  # would wait 1 s: interrupted instead


def test_rate_config_reads_sparks_keys_and_caps_by_max_rate() -> None:
    conf = {
        "dstreams.streaming.backpressure.enabled": "true",
        "dstreams.streaming.backpressure.initialRate": "5000",
        "dstreams.streaming.receiver.maxRate": "2000",
        "dstreams.streaming.backpressure.pid.minRate": "10",
    }
    rc = RateConfig.from_conf(lambda k: conf.get(k, ""))
    assert rc.enabled and rc.min_rate == 10 and rc.proportional == 1.0
    assert rc.starting_rate() == 2000  # initialRate, capped by maxRate
    assert rc.clamp(3000) == 2000
    off = RateConfig.from_conf(lambda k: {"dstreams.streaming.receiver.maxRate": "0"}.get(k, ""))
    assert off.starting_rate() is None and not off.enabled
    with pytest.raises(ValueError, match="initialRate='fast' must be a number"):
        RateConfig.from_conf(lambda k: "fast" if k.endswith("initialRate") else "")


def test_the_controller_publishes_whole_rates_for_its_own_stream() -> None:
    from dstreams.streaming.listener import BatchInfo, StreamInputInfo

    published: list[float] = []
    rc = RateController(3, PIDRateEstimator(1000), published.append)

    def done(t: int, n: int, stream: int = 3) -> Any:
        info = BatchInfo(t, {stream: StreamInputInfo(stream, n)}, t, t, t + 900)

        class Event:
            def batchInfo(self) -> BatchInfo:
                return info

        return Event()

    rc.onBatchCompleted(done(1000, 900))
    rc.onBatchCompleted(done(2000, 700, stream=4))  # another stream's batch
    rc.onBatchCompleted(done(3000, 700))
    assert published == [int(published[0])] and rc.latest_rate == published[0]


# -- the whole loop ----------------------------------------------------------------------


class PacedSource(Receiver):
    """Offers ``rate`` records per second of clock time; stores what it is allowed to.

    ``wait_caught_up(t)`` returns once everything due by clock time ``t`` is stored, or the
    source is throttled (its rate limiter holds it until a later time).
    """

    def __init__(self, clock: ManualClock, rate: int) -> None:
        super().__init__()
        self.clock, self.rate = clock, rate
        self.offered = 0
        self.seen = -1
        self._stop = threading.Event()
        self._cond = threading.Condition()

    def onStart(self) -> None:
        self._stop.clear()
        threading.Thread(target=self._run, name="paced-source", daemon=True).start()

    def onStop(self) -> None:
        self._stop.set()
        self.clock.wake()
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        now = self.clock.getTimeMillis()
        chunk = max(1, self.rate // 100)  # a read takes what 10 ms brought, like a socket's
        while not self._stop.is_set():
            due = min(chunk, self.rate * now // 1000 - self.offered)
            if due > 0:
                try:
                    self.storeMany([1] * due)  # blocks while throttled: the rest waits upstream
                except DStreamsError:
                    return  # stopped while throttled
                self.offered += due
                if self.rate * now // 1000 > self.offered:
                    continue  # more is waiting upstream: read again at once
            with self._cond:
                self.seen = now
                self._cond.notify_all()
            now = self.clock.waitTillTime(now + 1, self._stop)

    def _throttled(self) -> bool:
        host = self._host
        return host is not None and host.generator.limiter.waiting

    def wait_caught_up(self, t: int) -> None:
        # being throttled notifies nobody (the limiter waits on the clock): look every 2 ms
        deadline = time.monotonic() + 10
        with self._cond:
            while not (self.seen >= t or self._throttled() or self._stop.is_set()):
                assert time.monotonic() < deadline, f"the source never caught up with {t} ms"
                self._cond.wait(0.002)


class Stepper:
    """Moves the clock 5 ms at a time, letting the source catch up after each step."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.source: PacedSource | None = None
        self._lock = threading.Lock()

    def advance(self, ms: int) -> None:
        self.to(self.clock.getTimeMillis() + ms)

    def to(self, target: int) -> None:
        with self._lock:
            while self.clock.getTimeMillis() < target:
                self.clock.setTime(min(target, self.clock.getTimeMillis() + 5))
                if self.source is not None:
                    self.source.wait_caught_up(self.clock.getTimeMillis())


class Delays(StreamingListener):
    def __init__(self) -> None:
        self.scheduling: list[int] = []
        self.records: list[int] = []

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        self.scheduling.append(info.schedulingDelay())
        self.records.append(info.numRecords())


def run_loop(backpressure: bool, batches: int = 120) -> tuple[Delays, PacedSource]:
    clock = ManualClock(0)
    stepper = Stepper(clock)
    simulated.install(clock, per_record_ms=1.0, fixed_ms=2.0, advance=stepper.advance)
    conf = Conf(loadDefaults=False).set(
        "dstreams.streaming.backpressure.enabled", "true" if backpressure else "false"
    )
    sc = Context("simulated", "backpressure", conf=conf)
    try:
        ssc = StreamingContext(sc, 0.1, clock=clock)
        source = PacedSource(clock, rate=2000)
        stepper.source = source
        ssc.receiverStream(source).count().foreachRDD(lambda rdd: rdd.collect())
        delays = Delays()
        ssc.addStreamingListener(delays)
        ssc.start()
        scheduler, waited = ssc._scheduler, 0
        while clock.getTimeMillis() < batches * 100:
            due = clock.getTimeMillis() // 100 * 100  # the last batch time the clock passed
            if due > waited:
                assert scheduler.wait_for_batch(due, 60), f"batch {due} never completed"
                waited = due
            else:  # the engine caught up: time moves on to the next batch
                stepper.to(due + 100)
        ssc.stop(stopSparkContext=False)
    finally:
        sc.stop()
        simulated.uninstall()
    return delays, source


def test_without_backpressure_the_scheduling_delay_grows() -> None:
    delays, _ = run_loop(backpressure=False)
    late = delays.scheduling[-10:]
    assert min(late) > 3000, f"the delay should pile up: {late}"
    assert delays.scheduling[-1] > delays.scheduling[len(delays.scheduling) // 2] + 1000


def test_with_backpressure_the_scheduling_delay_stays_bounded() -> None:
    delays, source = run_loop(backpressure=True)
    settled = delays.scheduling[30:]
    assert max(settled) < 500, f"the delay should stay bounded: {settled}"
    rates = delays.records[30:]
    # the receiver was throttled to about what a 100 ms batch can process (~1 ms a record)
    assert 40 <= sum(rates) / len(rates) <= 110, rates
    assert source.offered < 2000 * len(delays.records) / 10
