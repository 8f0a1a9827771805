"""The ``dstreams`` command: ``submit``, ``demo``, ``demo-batch``, ``history``, ``conf``.

``dstreams submit [--master M] [--name N] [--conf K=V ...] program.py [args]`` runs a program
like ``spark-submit`` does: the settings become defaults of every ``Conf`` the program creates
(settings made in the program's code win). ``make demo`` runs ``python -m dstreams.cli demo``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import runpy
import sys
import tempfile
import time
from operator import add

__all__ = ["main", "batch_demo", "submit"]


def batch_demo(words: int = 2_000_000, master: str = "local[2]") -> int:
    """Word count over a generated, seeded corpus; prints the top words and the throughput."""
    from dstreams import Context

    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(10_000)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    with tempfile.TemporaryDirectory(prefix="dstreams-demo-") as d:
        path = os.path.join(d, "corpus.txt")
        with open(path, "w") as fh:
            left = words
            while left > 0:
                n = min(left, 15)
                fh.write(" ".join(rng.choices(vocab, weights, k=n)) + "\n")
                left -= n
        with Context(master, "batch-demo") as sc:
            start = time.perf_counter()
            counts = (
                sc.textFile(path)
                .flatMap(lambda line: line.split())
                .map(lambda w: (w, 1))
                .reduceByKey(add)
                .collect()
            )
            elapsed = time.perf_counter() - start
    total = sum(c for _, c in counts)
    print(
        f"counted {total:,} words ({len(counts):,} distinct) in {elapsed:.2f}s "
        f"= {total / elapsed / 1e6:.2f} M words/s on {master}"
    )
    for w, c in sorted(counts, key=lambda kv: -kv[1])[:10]:
        print(f"{w:>8} {c:>9,}")
    return 0 if total == words else 1


def submit(program: str, args: list[str], settings: dict[str, str], quiet: bool = False) -> int:
    """Run ``program`` as ``__main__`` with ``settings`` as configuration defaults.

    On a terminal (standard error a TTY) and without ``quiet``, the program's Contexts show a
    live status line and stage progress bars (``dstreams/ui/console.py``).
    """
    from dstreams.conf import CONSOLE_ENV, SUBMIT_ENV

    if not os.path.isfile(program):
        raise SystemExit(f"dstreams submit: no such program {program!r}")
    os.environ[SUBMIT_ENV] = json.dumps(settings)
    os.environ[CONSOLE_ENV] = "0" if quiet or not sys.stderr.isatty() else "1"
    sys.argv = [program, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(program)))
    try:
        runpy.run_path(program, run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


def history(directory: str, host: str, port: int, token: str | None) -> int:
    """Serve the history UI until interrupted."""
    import time

    from dstreams.ui.history import HistoryServer

    try:
        server = HistoryServer(directory, host, port, token)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise SystemExit(f"dstreams history: {e}") from None
    print(f"dstreams history of {directory} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--conf {text!r} must look like KEY=VALUE")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dstreams")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("submit", help="run a program with a master and settings (spark-submit)")
    s.add_argument("--master", help="local, local[N], local[*], ray or ray://host:port")
    s.add_argument("--name", help="application name")
    s.add_argument("--conf", type=_setting, action="append", default=[], metavar="KEY=VALUE")
    s.add_argument(
        "--quiet", action="store_true", help="no live status line or progress bars on a terminal"
    )
    s.add_argument("program")
    s.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser(
        "demo", help="the streaming demo (network word count, 10s window)", add_help=False
    )
    b = sub.add_parser("demo-batch", help="batch word count over a generated corpus")
    b.add_argument("--words", type=int, default=2_000_000)
    b.add_argument("--master", default="local[2]")
    h = sub.add_parser("history", help="serve the UI of the applications logged in DIR")
    h.add_argument("dir", help="the dstreams.eventLog.dir of the applications (any fsspec URL)")
    h.add_argument("--host", default="127.0.0.1")
    h.add_argument("--port", type=int, default=18080)
    h.add_argument("--token", help="ask clients for this token (needed off loopback)")
    sub.add_parser("conf", help="print every configuration key with its default")
    args, rest = parser.parse_known_args(argv)
    if args.cmd == "submit":
        settings = dict(args.conf)
        if args.master:
            settings["dstreams.master"] = args.master
        if args.name:
            settings["dstreams.app.name"] = args.name
        return submit(args.program, args.args + rest, settings, args.quiet)
    if args.cmd == "demo":
        from dstreams.demo_streaming import main as streaming_demo

        return streaming_demo(rest)  # the demo parses its own options (--duration ...)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.cmd == "demo-batch":
        return batch_demo(args.words, args.master)
    if args.cmd == "history":
        return history(args.dir, args.host, args.port, args.token)
    from dstreams.conf import _markdown

    print(_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
