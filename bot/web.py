"""The aiohttp application factory: JSON API, web page, health, metrics.

Middlewares, outermost first:

1. ``metrics_middleware`` — request counts and latencies by route template;
2. ``cors_middleware`` — answers preflights and adds CORS headers for the configured origins;
3. ``problem_middleware`` — every error becomes an RFC 9457 problem (``application/problem+json``;
   an HTML page for the web page's routes); anything unexpected is logged and becomes a 500;
4. ``rate_limit_middleware`` — a token bucket per client (in memory, or in Redis when
   ``REDIS_URL`` is set); 429 with ``Retry-After``;
5. ``body_limit_middleware`` — 413 for a declared ``Content-Length`` over ``HTTP_MAX_BODY_BYTES``
   (aiohttp's ``client_max_size`` catches chunked bodies while they are read);
6. ``api_key_middleware`` — with ``API_KEYS`` set, the API's write endpoints need ``X-API-Key``
   (or ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import jinja2
from aiohttp import hdrs, web

from bot.container import Container
from bot.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bot.metrics import HttpMetrics
from services import errors

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

BOT_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = BOT_DIR / "web_templates"
STATIC_DIR = BOT_DIR / "static"
OPENAPI_PATH = BOT_DIR.parent / "handlers" / "openapi.json"
API_PREFIX = "/api/"
PROBLEM_JSON = "application/problem+json"
# Paths nobody is rate limited on: probes and scrapers must always get through.
UNLIMITED_PATHS = frozenset({"/healthz", "/metrics"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------------------------------------
# Configuration the web app reads (from Settings, or given directly in tests)


@dataclass(frozen=True, slots=True)
class WebConfig:
    api_keys: frozenset[str] = frozenset()
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 64 * 1024
    rate_limit_per_minute: int = 600  # 0 turns the limiter off
    # Anonymous "similar" answers change only when the catalogue is re-imported.
    similar_cache_ttl: float = 300.0  # seconds; 0 turns the cache off
    similar_cache_stale: float = 600.0  # seconds an expired answer is still served while refreshed
    similar_cache_size: int = 4096
    # Never rate limited: probes, scrapers and the Telegram webhook (Telegram retries on its own).
    unlimited_paths: frozenset[str] = UNLIMITED_PATHS

    @classmethod
    def from_container(cls, container: Container) -> WebConfig:
        settings = container.settings
        return cls(
            api_keys=settings.api_key_set,
            cors_origins=settings.cors_origin_list,
            max_body_bytes=settings.http.max_body_bytes,
            rate_limit_per_minute=settings.http.rate_limit_per_minute,
            unlimited_paths=UNLIMITED_PATHS | {settings.webhook.path},
        )

    def key_ok(self, presented: str | None) -> bool:
        if not presented:
            return False
        given = presented.encode()
        # Compare against every key in constant time (no early exit on the first match).
        found = False
        for key in self.api_keys:
            found |= hmac.compare_digest(given, key.encode())
        return found


# ---------------------------------------------------------------------------------------------
# Problem details (RFC 9457)


class Problem(Exception):
    """Raised by views for a client error; ``problem_middleware`` renders it."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
        self.title = title or HTTPStatus(status).phrase
        self.headers = dict(headers or {})
        self.extra = extra


# Domain errors → HTTP status. Views may raise a more specific Problem themselves.
ERROR_STATUS: dict[type[errors.EncoreError], int] = {
    errors.TrackNotFound: 404,
    errors.RadioNotFound: 404,
    errors.RadioForbidden: 403,
    errors.InvalidInput: 422,
    errors.NoFeatures: 422,
    errors.UnsupportedInput: 422,
    errors.ModelNotReady: 503,
    errors.ProviderUnavailable: 503,
}


def problem_from_error(exc: errors.EncoreError) -> Problem:
    status = next((s for cls, s in ERROR_STATUS.items() if isinstance(exc, cls)), 422)
    headers = {"Retry-After": "30"} if status == 503 else None
    return Problem(status, exc.message or HTTPStatus(status).phrase, code=exc.code, headers=headers)


def problem_body(problem: Problem, instance: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:encore:problem:{problem.code}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": instance,
        "code": problem.code,
    }
    body.update(problem.extra)
    return body


def _wants_html(request: web.Request) -> bool:
    if request.path.startswith(API_PREFIX) or request.path in UNLIMITED_PATHS:
        return False
    return "text/html" in request.headers.get(hdrs.ACCEPT, "") or request.method == "POST"


def problem_response(request: web.Request, problem: Problem) -> web.Response:
    headers = dict(problem.headers)
    if _wants_html(request) and jinja_key in request.app:
        html = (
            request.app[jinja_key]
            .get_template("error.html")
            .render(problem=problem, static=request.app[static_urls_key], path=request.path, query="")
        )
        return web.Response(status=problem.status, text=html, content_type="text/html", headers=headers)
    text = json.dumps(problem_body(problem, request.path), ensure_ascii=False)
    headers[hdrs.CONTENT_TYPE] = PROBLEM_JSON
    return web.Response(status=problem.status, text=text, headers=headers)


def _problem_from_http(exc: web.HTTPException) -> Problem:
    status = exc.status
    detail = exc.reason or HTTPStatus(status).phrase
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        detail = f"{exc.method} is not allowed here"
    elif isinstance(exc, web.HTTPNotFound):
        detail = "There is nothing at this address."
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        detail = "The request body is too large."
    return Problem(status, detail, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(request, problem)
    except errors.EncoreError as exc:
        return problem_response(request, problem_from_error(exc))
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and the like pass through
            raise
        return problem_response(request, _problem_from_http(exc))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(request, Problem(500, "Something went wrong on our side.", code="internal"))


# ---------------------------------------------------------------------------------------------
# Rate limiting


class RateLimiter(Protocol):
    async def acquire(self, client: str) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is free."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass
class MemoryRateLimiter:
    """A token bucket per client: ``per_minute`` burst, refilled at ``per_minute / 60`` a second."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    max_clients: int = 100_000
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, client: str) -> float:
        now = self.clock()
        rate = self.per_minute / 60.0
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._sweep(now, rate)
            bucket = self._buckets[client] = _Bucket(float(self.per_minute), now)
        else:
            bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def _sweep(self, now: float, rate: float) -> None:
        """Forget clients whose bucket has refilled (they are as good as new)."""
        full_after = self.per_minute / rate
        stale = [k for k, b in self._buckets.items() if now - b.updated >= full_after]
        for key in stale:
            del self._buckets[key]
        if len(self._buckets) >= self.max_clients:  # still full: drop the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k].updated)
            for key in oldest[: len(oldest) // 2]:
                del self._buckets[key]

    async def acquire(self, client: str) -> float:
        return self.take(client)

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket; ARGV: capacity, refill rate per second. Uses the server's clock.
_REDIS_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1]) or capacity
local ts = tonumber(data[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return tostring(wait)
"""


class RedisRateLimiter:
    """The same token bucket kept in Redis, so several app processes share one budget.

    When Redis fails the request is let through (fail open) and a warning is logged.
    """

    def __init__(self, client: Redis, per_minute: int, *, prefix: str = "encore:rl:") -> None:
        self._client = client
        self._per_minute = per_minute
        self._prefix = prefix
        self._script = client.register_script(_REDIS_BUCKET)

    @classmethod
    def from_url(cls, url: str, per_minute: int) -> RedisRateLimiter:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5), per_minute)

    async def acquire(self, client: str) -> float:
        try:
            wait = await self._script(keys=[self._prefix + client], args=[self._per_minute, self._per_minute / 60])
        except Exception as exc:  # Redis down: availability beats strictness for a rate limit
            log.warning("rate limiter: Redis failed (%s), letting the request through", type(exc).__name__)
            return 0.0
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    async def close(self) -> None:
        await self._client.aclose()


def client_id(request: web.Request) -> str:
    """Who is asking: the API key when a valid one is presented, else the peer address."""
    presented = _presented_key(request)
    if presented and request.app[config_key].key_ok(presented):
        return "key:" + hashlib.sha256(presented.encode()).hexdigest()[:16]
    return "ip:" + (request.remote or "unknown")


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limiter = request.app.get(limiter_key)
    unlimited = request.app[config_key].unlimited_paths
    if limiter is None or request.path in unlimited or request.path.startswith("/static/"):
        return await handler(request)
    wait = await limiter.acquire(client_id(request))
    if wait > 0:
        request.app[metrics_key].rate_limited()
        retry_after = max(1, math.ceil(wait))
        raise Problem(
            429,
            f"Too many requests; try again in {retry_after} s.",
            code="rate_limited",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )
    return await handler(request)


# ---------------------------------------------------------------------------------------------
# Body size, API keys, CORS, metrics


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.app[config_key].max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise Problem(413, f"The request body is larger than {limit} bytes.", code="body_too_large")
    return await handler(request)


def _presented_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    auth = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def is_write_endpoint(request: web.Request) -> bool:
    return request.path.startswith(API_PREFIX) and request.method not in ("GET", "HEAD", "OPTIONS")


@web.middleware
async def api_key_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = request.app[config_key]
    if config.api_keys and is_write_endpoint(request) and not config.key_ok(_presented_key(request)):
        raise Problem(
            401,
            "This endpoint needs an API key in the X-API-Key header.",
            code="api_key_required",
            headers={"WWW-Authenticate": 'Bearer realm="encore"'},
        )
    return await handler(request)


CORS_ALLOW_HEADERS = "Content-Type, X-API-Key, Authorization"
CORS_EXPOSE_HEADERS = "Retry-After"


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get(hdrs.ORIGIN)
    if not origin:
        return None
    allowed = request.app[config_key].cors_origins
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    origin = _allowed_origin(request)
    if request.method == "OPTIONS" and request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD):
        # A preflight: answered here, before routing, rate limiting or key checks.
        if origin is None:
            return problem_response(
                request, Problem(403, "This origin may not call the API.", code="cors_origin_refused")
            )
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, POST, OPTIONS",
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: CORS_ALLOW_HEADERS,
                hdrs.ACCESS_CONTROL_MAX_AGE: "600",
                hdrs.VARY: "Origin",
            },
        )
    response = await handler(request)
    if origin is not None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CORS_EXPOSE_HEADERS
        response.headers.add(hdrs.VARY, "Origin")
    return response


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:  # no route matched (404/405)
        return "unmatched"
    if request.path.startswith("/static/"):
        return "/static"
    return resource.canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[metrics_key]
    started = time.perf_counter()
    status = 500
    metrics.in_flight.inc()
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.in_flight.dec()
        metrics.observe(request.method, route_template(request), status, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# Views owned by the factory: health and metrics


async def healthz(request: web.Request) -> web.Response:
    report = await request.app[container_key].health.check()
    body = {
        "status": report.status,
        "database": "ok" if report.database else "unreachable",
        "version": report.version,
        **report.details,
    }
    # Which process answered (HTTP_WORKERS > 1 runs several on one port); a header keeps the body's shape.
    headers = {"X-Encore-Pid": str(os.getpid())}
    return web.json_response(body, status=200 if report.database else 503, headers=headers)


async def metrics_view(request: web.Request) -> web.Response:
    body = request.app[metrics_key].render()
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: METRICS_CONTENT_TYPE})


# ---------------------------------------------------------------------------------------------
# Keys and the factory

container_key = web.AppKey("container", Container)
config_key = web.AppKey("config", WebConfig)
metrics_key = web.AppKey("metrics", HttpMetrics)
jinja_key = web.AppKey("jinja", jinja2.Environment)
limiter_key = web.AppKey("limiter", RateLimiter)
openapi_key = web.AppKey("openapi", bytes)
static_urls_key = web.AppKey("static_urls", dict)
STATIC_FILES = ("app.css", "app.js")


def _model_version_of(container: Container) -> Callable[[], str | None]:
    def version() -> str | None:
        genre = container.genre
        for obj in (genre, getattr(genre, "predictor", None), getattr(genre, "_predictor", None)):
            value = getattr(obj, "model_version", None) or getattr(obj, "version", None)
            if isinstance(value, str) and value:
                return value
        return None

    return version


def create_jinja_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = lambda value: f"{100 * float(value):.0f}%"
    return env


def create_web_app(
    container: Container,
    *,
    config: WebConfig | None = None,
    rate_limiter: RateLimiter | None = None,
) -> web.Application:
    """Build the app. ``config`` defaults to the container's Settings; ``rate_limiter`` to an
    in-memory token bucket (a Redis one when ``REDIS_URL`` is set)."""
    from handlers import api, web_page

    config = config or WebConfig.from_container(container)
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[
            metrics_middleware,
            cors_middleware,
            problem_middleware,
            rate_limit_middleware,
            body_limit_middleware,
            api_key_middleware,
        ],
    )
    app[container_key] = container
    app[config_key] = config
    app[metrics_key] = HttpMetrics(_model_version_of(container))
    app[jinja_key] = create_jinja_env()
    app[openapi_key] = OPENAPI_PATH.read_bytes()
    if rate_limiter is None and config.rate_limit_per_minute > 0:
        redis_url = container.settings.redis_url
        if redis_url:
            rate_limiter = RedisRateLimiter.from_url(redis_url, config.rate_limit_per_minute)
        else:
            rate_limiter = MemoryRateLimiter(config.rate_limit_per_minute)
    if rate_limiter is not None:
        app[limiter_key] = rate_limiter

        async def close_limiter(_: web.Application) -> None:
            await rate_limiter.close()

        app.on_cleanup.append(close_limiter)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
    # Versioned URLs (?v=<hash>) computed once: the files do not change while the app runs.
    app[static_urls_key] = {name: str(app.router["static"].url_for(filename=name)) for name in STATIC_FILES}
    api.setup_routes(app, config)
    web_page.setup_routes(app)
    return app
