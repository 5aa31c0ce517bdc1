"""The aiohttp application factory: middlewares, health, metrics, static files, page templates.

The routes themselves come from the delivery layer (`handlers.http.setup_routes`), passed in by
the composition root; this package never imports handlers.

Middlewares, outermost first:

1. ``metrics_middleware`` — request counts and latencies by route template;
2. ``cors_middleware`` — answers preflights and adds CORS headers for the configured origins;
3. ``problem_middleware`` — every error becomes an RFC 9457 problem (``application/problem+json``;
   an HTML page for the web page's routes); anything unexpected is logged and becomes a 500;
4. ``rate_limit_middleware`` — a token bucket per client (in memory, or in Redis when
   ``REDIS_URL`` is set); 429 with ``Retry-After``;
5. ``body_limit_middleware`` — 413 for a declared ``Content-Length`` over ``HTTP_MAX_BODY_BYTES``
   (aiohttp's ``client_max_size`` catches chunked bodies while they are read); a route registered
   in ``app[body_limits_key]`` (an upload) has its own, larger limit, and its view reads the body
   as a stream with that cap instead (``client_max_size`` only applies to ``read()``/``post()``);
6. ``api_key_middleware`` — with ``API_KEYS`` set, the API's write endpoints need ``X-API-Key``
   (or ``Authorization: Bearer``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import jinja2
from aiohttp import hdrs, web

from bot.http.config import WebConfig
from bot.http.keys import (
    RateLimiter,
    body_limits_key,
    config_key,
    jinja_key,
    limiter_key,
    metrics_key,
    services_key,
    static_urls_key,
)
from bot.http.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bot.http.metrics import HttpMetrics
from bot.http.middlewares import api_key_middleware, body_limit_middleware, cors_middleware, metrics_middleware
from bot.http.problems import problem_middleware
from bot.http.ratelimit import MemoryRateLimiter, RedisRateLimiter, rate_limit_middleware
from bot.http.session import WebSessions, session_middleware, sessions_key
from services.container import Services
from services.genre_labels import genre_names, genre_verdict

log = logging.getLogger(__name__)

HTTP_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = HTTP_DIR / "templates"
STATIC_DIR = HTTP_DIR / "static"

Routes = Callable[[web.Application], None]


# ---------------------------------------------------------------------------------------------
# Views owned by the factory: health and metrics


async def healthz(request: web.Request) -> web.Response:
    report = await request.app[services_key].health.check()
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


STATIC_FILES = ("app.css", "app.js")


def _model_version_of(services: Services) -> Callable[[], str | None]:
    def version() -> str | None:
        return services.genre.version or None

    return version


# For answers that set no policy of their own (error pages): this site's own scripts, styles and
# images only (no inline code, no frames, no media), forms to this site, never framed.
STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer: no MIME sniffing, no version in `Server`; HTML without a policy gets a strict one."""
    response.headers["Server"] = "Encore"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.content_type == "text/html" and "Content-Security-Policy" not in response.headers:
        response.headers["Content-Security-Policy"] = STRICT_CSP
        response.headers.setdefault("Referrer-Policy", "same-origin")


def create_jinja_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,  # the templates ship with the code: no stat() of the file per render
    )
    env.filters["pct"] = lambda value: f"{100 * float(value):.0f}%"
    # Genre names and the verdict are the bot's too (services.genre_labels): the same song reads the same.
    names = genre_names()
    env.filters["genre"] = lambda tag: names.genre(tag, "en")
    env.filters["family"] = lambda tag: names.family(tag, "en")
    env.globals["genre_verdict"] = genre_verdict
    return env


def create_web_app(
    services: Services,
    config: WebConfig,
    routes: Sequence[Routes] = (),
    *,
    rate_limiter: RateLimiter | None = None,
) -> web.Application:
    """Build the app with the delivery layer's `routes` (each adds its views to the router).

    ``rate_limiter`` defaults to an in-memory token bucket, or a Redis one when ``config.redis_url``
    is set."""
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[
            metrics_middleware,
            cors_middleware,
            problem_middleware,
            session_middleware,
            rate_limit_middleware,
            body_limit_middleware,
            api_key_middleware,
        ],
    )
    app[services_key] = services
    app[config_key] = config
    app[metrics_key] = HttpMetrics(_model_version_of(services))
    app[jinja_key] = create_jinja_env()
    app[sessions_key] = WebSessions(
        config.session_secret, secure_cookie=(config.public_origin or "").startswith("https://")
    )
    app[body_limits_key] = {}
    if rate_limiter is None and config.rate_limit_per_minute > 0:
        if config.redis_url:
            rate_limiter = RedisRateLimiter.from_url(
                config.redis_url, config.rate_limit_per_minute, prefix=f"{config.redis_prefix}:rl:"
            )
        else:
            rate_limiter = MemoryRateLimiter(config.rate_limit_per_minute)
    if rate_limiter is not None:
        app[limiter_key] = rate_limiter

        async def close_limiter(_: web.Application) -> None:
            await rate_limiter.close()

        app.on_cleanup.append(close_limiter)

    async def watch_the_loop(app: web.Application) -> AsyncIterator[None]:
        async with app[metrics_key].watching_the_loop():
            yield

    app.cleanup_ctx.append(watch_the_loop)
    app.router.add_get("/healthz", healthz)
    if config.metrics_public:
        app.router.add_get("/metrics", metrics_view)
    app.on_response_prepare.append(_security_headers)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
    # Versioned URLs (?v=<hash>) computed once: the files do not change while the app runs.
    app[static_urls_key] = {name: str(app.router["static"].url_for(filename=name)) for name in STATIC_FILES}
    for add_routes in routes:
        add_routes(app)
    return app


def create_metrics_app(main_app: web.Application) -> web.Application:
    """/metrics of `main_app` alone (HTTP_METRICS=<port>: not on the public port)."""
    app = web.Application()
    app[metrics_key] = main_app[metrics_key]
    app.router.add_get("/metrics", metrics_view)
    app.on_response_prepare.append(_security_headers)
    return app
