"""The UI's HTTP server: pages, ``/api/v1`` and ``/metrics``, served by aiohttp on a thread.

One :class:`UIServer` serves one or more applications' :class:`StatusStore`s: the live driver
serves its own (pages at ``/``), the history server serves each finished application's
(pages at ``/history/<app id>/``). The REST API is always ``/api/v1/applications[/<id>/...]``.
Everything is read-only (GET only).

Binding: ``host`` and ``port`` as given; a busy port moves to the next one, up to
``max_retries`` times (Spark's ``spark.port.maxRetries``). A host that is not loopback needs a
token, or an explicit ``auth_disabled``; with a token every request must carry it
(``Authorization: Bearer``, a ``dstreams_ui_token`` cookie, or ``?token=`` once, which sets the
cookie).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from dstreams.ui import api, check_bind, pages
from dstreams.ui.metrics import registry_for, render
from dstreams.ui.status import StatusStore

__all__ = ["UIServer"]

COOKIE = "dstreams_ui_token"


class UIServer:
    """Serves stores over HTTP on a background thread; see the module docstring."""

    def __init__(
        self,
        stores: Callable[[], dict[str, StatusStore]],
        host: str = "127.0.0.1",
        port: int = 4040,
        token: str | None = None,
        auth_disabled: bool = False,
        max_retries: int = 16,
        history: bool = False,
        views: Callable[[str, str, str | None, int], Any] | None = None,
    ) -> None:
        check_bind(host, token, auth_disabled)
        self._stores = stores
        #: (app id, view name, key or None, row limit) -> JSON value; None: no live views
        self._views = views
        self._token = token or None
        self._history = history
        self._registries: dict[str, Any] = {}
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self.port = self._loop.run_until_complete(self._start(port, max_retries))
            except BaseException as e:  # noqa: BLE001 - reported to the constructor
                errors.append(e)
                started.set()
                return
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="dstreams-ui", daemon=True)
        self._thread.start()
        started.wait(30)
        if errors:
            raise errors[0]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def _start(self, port: int, retries: int) -> int:
        app = web.Application(middlewares=[self._auth])
        app.add_routes(
            [
                web.get("/", self._root),
                web.get("/metrics", self._metrics),
                web.get("/api/v1/applications", self._applications),
                web.get("/api/v1/applications/{app}", self._application),
                web.get("/api/v1/applications/{app}/{what:.*}", self._api),
                web.get("/history/{app}/{page:.*}", self._history_page),
                web.get("/{page:.*}", self._live_page),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        last: OSError | None = None
        for p in range(port, port + retries + 1) if port else [0]:
            site = web.TCPSite(self._runner, self.host, p, reuse_address=False)
            try:
                await site.start()
            except OSError as e:
                last = e
                continue
            server = site._server
            assert server is not None
            return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        raise OSError(
            f"no free port for the UI in {port}-{port + retries} on {self.host} ({last}); set "
            "dstreams.ui.port (0: any free port) or dstreams.ui.enabled=false"
        )

    def stop(self) -> None:
        if self._runner is None or not self._thread.is_alive():
            return

        async def shutdown() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        except Exception:  # noqa: BLE001 - stopping anyway
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # -- auth ----------------------------------------------------------------------------------
    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="the UI is read-only")
        token = self._token
        if token is None:
            return await handler(request)
        given = request.query.get("token")
        header = request.headers.get("Authorization", "")
        candidates = [
            given,
            header[7:] if header.startswith("Bearer ") else None,
            request.cookies.get(COOKIE),
        ]
        if not any(c and hmac.compare_digest(c.encode(), token.encode()) for c in candidates):
            return web.Response(
                status=401,
                text="this UI needs its token: send 'Authorization: Bearer <token>' or open "
                "the page once with ?token=<token>",
            )
        response = await handler(request)
        if given:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    # -- helpers -------------------------------------------------------------------------------
    def _store(self, app_id: str) -> StatusStore:
        store = self._stores().get(app_id)
        if store is None:
            raise web.HTTPNotFound(text=f"no application with id {app_id!r}")
        return store

    @staticmethod
    def _json(value: Any) -> web.Response:
        return web.Response(text=json.dumps(value, indent=2), content_type="application/json")

    # -- handlers ------------------------------------------------------------------------------
    async def _root(self, request: web.Request) -> web.StreamResponse:
        stores = self._stores()
        if self._history:
            rows = "".join(
                f"<li><a href='/history/{i}/'>{pages._e(s.app['name'])}</a> ({pages._e(i)}, "
                f"{'completed' if s.app['end'] >= 0 else 'incomplete'})</li>"
                for i, s in stores.items()
            )
            return web.Response(
                text=f"<!doctype html><html><head><meta charset='utf-8'><title>dstreams history"
                f"</title></head><body><h2>dstreams history ({len(stores)} applications)</h2>"
                f"<ul>{rows}</ul></body></html>",
                content_type="text/html",
            )
        store = next(iter(stores.values()))
        raise web.HTTPFound("streaming/" if store.streaming["started"] >= 0 else "jobs/")

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        stores = self._stores()
        app_id = request.query.get("app") or next(iter(stores), "")
        store = self._store(app_id)
        registry = self._registries.get(app_id)
        if registry is None:
            registry = self._registries[app_id] = registry_for(store)
        return web.Response(
            body=render(registry), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    async def _applications(self, request: web.Request) -> web.StreamResponse:
        return self._json(api.applications(list(self._stores().values())))

    async def _application(self, request: web.Request) -> web.StreamResponse:
        store = self._store(request.match_info["app"])
        return self._json(api.applications([store])[0])

    async def _api(self, request: web.Request) -> web.StreamResponse:
        store = self._store(request.match_info["app"])
        parts = [p for p in request.match_info["what"].split("/") if p]
        q = request.query
        if len(parts) == 2 and parts[0] == "views":
            return await self._view(request.match_info["app"], parts[1], q)
        try:
            value = _route_api(store, parts, q)
        except ValueError as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        if value is None:
            raise web.HTTPNotFound(text=f"no such resource: {'/'.join(parts)}")
        return self._json(value)

    async def _view(self, app_id: str, name: str, q: Any) -> web.StreamResponse:
        if self._views is None:
            raise web.HTTPNotFound(text="views are served by a running application's UI only")
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            raise web.HTTPBadRequest(text=f"limit={q.get('limit')!r} must be a number") from None
        if not 1 <= limit <= 10_000:
            raise web.HTTPBadRequest(text=f"limit={limit} must be between 1 and 10000")
        views = self._views
        loop = asyncio.get_running_loop()
        try:  # a query is a job: off the event loop, so pages stay responsive meanwhile
            value = await loop.run_in_executor(None, views, app_id, name, q.get("key"), limit)
        except KeyError as e:
            raise web.HTTPNotFound(text=str(e.args[0] if e.args else e)) from None
        except LookupError as e:
            raise web.HTTPNotFound(text=str(e)) from None
        return web.Response(
            text=json.dumps(value, indent=2, default=repr), content_type="application/json"
        )

    async def _history_page(self, request: web.Request) -> web.StreamResponse:
        app_id = request.match_info["app"]
        return self._page(
            request, self._store(app_id), f"/history/{app_id}/", request.match_info["page"]
        )

    async def _live_page(self, request: web.Request) -> web.StreamResponse:
        stores = self._stores()
        if self._history or not stores:
            raise web.HTTPNotFound()
        return self._page(request, next(iter(stores.values())), "/", request.match_info["page"])

    def _page(
        self, request: web.Request, store: StatusStore, base: str, page: str
    ) -> web.StreamResponse:
        page = page.strip("/")
        q = request.query

        def number(key: str) -> int:
            try:
                return int(q[key])
            except (KeyError, ValueError):
                raise web.HTTPBadRequest(text=f"?{key}= needs a number") from None

        if page in ("", "streaming"):
            title, body = "Streaming", pages.streaming_page(store, base)
        elif page == "streaming/batch":
            title, body = "Batch", pages.batch_page(store, base, number("id"))
        elif page == "executors":
            title, body = "Executors", pages.executors_page(store, base)
        elif page == "jobs":
            title, body = "Jobs", pages.jobs_page(store, base)
        elif page == "jobs/job":
            title, body = "Job", pages.job_page(store, base, number("id"))
        else:
            raise web.HTTPNotFound(text=f"no page {page!r}")
        if q.get("fragment"):
            return web.Response(text=body, content_type="text/html")
        return web.Response(
            text=pages.layout(store, title, body, base, live=store.live),
            content_type="text/html",
        )


def _route_api(store: StatusStore, parts: list[str], q: Any) -> Any:
    """The value of ``/api/v1/applications/<id>/<parts...>`` (None: no such resource)."""
    if parts == ["jobs"]:
        return api.jobs(store, q.get("status"))
    if len(parts) == 2 and parts[0] == "jobs":
        jid = int(parts[1])
        return next((j for j in api.jobs(store) if j["jobId"] == jid), None)
    if parts == ["stages"]:
        return api.stages(store)
    if len(parts) >= 2 and parts[0] == "stages":
        attempts = api.stage(store, int(parts[1]))
        if len(parts) == 3:
            return next((a for a in attempts if a["attemptId"] == int(parts[2])), None)
        return attempts or None
    if parts == ["receivers"]:  # also at Spark's path, streaming/receivers
        return api.receivers(store)
    if parts in (["executors"], ["allexecutors"]):
        return api.executors(store, all_=parts[0] == "allexecutors")
    if parts[:1] != ["streaming"]:
        return None
    rest = parts[1:]
    if rest == ["statistics"]:
        return api.statistics(store)
    if rest == ["receivers"]:
        return api.receivers(store)
    if len(rest) == 2 and rest[0] == "receivers":
        return next((r for r in api.receivers(store) if r["streamId"] == int(rest[1])), None)
    if rest == ["batches"]:
        return api.batches(store, q.get("status"))
    if len(rest) == 2 and rest[0] == "batches":
        return api.batch(store, int(rest[1]))
    if len(rest) == 3 and rest[0] == "batches" and rest[2] == "operations":
        return api.batch_operations(store, int(rest[1]))
    return None
