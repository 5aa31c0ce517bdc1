"""What main.py wires, for tests: settings, the services and the database behind them, plus the
Telegram runtime and the web app started the way main.py starts them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.http.config import WebConfig
from bot.telegram.runtime import TelegramRuntime, start_telegram
from handlers.http import create_app
from handlers.telegram import get_routers
from services.container import Services


@dataclass
class Wiring:
    settings: Settings
    services: Services
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    async def start(self, app: web.Application | None = None, **options: Any) -> TelegramRuntime:
        """`start_telegram` as main.py calls it (polling unless the settings name a webhook)."""
        return await start_telegram(self.settings, self.services, get_routers(), app, **options)

    def http_app(self, config: WebConfig | None = None, **options: Any) -> web.Application:
        """The web app as main.py builds it (`config` defaults to the settings')."""
        return create_app(self.services, config or WebConfig.from_settings(self.settings), **options)

    async def close(self) -> None:
        await self.services.close()
        await self.engine.dispose()
