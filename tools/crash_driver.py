"""The program the crash harness kills: ``python tools/crash_driver.py WORKDIR``.

A word count over two inputs, recovered with ``StreamingContext.getOrCreate`` every time it
starts:

* ``textFileStream(WORKDIR/inbox)``: files the harness moves in while the driver runs (and while
  it is dead);
* a reliable receiver over ``WORKDIR/source.txt``: it stores lines with ``storeMany`` and their
  position as metadata, with the write-ahead log on, and resumes from ``lastStoredMetadata()``,
  so a line whose store was not acknowledged is sent again and none is stored twice.

Outputs, all exactly once: per-batch word counts and an inverse-window count (2 s window) to
SQLite (``WORKDIR/out.db``), and the running state (``updateStateByKey``) to a FileSink. The
driver prints one JSON line per event to stdout (``started``, ``batch``), and stops gracefully
once ``WORKDIR/stop`` exists.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from operator import add, sub
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from dstreams import Conf, Context
from dstreams.streaming import Receiver, StreamingContext, StreamingListener
from dstreams.streaming.sinks import FileSink, SQLiteSink

BATCH = 0.25
WINDOW = 2.0
CHUNK = 40  # lines per storeMany


class LogReceiver(Receiver):
    """Reads ``path`` line by line; each block's metadata is the position after it."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def onStart(self) -> None:
        threading.Thread(target=self._run, name="log-receiver", daemon=True).start()

    def _run(self) -> None:
        pos = self.lastStoredMetadata() or 0
        lines: list[str] = []
        while not self.isStopped():
            if len(lines) <= pos:
                try:
                    with open(self.path) as fh:
                        text = fh.read()
                    # the writer may be mid-line: only complete lines count, or the rest of
                    # a torn line would never be read
                    lines = text[: text.rfind("\n") + 1].splitlines()
                except FileNotFoundError:
                    lines = []
            chunk = lines[pos : pos + CHUNK]
            if not chunk:
                time.sleep(0.02)
                continue
            try:
                self.storeMany(chunk, metadata=pos + len(chunk))
            except Exception:  # noqa: BLE001 - not durable: send the same lines again
                time.sleep(0.05)
                continue
            pos += len(chunk)  # acknowledged: the source may forget them


def with_time(t: Any, rdd: Any) -> Any:
    ms = round(t.timestamp() * 1000)
    return rdd.map(lambda kv: (ms, kv[0], kv[1]))


def setup(work: str) -> StreamingContext:
    conf = Conf().setAll(
        [
            ("dstreams.streaming.receiver.writeAheadLog.enable", "true"),
            ("dstreams.streaming.blockInterval", "100ms"),
            ("dstreams.streaming.checkpointInterval", "2s"),
        ]
    )
    sc = Context("local[2]", "crash-test", conf=conf)
    ssc = StreamingContext(sc, BATCH)
    files = ssc.textFileStream(os.path.join(work, "inbox"))
    received = ssc.receiverStream(LogReceiver(os.path.join(work, "source.txt")))
    pairs = files.union(received).flatMap(str.split).map(lambda w: (w, 1))
    db = os.path.join(work, "out.db")
    counts = pairs.reduceByKey(add)
    counts.transform(with_time).writeToSink(
        SQLiteSink(db, "batch_counts", "batch-counts", ["batch", "word", "n"])
    )
    window = pairs.reduceByKeyAndWindow(add, sub, WINDOW, BATCH)
    window.transform(with_time).writeToSink(
        SQLiteSink(db, "window_counts", "window-counts", ["batch", "word", "n"])
    )
    state = pairs.updateStateByKey(lambda vs, s: (s or 0) + sum(vs))
    state.writeToSink(FileSink(os.path.join(work, "out"), "state"))
    return ssc


class Events(StreamingListener):
    def __init__(self, restart_ms: int) -> None:
        self.restart_ms = restart_ms
        self.first_new = False

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        t = batchCompleted.batchInfo().batchTime().milliseconds()
        if not self.first_new and t >= self.restart_ms:
            self.first_new = True
            emit("first-new-batch", batch=t)


def emit(event: str, **kw: Any) -> None:
    print(json.dumps({"event": event, "wall": time.time(), **kw}), flush=True)


def main() -> int:
    work = sys.argv[1]
    os.makedirs(os.path.join(work, "inbox"), exist_ok=True)
    started = time.time()
    ssc = StreamingContext.getOrCreate(os.path.join(work, "ck"), lambda: setup(work))
    recovered = ssc._recovered_from is not None
    ssc.start()
    ssc.addStreamingListener(Events(ssc._start_ms or 0))
    emit("started", recovered=recovered, took=time.time() - started, pid=os.getpid())
    stop = os.path.join(work, "stop")
    while not os.path.exists(stop):
        time.sleep(0.05)
    ssc.stop(stopSparkContext=True, stopGraceFully=True)
    emit("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
