"""Bot and Dispatcher factories: the bot's wiring, with nothing built at import time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.types import LinkPreviewOptions

from bot.telegram.middlewares import MemoryThrottle, ThrottleBackend, UpdateTracker, setup_middlewares
from bot.telegram.texts import Texts

if TYPE_CHECKING:
    from bot.config import Settings
    from services.container import Services

THROTTLE_LIMIT = 8  # updates per user …
THROTTLE_WINDOW = 2.0  # … per this many seconds


def create_bot(settings: Settings) -> Bot:
    """A Bot talking to `TELEGRAM_API_URL` (api.telegram.org, a self-hosted server, or a test fake)."""
    if settings.telegram.bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram.api_url.rstrip("/")))
    return Bot(
        token=settings.telegram.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview=LinkPreviewOptions(is_disabled=True)),
    )


def create_dispatcher(
    services: Services,
    routers: Sequence[Router],
    *,
    storage: BaseStorage | None = None,
    events_isolation: BaseEventIsolation | None = None,
    throttle: ThrottleBackend | None = None,
    throttle_limit: int = THROTTLE_LIMIT,
    throttle_window: float = THROTTLE_WINDOW,
    texts: Texts | None = None,
    updates: UpdateTracker | None = None,
) -> Dispatcher:
    """A Dispatcher with the delivery layer's routers, the middlewares and the services as workflow data."""
    texts = texts or Texts()
    dp = Dispatcher(storage=storage, events_isolation=events_isolation)
    # aiogram closes the FSM storage as soon as polling stops, while update handlers may still be
    # running (their state write would fail, or a chat's Redis lock would outlive them);
    # TelegramRuntime.stop() closes it once they are done.
    dp.shutdown.handlers[:] = [h for h in dp.shutdown.handlers if h.callback != dp.fsm.close]
    dp.workflow_data.update(services.workflow_data())
    dp["texts"] = texts
    setup_middlewares(
        dp,
        texts=texts,
        throttle=throttle or MemoryThrottle(),
        limit=throttle_limit,
        window=throttle_window,
        updates=updates,
    )
    dp.include_routers(*routers)
    return dp
