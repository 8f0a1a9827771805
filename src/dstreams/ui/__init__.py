"""Observability: the web UI, the REST API, Prometheus metrics, the event log and history.

:func:`start` is called by the Context (through ``runtime.start_observers``): it registers on
the application's event bus a :class:`~dstreams.ui.status.StatusStore` (which the UI, the API,
``/metrics`` and the terminal status read) and, when asked, an event-log writer, then starts the
UI server and posts the application's start. Everything here reads events only; nothing reaches
into the scheduler.

The UI needs the ``ui`` extra (``pip install 'dstreams[ui]'``: aiohttp, prometheus_client); when
it is missing, the UI is off and one log line says how to turn it on.
"""

from __future__ import annotations

import getpass
import logging
import sys
from typing import Any

from dstreams import events as ev
from dstreams.ui.status import StatusStore

__all__ = ["Observers", "check_bind", "is_loopback", "query_view", "start", "validate"]

_log = logging.getLogger("dstreams.ui")


class Observers:
    """What :func:`start` started; :meth:`stop` ends it (the application's end included)."""

    def __init__(self, bus: ev.EventBus, store: StatusStore | None) -> None:
        self.bus = bus
        self.store = store
        self.server: Any = None
        self.writer: Any = None
        self.console: Any = None

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def stop(self) -> None:
        self.bus.post(ev.AppEnd(ev.now_ms()))
        self.bus.stop()
        if self.console is not None:
            self.console.stop()
        if self.writer is not None:
            self.writer.close(completed=True)
        if self.server is not None:
            self.server.stop()


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, auth_disabled: bool) -> None:
    """Refuse to serve off loopback without a token, unless auth is explicitly off."""
    if not is_loopback(host) and not token and not auth_disabled:
        raise ValueError(
            f"dstreams.ui.host={host!r} is not a loopback address: set dstreams.ui.authToken to "
            "a secret (clients then send it), or dstreams.ui.authDisabled=true to serve the "
            "read-only UI to anyone who reaches the port, or bind to 127.0.0.1"
        )


def validate(conf: Any) -> None:
    """Fail on UI settings that cannot work, before the Context starts anything."""
    if not conf.get_bool("dstreams.ui.enabled"):
        return
    check_bind(
        conf.get_str("dstreams.ui.host") or "127.0.0.1",
        conf.get_str("dstreams.ui.authToken"),
        bool(conf.get_bool("dstreams.ui.authDisabled")),
    )
    port = conf.get_int("dstreams.ui.port")
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"dstreams.ui.port={port} is not a port; use 0-65535 (0: any free)")


def start(sc: Any, bus: ev.EventBus) -> Observers:
    """Start the store, the event log and the UI of Context ``sc`` (as its conf says)."""
    conf = sc._conf
    ui_on = conf.get_bool("dstreams.ui.enabled")
    log_on = conf.get_bool("dstreams.eventLog.enabled")
    store = None
    if ui_on or sc._console_progress:
        store = StatusStore(
            retained_batches=conf.get_int("dstreams.streaming.ui.retainedBatches") or 1000,
            retained_jobs=conf.get_int("dstreams.ui.retainedJobs") or 1000,
            retained_stages=conf.get_int("dstreams.ui.retainedStages") or 1000,
            retained_tasks=conf.get_int("dstreams.ui.retainedTasks") or 1000,
        )
    obs = Observers(bus, store)
    server = None
    if ui_on:
        try:
            from dstreams.ui.server import UIServer
        except ImportError as e:
            _log.warning(
                "the web UI is off: %s is not installed (pip install 'dstreams[ui]', or set "
                "dstreams.ui.enabled=false to silence this)",
                e.name,
            )
        else:
            host = conf.get_str("dstreams.ui.host") or "127.0.0.1"
            port = conf.get_int("dstreams.ui.port")
            server = UIServer(
                lambda: {sc.applicationId: store} if store is not None else {},
                host,
                4040 if port is None else port,
                conf.get_str("dstreams.ui.authToken"),
                conf.get_bool("dstreams.ui.authDisabled"),
                conf.get_int("dstreams.port.maxRetries") or 16,
                views=lambda app_id, name, key, limit: query_view(sc, name, key, limit),
            )
    if log_on:
        from dstreams.ui.eventlog import EventLogWriter

        try:
            obs.writer = EventLogWriter(
                conf.get_str("dstreams.eventLog.dir") or "/tmp/dstreams-events",
                sc.applicationId,
                conf.get_size_bytes("dstreams.eventLog.rolling.maxFileSize"),
            )
        except BaseException:
            if server is not None:
                server.stop()
            raise
        bus.add_listener(obs.writer)
    if store is not None:
        bus.add_listener(store)
    obs.server = server
    from dstreams import __version__

    bus.post(
        ev.AppStart(
            sc.startTime,
            sc.applicationId,
            sc.appName,
            sc.master,
            _user(),
            __version__,
            [[k, v] for k, v in conf.redacted()],
        )
    )
    bus.wait_until_empty(5)  # the UI knows the application before its address is announced
    if server is not None:
        print(f"dstreams UI at {server.url}", file=sys.stderr, flush=True)
    if store is not None and sc._console_progress:
        try:
            from dstreams.ui.console import ConsoleProgress
        except ImportError as e:
            _log.warning("no progress in the terminal: %s is not installed (the ui extra)", e.name)
        else:
            obs.console = ConsoleProgress(store)
            obs.console.start()
    return obs


def query_view(sc: Any, name: str, key: str | None, limit: int) -> dict[str, Any]:
    """``GET .../views/{name}?key=&limit=``: rows of the running program's view ``name``.

    With ``key``, the rows of that key (``lookup``; a key that reads as a number is looked up
    as the number too). Without, the first ``limit`` rows.
    """
    from dstreams.streaming.context import StreamingContext

    ssc = StreamingContext._activeContext
    if ssc is None or ssc._sc is not sc:
        raise LookupError("no streaming context is running")
    batch, rdd = ssc._views.entry(name)
    if key is None:
        rows = [list(r) if isinstance(r, tuple) else r for r in rdd.take(limit)]
    else:
        keys: list[Any] = [key]
        for cast in (int, float):
            try:
                keys.append(cast(key))
                break
            except ValueError:
                continue
        rows = []
        for k in keys:
            rows += [[k, v] for v in rdd.lookup(k)[: limit - len(rows)]]
            if len(rows) >= limit:
                break
    return {"view": name, "batchTime": batch, "key": key, "rows": rows[:limit]}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
