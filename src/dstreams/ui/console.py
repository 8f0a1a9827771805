"""The terminal's live view: a status line and stage progress bars, drawn with ``rich``.

``dstreams submit`` on a terminal asks for it (see ``cli.submit``); the Context then starts a
:class:`ConsoleProgress` over the application's :class:`~dstreams.ui.status.StatusStore`. What it
draws is computed by two pure functions of the store, :func:`status_line` and
:func:`stage_bars`, which the tests call without a terminal.

- The status line: the last completed batch's time, the input rate over the last ten batches,
  its processing time and total delay, queued batches, and the executors alive (and lost).
  A batch program (no streaming context) shows its jobs instead.
- One bar per active stage that has run for at least ``STAGE_BAR_AFTER_S`` (Spark's console
  progress shows stages after 500 ms too), Spark's ``(done + running) / total`` beside it.

The view is drawn on standard error, never on standard output, so a program's output piped
elsewhere stays clean; it is transient (erased at the end).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

from dstreams.ui.status import StatusStore

__all__ = ["STAGE_BAR_AFTER_S", "ConsoleProgress", "stage_bars", "status_line"]

#: active stages get a bar once they have run this long (seconds)
STAGE_BAR_AFTER_S = 0.5


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:,.0f} ms"


def status_line(store: StatusStore) -> str:
    """The one-line summary of the application's state (see the module docstring)."""
    with store.lock:
        alive = sum(1 for x in store.executors.values() if x["active"])
        lost = len(store.executors) - alive
        execs = f"executors {alive}" + (f" ({lost} lost)" if lost else "")
        if store.streaming["batch_duration"] <= 0:
            running = sum(1 for j in store.jobs.values() if j["status"] == "RUNNING")
            done = sum(1 for j in store.jobs.values() if j["status"] != "RUNNING")
            return f"jobs {done} done, {running} running | {execs}"
        done_batches = store.completed_batches()
        queued = len(store.active_batches())
        if not done_batches:
            return f"streaming: waiting for the first batch | queued {queued} | {execs}"
        last = done_batches[-1]
        recent = done_batches[-10:]
        seconds = len(recent) * store.streaming["batch_duration"] / 1000.0
        rate = sum(b["numRecords"] for b in recent) / seconds
        stamp = time.strftime("%H:%M:%S", time.localtime(last["batchTime"] / 1000))
        stamp += f".{last['batchTime'] % 1000:03d}"
        parts = [f"batch {stamp}", f"input {rate:,.0f} rec/s"]
        if last["processingStartTime"] >= 0 and last["processingEndTime"] >= 0:
            parts.append(
                f"processing {_ms(last['processingEndTime'] - last['processingStartTime'])}"
            )
            parts.append(f"delay {_ms(last['processingEndTime'] - last['batchTime'])}")
        if last["status"] == "FAILED":
            parts.append("FAILED")
        parts.append(f"queued {queued}")
        parts.append(execs)
        return " | ".join(parts)


def stage_bars(
    store: StatusStore, now_ms: int, after_s: float = STAGE_BAR_AFTER_S
) -> list[tuple[str, int, int, int]]:
    """``(label, done, running, total)`` of each active stage older than ``after_s``."""
    bars = []
    with store.lock:
        for s in store.stages.values():
            if s["status"] != "ACTIVE" or now_ms - s["submissionTime"] < after_s * 1000:
                continue
            label = f"Stage {s['stageId']}" + (
                f" (attempt {s['attemptId']})" if s["attemptId"] else ""
            )
            bars.append((label, s["numCompleteTasks"], s["numActiveTasks"], s["numTasks"]))
    return bars


class ConsoleProgress:
    """Draw :func:`status_line` and :func:`stage_bars` live on ``stream`` until :meth:`stop`."""

    def __init__(
        self,
        store: StatusStore,
        stream: IO[str] | None = None,
        refresh_per_second: float = 4,
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        self._store = store
        self._wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self._group, self._bar, self._table, self._text = Group, ProgressBar, Table, Text
        out = stream if stream is not None else sys.stderr
        self._console = Console(file=out, highlight=False)
        self._live = Live(
            get_renderable=self._render,
            console=self._console,
            refresh_per_second=refresh_per_second,
            transient=True,
            # a program's prints land above the view only when both go to the terminal
            redirect_stdout=sys.stdout.isatty() and out is sys.stderr,
            redirect_stderr=out is sys.stderr,
        )

    def _render(self) -> Any:
        line = self._text(status_line(self._store), style="bold")
        bars = stage_bars(self._store, self._wall_ms())
        if not bars:
            return line
        table = self._table.grid(padding=(0, 1))
        for label, done, running, total in bars:
            table.add_row(
                label,
                self._bar(total=max(total, 1), completed=done, width=40),
                f"({done} + {running}) / {total}",
            )
        return self._group(line, table)

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()
