"""Driver crash tests' shared loop: SIGKILL a program at random moments while input arrives."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable


def kill_while_feeding(
    start: Callable[[], subprocess.Popen[str]],
    feed: Callable[[int], None],
    rng: random.Random,
    kills: int,
    span: tuple[float, float],
) -> None:
    """``kills`` times: start the program, feed a file every 50 ms for a random time in
    ``span`` seconds, SIGKILL it, and feed 0-3 more files while it is dead."""
    for _ in range(kills):
        proc = start()
        deadline = time.monotonic() + rng.uniform(*span)
        while time.monotonic() < deadline:
            feed(1)
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        feed(rng.randint(0, 3))  # while the driver is dead
