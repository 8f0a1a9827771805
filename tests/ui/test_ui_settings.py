"""UI settings on real Contexts: a public bind needs a token, a busy port moves on."""

from __future__ import annotations

import pytest
from uihelp import get

from dstreams import Conf, Context


def test_a_public_bind_without_a_token_is_refused_before_anything_starts(no_context):
    conf = (
        Conf(loadDefaults=False)
        .set("dstreams.ui.enabled", "true")
        .set("dstreams.ui.host", "0.0.0.0")
    )
    with pytest.raises(ValueError, match=r"dstreams.ui.host='0.0.0.0'.*authToken.*authDisabled"):
        Context("local[1]", "public", conf=conf)
    assert Context._active is None


def test_a_busy_port_moves_to_the_next(no_context):
    import socket

    busy = socket.create_server(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    conf = (
        Conf(loadDefaults=False)
        .set("dstreams.ui.enabled", "true")
        .set("spark.ui.port", str(port))  # the spark. alias
    )
    try:
        with Context("local[1]", "busy", conf=conf) as sc:
            assert sc.uiWebUrl is not None
            got = int(sc.uiWebUrl.rsplit(":", 1)[1])
            assert port < got <= port + 16
            assert get(f"{sc.uiWebUrl}/api/v1/applications")[0]["name"] == "busy"
    finally:
        busy.close()
