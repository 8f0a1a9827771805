"""The application's event bus: in order, bounded, drops counted and reported, never silent."""

from __future__ import annotations

import logging
import threading

from dstreams import events as ev


class Slow:
    def __init__(self) -> None:
        self.gate = threading.Event()
        self.got: list[ev.Event] = []

    def on_event(self, e: ev.Event) -> None:
        self.gate.wait(10)
        self.got.append(e)


def test_events_arrive_in_posting_order_on_the_bus_thread():
    bus = ev.EventBus(100)
    seen: list[int] = []
    threads: set[str] = set()

    class L:
        def on_event(self, e: ev.Event) -> None:
            seen.append(e.job_id)
            threads.add(threading.current_thread().name)

    bus.add_listener(L())
    for i in range(50):
        bus.post(ev.JobStart(0, i))
    assert bus.wait_until_empty()
    assert seen == list(range(50)) and threads == {"dstreams-listener-bus"}
    bus.stop()


def test_a_full_queue_drops_counts_logs_and_reports_the_drop(caplog):
    bus = ev.EventBus(3)
    slow = Slow()
    bus.add_listener(slow)
    bus.post(ev.JobStart(0, 0))  # taken by the bus thread, which blocks in the listener
    while bus._queue:
        pass
    with caplog.at_level(logging.WARNING, "dstreams.events"):
        for i in range(1, 10):
            bus.post(ev.JobStart(0, i))
    assert bus.dropped == 6 and "6 event(s) dropped" not in caplog.text
    assert "queue is full" in caplog.text and "eventqueue.capacity" in caplog.text
    slow.gate.set()
    assert bus.wait_until_empty()
    bus.post(ev.JobStart(0, 99))  # room again: the drop is reported before it
    assert bus.wait_until_empty()
    kinds = [type(e).__name__ for e in slow.got]
    assert [e.job_id for e in slow.got if isinstance(e, ev.JobStart)] == [0, 1, 2, 3, 99]
    dropped = next(e for e in slow.got if isinstance(e, ev.EventsDropped))
    assert dropped.count == 6 and dropped.total == 6 and kinds[-2] == "EventsDropped"
    bus.stop()


def test_posting_without_listeners_is_free_and_stop_delivers_what_is_queued():
    bus = ev.EventBus(10)
    bus.post(ev.JobStart(0, 1))
    assert not bus._queue
    got: list[ev.Event] = []

    class L:
        def on_event(self, e: ev.Event) -> None:
            got.append(e)

    bus.add_listener(L())
    for i in range(5):
        bus.post(ev.JobStart(0, i))
    bus.stop()
    assert len(got) == 5


def test_every_event_round_trips_through_json():
    import dataclasses
    import json

    for cls in ev._BY_KIND.values():
        e = cls(123)
        back = ev.from_json(json.loads(json.dumps(ev.to_json(e))))
        assert dataclasses.asdict(back) == dataclasses.asdict(e), cls
