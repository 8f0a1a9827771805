"""Helpers of the UI tests: HTTP GET, and a streaming program fed through a real socket."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from typing import Any

from dstreams import Context


def get(url: str, token: str | None = None) -> Any:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if r.headers.get_content_type() == "application/json" else body


class Fed:
    """A socket receiver's stream, 0.1 s batches; ``counts`` is what each batch saw."""

    def __init__(self, sc: Context) -> None:
        from dstreams.streaming import StreamingContext

        self.sc = sc
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.sent = 0
        self._go = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self.ssc = StreamingContext(sc, 0.1)
        self.counts: dict[int, int] = {}
        stream = self.ssc.socketTextStream("127.0.0.1", self.port)

        def note(t: Any, rdd: Any) -> None:
            self.counts[round(t.timestamp() * 1000)] = rdd.count()

        stream.foreachRDD(note)
        self.ssc.start()

    def _serve(self) -> None:
        conn, _ = self.srv.accept()
        with conn:
            for i in range(3000):  # 3000 lines over about 1.5 s
                conn.sendall(f"line {i}\n".encode())
                self.sent += 1
                if i % 100 == 99:
                    time.sleep(0.05)
            self._go.set()
            time.sleep(30)

    def finish(self) -> None:
        """Wait until every line was counted, then stop the stream (the UI stays up)."""
        assert self._go.wait(30)
        deadline = time.monotonic() + 30
        while sum(self.counts.values()) < self.sent:
            assert time.monotonic() < deadline, (sum(self.counts.values()), self.sent)
            time.sleep(0.05)
        time.sleep(0.3)
        self.ssc.stop(stopSparkContext=False)
        assert self.sc._runner.bus.wait_until_empty(10)
