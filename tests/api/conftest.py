"""Fixtures for the HTTP tests: fake services in a Wiring, the app, a client, a live server."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.http.config import WebConfig
from tests.fakes.services import fake_container
from tests.wiring import Wiring

ClientFactory = Callable[..., Any]


def binary_upload_checks(case: Any) -> list[Any]:
    """Checks to leave out for `case`: for POST /api/v1/analyze, "schema-valid data is accepted" —
    any bytes are a schema-valid `format: binary` file, and whether they are audio (else 415 / 422)
    cannot be said in OpenAPI. Every other check (no 5xx, documented statuses and bodies) still runs."""
    from schemathesis.checks import positive_data_acceptance

    return [positive_data_acceptance] if case.path == "/api/v1/analyze" else []


@pytest.fixture
async def container() -> AsyncIterator[Wiring]:
    c = fake_container()
    yield c
    await c.close()


@pytest.fixture
def make_client(aiohttp_client: ClientFactory, container: Wiring) -> Callable[..., Any]:
    """Build the app with a given WebConfig (defaults: no keys, no CORS, a generous rate limit)."""

    async def make(config: WebConfig | None = None, **kwargs: Any) -> TestClient:
        config = config or WebConfig(rate_limit_per_minute=10_000)
        return await aiohttp_client(container.http_app(config, **kwargs))

    return make


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> TestClient:
    return await make_client()


class LiveServer:
    """The real app on 127.0.0.1 in a thread with its own event loop (for sync clients:
    schemathesis' requests, Playwright in another loop)."""

    def __init__(self, app_factory: Callable[[], web.Application | Awaitable[web.Application]]) -> None:
        self._factory = app_factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def start(self) -> LiveServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        app = self._factory()
        if inspect.isawaitable(app):
            app = await app
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def run(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop (e.g. to dispose an engine)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    def stop(self) -> None:
        if self._runner is not None:
            self.run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    holder: dict[str, Wiring] = {}

    def factory() -> web.Application:
        holder["container"] = fake_container()
        return holder["container"].http_app(WebConfig(rate_limit_per_minute=1_000_000))

    server = LiveServer(factory).start()
    yield server
    server.run(holder["container"].engine.dispose())
    server.stop()
