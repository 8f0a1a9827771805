"""The streaming demo runs end to end on the system clock and prints its summary."""

from __future__ import annotations

import pytest

from dstreams.demo_streaming import main


def test_demo_runs_and_summarises(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--duration", "2", "--batch", "0.5", "--window", "2.5", "--rate", "200"]) == 0
    out = capsys.readouterr().out
    assert "Time: " in out and "records=" in out and "scheduling delay=" in out
    assert "summary:" in out
