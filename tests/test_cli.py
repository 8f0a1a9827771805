"""The `dstreams` command: submit a program with a master and settings; the batch demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "dstreams.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def test_submit_passes_master_settings_and_arguments(tmp_path: Path):
    program = tmp_path / "job.py"
    program.write_text(
        "import sys\n"
        "from dstreams import Context\n"
        "sc = Context(appName='submitted')\n"  # no master in code: --master decides
        "conf = sc.getConf()\n"
        "print(sc.master, sc.defaultParallelism, conf.get('dstreams.task.maxFailures'))\n"
        "print(sys.argv[1:], sc.parallelize(range(10)).sum())\n"
        "sc.stop()\n"
    )
    out = run_cli(
        "submit", "--master", "local[3]", "--conf", "spark.task.maxFailures=2", str(program), "x"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["local[3] 3 2", "['x'] 45"]


def test_submit_reports_a_missing_program_and_bad_settings(tmp_path: Path):
    out = run_cli("submit", str(tmp_path / "nope.py"))
    assert out.returncode != 0 and "no such program" in out.stderr
    out = run_cli("submit", "--conf", "novalue", str(tmp_path / "nope.py"))
    assert out.returncode != 0 and "KEY=VALUE" in out.stderr


def test_batch_demo_counts_every_word():
    out = run_cli("demo-batch", "--words", "30000")
    assert out.returncode == 0, out.stderr
    assert "counted 30,000 words" in out.stdout
