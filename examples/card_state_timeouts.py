"""Fraud-style per-card state with mapWithState: spend per card, flagged bursts, idle cards
timing out.

Usage: python examples/card_state_timeouts.py

Each batch (0.5 s) brings payments ``(card, amount)``. The state of a card is its spend and
payment count in the current session. A card with more than 3 payments, or more than 1,000
spent, in one session is flagged. A card idle for 2 s times out: its session is closed and
reported. Only the cards that paid in a batch (and those timing out) are touched, whatever
the number of cards known.
"""

from __future__ import annotations

import tempfile
from typing import Any

from dstreams import Context, StateSpec
from dstreams.testing import TestSource, manual_context, run_batches


def track(card: str, amount: Any, state: Any) -> tuple[Any, ...]:
    if state.isTimingOut():
        spent, n = state.get()
        return (card, "session closed", spent, n)
    spent, n = state.getOption() or (0, 0)
    spent, n = spent + amount, n + 1
    state.update((spent, n))
    return (card, "FLAGGED" if n > 3 or spent > 1000 else "ok", spent, n)


def main() -> None:
    with Context("local[2]", "card-state") as sc:
        ssc = manual_context(sc, 0.5)
        ssc.checkpoint(tempfile.mkdtemp(prefix="card-state-"))
        payments = [
            [("card-1", 20), ("card-2", 900)],
            [("card-1", 35), ("card-2", 250)],
            [("card-1", 10), ("card-1", 12)],
            [],
            [("card-3", 5)],
            [],
            [],
            [],
            [],
        ]
        events = TestSource(ssc, payments, numSlices=2).stream.mapWithState(
            StateSpec.function(track).timeout(2)
        )
        events.pprint()
        run_batches(ssc, len(payments))
        ssc.stop(stopSparkContext=False)


if __name__ == "__main__":
    main()
