"""Cross-cutting behaviour: rate limits, body size, API keys, CORS, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.http.config import WebConfig
from bot.http.keys import metrics_key
from bot.http.ratelimit import MemoryRateLimiter, RedisRateLimiter
from tests.api.test_api import FEATURES, problem
from tests.fakes.services import MODEL_VERSION


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_rate_limit_is_per_client_with_retry_after(make_client: Any) -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(per_minute=3, clock=clock)
    client = await make_client(WebConfig(rate_limit_per_minute=3), rate_limiter=limiter)
    for _ in range(3):
        assert (await client.get("/api/v1/tracks/1")).status == 200
    resp = await client.get("/api/v1/tracks/1")
    body = await problem(resp, 429)
    assert resp.headers["Retry-After"] == "20" and body["retry_after"] == 20  # 3/min: a token every 20 s
    # health and metrics are never limited
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/metrics")).status == 200
    clock.now += 20
    assert (await client.get("/api/v1/tracks/1")).status == 200
    assert (await client.get("/api/v1/tracks/1")).status == 429
    metrics = await (await client.get("/metrics")).text()
    assert "encore_http_rate_limited_total 2.0" in metrics


async def test_rate_limit_applies_to_the_page_too(make_client: Any) -> None:
    client = await make_client(WebConfig(rate_limit_per_minute=1), rate_limiter=MemoryRateLimiter(1, Clock()))
    assert (await client.get("/")).status == 200
    resp = await client.get("/", headers={"Accept": "text/html"})
    assert resp.status == 429 and resp.content_type == "text/html" and "Retry-After" in resp.headers


def test_memory_limiter_buckets_are_separate_and_bounded() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(per_minute=60, clock=clock, max_clients=10)
    assert all(limiter.take("a") == 0 for _ in range(60))
    assert limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("b") == 0  # another client has its own bucket
    for i in range(50):
        limiter.take(f"ip{i}")
    assert len(limiter._buckets) <= 10


async def test_rate_limit_off_with_zero(make_client: Any) -> None:
    client = await make_client(WebConfig(rate_limit_per_minute=0))
    for _ in range(5):
        assert (await client.get("/api/v1/tracks/1")).status == 200


async def test_body_too_large_is_413(make_client: Any) -> None:
    client = await make_client(WebConfig(max_body_bytes=1024, rate_limit_per_minute=0))
    big = {**FEATURES, "padding": "x" * 5000}
    body = await problem(await client.post("/api/v1/genre", json=big), 413)
    assert body["code"] == "body_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
        for _ in range(10):
            yield b" " * 500

    resp = await client.post("/api/v1/genre", data=chunks(), headers={"Content-Type": "application/json"})
    await problem(resp, 413)


async def test_api_keys_guard_write_endpoints_only(make_client: Any) -> None:
    client = await make_client(WebConfig(api_keys=frozenset({"k1", "k2"}), rate_limit_per_minute=0))
    resp = await client.post("/api/v1/genre", json=FEATURES)
    body = await problem(resp, 401)
    assert body["code"] == "api_key_required" and resp.headers["WWW-Authenticate"].startswith("Bearer")
    await problem(await client.post("/api/v1/genre", json=FEATURES, headers={"X-API-Key": "nope"}), 401)
    assert (await client.post("/api/v1/genre", json=FEATURES, headers={"X-API-Key": "k2"})).status == 200
    ok = await client.post("/api/v1/radio", json={"track_id": 1}, headers={"Authorization": "Bearer k1"})
    assert ok.status == 201
    assert (await client.get("/api/v1/tracks/1")).status == 200  # reads stay open


async def test_without_api_keys_writes_are_open(client: Any) -> None:
    assert (await client.post("/api/v1/genre", json=FEATURES)).status == 200


async def test_cors_preflight_and_headers(make_client: Any) -> None:
    client = await make_client(
        WebConfig(cors_origins=("https://app.example",), rate_limit_per_minute=0, api_keys=frozenset({"k"}))
    )
    pre = await client.options(
        "/api/v1/genre", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    )
    assert pre.status == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "X-API-Key" in pre.headers["Access-Control-Allow-Headers"]
    resp = await client.get("/api/v1/tracks/1", headers={"Origin": "https://app.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Origin" in resp.headers.getall("Vary")
    # errors carry CORS headers too, so the browser can read them
    err = await client.post("/api/v1/genre", json=FEATURES, headers={"Origin": "https://app.example"})
    assert err.status == 401 and err.headers["Access-Control-Allow-Origin"] == "https://app.example"
    other = await client.get("/api/v1/tracks/1", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    refused = await client.options(
        "/api/v1/genre", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    await problem(refused, 403)


async def test_cors_wildcard(make_client: Any) -> None:
    client = await make_client(WebConfig(cors_origins=("*",), rate_limit_per_minute=0))
    resp = await client.get("/api/v1/tracks/1", headers={"Origin": "https://any.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_cors_off_by_default(client: Any) -> None:
    resp = await client.get("/api/v1/tracks/1", headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_metrics_count_requests_by_route_template(client: Any) -> None:
    await client.get("/api/v1/tracks/1")
    await client.get("/api/v1/tracks/2")
    await client.get("/api/v1/tracks/999")
    await client.get("/some/random/path/1234")
    await client.request("PURGE", "/api/v1/tracks/1")
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    text = await resp.text()
    assert 'encore_http_requests_total{method="GET",route="/api/v1/tracks/{track_id}",status="200"} 2.0' in text
    assert 'encore_http_requests_total{method="GET",route="/api/v1/tracks/{track_id}",status="404"} 1.0' in text
    assert 'route="unmatched",status="404"' in text and 'method="OTHER"' in text
    assert "/some/random/path" not in text and '/api/v1/tracks/1"' not in text
    assert (
        'encore_http_request_duration_seconds_bucket{le="0.05",method="GET",route="/api/v1/tracks/{track_id}"}' in text
    )
    assert f'encore_model_info{{version="{MODEL_VERSION}"}} 1.0' in text


async def test_model_version_from_answers_when_the_service_does_not_say(client: Any, container: Any) -> None:
    # A model loaded lazily says its version only once loaded; the answers name it meanwhile.
    container.services.genre = type("NotLoaded", (), {"guess": container.services.genre.guess, "version": ""})()
    text = await (await client.get("/metrics")).text()
    assert "encore_model_info{" not in text
    await client.post("/api/v1/genre", json=FEATURES)
    text = await (await client.get("/metrics")).text()
    assert f'encore_model_info{{version="{MODEL_VERSION}"}} 1.0' in text


@pytest.mark.redis
async def test_redis_rate_limiter_shares_one_bucket(redis_url: str, redis_prefix: str) -> None:
    first = RedisRateLimiter.from_url(redis_url, per_minute=2, prefix=redis_prefix)
    second = RedisRateLimiter.from_url(redis_url, per_minute=2, prefix=redis_prefix)  # another app process
    try:
        assert await first.acquire("ip:1") == 0
        assert await second.acquire("ip:1") == 0
        wait = await first.acquire("ip:1")
        assert 0 < wait <= 30
        assert await second.acquire("ip:2") == 0
    finally:
        await first.close()
        await second.close()


async def test_redis_rate_limiter_fails_open() -> None:
    limiter = RedisRateLimiter.from_url("redis://127.0.0.1:1/0", per_minute=1)
    try:
        assert await limiter.acquire("ip:1") == 0
        assert await limiter.acquire("ip:1") == 0
    finally:
        await limiter.close()


async def test_telegram_webhook_path_is_not_rate_limited(aiohttp_client: Any, container: Any) -> None:
    from aiohttp import web

    config = WebConfig.from_settings(container.settings)
    assert container.settings.webhook.path in config.unlimited_paths
    app = container.http_app(config, rate_limiter=MemoryRateLimiter(1, Clock()))

    async def webhook(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_post(container.settings.webhook.path, webhook)  # as bot/runtime.py does
    client = await aiohttp_client(app)
    for _ in range(3):
        assert (await client.post(container.settings.webhook.path, json={})).status == 200
    assert (await client.get("/api/v1/tracks/1")).status == 200
    assert (await client.get("/api/v1/tracks/1")).status == 429


@pytest.mark.redis
async def test_redis_url_selects_the_shared_limiter(aiohttp_client: Any, redis_url: str, redis_prefix: str) -> None:
    from bot.config import Settings
    from bot.http.keys import limiter_key
    from tests.fakes.services import fake_container

    settings = Settings(_env_file=None, redis_url=redis_url, redis_prefix=redis_prefix)  # type: ignore[call-arg]
    container = fake_container(settings)
    try:
        app = container.http_app(WebConfig(rate_limit_per_minute=2, redis_url=redis_url, redis_prefix=redis_prefix))
        assert isinstance(app[limiter_key], RedisRateLimiter)
        client = await aiohttp_client(app)
        assert (await client.get("/api/v1/tracks/1")).status == 200
        assert (await client.get("/api/v1/tracks/1")).status == 200
        resp = await client.get("/api/v1/tracks/1")
        assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    finally:
        await container.close()


async def test_metrics_show_the_event_loop_lag_and_the_process(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = client.server.app[metrics_key]
    held = asyncio.Event()
    record = metrics.loop_lag

    def loop_lag(seconds: float) -> None:
        record(seconds)
        if seconds >= 0.06:
            held.set()

    monkeypatch.setattr(metrics, "loop_lag", loop_lag)
    await asyncio.sleep(0)
    time.sleep(0.12)  # noqa: ASYNC251 - holds the loop on purpose: the 0.05 s watcher wakes ≥ 0.07 s late
    async with asyncio.timeout(10):
        await held.wait()
    text = await (await client.get("/metrics")).text()
    assert "encore_event_loop_lag_seconds_bucket" in text and "process_resident_memory_bytes" in text
    lag_max = next(line for line in text.splitlines() if line.startswith("encore_event_loop_lag_max_seconds "))
    assert float(lag_max.split()[1]) >= 0.06
