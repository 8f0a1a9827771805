"""The local backend's liveness judgement: silent and computing is busy; silent and stopped is not.

A task in one long C call holds the GIL, so its worker's reply thread cannot answer pings. That
worker is busy, and must not be reported unresponsive (the scheduler would stop offering it
tasks and copy its queue elsewhere). A worker stopped with SIGSTOP must still be reported.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from dstreams.executor.local import process_cpu


def _hold_the_gil(_: int) -> int:
    # builtin sum over a range runs in C without releasing the GIL: about 1-2 s here
    return sum(range(60_000_000))


def test_a_worker_in_a_long_c_call_is_busy_not_unresponsive(fresh_context, caplog):
    sc = fresh_context("local[1]", {"dstreams.executor.unresponsiveTimeout": "200ms"})
    caplog.set_level(logging.WARNING, logger="dstreams.executor")
    t0 = time.monotonic()
    assert sc.parallelize([0], 1).map(_hold_the_gil).collect() == [sum(range(60_000_000))]
    took = time.monotonic() - t0
    assert took > 0.6, f"the call took {took:.2f}s: too short to test the timeout of 0.2s"
    silent = [r.getMessage() for r in caplog.records if "has not answered" in r.getMessage()]
    assert not silent, silent


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_process_cpu_sees_a_stopped_process_and_cpu_time():
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        state, ticks = process_cpu(proc.pid)
        assert state == "R" and ticks > 0
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(0.2)
        state, stopped_at = process_cpu(proc.pid)
        assert state in ("T", "t")
        time.sleep(0.3)
        assert process_cpu(proc.pid) == (state, stopped_at), "a stopped process uses no CPU"
    finally:
        proc.kill()
        proc.wait()
    assert process_cpu(proc.pid) is None  # reaped: no such process
