"""The direct-source core over an in-memory broker (no server): the plan is all or nothing, it
survives the checkpoint, and commits follow successful output only."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dstreams.connectors.direct import DirectInputDStream, Range
from dstreams.errors import OffsetRangeUnavailableError
from dstreams.testing import CollectingSink, manual_context, run_batches


class Logs(dict):  # type: ignore[type-arg]
    """partition -> records (offsets are list indexes), saved where the workers read them."""

    def __init__(self, path: Path) -> None:
        super().__init__(a=[], b=[])
        self.path = str(path)
        self.save()

    def add(self, partition: str, *records: str) -> None:
        self[partition].extend(records)
        self.save()

    def save(self) -> None:
        Path(self.path).write_text(json.dumps(dict(self)))


class MemoryAdapter:
    """A broker of lists in a file; ``fail_span`` makes planning of one partition fail once."""

    name = "memory"

    def __init__(self, parts: list[str], path: str) -> None:
        self.parts, self.path = parts, path
        self.fail_span: str | None = None
        self.commits: list[dict[str, int]] = []

    def partitions(self) -> list[str]:
        return list(self.parts)

    def resolve(self, partition: str, start_from: Any) -> int:
        return 0

    def _logs(self) -> dict[str, list[str]]:
        return dict(json.loads(Path(self.path).read_text()))

    def backlog(self, partition: str, position: int) -> int:
        return len(self._logs()[partition]) - position

    def span(self, partition: str, position: int, limit: int | None, split: int | None):
        if self.fail_span == partition:
            self.fail_span = None
            raise ConnectionError(f"the broker dropped the connection planning {partition}")
        n = len(self._logs()[partition])
        end = n if limit is None else min(n, position + limit)
        cuts = list(range(position + split, end, split)) if split else []
        return end - position, end, cuts

    def read(self, r: Range) -> Iterator[Any]:
        got = self._logs()[r.partition][r.start : r.end]
        if len(got) != r.count:
            raise OffsetRangeUnavailableError(f"{r} is gone")
        return iter(got)

    def commit(self, ends: dict[str, int]) -> None:
        self.commits.append(dict(ends))

    def describe(self, r: Range) -> dict[str, Any]:
        return {"partition": r.partition, "from": r.start, "until": r.end, "count": r.count}

    def offset_range(self, r: Range) -> Any:
        return (r.partition, r.start, r.end)


def test_a_failed_plan_skips_nothing_and_commits_follow_successful_output(sc, tmp_path) -> None:
    logs = Logs(tmp_path / "logs.json")
    ssc = manual_context(sc, 0.05)
    adapter = MemoryAdapter(["a", "b"], logs.path)
    stream = DirectInputDStream(ssc, adapter, None, split_records=2)
    sink = CollectingSink(stream)
    failing = {"on": False}

    def maybe_fail(rdd: Any) -> None:
        if failing["on"]:
            raise RuntimeError("this batch's output fails")

    stream.foreachRDD(maybe_fail)
    try:
        logs.add("a", "a0", "a1", "a2")
        logs.add("b", "b0")
        run_batches(ssc, 1)
        assert sink.results[-1] == ["a0", "a1", "a2", "b0"]
        assert adapter.commits == [{"a": 3, "b": 1}]
        # planning fails after partition a: the batch is lost, a's position is not advanced
        logs.add("a", "a3")
        logs.add("b", "b1")
        adapter.fail_span = "b"
        run_batches(ssc, 1)
        logs.add("a", "a4")
        run_batches(ssc, 1)
        assert sink.results[-1] == ["a3", "a4", "b1"], "records of the failed plan were skipped"
        # an output that fails: no commit for its batch
        failing["on"] = True
        logs.add("b", "b2")
        run_batches(ssc, 1)
        assert adapter.commits[-1] == {"a": 5, "b": 2}
        failing["on"] = False
        with pytest.raises(Exception, match="this batch's output fails"):
            ssc.awaitTerminationOrTimeout(0)
        data = pickle.loads(pickle.dumps(stream._checkpoint_data()))
    finally:
        ssc.stop(stopSparkContext=False)
    assert [r for b in sink.results for r in b] == ["a0", "a1", "a2", "b0", "a3", "a4", "b1", "b2"]
    # the plans survive a checkpoint's pickling: the same ranges and positions come back
    again = manual_context(sc, 0.05)
    try:
        twin = DirectInputDStream(again, MemoryAdapter(["a", "b"], logs.path), None)
        twin._restore_checkpoint(data)
        assert twin._plans == stream._plans and twin._positions == {"a": 5, "b": 3}
        assert [r.count for r in twin._plans[max(twin._plans)]] == [0, 1]
    finally:
        again.stop(stopSparkContext=False)
