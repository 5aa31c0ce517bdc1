"""End to end: the real Bot and Dispatcher polling the fake Bot API server over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.fsm.storage.memory import MemoryStorage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.telegram.callbacks import ALL_CALLBACKS
from bot.telegram.runtime import TelegramRuntime
from db.models import User
from tests.bot.conftest import make_container, make_settings
from tests.fakes.services import FakeServices
from tests.fakes.telegram import ApiCall, FakeTelegram, tg_user
from tests.wiring import Wiring

ANN = tg_user(5001, "Ann", "en")
BORIS = tg_user(5002, "Борис", "ru")


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def live_container(
    sqlite_engine: AsyncEngine,
    sqlite_sessions: async_sessionmaker[AsyncSession],
    fakes: FakeServices,
    telegram: FakeTelegram,
) -> Wiring:
    return make_container(sqlite_engine, sqlite_sessions, fakes, make_settings(telegram.base_url))


@pytest.fixture
async def runtime(live_container: Wiring) -> AsyncIterator[TelegramRuntime]:
    rt = await live_container.start(polling_timeout=1)
    yield rt
    await rt.stop()


def sent_to(call: ApiCall, user: dict[str, Any]) -> bool:
    return int(call.params.get("chat_id", 0)) == user["id"]


async def say(telegram: FakeTelegram, user: dict[str, Any], text: str) -> dict[str, Any]:
    """Send a message as `user`; the bot's reply as the server stored it."""
    mark = telegram.mark()
    telegram.send_text(user, text)
    call = await telegram.wait_for("sendMessage", lambda c: sent_to(c, user), after=mark)
    return call.result


async def press(
    telegram: FakeTelegram, user: dict[str, Any], message: dict[str, Any], data: str, method: str
) -> ApiCall:
    """Press a button; waits for the answerCallbackQuery and returns the `method` call it caused."""
    mark = telegram.mark()
    update = telegram.press(user, message, data)
    query_id = update["callback_query"]["id"]
    await telegram.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query_id, after=mark)
    return await telegram.wait_for(method, after=mark)


async def test_commands_are_registered_in_both_languages(runtime: TelegramRuntime, telegram: FakeTelegram) -> None:
    await telegram.wait_for("setMyCommands", lambda c: c.params.get("language_code") == "ru")
    by_language = {lang: cmds for (_, lang), cmds in telegram.commands.items()}
    assert set(by_language) == {"", "en", "ru"}
    names = [c["command"] for c in by_language["ru"]]
    assert names == [
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
    ]
    assert by_language["ru"][0]["description"] != by_language["en"][0]["description"]


async def test_search_card_radio_journey(
    runtime: TelegramRuntime, telegram: FakeTelegram, fakes: FakeServices, sqlite_sessions
) -> None:
    listing = await say(telegram, ANN, "Song 1")
    assert len(telegram.buttons(listing)) == 10  # 8 candidates, then "1 / 3" and ▶
    page2 = (await press(telegram, ANN, listing, telegram.button(listing, "▶"), "editMessageText")).result
    card_call = await press(telegram, ANN, page2, telegram.buttons(page2)[0]["callback_data"], "sendMessage")
    card = card_call.result
    assert "Genre" in card["text"]

    radio_msg = (await press(telegram, ANN, card, telegram.button(card, "Start radio"), "sendMessage")).result
    assert "Radio" in radio_msg["text"]
    liked_track = fakes.radio.first().current
    edit = await press(telegram, ANN, radio_msg, telegram.button(radio_msg, "Like"), "editMessageText")
    assert int(edit.params["message_id"]) == radio_msg["message_id"]
    assert liked_track is not None and liked_track.name not in edit.result["text"]
    skip = await press(telegram, ANN, edit.result, telegram.button(edit.result, "Skip"), "editMessageText")
    assert "👍 1 · 👎 1" in skip.result["text"]
    stop = await press(telegram, ANN, skip.result, telegram.button(skip.result, "Stop"), "editMessageText")
    assert "stopped" in stop.result["text"]

    # Stored: the like (service) and the user (database); no failed call on the wire.
    async with sqlite_sessions() as session:
        user = await session.scalar(select(User).where(User.telegram_id == ANN["id"]))
    assert user is not None and user.first_name == "Ann"
    assert fakes.feedback.liked[user.id] == [liked_track.id]
    assert [c for c in telegram.calls if not c.ok] == []


async def test_radio_survives_a_restart(live_container: Wiring, telegram: FakeTelegram, fakes: FakeServices) -> None:
    first = await live_container.start(polling_timeout=1)
    card = await say(telegram, BORIS, "Techno Song 25")
    assert "Жанр" in card["text"]  # Russian for a Russian client
    radio_msg = (await press(telegram, BORIS, card, telegram.button(card, "Радио"), "sendMessage")).result
    await first.stop()

    second = await live_container.start(polling_timeout=1)
    try:
        edit = await press(telegram, BORIS, radio_msg, telegram.button(radio_msg, "Дальше"), "editMessageText")
        assert int(edit.params["message_id"]) == radio_msg["message_id"]
        assert "трек 2" in edit.result["text"]
    finally:
        await second.stop()


async def test_stale_and_forged_presses_get_toasts_over_the_wire(
    runtime: TelegramRuntime, telegram: FakeTelegram
) -> None:
    """Out-of-date and unknown buttons are answered with a toast (a short note that goes away), not
    a blocking alert; nothing else happens and no call is refused."""
    card = await say(telegram, ANN, "Jazz Song 12")
    radio_msg = (await press(telegram, ANN, card, telegram.button(card, "Start radio"), "sendMessage")).result
    old_next = telegram.button(radio_msg, "Next")
    edited = (await press(telegram, ANN, radio_msg, old_next, "editMessageText")).result
    mark = telegram.mark()
    query_id = telegram.press(ANN, edited, old_next)["callback_query"]["id"]  # the second tap, on the edited message
    answer = await telegram.wait_for(
        "answerCallbackQuery", lambda c, q=query_id: c.params["callback_query_id"] == q, after=mark
    )
    # A double tap is not an error: a toast says the radio has moved on.
    assert not answer.params.get("show_alert") and "moved on" in answer.params["text"]
    for data in ("t:l:99999", "r:1:1", f"r:{'z' * 22}:1:n", "x" * 64):
        mark = telegram.mark()
        query_id = telegram.press(ANN, radio_msg, data)["callback_query"]["id"]
        answer = await telegram.wait_for(
            "answerCallbackQuery", lambda c, q=query_id: c.params["callback_query_id"] == q, after=mark
        )
        assert answer.params.get("show_alert") is not True and answer.params["text"], (data, answer.params)
    assert [c for c in telegram.calls if not c.ok] == []


async def test_inline_answers_ten_personal_results(runtime: TelegramRuntime, telegram: FakeTelegram) -> None:
    # How fast: bench/bench_bot.py (no wall-clock checks in tests).
    mark = telegram.mark()
    telegram.inline(ANN, "Song")
    call = await telegram.wait_for("answerInlineQuery", after=mark)
    assert len(call.params["results"]) == 10
    assert call.params["is_personal"] is True


async def test_throttling_sends_one_note_not_a_flood(runtime: TelegramRuntime, telegram: FakeTelegram) -> None:
    mark = telegram.mark()
    sent = [telegram.send_text(ANN, f"Jazz Song {12 + i % 3}") for i in range(14)]
    # Every update taken and every handler done: nothing else can arrive (no sleeping).
    await telegram.wait_idle(sent[-1], runtime.updates.running)
    note = next(c for c in telegram.calls[mark:] if c.method == "sendMessage" and "bit fast" in c.params["text"])
    assert "Send it again in a few seconds" in note.params["text"]  # it does not promise to catch up
    texts = [c.params["text"] for c in telegram.calls[mark:] if c.method == "sendMessage"]
    assert sum("bit fast" in t for t in texts) == 1
    assert sum("Jazz Song" in t for t in texts) == 8
    assert len(texts) == 9


def test_every_callback_button_fits_64_bytes() -> None:
    """Pack every CallbackData the bot can produce, with the largest values its fields can hold."""
    from bot.telegram.callbacks import (
        LikesAction,
        PlaylistAction,
        PlaylistItemAction,
        RadioAction,
        SettingsAction,
        TrackAction,
    )

    big = 2**63 - 1  # ids are BIGINT at most
    samples: dict[type, list[Any]] = {cls: [] for cls in ALL_CALLBACKS}
    from bot.telegram import callbacks as cb

    samples[cb.TrackCallback] = [cb.TrackCallback(action=a, track_id=big) for a in TrackAction]
    samples[cb.SearchPageCallback] = [cb.SearchPageCallback(search_id=big, page=99)]
    samples[cb.VersionsCallback] = [cb.VersionsCallback(search_id=big)]
    samples[cb.RadioCallback] = [cb.RadioCallback(radio_id="-" * 22, track_id=big, action=a) for a in RadioAction]
    samples[cb.HistoryPageCallback] = [cb.HistoryPageCallback(page=big)]
    samples[cb.LikesPageCallback] = [cb.LikesPageCallback(page=big)]
    samples[cb.LikesItemCallback] = [cb.LikesItemCallback(action=a, track_id=big, page=big) for a in LikesAction]
    samples[cb.SettingsCallback] = [
        cb.SettingsCallback(action=a, value=value) for a in SettingsAction for value in (0, 99)
    ]
    samples[cb.NoopCallback] = [cb.NoopCallback()]
    samples[cb.PreviewCallback] = [cb.PreviewCallback(track_id=big)]
    pid, last = "-" * 22, 99_999  # playlist pages are bounded (callbacks.PlaylistPage)
    samples[cb.PlaylistsCallback] = [cb.PlaylistsCallback(page=last, export=e) for e in (False, True)]
    samples[cb.PlaylistCallback] = [cb.PlaylistCallback(action=a, playlist_id=pid, page=last) for a in PlaylistAction]
    samples[cb.PlaylistItemCallback] = [
        cb.PlaylistItemCallback(action=a, playlist_id=pid, track_id=big, page=last) for a in PlaylistItemAction
    ]
    samples[cb.AddToPlaylistCallback] = [cb.AddToPlaylistCallback(playlist_id=pid, track_id=big)]
    samples[cb.NewPlaylistCallback] = [cb.NewPlaylistCallback(track_id=big)]
    prefixes = [cls.__prefix__ for cls in ALL_CALLBACKS]
    assert len(set(prefixes)) == len(prefixes)
    for cls, values in samples.items():
        assert values, f"no sample for {cls.__name__}"
        for value in values:
            packed = value.pack()
            assert 1 <= len(packed.encode()) <= 64, packed
            assert type(value).unpack(packed) == value


async def test_stop_lets_a_handler_in_flight_finish(
    live_container: Wiring, telegram: FakeTelegram, fakes: FakeServices
) -> None:
    """Stopping mid-update: the reply still goes out before the bot session and storage close."""
    started, release = asyncio.Event(), asyncio.Event()
    resolve = fakes.tracks.resolve

    async def slow_resolve(*args: Any, **kwargs: Any) -> Any:
        started.set()
        await release.wait()
        return await resolve(*args, **kwargs)

    fakes.tracks.resolve = slow_resolve  # type: ignore[method-assign]
    rt = await live_container.start(polling_timeout=1)
    mark = telegram.mark()
    telegram.send_text(ANN, "Techno Song 25")
    await asyncio.wait_for(started.wait(), 30)
    stopping = asyncio.create_task(rt.stop())
    await asyncio.wait_for(asyncio.shield(rt.polling), 30)  # polling is over, the handler still runs
    release.set()
    await asyncio.wait_for(stopping, 30)
    replies = [c for c in telegram.calls[mark:] if c.method == "sendMessage" and sent_to(c, ANN)]
    assert len(replies) == 1 and replies[0].ok
    assert len(rt.updates) == 0


async def test_stop_right_after_start_does_not_hang(live_container: Wiring) -> None:
    """Stopped before polling began: stop() cancels the start instead of waiting out its 15 s grace."""
    rt = await live_container.start(polling_timeout=1)
    rt.grace = 3600  # were stop() to wait out its grace, the test would hang (and time out) here
    await rt.stop()  # awaited directly: the polling task has not run yet
    assert rt.polling is not None and rt.polling.done()


class _ClosingStorage(MemoryStorage):
    """Records when it is closed (the order of shutdown is what the next test checks)."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def close(self) -> None:
        self.log.append("storage closed")
        await super().close()


async def test_stop_lets_a_running_handler_finish_before_closing_storage(
    live_container: Wiring, telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler still running when polling stops keeps its storage until it is done (aiogram itself
    would close the storage as soon as polling stops), and stop() cancels what outlives the grace."""
    from aiogram import Router
    from aiogram.fsm.context import FSMContext
    from aiogram.types import Message

    import bot.telegram.runtime as runtime_module
    from bot.telegram.runtime import start_telegram

    log: list[str] = []
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(message: Message, state: FSMContext) -> None:
        entered.set()
        await release.wait()
        await state.update_data(seen=True)
        log.append("handler wrote its state")

    def routers() -> list[Router]:
        router = Router()
        router.message.register(slow)
        return [router]

    monkeypatch.setattr(runtime_module, "MemoryStorage", lambda: _ClosingStorage(log))
    rt = await start_telegram(live_container.settings, live_container.services, routers(), polling_timeout=1)
    telegram.send_text(ANN, "hello")
    await asyncio.wait_for(entered.wait(), 30)
    stopping = asyncio.create_task(rt.stop())
    await asyncio.wait_for(asyncio.shield(rt.polling), 30)  # polling has stopped; the handler still runs
    assert "storage closed" not in log
    release.set()
    await asyncio.wait_for(stopping, 30)
    assert log == ["handler wrote its state", "storage closed"]

    # A handler that never ends is cancelled after the grace period, and then the storage closes.
    log.clear()
    entered.clear()
    release.clear()
    rt = await start_telegram(live_container.settings, live_container.services, routers(), polling_timeout=1)
    rt.grace = 0.1
    telegram.send_text(ANN, "hello again")
    await asyncio.wait_for(entered.wait(), 30)
    await asyncio.wait_for(rt.stop(), 30)
    assert log == ["storage closed"] and len(rt.updates) == 0


async def test_a_russian_journey_over_the_wire(
    runtime: TelegramRuntime, telegram: FakeTelegram, fakes: FakeServices
) -> None:
    """A Russian speaker, as Telegram delivers it: Russian examples, a card with cover, year and
    duration in Russian, a daily pick at a local time, the time-zone picker, an unknown command and a
    voice message. The fake server validates every call against the Bot API spec."""
    import dataclasses

    from services.examples import EXAMPLES
    from tests.fakes.services import make_track

    cover = "https://cdn-images.dzcdn.net/images/cover/kino/500x500-000000-80-0-0.jpg"
    fakes.tracks.add(
        dataclasses.replace(
            make_track(900, "rock", name="Группа крови", artist="Кино"),
            album="Группа крови",
            year=1988,
            duration_ms=286_000,
            cover_url=cover,
        )
    )
    start = await say(telegram, BORIS, "/start")
    assert "Привет, Борис" in start["text"] and any(e in start["text"] for e in EXAMPLES["ru"])

    mark = telegram.mark()
    card = await say(telegram, BORIS, "Группа крови")
    assert "💿 Группа крови · 1988 · 4:46" in card["text"]
    assert "Жанр точно не определён по звучанию, скорее всего:" in card["text"]
    assert "Рок — 45\u00a0%" in card["text"]  # a no-break space before %, as Russian typography wants
    sent = await telegram.wait_for("sendMessage", lambda c: sent_to(c, BORIS), after=mark)
    assert sent.params["link_preview_options"]["url"] == cover

    subscribed = await say(telegram, BORIS, "/subscribe 21:30")
    assert "каждый день в 21:30, часовой пояс — Москва (UTC+3)" in subscribed["text"]

    panel = await say(telegram, BORIS, "/settings")
    zones = (await press(telegram, BORIS, panel, telegram.button(panel, "🕒"), "editMessageText")).result
    chosen = await press(telegram, BORIS, zones, telegram.button(zones, "Екатеринбург"), "editMessageText")
    assert "Часовой пояс: Екатеринбург (UTC+5)" in chosen.result["text"]

    unknown = await say(telegram, BORIS, "/foo")
    assert unknown["text"].startswith("🤔 Команды /foo у меня нет.") and "Как пользоваться Encore" in unknown["text"]

    voice = telegram.message_update(BORIS, "")
    voice["message"].pop("text")
    voice["message"]["voice"] = {"file_id": "v", "file_unique_id": "v", "duration": 4}
    mark = telegram.mark()
    telegram.enqueue(voice)
    reply = await telegram.wait_for("sendMessage", lambda c: sent_to(c, BORIS), after=mark)
    assert reply.result["text"].startswith("🎧 Разбор записей сейчас выключен.")  # no analysis service here
    assert [c for c in telegram.calls if not c.ok] == []
