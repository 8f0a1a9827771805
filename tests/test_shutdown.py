"""Clean exits of a real driver process: SIGTERM, a graceful SIGTERM, and after a SIGKILL.

Each test runs a driver program as a subprocess, signals it, and checks what is left: worker
processes, the scratch directory (with its sockets), and the data that had been received.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

DRIVER = textwrap.dedent(
    """
    import json, sys, threading
    from dstreams import Conf, Context
    from dstreams.streaming import StreamingContext
    port, out, graceful = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "graceful"
    conf = Conf().set("dstreams.streaming.stopGracefullyOnShutdown", str(graceful).lower())
    sc = Context("local[2]", "shutdown", conf=conf)
    ssc = StreamingContext(sc, 0.5)
    lines = ssc.socketTextStream("127.0.0.1", port)
    def save(rdd):
        with open(out, "a") as fh:
            fh.write("".join(x + "\\n" for x in rdd.collect()))
    lines.foreachRDD(save)
    ssc.start()
    tracker = ssc._receiver_tracker
    def report():
        while True:
            tracker.wait_for_received(tracker.total_received() + 1, 60)
            print(json.dumps({"received": tracker.total_received()}), flush=True)
    threading.Thread(target=report, daemon=True).start()
    pids = list(sc._backend.worker_pids().values())
    print(json.dumps({"scratch": sc._local_dir, "pids": pids}), flush=True)
    ssc.awaitTermination()
    """
)


class Feeder:
    """Serves ``lines`` to the first client, then keeps the connection open."""

    def __init__(self, lines: list[str]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lines = lines
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.sendall("".join(line + "\n" for line in self.lines).encode())
        self.conn = conn  # kept open: the receiver sees no end of stream


def start_driver(port: int, out: Path, mode: str) -> tuple[subprocess.Popen[str], Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    log = open(out.with_suffix(".stderr"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(port), str(out), mode],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )
    proc.stderr_path = out.with_suffix(".stderr")  # type: ignore[attr-defined]
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, info


def exit_code(proc: subprocess.Popen[str], timeout: float) -> int:
    """Wait for the driver; on a timeout, fail with what it printed."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        tail = proc.stderr_path.read_text()[-3000:]  # type: ignore[attr-defined]
        raise AssertionError(f"the driver did not exit within {timeout}s; it said:\n{tail}")


def wait_received(proc: subprocess.Popen[str], n: int) -> None:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, "the driver exited before it received the data"
        if json.loads(line).get("received", 0) >= n:
            return


def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # reap it if it is our child's child that became a zombie of init
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


def test_sigterm_stops_workers_and_removes_the_scratch_directory(tmp_path: Path) -> None:
    feeder = Feeder([f"line {i}" for i in range(10)])
    proc, info = start_driver(feeder.port, tmp_path / "out.txt", "now")
    wait_received(proc, 10)
    assert os.path.isdir(info["scratch"])
    assert any(name.endswith(".sock") for name in os.listdir(info["scratch"]))
    proc.send_signal(signal.SIGTERM)
    assert exit_code(proc, 30) == 128 + signal.SIGTERM
    assert all(gone(pid) for pid in info["pids"]), "a worker outlived its driver"
    assert not os.path.exists(info["scratch"]), "the scratch directory was left behind"


def test_a_graceful_sigterm_processes_what_was_received_first(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    lines = [f"line {i}" for i in range(2000)]
    feeder = Feeder(lines)
    proc, info = start_driver(feeder.port, out, "graceful")
    wait_received(proc, len(lines))
    proc.send_signal(signal.SIGTERM)  # at once: most lines are still waiting for a batch
    assert exit_code(proc, 60) == 128 + signal.SIGTERM
    assert sorted(out.read_text().splitlines()) == sorted(lines), "received data was lost"
    assert not os.path.exists(info["scratch"])
    assert all(gone(pid) for pid in info["pids"])


def test_the_next_context_removes_what_a_killed_driver_left(tmp_path: Path, no_context) -> None:
    from dstreams import Conf, Context

    local = tmp_path / "local"
    local.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    prog = (
        "import sys, time; from dstreams import Conf, Context\n"
        f"conf = Conf().set('dstreams.local.dir', {str(local)!r})\n"
        "sc = Context('local[1]', 'doomed', conf=conf)\n"
        "print(sc._local_dir, flush=True); time.sleep(60)\n"
    )
    doomed = subprocess.Popen(
        [sys.executable, "-c", prog], stdout=subprocess.PIPE, text=True, env=env
    )
    assert doomed.stdout is not None
    stale = doomed.stdout.readline().strip()
    doomed.kill()
    doomed.wait()
    assert os.path.isdir(stale)
    # a directory another live process owns, and one nobody can vouch for, must stay
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owned = tempfile.mkdtemp(prefix="dstreams-", dir=local)
        with open(os.path.join(owned, "owner"), "w") as fh:
            started = open(f"/proc/{alive.pid}/stat").read().rsplit(")", 1)[1].split()[19]
            fh.write(f"{alive.pid} {started}\n")
        unknown = tempfile.mkdtemp(prefix="dstreams-", dir=local)
        sc = Context("local[1]", "next", conf=Conf().set("dstreams.local.dir", str(local)))
        try:
            assert not os.path.exists(stale), "the dead driver's directory was kept"
            assert os.path.isdir(owned) and os.path.isdir(unknown)
            assert os.path.isdir(sc._local_dir)
        finally:
            sc.stop()
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.parametrize("how", ["cancelled", "worker killed"])
def test_a_checkpoint_write_that_dies_leaves_no_temporary_file(
    how: str, fresh_context, tmp_path: Path
) -> None:
    sc = fresh_context("local[2]")
    ck = tmp_path / "ck"
    sc.setCheckpointDir(str(ck))
    started = tmp_path / "started"

    class Slow:
        """Pickles slowly the first time: the write is caught half-way."""

        def __reduce__(self) -> Any:
            if not started.exists():
                started.write_text(str(os.getpid()))
                if how == "worker killed":
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(30)
            return (int, (7,))

    # not cached: the count job never pickles a Slow, the checkpoint write does
    rdd = sc.parallelize([1, 2], 2).map(lambda x: Slow() if x == 1 else x)
    rdd.checkpoint()
    if how == "cancelled":
        threading.Thread(
            target=lambda: (_wait_for(started), sc._runner.cancel_all("test")), daemon=True
        ).start()
        with pytest.raises(Exception, match="cancelled"):
            rdd.count()
    else:
        assert rdd.count() == 2  # the attempt on the killed worker is retried elsewhere
    assert started.exists(), "the write was interrupted half-way"
    temps = [p for p in ck.rglob("*") if p.name.startswith(".")]
    assert temps == [], f"temporary files left: {temps}"
    if how == "worker killed":
        assert rdd.isCheckpointed() and sorted(rdd.collect()) == [2, 7]


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 20
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
