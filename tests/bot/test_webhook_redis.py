"""Webhook mode (secret-token header) and Redis-backed FSM storage, isolation and throttling."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings, TelegramSettings, WebhookSettings
from bot.telegram.runtime import webhook_secret
from tests.bot.conftest import make_container
from tests.fakes.services import FakeServices
from tests.fakes.telegram import TOKEN, FakeTelegram, tg_user

ANN = tg_user(6001, "Ann", "en")


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.close()


def settings_for(
    telegram: FakeTelegram, *, redis_url: str | None = None, redis_prefix: str = "encore", webhook: bool = False
) -> Settings:
    return Settings(
        telegram=TelegramSettings(bot_token=TOKEN, api_url=telegram.base_url),
        webhook=WebhookSettings(url="https://encore.example.com" if webhook else None, secret="s3cret-Token_1"),
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )


async def test_webhook_mode_checks_the_secret_header(
    telegram: FakeTelegram,
    sqlite_engine: AsyncEngine,
    sqlite_sessions: async_sessionmaker[AsyncSession],
    fakes: FakeServices,
) -> None:
    settings = settings_for(telegram, webhook=True)
    container = make_container(sqlite_engine, sqlite_sessions, fakes, settings)
    app = web.Application()
    runtime = await container.start(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        hook = telegram.calls_of("setWebhook")[-1].params
        assert hook["url"] == "https://encore.example.com/telegram/webhook"
        assert hook["secret_token"] == "s3cret-Token_1" == webhook_secret(settings)
        assert "callback_query" in hook["allowed_updates"] and "inline_query" in hook["allowed_updates"]
        assert runtime.polling is None

        update = {"update_id": 1, **telegram.message_update(ANN, "Jazz Song 12")}
        refused = await client.post("/telegram/webhook", json=update)
        assert refused.status == 401
        forged = await client.post(
            "/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}
        )
        assert forged.status == 401  # refused before the Dispatcher sees it: nothing can follow
        assert telegram.calls_of("sendMessage") == []

        ok = await client.post(
            "/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"}
        )
        assert ok.status == 200
        card = await telegram.wait_for("sendMessage")
        assert "Jazz Song 12" in card.params["text"]
    finally:
        await runtime.stop()
        await client.close()


async def test_webhook_needs_the_app_before_it_starts(
    telegram: FakeTelegram, sqlite_engine, sqlite_sessions, fakes: FakeServices
) -> None:
    container = make_container(sqlite_engine, sqlite_sessions, fakes, settings_for(telegram, webhook=True))
    app = web.Application()
    app.freeze()
    with pytest.raises(RuntimeError, match="before the aiohttp app is started"):
        await container.start(app)


@pytest.mark.redis
async def test_redis_state_is_shared_between_instances(
    telegram: FakeTelegram, sqlite_engine, sqlite_sessions, fakes: FakeServices, redis_url: str, redis_prefix: str
) -> None:
    """A search listed by one instance is paged by another: the FSM data lives in Redis."""
    container = make_container(
        sqlite_engine, sqlite_sessions, fakes, settings_for(telegram, redis_url=redis_url, redis_prefix=redis_prefix)
    )
    first = await container.start(polling_timeout=1)
    try:
        mark = telegram.mark()
        telegram.send_text(ANN, "Song 1")
        listing = (await telegram.wait_for("sendMessage", after=mark)).result
    finally:
        await first.stop()

    redis = Redis.from_url(redis_url)
    try:
        keys = [k.decode() for k in await redis.keys(f"{redis_prefix}:fsm:*")]
        assert any(k.endswith(":data") and str(ANN["id"]) in k for k in keys), keys
    finally:
        await redis.aclose()

    second = await container.start(polling_timeout=1)
    try:
        mark = telegram.mark()
        telegram.press(ANN, listing, telegram.button(listing, "▶"))
        edit = await telegram.wait_for("editMessageText", after=mark)
        pager = [b["text"] for row in edit.params["reply_markup"]["inline_keyboard"] for b in row]
        assert "2 / 2" in pager and "Song 1" in edit.params["text"]
    finally:
        await second.stop()


@pytest.mark.redis
async def test_redis_throttling_and_isolation(
    telegram: FakeTelegram, sqlite_engine, sqlite_sessions, fakes: FakeServices, redis_url: str, redis_prefix: str
) -> None:
    container = make_container(
        sqlite_engine, sqlite_sessions, fakes, settings_for(telegram, redis_url=redis_url, redis_prefix=redis_prefix)
    )
    runtime = await container.start(polling_timeout=1)
    try:
        assert type(runtime.dispatcher.fsm.events_isolation).__name__ == "RedisEventIsolation"
        mark = telegram.mark()
        sent = [telegram.send_text(ANN, "Jazz Song 12") for _ in range(12)]
        await telegram.wait_idle(sent[-1], runtime.updates.running)  # every update handled: nothing else comes
        texts = [c.params["text"] for c in telegram.calls[mark:] if c.method == "sendMessage"]
        assert sum("bit fast" in t for t in texts) == 1
        assert sum("Jazz Song 12" in t for t in texts) == 8
        redis = Redis.from_url(redis_url)
        try:
            assert await redis.pttl(f"{redis_prefix}:throttle:6001") > 0
        finally:
            await redis.aclose()
    finally:
        await runtime.stop()


@pytest.mark.redis
async def test_daily_picks_share_one_pace_through_redis(
    telegram: FakeTelegram, sqlite_engine, sqlite_sessions, fakes: FakeServices, redis_url: str, redis_prefix: str
) -> None:
    """Telegram's send limit is per bot: with Redis, every instance's daily picks draw from one pace."""
    from services.jobs import SharedPacer

    container = make_container(
        sqlite_engine, sqlite_sessions, fakes, settings_for(telegram, redis_url=redis_url, redis_prefix=redis_prefix)
    )
    runtime = await container.start(polling_timeout=1)
    try:
        assert isinstance(runtime.picks._new_pacer(), SharedPacer)
    finally:
        await runtime.stop()
