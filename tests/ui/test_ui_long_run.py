"""The UI over hundreds of batches on a manual clock, checked batch by batch against a model.

A socket receiver feeds a seeded number of lines to each 50 ms batch; a word count's state
(``updateStateByKey``) grows as new words arrive. After every batch, the REST API must show
exactly the records fed to it, and ``/metrics`` the records received so far, the batches
completed and the state's size in keys (the model's distinct words), with its bytes never
shrinking. At the end, the statistics and the streaming page show every batch.
"""

from __future__ import annotations

import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from uihelp import get

from dstreams import Conf, Context
from dstreams.testing import manual_context, run_batches

BATCHES = 500


class Lines:
    """A loopback server that sends what :meth:`send` is given to the one client."""

    def __init__(self) -> None:
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self._conn: socket.socket | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._conn, _ = self.srv.accept()
        self._ready.set()

    def send(self, lines: list[str]) -> None:
        assert self._ready.wait(30), "the receiver never connected"
        assert self._conn is not None
        if lines:
            self._conn.sendall("".join(line + "\n" for line in lines).encode())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self.srv.close()


@pytest.fixture
def sc(tmp_path: Any) -> Iterator[Context]:
    conf = Conf(loadDefaults=False).set("dstreams.ui.enabled", "true").set("dstreams.ui.port", "0")
    with Context("local[2]", "ui-long-run", conf=conf) as sc:
        yield sc


def _metrics(sc: Context) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = get(f"{sc.uiWebUrl}/metrics").decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_every_batch_of_a_long_stateful_run_shows_the_models_numbers(sc: Context, tmp_path):
    rng = random.Random(20261202)
    vocab = [f"w{i}" for i in range(400)]
    ssc = manual_context(sc, 0.05)
    ssc.checkpoint(str(tmp_path / "ckpt"))
    feed = Lines()
    lines = ssc.socketTextStream("127.0.0.1", feed.port)
    state = (
        lines.flatMap(str.split)
        .map(lambda w: (w, 1))
        .updateStateByKey(lambda new, old: sum(new) + (old or 0))
    )
    state.foreachRDD(lambda rdd: rdd.count())  # an output runs the state (caching it)
    ssc.start()
    tracker = ssc._receiver_tracker
    api = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}"
    model: Counter[str] = Counter()
    fed = 0
    last_bytes = 0
    state_id: str | None = None
    try:
        for i in range(BATCHES):
            batch = [" ".join(rng.choices(vocab, k=3)) for _ in range(rng.randint(0, 12))]
            feed.send(batch)
            fed += len(batch)
            for line in batch:
                model.update(line.split())
            assert tracker.wait_for_received(fed, 20), f"batch {i}: the receiver fell behind"
            (t,) = run_batches(ssc, 1)
            assert sc._runner.bus.wait_until_empty(10)
            shown = get(f"{api}/streaming/batches/{t}")
            assert (shown["inputSize"], shown["status"]) == (len(batch), "COMPLETED"), i
            m = _metrics(sc)
            assert m[("dstreams_streaming_records_received_total", ())] == fed, i
            assert m[("dstreams_streaming_batches_completed_total", ())] == i + 1, i
            keys = {k: v for k, v in m.items() if k[0] == "dstreams_streaming_state_keys"}
            if not model:
                assert not keys or list(keys.values()) == [0], (i, keys)
                continue
            ((_, labels), n_keys) = next(iter(keys.items()))
            assert len(keys) == 1 and dict(labels)["operation"] == "updateStateByKey"
            state_id = state_id or dict(labels)["stream"]
            assert dict(labels)["stream"] == state_id
            assert n_keys == len(model), f"batch {i}: state keys {n_keys} != {len(model)}"
            size = m[("dstreams_streaming_state_bytes", labels)]
            assert size >= last_bytes and size > 0, (i, size, last_bytes)
            last_bytes = size
        stats = get(f"{api}/streaming/statistics")
        assert stats["numTotalCompletedBatches"] == BATCHES
        assert stats["numReceivedRecords"] == stats["numProcessedRecords"] == fed
        batches = get(f"{api}/streaming/batches")
        assert len(batches) == BATCHES and sum(b["inputSize"] for b in batches) == fed
        page = get(f"{sc.uiWebUrl}/streaming/").decode()
        assert f"<b id='completed-batches'>{BATCHES}</b> completed batches" in page
        assert f"Completed Batches (last 100 of {BATCHES})" in page  # the page's table: 100
        assert sum(model.values()) == 3 * fed
    finally:
        ssc.stop(stopSparkContext=False)
        feed.close()
