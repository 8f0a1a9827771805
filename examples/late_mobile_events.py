"""Late mobile events counted by when they happened: event-time windows with a watermark.

Usage: python examples/late_mobile_events.py

Phones send ``(app, event time)`` when they get a connection, so events arrive out of order
and some arrive late. Each minute of event time is a window. The watermark trails the newest
event by 2 minutes. A window's count is final, and printed once (``outputMode="append"``),
when the watermark passes its end. An event older than the watermark is dropped and counted.
The batches are 1 s apart on a manual clock; each holds a few minutes of event time.
"""

from __future__ import annotations

import tempfile
from typing import Any

from dstreams import Context
from dstreams.streaming import StreamingListener
from dstreams.testing import TestSource, manual_context, run_batches

MINUTE = 60.0


class Late(StreamingListener):
    def onBatchCompleted(self, batchCompleted: Any) -> None:
        extras = batchCompleted.batchInfo().extras()
        if extras.numLateRecords():
            print(f"dropped {extras.numLateRecords()} late event(s)")


def main() -> None:
    arrivals = [
        [("maps", 10), ("chat", 30), ("maps", 70)],  # minutes 0 and 1
        [("maps", 50), ("chat", 130), ("chat", 125)],  # minute 0 still open: counted
        [("maps", 250), ("chat", 20)],  # watermark 10 s: the 20 s event still counts
        [("chat", 300), ("maps", 200), ("chat", 40)],  # watermark 130 s: the 40 s one is late
        [("maps", 500)],
        [],
    ]
    with Context("local[2]", "late-mobile-events") as sc:
        ssc = manual_context(sc, 1)
        ssc.checkpoint(tempfile.mkdtemp(prefix="late-events-"))
        ssc.addStreamingListener(Late())
        per_minute = (
            TestSource(ssc, arrivals, numSlices=2)
            .stream.windowByEventTime(
                lambda event: event[1], MINUTE, watermarkDelay=2 * MINUTE, outputMode="append"
            )
            .countByKey()
        )
        per_minute.foreachRDD(
            lambda rdd: [
                print(f"{app:>5} minute {int(w.start // 60)}: {n} events")
                for (app, w), n in sorted(rdd.collect())
            ]
        )
        run_batches(ssc, len(arrivals))
        ssc.stop(stopSparkContext=False)


if __name__ == "__main__":
    main()
