"""Speculative execution on real worker processes: a straggler gets a copy that wins."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dstreams import TaskContext


def test_a_straggler_is_overtaken_by_its_speculative_copy(fresh_context: Any, tmp_path: Path):
    sc = fresh_context(
        "local[2]",
        {
            "dstreams.speculation": "true",
            "dstreams.speculation.minTaskRuntime": "50ms",
            "dstreams.speculation.quantile": "0.5",
        },
    )

    def work(i: int, it: Any) -> list[tuple[int, int, int]]:
        tc = TaskContext.get()
        assert tc is not None
        first = tmp_path / "straggler-started"
        if i == 3 and not first.exists():
            first.write_text(str(tc.attemptNumber()))
            time.sleep(60)  # far beyond the test's timeout: only a copy can finish it
            (tmp_path / "straggler-finished").write_text("")
        return [(i, tc.attemptNumber(), sum(it))]

    out = sc.parallelize(range(40), 8).mapPartitionsWithIndex(work).collect()
    assert [(p, s) for p, _, s in out] == [(p, sum(range(p * 5, p * 5 + 5))) for p in range(8)]
    attempts = {p: a for p, a, _ in out}
    straggler_attempt = int((tmp_path / "straggler-started").read_text())
    assert attempts[3] > straggler_attempt, "partition 3's result came from a later copy"
    # the losing attempt was killed: its "killed" answer releases it from the scheduler (an
    # attempt still sleeping would stay tracked for a minute); each job drains the answers
    for _ in range(200):
        assert sc.parallelize(range(4), 4).map(lambda x: x * 2).collect() == [0, 2, 4, 6]
        if not sc._runner.dag.tasks:
            break
    assert not sc._runner.dag.tasks
    assert not (tmp_path / "straggler-finished").exists()


@pytest.mark.parametrize("master", ["local[3]", "ray"])
def test_a_stopped_worker_does_not_hold_up_the_stage(
    fresh_context: Any, tmp_path: Path, master: str, request: Any
):
    """SIGSTOP one worker mid-stage: its queued task moves and its running task is copied.

    On Ray too (3 executor actors on the 3-node test cluster): the worker processes run on
    this machine, so the test stops one by its pid.
    """
    import os
    import signal

    settings = {"dstreams.speculation": "true"}
    if master == "ray":
        request.getfixturevalue("ray_session")
        settings["dstreams.executor.instances"] = "3"
    sc = fresh_context(master, settings)
    pids = sc._backend.worker_pids()
    marks = tmp_path / "marks"
    marks.mkdir()

    def work(i: int, it: Any) -> list[int]:
        (marks / f"{i}-{os.getpid()}").touch()
        deadline = time.monotonic() + 0.15
        while time.monotonic() < deadline:
            pass  # 150 ms of CPU, like a real task
        return [sum(it)]

    assert sc.parallelize(range(60), 6).mapPartitionsWithIndex(work).sum() == sum(range(60))
    victim = sorted(pids.values())[0]
    stopped = threading.Event()

    def stop_when_busy() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(m.name.endswith(f"-{victim}") for m in marks.iterdir()):
                os.kill(victim, signal.SIGSTOP)
                stopped.set()
                return
            time.sleep(0.002)

    for m in marks.iterdir():
        m.unlink()
    t = threading.Thread(target=stop_when_busy)
    t.start()
    start = time.monotonic()
    try:
        total = sc.parallelize(range(60), 6).mapPartitionsWithIndex(work).sum()
        took = time.monotonic() - start
    finally:
        t.join()
        os.kill(victim, signal.SIGCONT)
    assert stopped.is_set()
    assert total == sum(range(60))
    assert took < 3.0, f"the stage waited for the stopped worker ({took:.1f}s)"
    # the worker comes back: it is not lost, and takes tasks again
    assert victim in sc._backend.worker_pids().values()
    for _ in range(100):
        sc.parallelize(range(6), 6).count()
        if all(ex.responsive for ex in sc._runner.dag.executors.values()):
            break
        time.sleep(0.05)
    assert all(ex.responsive for ex in sc._runner.dag.executors.values())
