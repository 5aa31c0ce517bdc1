"""Middlewares of the web app: body size, API keys, CORS and metrics (see bot/http/app.py for the order)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from bot.http.config import API_PREFIX
from bot.http.keys import body_limits_key, config_key, metrics_key
from bot.http.problems import Problem, problem_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.app[config_key].max_body_bytes
    resource = request.match_info.route.resource
    if resource is not None:  # an upload route takes more (its view caps the stream it reads)
        limit = request.app.get(body_limits_key, {}).get(resource.canonical, limit)
    length = request.content_length
    if length is not None and length > limit:
        raise Problem(413, f"The request body is larger than {limit} bytes.", code="body_too_large")
    return await handler(request)


def presented_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    auth = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def valid_key_hash(request: web.Request) -> str | None:
    """A short hash of the API key presented, when it is one of API_KEYS (never the key itself)."""
    presented = presented_key(request)
    if presented and request.app[config_key].key_ok(presented):
        return hashlib.sha256(presented.encode()).hexdigest()[:32]
    return None


def is_write_endpoint(request: web.Request) -> bool:
    return request.path.startswith(API_PREFIX) and request.method not in ("GET", "HEAD", "OPTIONS")


@web.middleware
async def api_key_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = request.app[config_key]
    if config.api_keys and is_write_endpoint(request) and not config.key_ok(presented_key(request)):
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
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, POST, PATCH, DELETE, OPTIONS",
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


CLIENT_CLOSED = 499  # nginx's "client closed request"


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


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
    except (ConnectionResetError, asyncio.CancelledError):
        # The client hung up mid-request (aiohttp cancels the handler, or the body read fails): not a
        # server error. Counted under its own status, without a traceback.
        status = CLIENT_CLOSED if _client_gone(request) else 500
        raise
    finally:
        metrics.in_flight.dec()
        metrics.observe(request.method, route_template(request), status, time.perf_counter() - started)
