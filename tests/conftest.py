"""Shared fixtures for the batch-core tests.

Only one Context may be active per process. The ``sc`` fixture hands out one shared
``local[2]`` Context, started on first use and reused by every test of a module; it is stopped
when the module ends (streaming tests define their own module-scoped ``sc``). A test that needs
a Context of its own (special configuration, fault injection, constructor errors) asks for
``fresh_context`` or ``no_context``, which stop the shared one first; the next test asking for
``sc`` starts it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dstreams import Conf, Context


class _SharedContext:
    def __init__(self) -> None:
        self.ctx: Context | None = None

    def get(self) -> Context:
        if self.ctx is None or self.ctx._stopped:
            self.ctx = Context("local[2]", "core-tests")
        return self.ctx

    def release(self) -> None:
        if self.ctx is not None:
            self.ctx.stop()
            self.ctx = None


_shared = _SharedContext()


@pytest.fixture(scope="module", autouse=True)
def _stop_shared_context_after_module() -> Iterator[None]:
    yield
    _shared.release()


@pytest.fixture
def sc() -> Context:
    return _shared.get()


@pytest.fixture
def no_context() -> Iterator[None]:
    """No Context is active during the test (the shared one is stopped)."""
    _shared.release()
    assert Context._active is None, "another Context is still active"
    yield
    active = Context._active
    if active is not None:  # a test that forgot to stop its Context must not break the next
        active.stop()
        pytest.fail("the test left a Context running")


@pytest.fixture
def fresh_context(no_context: None) -> Iterator[Callable[..., Context]]:
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


def _ui_off_by_default() -> None:
    """The suite's Contexts start without the web UI (the UI tests turn it on).

    Hundreds of Contexts each binding a port would slow the suite and could run out of the
    16 ports tried from 4040; driver subprocesses get the same through the environment.
    """
    import os

    from dstreams import conf

    os.environ["DSTREAMS_CONF_UI__ENABLED"] = "false"
    key = conf.KEYS["dstreams.ui.enabled"]
    conf.KEYS["dstreams.ui.enabled"] = conf.ConfigKey(key.name, "false", key.doc)


_ui_off_by_default()
