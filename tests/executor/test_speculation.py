"""Speculative execution on real worker processes: a straggler gets a copy that wins."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

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
