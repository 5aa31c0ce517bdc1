"""The bot end to end over the real services (TrackService, RecommendationService, RadioService,
FeedbackService, UserService) on an in-memory SQLite catalogue, against the fake Bot API server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.telegram.runtime import TelegramRuntime
from db.models import Interaction, InteractionKind, Like, RadioSession, User
from services.feedback import FeedbackService
from tests.api.test_real_services import real_container
from tests.bot.conftest import make_settings
from tests.fakes.telegram import ApiCall, FakeTelegram, tg_user
from tests.wiring import Wiring

CARLA = tg_user(7001, "Carla", "en")


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def real(telegram: FakeTelegram) -> AsyncIterator[Wiring]:
    container = await real_container()
    container.settings = make_settings(telegram.base_url)
    container.services.feedback = FeedbackService(container.sessions, genres=container.services.genre)
    yield container
    await container.engine.dispose()


@pytest.fixture
async def runtime(real: Wiring) -> AsyncIterator[TelegramRuntime]:
    rt = await real.start(polling_timeout=1, throttle_limit=1000)
    yield rt
    await rt.stop()


async def say(telegram: FakeTelegram, text: str) -> dict[str, Any]:
    mark = telegram.mark()
    telegram.send_text(CARLA, text)
    return (await telegram.wait_for("sendMessage", after=mark)).result


async def press(telegram: FakeTelegram, message: dict[str, Any], data: str, method: str) -> ApiCall:
    mark = telegram.mark()
    query_id = telegram.press(CARLA, message, data)["callback_query"]["id"]
    await telegram.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query_id, after=mark)
    return await telegram.wait_for(method, after=mark)


async def count(real: Wiring, stmt: Any) -> int:
    async with real.sessions() as session:
        return int(await session.scalar(stmt) or 0)


async def test_journey_over_real_services(runtime: TelegramRuntime, telegram: FakeTelegram, real: Wiring) -> None:
    first = await say(telegram, "Jazz Band 3")
    if "Several tracks" in first["text"]:
        first = (await press(telegram, first, telegram.buttons(first)[0]["callback_data"], "sendMessage")).result
    card = first
    assert "Jazz Band 3" in card["text"] and "Genre" in card["text"]

    await press(telegram, card, telegram.button(card, "👍"), "editMessageReplyMarkup")
    radio_msg = (await press(telegram, card, telegram.button(card, "Start radio"), "sendMessage")).result
    assert "Radio" in radio_msg["text"]
    for label in ("Like", "Skip", "Next"):
        edit = await press(telegram, radio_msg, telegram.button(radio_msg, label), "editMessageText")
        assert int(edit.params["message_id"]) == radio_msg["message_id"]

    user_id = await count(real, select(User.id).where(User.telegram_id == CARLA["id"]))
    assert await count(real, select(func.count()).select_from(Like).where(Like.user_id == user_id)) == 2
    skipped = select(func.count()).select_from(Interaction).where(Interaction.kind == InteractionKind.SKIPPED)
    assert await count(real, skipped) == 1
    radio = await count(real, select(RadioSession.message_id).where(RadioSession.user_id == user_id))
    assert radio == radio_msg["message_id"]

    likes = await say(telegram, "/likes")
    assert "Your likes" in likes["text"] and "2" in likes["text"]
    history = await say(telegram, "/history")
    assert "jazz" in history["text"].lower()

    mark = telegram.mark()
    telegram.inline(CARLA, "Jazz Band")
    answer = await telegram.wait_for("answerInlineQuery", after=mark)
    assert 1 <= len(answer.params["results"]) <= 10
    mark = telegram.mark()
    telegram.inline(CARLA, "")
    recent = await telegram.wait_for("answerInlineQuery", after=mark)
    assert len(recent.params["results"]) == 2

    # A sent inline result is recorded as a search of that track; foreign or unknown ids are ignored.
    sent_id = int(answer.params["results"][0]["id"])
    inline_searches = (
        select(func.count())
        .select_from(Interaction)
        .where(Interaction.user_id == user_id, Interaction.context == "inline")
    )
    chosen = [
        telegram.choose_inline(CARLA, result_id, "Jazz Band")
        for result_id in ("not-a-track", "999999999", str(sent_id))
    ]
    await telegram.wait_idle(chosen[-1], runtime.updates.running)  # all three handled: nothing else may land
    assert await count(real, inline_searches) == 1
    tracked = select(Interaction.track_id, Interaction.kind).where(Interaction.context == "inline")
    async with real.sessions() as s:
        assert (await s.execute(tracked)).one() == (sent_id, InteractionKind.SEARCHED)
    assert [c for c in telegram.calls if not c.ok] == []


async def test_similar_then_radio_never_replays_the_list_and_nonsense_finds_nothing(
    runtime: TelegramRuntime, telegram: FakeTelegram, real: Wiring
) -> None:
    """Over the wire with the real services: random letters answer "nothing found" with an example;
    a radio started right after 🔎 Similar (one of whose tracks the person liked) plays none of them;
    a 👍 left on the stopped radio says the radio is over."""
    from bot.telegram.callbacks import TrackCallback
    from services.examples import EXAMPLES

    nonsense = await say(telegram, "asdkjh qwpoeiru zzxq")
    assert nonsense["text"].startswith("🤷 Nothing found for asdkjh qwpoeiru zzxq")
    assert any(example in nonsense["text"] for example in EXAMPLES["en"])

    card = await say(telegram, "Jazz Song 3-1")
    if "Several tracks" in card["text"]:
        card = (await press(telegram, card, telegram.buttons(card)[0]["callback_data"], "sendMessage")).result
    similar = (await press(telegram, card, telegram.button(card, "Similar"), "sendMessage")).result
    shown = [TrackCallback.unpack(b["callback_data"]).track_id for b in telegram.buttons(similar)]
    assert len(shown) == 5 and "5 tracks" in similar["text"]
    opened = (await press(telegram, similar, telegram.buttons(similar)[2]["callback_data"], "sendMessage")).result
    await press(telegram, opened, telegram.button(opened, "👍"), "editMessageReplyMarkup")

    radio_msg = (await press(telegram, card, telegram.button(card, "Start radio"), "sendMessage")).result
    current = radio_msg
    for _ in range(5):
        current = (await press(telegram, current, telegram.button(current, "Next"), "editMessageText")).result
    played = select(Interaction.track_id).where(
        Interaction.kind == InteractionKind.SHOWN, Interaction.radio_session_id.is_not(None)
    )
    async with real.sessions() as s:
        radio_tracks = list((await s.scalars(played)).all())
    assert len(radio_tracks) == 6
    assert not set(radio_tracks) & set(shown)

    like = telegram.button(current, "Like")
    await press(telegram, current, telegram.button(current, "Stop"), "editMessageText")
    mark = telegram.mark()
    query_id = telegram.press(CARLA, current, like)["callback_query"]["id"]
    answer = await telegram.wait_for(
        "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query_id, after=mark
    )
    assert "radio is over" in answer.params["text"]
    assert [c for c in telegram.calls if not c.ok] == []
