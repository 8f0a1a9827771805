"""Shared fixtures for the batch-core tests.

Only one Context may be active per process, so the shared ``sc`` is module-scoped: each test
module gets one ``local[2]`` Context, reused by all its tests and stopped at the module's end
(streaming tests define their own module-scoped ``sc`` the same way). Tests that need a Context
with a special configuration use ``fresh_context``, which must not be combined with ``sc``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dstreams import Conf, Context


@pytest.fixture(scope="module")
def sc() -> Iterator[Context]:
    context = Context("local[2]", "core-tests")
    try:
        yield context
    finally:
        context.stop()


@pytest.fixture
def fresh_context() -> Iterator[Callable[..., Context]]:
    """make(master="local[2]", conf={key: value}): a new Context, stopped after the test."""
    made: list[Context] = []

    def make(master: str = "local[2]", conf: dict[str, Any] | None = None) -> Context:
        c = Conf(loadDefaults=False).setAll((conf or {}).items())
        ctx = Context(master, "core-tests-fresh", conf=c)
        made.append(ctx)
        return ctx

    try:
        yield make
    finally:
        for ctx in made:
            ctx.stop()
