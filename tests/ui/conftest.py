"""Fixtures of the UI tests: one streaming program fed through a real socket, its UI on HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from uihelp import Fed

from dstreams import Conf, Context


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    conf = (
        Conf(loadDefaults=False)
        .set("dstreams.ui.enabled", "true")
        .set("dstreams.ui.port", "0")
        .set("dstreams.eventLog.enabled", "true")
        .set("dstreams.eventLog.dir", str(tmp_path_factory.mktemp("events")))
        .set("dstreams.eventLog.rolling.maxFileSize", "16k")
        .set("dstreams.ui.authToken", "do-not-show-me")  # to see it redacted in the log
    )
    sc = Context("local[2]", "ui-tests", conf=conf)
    f = Fed(sc)
    f.finish()
    yield f
    sc.stop()
