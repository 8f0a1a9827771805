"""A program the views crash test kills: ``python tools/views_driver.py WORKDIR``.

Text files arrive in ``WORKDIR/inbox``; their words are counted with ``mapWithState`` and the
state's snapshots are registered as the view ``counts``. A query thread reads the whole view
every 50 ms (``ssc.view("counts").collect()``), beside the running stream, and writes each
answer to ``WORKDIR/snaps/<pid>-<n>.json``. The program is recovered with
``StreamingContext.getOrCreate`` every time it starts. It prints ``started`` once running, and
stops gracefully when ``WORKDIR/stop`` exists.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from dstreams import Context, StateSpec
from dstreams.streaming import StreamingContext


def count(word: str, one: int, state: Any) -> None:
    state.update((state.getOption() or 0) + one)


def setup(work: str) -> StreamingContext:
    sc = Context("local[2]", "views-crash")
    ssc = StreamingContext(sc, 0.1)
    ssc.checkpoint(os.path.join(work, "ck"))
    words = ssc.textFileStream(os.path.join(work, "inbox")).flatMap(str.split)
    state = words.map(lambda w: (w, 1)).mapWithState(StateSpec.function(count).numPartitions(2))
    state.stateSnapshots().registerView("counts")
    return ssc


def main() -> int:
    work = sys.argv[1]
    os.makedirs(os.path.join(work, "inbox"), exist_ok=True)
    snaps = os.path.join(work, "snaps")
    os.makedirs(snaps, exist_ok=True)
    ssc = StreamingContext.getOrCreate(os.path.join(work, "ck"), lambda: setup(work))
    ssc.start()
    print("started", flush=True)
    stop = os.path.join(work, "stop")
    done = threading.Event()

    def query() -> None:
        n = 0
        while not done.is_set():
            try:
                counts = dict(ssc.view("counts").collect())
            except LookupError:  # no batch has published the view yet
                time.sleep(0.02)
                continue
            tmp = os.path.join(snaps, f".{os.getpid()}-{n}.tmp")
            with open(tmp, "w") as f:
                json.dump(counts, f)
            os.replace(tmp, os.path.join(snaps, f"{os.getpid()}-{n}.json"))
            n += 1
            time.sleep(0.05)

    t = threading.Thread(target=query, daemon=True)
    t.start()
    while not os.path.exists(stop):
        time.sleep(0.05)
    done.set()
    t.join()
    ssc.stop(stopSparkContext=True, stopGraceFully=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
