"""The running Telegram bot: polling or webhook, FSM storage, commands and the daily-picks sender.

    telegram = await start_telegram(settings, services, get_routers(), app)   # main.py, with a bot token
    ...
    await telegram.stop()

Polling is the default. With WEBHOOK_URL set the bot registers a webhook and serves it from the
aiohttp `app` at WEBHOOK_PATH, checking Telegram's secret-token header. With REDIS_URL set, FSM
storage, per-chat event isolation and throttling live in Redis, so several webhook instances can
serve one bot.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiogram import Bot, Dispatcher, Router
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.telegram.factory import THROTTLE_LIMIT, THROTTLE_WINDOW, create_bot, create_dispatcher
from bot.telegram.middlewares import MemoryThrottle, RedisThrottle, ThrottleBackend, UpdateTracker
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.texts import Texts
from services.jobs import DailyPicksService, SharedPacer
from services.users import SUPPORTED_LANGUAGES

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.config import Settings
    from services.container import Services

log = logging.getLogger(__name__)

COMMANDS = (
    "start",
    "help",
    "history",
    "likes",
    "playlists",
    "radio",
    "export",
    "subscribe",
    "unsubscribe",
    "timezone",
    "settings",
    "disconnect",
)


def bot_commands(texts: Texts, language: str) -> list[BotCommand]:
    labels = texts.labels(language)
    return [BotCommand(command=name, description=labels(f"cmd_{name}")) for name in COMMANDS]


async def register_commands(bot: Bot, texts: Texts) -> None:
    """The command menu in English (also the default for everybody else) and Russian."""
    await bot.set_my_commands(bot_commands(texts, "en"), scope=BotCommandScopeDefault())
    for language in SUPPORTED_LANGUAGES:
        await bot.set_my_commands(bot_commands(texts, language), scope=BotCommandScopeDefault(), language_code=language)


def webhook_secret(settings: Settings) -> str:
    """WEBHOOK_SECRET, or one derived from the token, so that every instance agrees on it."""
    if settings.webhook.secret is not None and settings.webhook.secret.get_secret_value():
        return settings.webhook.secret.get_secret_value()
    assert settings.telegram.bot_token is not None
    return hashlib.sha256(b"encore-webhook:" + settings.telegram.bot_token.get_secret_value().encode()).hexdigest()


def webhook_url(settings: Settings) -> str:
    assert settings.webhook.url
    url = settings.webhook.url.rstrip("/")
    return url if url.endswith(settings.webhook.path) else url + settings.webhook.path


@dataclass
class TelegramRuntime:
    bot: Bot
    dispatcher: Dispatcher
    storage: BaseStorage
    isolation: BaseEventIsolation
    picks: DailyPicksService | None
    polling: asyncio.Task[None] | None = None
    webhook: SimpleRequestHandler | None = None
    redis: Redis | None = None
    updates: UpdateTracker = field(default_factory=UpdateTracker)
    grace: float = 15.0
    _stopped: bool = field(default=False, repr=False)

    async def stop(self) -> None:
        """Stop taking updates, let in-flight handlers finish, then close storage and the session."""
        if self._stopped:
            return
        self._stopped = True
        if self.polling is not None:
            try:
                await self.dispatcher.stop_polling()
            except RuntimeError:  # polling had not started yet: nothing in flight, so cancel its start
                self.polling.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(self.polling), timeout=15)
            except (TimeoutError, asyncio.CancelledError):
                self.polling.cancel()
            except Exception:
                log.exception("polling ended with an error")
        # Polling runs each update as its own task and does not wait for them when it stops (nor does the
        # webhook handler for its background feeds): let them finish, so that no handler is cut off
        # between its reply and its state write; cancel what is still running after the grace period, so
        # that nothing holds a chat's Redis lock or uses the storage once it is closed.
        await self.updates.drain(self.grace)
        await self.dispatcher.storage.close()
        await self.dispatcher.fsm.events_isolation.close()
        await self.bot.session.close()
        log.info("telegram bot stopped")


def _redis_backends(redis_url: str, prefix: str) -> tuple[BaseStorage, BaseEventIsolation, ThrottleBackend, Any]:
    from aiogram.fsm.storage.base import DefaultKeyBuilder
    from aiogram.fsm.storage.redis import RedisStorage

    storage = RedisStorage.from_url(redis_url, key_builder=DefaultKeyBuilder(prefix=f"{prefix}:fsm"))
    # Updates of one chat wait for each other; poll the lock often so that a queue drains quickly. A lock
    # lost with its process expires after `timeout` (just past the shutdown grace, so a redeploy does not
    # freeze a chat for long); a waiter gives up after `blocking_timeout`.
    isolation = storage.create_isolation(lock_kwargs={"timeout": 20, "sleep": 0.02, "blocking_timeout": 15})
    return storage, isolation, RedisThrottle(storage.redis, prefix=f"{prefix}:throttle"), storage.redis


async def start_telegram(
    settings: Settings,
    services: Services,
    routers: Sequence[Router],
    app: web.Application | None = None,
    *,
    polling_timeout: int = 10,
    throttle_limit: int = THROTTLE_LIMIT,
    throttle_window: float = THROTTLE_WINDOW,
) -> TelegramRuntime:
    """Build the bot and start taking updates (polling, or webhook routes on `app`).

    The daily picks (`services.picks`) are delivered through this bot from now on."""
    texts = Texts()
    bot = create_bot(settings)
    redis = None
    if settings.redis_url:
        storage, isolation, throttle, redis = _redis_backends(settings.redis_url, settings.redis_prefix)
    else:
        storage, isolation, throttle = MemoryStorage(), SimpleEventIsolation(), MemoryThrottle()
    updates = UpdateTracker()
    dp = create_dispatcher(
        services,
        routers,
        updates=updates,
        storage=storage,
        events_isolation=isolation,
        throttle=throttle,
        throttle_limit=throttle_limit,
        throttle_window=throttle_window,
        texts=texts,
    )
    picks = services.picks
    if picks is not None:
        # With Redis, every instance draws its sends from one pace: Telegram's limit is per bot.
        rate = picks.rate
        pace_key = f"{settings.redis_prefix}:picks:pace"
        shared_pace = (lambda: SharedPacer(redis, rate, key=pace_key)) if redis is not None else None
        picks.attach(TelegramNotifier(bot, texts), pacer=shared_pace)
    runtime = TelegramRuntime(
        bot=bot, dispatcher=dp, storage=storage, isolation=isolation, picks=picks, redis=redis, updates=updates
    )

    if settings.webhook.url:
        if app is None or app.frozen:
            raise RuntimeError(
                "webhook mode needs start_telegram(…, app) before the aiohttp app is started "
                "(runner.setup() freezes its routes)"
            )
        secret = webhook_secret(settings)
        runtime.webhook = SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=secret)
        app.router.add_post(settings.webhook.path, runtime.webhook.handle)

    try:
        await register_commands(bot, texts)
    except (TelegramAPIError, TelegramNetworkError) as exc:
        log.warning("could not register the command menu: %s", exc)

    if settings.webhook.url:
        await bot.set_webhook(
            webhook_url(settings),
            secret_token=webhook_secret(settings),
            allowed_updates=dp.resolve_used_update_types(),
            drop_pending_updates=settings.telegram.drop_pending_updates,
        )
        log.info("telegram bot: webhook at %s", settings.webhook.path)
    else:
        try:
            await bot.delete_webhook(drop_pending_updates=settings.telegram.drop_pending_updates)
        except (TelegramAPIError, TelegramNetworkError) as exc:
            log.warning("could not delete the webhook before polling: %s", exc)
        runtime.polling = asyncio.create_task(
            dp.start_polling(
                bot,
                handle_signals=False,
                close_bot_session=False,
                polling_timeout=polling_timeout,
                allowed_updates=dp.resolve_used_update_types(),
            ),
            name="telegram-polling",
        )
        log.info("telegram bot: polling %s", settings.telegram.api_url)

    return runtime
