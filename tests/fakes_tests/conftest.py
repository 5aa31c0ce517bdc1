"""Fixtures for the fake Bot API's own tests: the server on 127.0.0.1 and a real aiogram Bot talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError

from tests.fakes.telegram import TOKEN, FakeTelegram, tg_user

ANN = tg_user(7001, "Ann", "en")


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.close()


def make_bot(telegram: FakeTelegram, token: str = TOKEN) -> Bot:
    """The product's way of reaching the API: a real AiohttpSession via TelegramAPIServer.from_base."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.base_url))
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    real = make_bot(telegram)
    yield real
    await real.session.close()


async def refusal(call: Awaitable[Any], kind: type[TelegramAPIError] = TelegramAPIError) -> str:
    """The description Telegram (here: the fake) refused `call` with."""
    with pytest.raises(kind) as caught:
        await call
    return caught.value.message
