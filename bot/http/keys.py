"""Typed keys for what the web app holds, and the rate limiter's interface."""

from __future__ import annotations

from typing import Protocol

import jinja2
from aiohttp import web

from bot.http.config import WebConfig
from bot.http.metrics import HttpMetrics
from services.container import Services


class RateLimiter(Protocol):
    async def acquire(self, client: str) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is free."""
        ...

    async def close(self) -> None: ...


services_key = web.AppKey("services", Services)
config_key = web.AppKey("config", WebConfig)
metrics_key = web.AppKey("metrics", HttpMetrics)
jinja_key = web.AppKey("jinja", jinja2.Environment)
limiter_key = web.AppKey("limiter", RateLimiter)
static_urls_key = web.AppKey("static_urls", dict)
# Route (canonical path) → the largest body it takes, for the few routes that take more than
# HTTP_MAX_BODY_BYTES (uploads, read as a stream with that cap by the view itself).
body_limits_key = web.AppKey("body_limits", dict)
