"""A program the event-time crash test kills: ``python tools/eventtime_driver.py WORKDIR``.

Lines ``key event_time value`` arrive as files in ``WORKDIR/inbox``. They are counted in
5 s event-time windows with a 30 s watermark delay (``outputMode="append"``), and each final
window is written exactly once to SQLite (``WORKDIR/out.db``, table ``windows``). The program
is recovered with ``StreamingContext.getOrCreate`` every time it starts. It prints ``started``
once running, and stops gracefully when ``WORKDIR/stop`` exists.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from dstreams import Conf, Context
from dstreams.streaming import StreamingContext
from dstreams.streaming.sinks import SQLiteSink

WINDOW, DELAY = 5.0, 30.0


def parse(line: str) -> tuple[str, tuple[float, int]]:
    key, ts, value = line.split()
    return key, (float(ts), int(value))


def row(kv: Any) -> tuple[str, float, int]:
    (key, window), total = kv
    return (key, window.start, total)


def setup(work: str) -> StreamingContext:
    conf = Conf().set("dstreams.streaming.checkpointInterval", "1s")
    sc = Context("local[2]", "eventtime-crash", conf=conf)
    ssc = StreamingContext(sc, 0.2)
    windows = (
        ssc.textFileStream(os.path.join(work, "inbox"))
        .map(parse)
        .windowByEventTime(
            lambda kv: kv[1][0],
            WINDOW,
            watermarkDelay=DELAY,
            outputMode="append",
            valueFunc=lambda kv: kv[1][1],
        )
        .reduceByKey(lambda a, b: a + b)
    )
    windows.map(row).writeToSink(
        SQLiteSink(os.path.join(work, "out.db"), "windows", "windows", ["k", "start", "total"])
    )
    return ssc


def main() -> int:
    work = sys.argv[1]
    os.makedirs(os.path.join(work, "inbox"), exist_ok=True)
    ssc = StreamingContext.getOrCreate(os.path.join(work, "ck"), lambda: setup(work))
    ssc.start()
    print("started", flush=True)
    stop = os.path.join(work, "stop")
    while not os.path.exists(stop):
        time.sleep(0.05)
    ssc.stop(stopSparkContext=True, stopGraceFully=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
