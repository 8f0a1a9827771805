"""Headless Chromium loads the streaming page of a running program (Debian's ``chromium``).

``--dump-dom`` gives the page after its script ran: the charts and the batch table must hold
real values. A screenshot is saved under the test's temporary directory. ``.ci/run`` installs
Chromium; on a machine without it the test is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def test_chromium_renders_the_streaming_page_with_real_values(fed, tmp_path):
    chromium = _chromium()
    url = f"{fed.sc.uiWebUrl}/streaming/?token=do-not-show-me"
    profile = tmp_path / "profile"
    run = [chromium, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000"]
    dom = subprocess.run(
        [*run, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout
    assert "Streaming Statistics" in dom, dom[:2000]
    points = [int(n) for n in re.findall(r'class="timeline"[^>]*data-points="(\d+)"', dom)]
    if not points:  # attribute order as Chromium serialises it
        points = [int(n) for n in re.findall(r'data-points="(\d+)"', dom)]
    assert len(points) == 4 and min(points) == len(fed.counts), points
    assert re.search(r'id="completed-batches">(\d+)<', dom).group(1) == str(len(fed.counts))
    rows = re.findall(r"<tr><td><a href=\"/streaming/batch/\?id=(\d+)\">", dom)
    assert rows and all(int(r) in fed.counts for r in rows)
    shot = tmp_path / "streaming.png"
    subprocess.run(
        [*run, f"--screenshot={shot}", "--window-size=1200,1100", url],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
