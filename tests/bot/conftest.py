"""Bot test fixtures: fake services, a real Container/Dispatcher, a recording Bot, update helpers."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from aiogram import Dispatcher
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings, TelegramSettings
from bot.telegram.factory import create_dispatcher
from handlers.telegram import get_routers
from services.jobs import DailyPicksService
from tests.fakes.bot import RecordingBot
from tests.fakes.services import FakeServices, fake_services
from tests.fakes.telegram import TOKEN, tg_user
from tests.wiring import Wiring


def make_settings(api_url: str = "http://127.0.0.1:1", **extra: Any) -> Settings:
    return Settings(telegram=TelegramSettings(bot_token=TOKEN, api_url=api_url), redis_url=None, **extra)


def make_container(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], fakes: FakeServices, settings: Settings
) -> Wiring:
    services = fakes.services(
        engine, sessions, analysis=False, picks=DailyPicksService(sessions, fakes.recommendations)
    )
    return Wiring(settings, services, engine, sessions)


@pytest.fixture
def fakes() -> FakeServices:
    return fake_services()


@pytest.fixture
def container(
    sqlite_engine: AsyncEngine, sqlite_sessions: async_sessionmaker[AsyncSession], fakes: FakeServices
) -> Wiring:
    return make_container(sqlite_engine, sqlite_sessions, fakes, make_settings())


@pytest.fixture
def dp(container: Wiring) -> Dispatcher:
    return create_dispatcher(container.services, get_routers(), storage=MemoryStorage())


@pytest.fixture
def bot() -> RecordingBot:
    return RecordingBot()


class Chat:
    """One Telegram user talking to the bot through `feed_update`, with the recording bot's state."""

    _update_ids = itertools.count(1)

    def __init__(self, dp: Dispatcher, bot: RecordingBot, user_id: int = 1001, language: str = "en") -> None:
        self.dp = dp
        self.bot = bot
        self.user = tg_user(user_id, language_code=language)

    async def feed(self, update: dict[str, Any]) -> None:
        payload = {"update_id": next(self._update_ids), **update}
        await self.dp.feed_update(self.bot, Update.model_validate(payload, context={"bot": self.bot}))

    async def send(self, text: str) -> None:
        await self.feed(self.bot.server.message_update(self.user, text))

    async def press(self, message: dict[str, Any], data: str) -> None:
        await self.feed(self.bot.server.callback_update(self.user, message, data))

    async def inline(self, query: str) -> None:
        await self.feed(self.bot.server.inline_update(self.user, query))

    def sent(self) -> list[dict[str, Any]]:
        """Messages the bot sent to this user, oldest first, as they stand now (edits applied)."""
        server = self.bot.server
        return [
            m
            for (chat_id, _), m in sorted(server.messages.items())
            if chat_id == self.user["id"] and m.get("from", {}).get("is_bot")
        ]

    def last(self) -> dict[str, Any]:
        sent = self.sent()
        assert sent, "the bot sent nothing"
        return sent[-1]

    def answers(self) -> list[dict[str, Any]]:
        return self.bot.calls("answerCallbackQuery")


@pytest.fixture
def chat(dp: Dispatcher, bot: RecordingBot) -> Chat:
    return Chat(dp, bot)


@pytest.fixture
def busy_chat(container: Wiring, bot: RecordingBot) -> Chat:
    """A chat for long journeys: the per-user throttle (8 updates in 2 s) raised out of the way."""
    dp = create_dispatcher(container.services, get_routers(), storage=MemoryStorage(), throttle_limit=1000)
    return Chat(dp, bot)
