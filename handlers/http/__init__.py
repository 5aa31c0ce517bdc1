"""HTTP delivery: the JSON API (`api`), the web page (`page`), and the app with both."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.http.app import create_web_app
from bot.http.config import WebConfig
from bot.http.keys import RateLimiter
from handlers.http import api, page, playlists_api, playlists_page

if TYPE_CHECKING:
    from services.container import Services


def setup_routes(app: web.Application) -> None:
    api.setup_routes(app)
    playlists_api.setup_routes(app)
    page.setup_routes(app)
    playlists_page.setup_routes(app)


def create_app(services: Services, config: WebConfig, *, rate_limiter: RateLimiter | None = None) -> web.Application:
    """The whole web app: plumbing from bot.http, views from this package."""
    return create_web_app(services, config, [setup_routes], rate_limiter=rate_limiter)
