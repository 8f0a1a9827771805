"""Injected kill points for crash tests: the driver dies (SIGKILL) at a chosen point.

The engine calls :func:`kill_point` at the moments a crash test wants to hit:

* ``receive``: the driver has just accepted a received block;
* ``job``: a task of an output job has just finished on the driver's side;
* ``checkpoint-write``: a checkpoint's temporary file is written but not yet renamed;
* ``commit``: inside a transactional sink's commit, after the data and before the marker
  (this one runs in a worker, and kills the worker's driver).

Nothing happens unless ``DSTREAMS_KILL_AT=<point>:<n>`` is set: then the ``n``-th time any
process of the application reaches ``<point>`` (hits are counted across processes in the file
``DSTREAMS_KILL_COUNT``), the driver is killed with SIGKILL after ``<point>`` is appended to
``DSTREAMS_KILL_LOG``. Unset, a kill point costs one comparison.
"""

from __future__ import annotations

import os
import signal

__all__ = ["POINTS", "kill_point"]

POINTS = ("receive", "job", "checkpoint-write", "commit")

_SPEC = os.environ.get("DSTREAMS_KILL_AT")
_POINT, _, _N = (_SPEC or "").partition(":")


def kill_point(name: str) -> None:
    """Kill the driver here if this is the chosen point's chosen hit (see the docstring)."""
    if _POINT != name:
        return
    counter = os.environ.get("DSTREAMS_KILL_COUNT")
    if counter is None:
        return
    fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b".")
        hits = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if hits != int(_N or 1):
        return
    log = os.environ.get("DSTREAMS_KILL_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(name + "\n")
    driver = int(os.environ.get("DSTREAMS_DRIVER_PID", os.getpid()))
    os.kill(driver, signal.SIGKILL)
