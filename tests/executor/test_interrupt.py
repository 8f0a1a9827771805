"""Ctrl-C in a terminal (SIGINT to the whole process group) stops a running job cleanly.

The driver gets KeyboardInterrupt, aborts the job (its tasks are killed, though each would
sleep for minutes) and stops; workers ignore the SIGINT themselves and leave when told.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
from dstreams import Context
marks = sys.argv[1]
sc = Context("local[2]")
print("pids", *sorted(sc._backend.worker_pids().values()), flush=True)
def slow(x):
    open(os.path.join(marks, f"started-{x}"), "w").close()
    time.sleep(300)
    return x
try:
    sc.parallelize(range(2), 2).map(slow).collect()
except KeyboardInterrupt:
    print("interrupted", flush=True)
finally:
    sc.stop()
    print("stopped", flush=True)
"""


def test_sigint_to_the_process_group_stops_driver_and_workers(tmp_path: Path):
    program = tmp_path / "job.py"
    program.write_text(PROGRAM)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, str(program), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, like a terminal job
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started-*"))) < 2:  # both tasks are running
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the tasks never started"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)  # far less than the tasks' 300 s
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    lines = out.splitlines()
    assert lines[1:] == ["interrupted", "stopped"], (out, err)
    assert proc.returncode == 0
    for pid in map(int, lines[0].split()[1:]):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # a worker may still be finishing its exit; it must be gone within a moment
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"worker {pid} outlived its driver")
