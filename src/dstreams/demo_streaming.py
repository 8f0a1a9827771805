"""The streaming demo behind ``make demo``: a windowed network word count on ``local[2]``.

A local TCP text generator (bound to 127.0.0.1 only) writes random sentences;
``socketTextStream`` reads them; words are counted over a 10 s window sliding
every batch with ``reduceByKeyAndWindow`` and its inverse function.  Each batch
prints the ``pprint`` output of the top words and a line with the batch's
records, processing time and scheduling delay (from a ``StreamingListener``).
The demo stops by itself after ``--duration`` seconds (default 20) or on
Ctrl-C, then prints a summary.
"""

from __future__ import annotations

import argparse
import operator
import random
import socket
import statistics
import tempfile
import threading
from datetime import datetime
from typing import Any

from dstreams import Context
from dstreams.streaming import StreamingContext, StreamingListener

__all__ = ["BatchReporter", "TextGenerator", "main"]

_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "stream",
    "batch",
    "window",
    "spark",
    "python",
    "record",
    "river",
    "data",
    "flow",
    "time",
    "state",
    "key",
    "value",
]


class TextGenerator:
    """Serves random sentences at ``rate`` lines/s to every client of 127.0.0.1:port."""

    def __init__(self, rate: int, port: int = 0, seed: int = 7) -> None:
        self.rate, self.seed = rate, seed
        self._server = socket.create_server(("127.0.0.1", port))
        self.port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self.lines_sent = 0
        threading.Thread(target=self._accept, name="text-generator", daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        rng = random.Random(self.seed)
        per_tick = max(1, self.rate // 20)
        with conn:
            while not self._stop.is_set():
                lines = [
                    " ".join(rng.choices(_WORDS, k=rng.randint(3, 8))) for _ in range(per_tick)
                ]
                try:
                    conn.sendall(("\n".join(lines) + "\n").encode())
                except OSError:
                    return
                self.lines_sent += per_tick
                self._stop.wait(0.05)

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._stop.set()
        self._server.close()


class BatchReporter(StreamingListener):
    """Prints one line per completed batch and keeps figures for the summary."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, int, int]] = []

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        row = (info.numRecords(), info.processingDelay(), info.schedulingDelay())
        self.rows.append(row)
        when = datetime.fromtimestamp(info.batchTime().milliseconds() / 1000).strftime("%H:%M:%S")
        print(
            f"[batch {when}] records={row[0]} processing={row[1]} ms scheduling delay={row[2]} ms",
            flush=True,
        )

    def summary(self, seconds: float) -> str:
        """Return the end-of-demo summary text."""
        if not self.rows:
            return "no batch completed"
        records = sum(r[0] for r in self.rows)
        proc = [r[1] for r in self.rows]
        sched = [r[2] for r in self.rows]
        return (
            f"summary: {len(self.rows)} batches in {seconds:g}s, {records} records "
            f"({records / max(seconds, 1e-9):.0f}/s); processing median "
            f"{statistics.median(proc):.0f} ms, max {max(proc)} ms; scheduling delay "
            f"median {statistics.median(sched):.0f} ms, max {max(sched)} ms"
        )


def _kill_a_worker(sc: Context, ssc: StreamingContext) -> None:
    """SIGKILL a worker that runs no receiver: its blocks are recomputed, a new one starts."""
    receivers = set(ssc._receiver_tracker.placements().values())
    victims = [e for e in sc.executorIds() if e not in receivers] or sc.executorIds()
    if victims:
        print(f"killing worker {victims[0]} (SIGKILL) to show recovery", flush=True)
        sc._backend.kill_executor(victims[0])


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit code."""
    p = argparse.ArgumentParser(prog="dstreams demo", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    p.add_argument("--batch", type=float, default=1.0, help="batch interval in seconds")
    p.add_argument("--window", type=float, default=10.0, help="window length in seconds")
    p.add_argument("--rate", type=int, default=2000, help="generated lines per second")
    p.add_argument("--master", default="local[2]")
    p.add_argument(
        "--kill-at",
        type=float,
        default=10.0,
        help="SIGKILL one task worker after this many seconds, to show recovery (0: never)",
    )
    args = p.parse_args(argv)
    generator = TextGenerator(args.rate)
    print(
        f"text generator on 127.0.0.1:{generator.port}, {args.rate} lines/s; "
        f"{args.window:g}s window sliding every {args.batch:g}s; "
        f"running {args.duration:g}s (Ctrl-C to stop)",
        flush=True,
    )
    with (
        Context(args.master, "streaming-demo") as sc,
        tempfile.TemporaryDirectory(prefix="dstreams-demo-ckpt-") as ckpt,
    ):
        ssc = StreamingContext(sc, args.batch)
        ssc.checkpoint(ckpt)
        reporter = BatchReporter()
        ssc.addStreamingListener(reporter)
        lines = ssc.socketTextStream("127.0.0.1", generator.port)
        counts = (
            lines.flatMap(lambda line: line.split(" "))
            .map(lambda w: (w, 1))
            .reduceByKeyAndWindow(
                operator.add, operator.sub, args.window, args.batch, filterFunc=lambda kv: kv[1] > 0
            )
        )
        counts.transform(lambda rdd: rdd.sortBy(lambda kv: (-kv[1], kv[0]))).pprint(5)
        ssc.start()
        if sc.uiWebUrl and 0 < args.kill_at < args.duration:
            print(f"a worker is killed at {args.kill_at:g}s: watch {sc.uiWebUrl}", flush=True)
        killer = None
        if 0 < args.kill_at < args.duration:
            killer = threading.Timer(args.kill_at, _kill_a_worker, args=(sc, ssc))
            killer.daemon = True
            killer.start()
        interrupted = False
        try:
            ssc.awaitTerminationOrTimeout(args.duration)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if killer is not None:
                killer.cancel()
            ssc.stop(stopSparkContext=False)
            generator.close()
        if interrupted:
            print("interrupted")
        print(reporter.summary(args.duration), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
