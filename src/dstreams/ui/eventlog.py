"""The event log: every application event as one JSON line, in rolling files (any fsspec URL).

Layout, after Spark's rolling event logs: ``<dstreams.eventLog.dir>/eventlog_v2_<app id>/``
holds ``events_<n>_<app id>.jsonl`` (a new file each time one reaches
``dstreams.eventLog.rolling.maxFileSize``) and ``appstatus_<app id>.inprogress``, renamed to
``appstatus_<app id>`` when the application ends. :func:`read_events` reads a directory back
in order, for the history server (``ui/history.py``). Secrets never reach it: the one event that
carries the configuration carries it redacted (``Conf.redacted``).

A log that cannot be written (a full disk, a lost mount) stops the log, not the application: the
error is logged once, with the path and the fix.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import fsspec

from dstreams import events as ev

__all__ = ["EventLogWriter", "log_dirs", "read_events"]

_log = logging.getLogger("dstreams.eventlog")
_EVENTS = re.compile(r"events_(\d+)_.*\.jsonl$")


class EventLogWriter:
    """A listener that writes each event as a JSON line; see the module docstring."""

    def __init__(self, directory: str, app_id: str, max_file_bytes: int = 128 << 20) -> None:
        if max_file_bytes < 1024:
            raise ValueError(
                f"dstreams.eventLog.rolling.maxFileSize={max_file_bytes} bytes is too small; "
                "use at least 1k (the default is 128m)"
            )
        self.fs, _, (root,) = fsspec.get_fs_token_paths(directory)
        self.app_id = app_id
        self.dir = f"{root.rstrip('/')}/eventlog_v2_{app_id}"
        self.max_bytes = max_file_bytes
        self.index = 0
        self._written = 0
        self._fh: Any = None
        self.failed = False
        try:
            self.fs.makedirs(self.dir, exist_ok=True)
            with self.fs.open(f"{self.dir}/appstatus_{app_id}.inprogress", "wb"):
                pass
            self._roll()
        except OSError as e:
            raise OSError(
                e.errno,
                f"cannot write the event log under {self.dir}: {e.strerror or e}; fix "
                "dstreams.eventLog.dir or set dstreams.eventLog.enabled=false",
            ) from e

    def _roll(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self.index += 1
        self._fh = self.fs.open(f"{self.dir}/events_{self.index}_{self.app_id}.jsonl", "wb")
        self._written = 0

    def on_event(self, event: ev.Event) -> None:
        if self.failed:
            return
        line = (json.dumps(ev.to_json(event), separators=(",", ":")) + "\n").encode()
        try:
            if self._written and self._written + len(line) > self.max_bytes:
                self._roll()
            self._fh.write(line)
            self._written += len(line)
            if isinstance(event, (ev.BatchCompleted, ev.JobEnd, ev.AppEnd)):
                self._fh.flush()
            if isinstance(event, ev.AppEnd):
                self.close(completed=True)
        except OSError as e:
            self.failed = True
            _log.error(
                "the event log under %s could not be written (%s); it stops here and the "
                "application goes on: free space there or change dstreams.eventLog.dir",
                self.dir,
                e,
            )

    def close(self, completed: bool = False) -> None:
        if self._fh is None:
            return
        try:
            self._fh.close()
            if completed:
                self.fs.mv(
                    f"{self.dir}/appstatus_{self.app_id}.inprogress",
                    f"{self.dir}/appstatus_{self.app_id}",
                )
        except OSError as e:
            _log.error("could not close the event log under %s: %s", self.dir, e)
        self._fh = None


def log_dirs(directory: str) -> list[str]:
    """The application logs under ``directory`` (their full paths)."""
    fs, _, (root,) = fsspec.get_fs_token_paths(directory)
    try:
        entries = fs.ls(root, detail=False)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no event log directory {directory!r}; pass the dstreams.eventLog.dir of the "
            "applications to show"
        ) from None
    return sorted(
        str(e) for e in entries if str(e).rstrip("/").split("/")[-1].startswith("eventlog_v2_")
    )


def read_events(log_dir: str) -> Iterator[ev.Event]:
    """The events of one application's log directory, in order.

    A last line cut short (an application still running, or killed mid-write) is skipped;
    a line that is not JSON elsewhere raises, naming the file and line.
    """
    fs, _, (root,) = fsspec.get_fs_token_paths(log_dir)
    files = []
    for name in fs.ls(root, detail=False):
        m = _EVENTS.search(str(name))
        if m:
            files.append((int(m.group(1)), str(name)))
    for _, path in sorted(files):
        with fs.open(path, "rb") as fh:
            lines = fh.read().split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                if number >= len(lines) - 1:
                    break  # the line being written when the log was read or its writer died
                raise ValueError(f"{path}, line {number}: not an event log line ({e})") from e
            event = ev.from_json(obj)
            if event is not None:
                yield event
