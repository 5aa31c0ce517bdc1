"""The server against slow, broken and vanishing clients (bot/http/server.py), on a real socket.

No test here measures speed: the timeouts are made short so that the behaviour (a closed socket, a
408) comes soon, and each wait has a generous upper bound that only stops a hung test."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.http.app import create_metrics_app
from bot.http.config import WebConfig
from bot.http.server import QuietBadRequests, RateLimitedLog, ServerLimits, start_server
from handlers.http.api import OPENAPI_PATH
from handlers.http.params import MAX_LISTED_ERRORS
from services.dto import FEATURE_RANGES
from tests.api.test_api import FEATURES, problem
from tests.wiring import Wiring

HANG_GUARD = 20.0  # seconds: only to stop a broken test, never a measure


class Live:
    def __init__(self, runner: web.AppRunner) -> None:
        self.runner = runner
        host, port = runner.addresses[0][:2]
        self.host, self.port = str(host), int(port)
        self.url = f"http://{self.host}:{self.port}"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        async with aiohttp.ClientSession() as http, http.get(self.url + path, **kwargs) as resp:
            return resp.status, dict(resp.headers), await resp.read()


@pytest.fixture
async def serve(container: Wiring) -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []

    async def start(
        limits: ServerLimits | None = None,
        config: WebConfig | None = None,
        middleware: Any = None,
    ) -> Live:
        limits = limits or ServerLimits()
        config = config or WebConfig(rate_limit_per_minute=1_000_000, body_timeout=limits.body_timeout)
        app = container.http_app(config)
        if middleware is not None:
            app.middlewares.append(middleware)  # innermost: around the handler alone
        runner = await start_server(app, "127.0.0.1", 0, limits=limits)
        runners.append(runner)
        return Live(runner)

    yield start
    for runner in runners:
        await runner.cleanup()


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(HANG_GUARD):
        return await reader.read()  # to EOF


async def read_status(reader: asyncio.StreamReader) -> int:
    async with asyncio.timeout(HANG_GUARD):
        line = await reader.readline()
    return int(line.split()[1])


async def test_a_client_that_never_finishes_its_headers_is_disconnected(serve: Any) -> None:
    live = await serve(ServerLimits(keepalive_timeout=0.2))
    reader, writer = await live.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and nothing more
    await writer.drain()
    assert await read_until_closed(reader) == b""  # closed without an answer
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(serve: Any) -> None:
    live = await serve(ServerLimits(keepalive_timeout=0.2))
    reader, writer = await live.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert await read_status(reader) == 200
    rest = await read_until_closed(reader)  # the rest of the answer, then EOF when idle
    assert rest.endswith(b"}") or rest.endswith(b"\n") or rest
    writer.close()


async def test_a_body_sent_too_slowly_gets_408(serve: Any) -> None:
    live = await serve(ServerLimits(body_timeout=0.2))
    reader, writer = await live.connect()
    writer.write(
        b"POST /api/v1/genre HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 500\r\n\r\n{"danceability": '
    )
    await writer.drain()
    assert await read_status(reader) == 408
    writer.close()


async def test_a_client_that_hangs_up_mid_body_is_499_without_a_traceback(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    entered, ended = asyncio.Event(), asyncio.Event()

    @web.middleware
    async def watch(request: web.Request, handler: Any) -> web.StreamResponse:
        entered.set()
        try:
            return await handler(request)
        finally:
            ended.set()

    live = await serve(middleware=watch)
    _, writer = await live.connect()
    writer.write(
        b"POST /api/v1/genre HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 500\r\n\r\n{"danceability": '
    )
    await writer.drain()
    with caplog.at_level(logging.INFO):
        async with asyncio.timeout(HANG_GUARD):
            await entered.wait()  # the handler is reading the body when the client goes
            writer.transport.abort()
            await ended.wait()
    metrics = (await live.get("/metrics"))[2].decode()
    assert 'method="POST",route="/api/v1/genre",status="499"' in metrics
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text


async def test_connections_beyond_the_per_client_cap_are_closed(serve: Any) -> None:
    live = await serve(ServerLimits(max_per_client=2))
    first, second = await live.connect(), await live.connect()
    third_reader, third_writer = await live.connect()
    assert await read_until_closed(third_reader) == b""
    for reader, writer in (first, second):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert await read_status(reader) == 200
        writer.close()
    third_writer.close()
    # Closed connections are given back: a new one is served.
    async with asyncio.timeout(HANG_GUARD):
        while True:
            reader, writer = await live.connect()
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await writer.drain()
            answer = await read_until_closed(reader)
            writer.close()
            if answer.startswith(b"HTTP/1.1 200"):
                break
            await asyncio.sleep(0.01)


MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET /" + b"a" * 9_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # TLS to a plain port
]


async def test_a_flood_of_malformed_requests_logs_a_few_short_lines(
    serve: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = QuietBadRequests(RateLimitedLog(logging.getLogger("encore.http.bad_requests"), per_minute=10))
    # This test's own filter in place of the process's (whose rate limit other tests may have used).
    monkeypatch.setattr(logging.getLogger("aiohttp.server"), "filters", [quiet])
    monkeypatch.setattr("bot.http.server.install_log_filters", lambda: None)
    live = await serve()
    with caplog.at_level(logging.DEBUG):
        for i in range(300):
            reader, writer = await live.connect()
            writer.write(MALFORMED[i % len(MALFORMED)])
            await writer.drain()
            status = await read_status(reader)
            assert status in (400, 413, 414, 431), status
            writer.close()
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(lines) <= 10, [r.getMessage() for r in lines]
    assert all(r.exc_info is None and len(r.getMessage()) < 300 for r in lines)
    assert all(r.name == "encore.http.bad_requests" for r in lines)


def test_the_rate_limited_log_counts_what_it_dropped(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    out = RateLimitedLog(logging.getLogger("encore.test.ratelimited"), per_minute=2, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        sent = [out.warning("line %d", i) for i in range(5)]
        now[0] += 61
        out.warning("after a minute")
    assert sent == [True, True, False, False, False]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["line 0", "line 1", "after a minute (3 similar lines dropped)"]


async def test_every_answer_carries_the_security_headers(serve: Any) -> None:
    live = await serve()
    status, headers, _ = await live.get("/", headers={"Accept": "text/html"})
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff" and headers["Server"] == "Encore"
    assert "default-src" in headers["Content-Security-Policy"]
    status, headers, _ = await live.get("/no/such/page", headers={"Accept": "text/html"})
    assert status == 404 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert headers["X-Content-Type-Options"] == "nosniff" and "aiohttp" not in headers["Server"].lower()
    status, headers, _ = await live.get("/api/v1/tracks/999999")
    assert status == 404 and headers["X-Content-Type-Options"] == "nosniff" and headers["Server"] == "Encore"


async def test_metrics_can_be_kept_off_the_public_port(container: Wiring, serve: Any) -> None:
    config = WebConfig(rate_limit_per_minute=1_000_000, metrics_public=False)
    live = await serve(config=config)
    assert (await live.get("/metrics"))[0] == 404
    assert (await live.get("/healthz"))[0] == 200
    private = await start_server(create_metrics_app(live.runner.app), "127.0.0.1", 0, limits=ServerLimits())
    try:
        status, _, body = await Live(private).get("/metrics")
        assert status == 200 and b"encore_http_requests_total" in body
    finally:
        await private.cleanup()


async def test_negative_zero_diversity_is_zero(client: Any) -> None:
    resp = await client.get("/api/v1/tracks/1/similar", params={"diversity": "-0"})
    assert resp.status == 200
    text = await resp.text()
    assert '"diversity":0.0' in text.replace(" ", "") and "-0.0" not in text


async def test_a_body_of_a_thousand_unknown_keys_gets_a_short_answer(client: Any) -> None:
    body = dict(FEATURES) | {f"unknown_key_{i:05d}_{'x' * 30}": i for i in range(1000)}
    raw = json.dumps(body)
    assert len(raw) > 55_000
    resp = await client.post("/api/v1/genre", data=raw, headers={"Content-Type": "application/json"})
    answer = await problem(resp, 422)
    assert len(answer["errors"]) == MAX_LISTED_ERRORS and answer["more_errors"] == 1000 - MAX_LISTED_ERRORS
    assert len(json.dumps(answer)) < 5_000


async def test_openapi_and_validation_share_the_feature_ranges(client: Any) -> None:
    served = await (await client.get("/api/openapi.json")).json()
    written = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))  # what schemathesis and readers see
    properties = served["components"]["schemas"]["AudioFeatures"]["properties"]
    assert written["components"]["schemas"]["AudioFeatures"] == served["components"]["schemas"]["AudioFeatures"]
    for name, (low, high) in FEATURE_RANGES.items():
        if properties.get(name, {}).get("type") not in ("number", "integer"):  # explicit: a boolean
            continue
        assert (properties[name]["minimum"], properties[name]["maximum"]) == (low, high), name
        for value, ok in ((low, True), (high, True), (high + 1, False), (low - 1, False)):
            features = dict(FEATURES) | {name: value}
            resp = await client.post("/api/v1/genre", json=features)
            assert (resp.status == 200) is ok, (name, value, await resp.text())
