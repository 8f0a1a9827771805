"""A worker SIGKILLed in the middle of a batch: state and windows stay exactly right.

The killed worker held half of the cached state and window partitions and half of the batch's
map outputs. The batch must still produce exactly the results of a run without failure (the
lost partitions are recomputed from lineage and checkpoints), and so must every later batch.
"""

from __future__ import annotations

import operator
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from dstreams.testing import CollectingSink, TestSource, run_batches

WINDOW = 5  # >= 5 x slide: the incremental (inverse-function) path


def make_batches(n: int) -> list[list[str]]:
    batches = []
    for b in range(n):
        lines = [f"w{(b * 7 + i) % 11} w{(b + i) % 5} common" for i in range(40)]
        batches.append(lines)
    return batches


def expected(batches: list[list[str]]) -> tuple[list[list[Any]], list[list[Any]]]:
    state: Counter[str] = Counter()
    states, windows = [], []
    per_batch = [Counter(w for line in lines for w in line.split()) for lines in batches]
    for i, counts in enumerate(per_batch):
        state.update(counts)
        states.append(sorted(state.items()))
        window: Counter[str] = Counter()
        for c in per_batch[max(0, i - WINDOW + 1) : i + 1]:
            window.update(c)
        windows.append(sorted((k, v) for k, v in window.items() if v > 0))
    return states, windows


def test_kill_a_worker_mid_batch_keeps_state_and_windows_exact(
    ssc: Any, sc: Any, tmp_path: Path
) -> None:
    ssc.checkpoint(str(tmp_path / "checkpoints"))
    marker = tmp_path / "killed"
    batches = make_batches(14)
    kill_batch = 8
    batches[kill_batch].append("KILL common")
    pids_before = set(sc._backend.worker_pids().values())

    def split(line: str) -> list[str]:
        if line.startswith("KILL"):
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass  # the recomputation after the kill runs normally
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return line.split()

    src = TestSource(ssc, batches, numSlices=4)
    pairs = src.stream.flatMap(split).map(lambda w: (w, 1))
    state = pairs.updateStateByKey(lambda new, old: sum(new) + (old or 0))
    window = pairs.reduceByKeyAndWindow(
        operator.add, operator.sub, WINDOW, 1, filterFunc=lambda kv: kv[1] > 0
    )
    state_sink = CollectingSink(state, sort=True)
    window_sink = CollectingSink(window, sort=True)

    run_batches(ssc, len(batches))
    ssc.awaitTerminationOrTimeout(0)  # raises if any batch failed

    killed_pid = int(marker.read_text())
    assert killed_pid in pids_before, "the kill happened in one of the original workers"
    assert killed_pid not in sc._backend.worker_pids().values(), "and that worker was replaced"
    want_states, want_windows = expected(batches)
    assert state_sink.results == want_states
    assert window_sink.results == want_windows
