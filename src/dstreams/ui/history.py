"""The history server (``dstreams history DIR``): the same UI over finished applications' logs.

Each ``eventlog_v2_*`` directory under ``DIR`` (any fsspec URL) is replayed into a
:class:`~dstreams.ui.status.StatusStore`; the server lists them at ``/`` and serves each one's
pages at ``/history/<app id>/`` and its REST API at ``/api/v1/applications/<app id>/``. Logs are
read again every ``refresh`` seconds, so applications still running show up and grow.
"""

from __future__ import annotations

import logging
import threading

from dstreams.ui.eventlog import log_dirs, read_events
from dstreams.ui.server import UIServer
from dstreams.ui.status import StatusStore

__all__ = ["HistoryServer", "load_store"]

_log = logging.getLogger("dstreams.history")


def load_store(log_dir: str) -> StatusStore:
    """One application's store, replayed from its log."""
    store = StatusStore(live=False)
    for event in read_events(log_dir):
        store.on_event(event)
    return store


class HistoryServer:
    """Serves every application logged under ``directory``."""

    def __init__(
        self,
        directory: str,
        host: str = "127.0.0.1",
        port: int = 18080,
        token: str | None = None,
        auth_disabled: bool = False,
        refresh: float = 5.0,
    ) -> None:
        self.directory = directory
        self._stores: dict[str, StatusStore] = {}
        self._lock = threading.Lock()
        log_dirs(directory)  # a missing directory fails here, with the fix
        self.reload()
        self._stop = threading.Event()
        self.server = UIServer(self.stores, host, port, token, auth_disabled, history=True)
        self._refresh = refresh
        threading.Thread(target=self._reloader, name="dstreams-history", daemon=True).start()

    def stores(self) -> dict[str, StatusStore]:
        with self._lock:
            return dict(self._stores)

    def reload(self) -> None:
        stores: dict[str, StatusStore] = {}
        for d in log_dirs(self.directory):
            try:
                store = load_store(d)
            except (OSError, ValueError) as e:
                _log.error("skipping the event log %s: %s", d, e)
                continue
            stores[store.app["id"] or d.rstrip("/").split("/")[-1]] = store
        with self._lock:
            self._stores = stores

    def _reloader(self) -> None:
        while not self._stop.wait(self._refresh):
            try:
                self.reload()
            except OSError as e:
                _log.error("could not read %s: %s", self.directory, e)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self._stop.set()
        self.server.stop()
