"""A word count that survives a driver restart and writes each result exactly once.

Usage:
    python examples/exactly_once_wordcount.py CHECKPOINT_DIR INBOX_DIR OUT_DIR
    python examples/exactly_once_wordcount.py --selftest

Files moved into INBOX_DIR are read by ``textFileStream``. Each batch's word counts go to a
SQLite table (``OUT_DIR/counts.db``, rows and commit marker in one transaction) and the running
totals (``updateStateByKey``) to a ``FileSink`` under ``OUT_DIR/totals``. Stop it with Ctrl-C
or SIGTERM (it drains first) or kill it: started again with the same directories,
``StreamingContext.getOrCreate`` recovers the program, its state and the files each unfinished
batch held from CHECKPOINT_DIR, and every file counts exactly once.

``--selftest`` runs it twice in temporary directories, with files arriving before, between and
after the two runs, and prints the totals from the database.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from dstreams import Conf, Context
from dstreams.streaming import StreamingContext
from dstreams.streaming.sinks import FileSink, SQLiteSink


def create(inbox: str, out: str) -> StreamingContext:
    """The whole program: built here, so that a restart can rebuild it from the checkpoint."""
    conf = Conf().set("dstreams.streaming.stopGracefullyOnShutdown", "true")
    sc = Context.getOrCreate(conf.setMaster("local[2]").setAppName("exactly-once-wordcount"))
    ssc = StreamingContext(sc, 0.5)
    pairs = ssc.textFileStream(inbox).flatMap(str.split).map(lambda w: (w, 1))
    counts = pairs.reduceByKey(lambda a, b: a + b)
    batch_rows = counts.transform(lambda t, rdd: rdd.map(lambda kv: (str(t), kv[0], kv[1])))
    batch_rows.writeToSink(
        SQLiteSink(os.path.join(out, "counts.db"), "counts", "wordcount", ["batch", "word", "n"])
    )
    totals = pairs.updateStateByKey(lambda new, total: (total or 0) + sum(new))
    totals.writeToSink(FileSink(os.path.join(out, "totals"), "totals"))
    return ssc


def run(checkpoint: str, inbox: str, out: str, seconds: float | None = None) -> None:
    ssc = StreamingContext.getOrCreate(checkpoint, lambda: create(inbox, out))
    ssc.start()
    if seconds is None:
        ssc.awaitTermination()
    else:
        ssc.awaitTerminationOrTimeout(seconds)
        ssc.stop(stopSparkContext=True, stopGraceFully=True)


def drop(inbox: str, name: str, text: str) -> None:
    """Write a file elsewhere, then move it in: a batch never sees half a file."""
    staged = os.path.join(os.path.dirname(inbox), "." + name)
    with open(staged, "w") as fh:
        fh.write(text)
    os.rename(staged, os.path.join(inbox, name))


def selftest() -> None:
    import sqlite3
    import threading

    root = tempfile.mkdtemp(prefix="exactly-once-")
    checkpoint, inbox, out = (os.path.join(root, d) for d in ("ck", "inbox", "out"))
    os.makedirs(inbox)
    os.makedirs(out)
    # the first run starts fresh; the second recovers from the checkpoint, and also reads the
    # file that arrived while no driver ran
    for run_no, text in enumerate(["apple banana apple\n", "banana cherry\n"]):
        if run_no == 1:
            drop(inbox, "while-down.txt", "apple durian\n")
        threading.Timer(1.2, drop, (inbox, f"run{run_no}.txt", text)).start()
        run(checkpoint, inbox, out, seconds=3.0)
    with sqlite3.connect(os.path.join(out, "counts.db")) as db:
        rows = db.execute("SELECT word, SUM(n) FROM counts GROUP BY word ORDER BY word")
        for word, n in rows:
            print(f"{word} {n}")


def main() -> int:
    if sys.argv[1:] == ["--selftest"]:
        selftest()
        return 0
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    run(*sys.argv[1:4])
    return 0


if __name__ == "__main__":
    sys.exit(main())
