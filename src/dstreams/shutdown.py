"""Clean exits: SIGTERM handled like Ctrl-C, and scratch directories nobody owns any more.

* :func:`install_sigterm` makes SIGTERM stop the process the way SIGINT does: ``SystemExit``
  is raised in the main thread, so ``atexit`` stops the Context, its workers exit and its
  scratch directory (sockets included) is removed. When
  ``dstreams.streaming.stopGracefullyOnShutdown`` is true (Spark's
  ``spark.streaming.stopGracefullyOnShutdown``) the active StreamingContext first stops
  gracefully: receivers stop and the data they received is processed. A handler the program
  installed itself is left in place.
* Every Context's scratch directory holds an ``owner`` file (pid and process start time).
  :func:`remove_orphans` deletes the scratch directories whose owner process is gone, which is
  what a driver killed with SIGKILL leaves behind; a directory it cannot prove orphaned (no
  owner file, or an owner still alive) is kept.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "SCRATCH_PREFIX",
    "add_shutdown_hook",
    "install_sigterm",
    "remove_orphans",
    "remove_shutdown_hook",
    "uninstall_sigterm",
    "write_owner",
]

log = logging.getLogger("dstreams")

SCRATCH_PREFIX = "dstreams-"
_OWNER = "owner"
_installed: list[Any] = []  # the handler we replaced, while ours is installed


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None if it does not exist)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # the command name may hold spaces or parentheses: fields start after the last ')'
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def write_owner(scratch: str) -> None:
    """Record this process as the owner of ``scratch``."""
    with open(os.path.join(scratch, _OWNER), "w") as fh:
        fh.write(f"{os.getpid()} {_start_time(os.getpid()) or ''}\n")


def _orphaned(path: str) -> bool:
    try:
        with open(os.path.join(path, _OWNER)) as fh:
            pid_text, _, started = fh.read().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False  # cannot prove anything about it
    if pid == os.getpid():
        return False
    now = _start_time(pid)
    return now is None or (bool(started) and now != started)  # gone, or the pid was reused


def remove_orphans(parent: str) -> list[str]:
    """Delete the scratch directories under ``parent`` whose owner process is gone."""
    removed: list[str] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        if name.startswith(SCRATCH_PREFIX) and os.path.isdir(path) and _orphaned(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed %d scratch directories of drivers that died: %s", len(removed), removed)
    return removed


#: run (newest first) when SIGTERM arrives, before the process exits: graceful stops
_hooks: list[Callable[[], None]] = []


def add_shutdown_hook(hook: Callable[[], None]) -> None:
    """Run ``hook`` on SIGTERM before exiting (a StreamingContext's graceful stop)."""
    _hooks.append(hook)


def remove_shutdown_hook(hook: Callable[[], None]) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


def _run_hooks() -> None:
    for hook in reversed(list(_hooks)):
        try:
            hook()
        except Exception:
            log.exception("a shutdown hook failed")


def install_sigterm(graceful_stop: Callable[[], None] = _run_hooks) -> bool:
    """Handle SIGTERM as SIGINT is handled (see the module docstring); True if installed.

    Only from the main thread, and only where SIGTERM still has its default action.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        current = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        return False
    if current is not signal.SIG_DFL:
        return False

    def on_sigterm(signum: int, frame: Any) -> None:
        uninstall_sigterm()
        try:
            graceful_stop()
        finally:
            raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    _installed.append(current)
    return True


def uninstall_sigterm() -> None:
    """Put back the SIGTERM handler :func:`install_sigterm` replaced."""
    if not _installed or threading.current_thread() is not threading.main_thread():
        return
    previous = _installed.pop()
    try:
        signal.signal(signal.SIGTERM, previous)
    except (ValueError, OSError):
        pass
