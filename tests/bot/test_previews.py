"""▶ 30-s preview on track and radio cards, and playable inline results, through feed_update with fake
services (the journeys over the wire with the real services are in test_audio_e2e.py)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiogram import Dispatcher
from aiogram.fsm.storage.memory import MemoryStorage

from bot.telegram.callbacks import PreviewCallback, RadioCallback, TrackAction, TrackCallback
from bot.telegram.factory import create_dispatcher
from bot.telegram.keyboards import analysis_keyboard, radio_keyboard, track_keyboard
from bot.telegram.texts import Texts
from handlers.telegram import get_routers
from handlers.telegram import inline as inline_module
from services.dto import RadioStep, Recommendation
from tests.bot.conftest import Chat, make_container, make_settings
from tests.fakes.bot import RecordingBot
from tests.fakes.services import FakeServices, fake_services, make_catalog

LABELS = Texts().labels("en")
PREVIEW = "https://cdnt-preview.dzcdn.net/api/1/1/a/b/c/preview.mp3?hdnea=exp=1700000000~acl=x~hmac=y"
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 100


@pytest.fixture
def deezer_fakes() -> FakeServices:
    """The fake catalogue, with Deezer ids on the jazz tracks (11–20): they can have previews."""
    catalog = [dataclasses.replace(t, deezer_id=900_000 + t.id) if 11 <= t.id <= 20 else t for t in make_catalog()]
    return fake_services(catalog)


@pytest.fixture
def deezer_chat(sqlite_engine, sqlite_sessions, deezer_fakes: FakeServices) -> Chat:  # type: ignore[no-untyped-def]
    container = make_container(sqlite_engine, sqlite_sessions, deezer_fakes, make_settings())
    dp: Dispatcher = create_dispatcher(container.services, get_routers(), storage=MemoryStorage(), throttle_limit=1000)
    return Chat(dp, RecordingBot())


def test_cards_offer_a_preview_only_when_one_can_exist() -> None:
    def data(markup: object) -> list[str]:
        return [b.callback_data or "" for row in markup.inline_keyboard for b in row]  # type: ignore[attr-defined]

    preview = PreviewCallback(track_id=7).pack()
    assert preview in data(track_keyboard(7, liked=False, labels=LABELS, preview=True))
    assert preview not in data(track_keyboard(7, liked=False, labels=LABELS))
    track = make_catalog()[6]
    step = RadioStep(radio_id="r" * 22, track=track, position=1)
    assert not any(d.startswith("pv:") for d in data(radio_keyboard(step, LABELS)))
    with_deezer = dataclasses.replace(step, track=dataclasses.replace(track, deezer_id=5))
    assert PreviewCallback(track_id=track.id).pack() in data(radio_keyboard(with_deezer, LABELS))
    similar = [Recommendation(t, 1.0) for t in make_catalog()[:3]]
    keyboard = analysis_keyboard(99, similar, LABELS)
    assert data(keyboard)[0] == TrackCallback(action=TrackAction.RADIO, track_id=99).pack()
    assert [TrackCallback.unpack(d).track_id for d in data(keyboard)[1:]] == [1, 2, 3]


async def test_radio_card_preview_is_sent_as_audio(deezer_chat: Chat, deezer_fakes: FakeServices) -> None:
    chat = deezer_chat
    server = chat.bot.server
    deezer_fakes.tracks.previews = {t: f"{PREVIEW}&t={t}" for t in range(11, 21)}
    for t in range(11, 21):
        server.serve_url(f"{PREVIEW}&t={t}", MP3, "audio/mpeg")
    await chat.send("Jazz Song 12")
    card = chat.last()
    await chat.press(card, server.button(card, "Start radio"))
    radio = chat.last()
    step_track = RadioCallback.unpack(server.button(radio, "Like")).track_id
    assert 11 <= step_track <= 20  # a jazz radio: Deezer knows its tracks
    await chat.press(radio, server.button(radio, "30-s preview"))
    audio = server.sent_media[-1]
    assert audio.method == "sendAudio" and audio.url == f"{PREVIEW}&t={step_track}" and audio.data == MP3
    track = deezer_fakes.tracks.by_id[step_track]
    assert (audio.performer, audio.title) == (track.artist_line, track.name)
    assert audio.caption == "▶ 30-second preview · Deezer"
    assert deezer_fakes.tracks.preview_requests == [step_track]  # asked when pressed, not before
    assert "text" not in chat.answers()[-1]
    actions = chat.bot.calls("sendChatAction")
    assert actions and actions[-1]["action"] == "upload_voice"


async def test_a_preview_telegram_cannot_fetch_is_a_toast_and_can_be_tried_again(
    deezer_chat: Chat, deezer_fakes: FakeServices
) -> None:
    chat = deezer_chat
    deezer_fakes.tracks.previews = {12: PREVIEW}  # not served: Telegram's fetch fails
    await chat.send("Jazz Song 12")
    card = chat.last()
    data = chat.bot.server.button(card, "30-s preview")
    await chat.press(card, data)
    assert chat.answers()[-1]["text"] == LABELS("alert_preview_failed")
    chat.bot.server.serve_url(PREVIEW, MP3, "audio/mpeg")
    await chat.press(card, data)  # not "already in the chat": nothing was sent the first time
    assert "text" not in chat.answers()[-1] and chat.bot.server.sent_media[-1].url == PREVIEW


async def test_no_preview_button_without_deezer_and_a_toast_without_a_preview(
    deezer_chat: Chat, deezer_fakes: FakeServices
) -> None:
    chat = deezer_chat
    await chat.send("Rock Song 3")
    assert not any("preview" in b["text"] for b in chat.bot.server.buttons(chat.last()))
    await chat.send("Jazz Song 13")  # a Deezer id, but Deezer has no preview for it
    card = chat.last()
    await chat.press(card, chat.bot.server.button(card, "30-s preview"))
    assert chat.answers()[-1]["text"] == LABELS("alert_preview_none") and chat.bot.server.sent_media == []
    await chat.press(card, PreviewCallback(track_id=987654).pack())  # a forged id: a toast, nothing sent
    assert chat.answers()[-1]["text"] == LABELS("alert_not_found")


async def test_inline_results_play_where_a_preview_comes_in_time(
    deezer_chat: Chat, deezer_fakes: FakeServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = deezer_chat
    monkeypatch.setattr(inline_module, "PREVIEW_BUDGET_SECONDS", 0.05)
    deezer_fakes.tracks.previews = {11: PREVIEW}
    real = deezer_fakes.tracks.preview_url

    async def slow_for_12(track):  # type: ignore[no-untyped-def]
        if track.id == 12:
            await asyncio.Event().wait()  # never answers: cancelled when the budget is spent
        return await real(track)

    monkeypatch.setattr(deezer_fakes.tracks, "preview_url", slow_for_12)
    await chat.inline("Jazz Song 1")
    answer = chat.bot.calls("answerInlineQuery")[-1]
    kinds = {int(r["id"]): r["type"] for r in answer["results"]}
    assert kinds[11] == "audio" and kinds[12] == "article" and kinds[13] == "article"  # 13: Deezer has none
    audio = next(r for r in answer["results"] if r["type"] == "audio")
    assert audio["audio_url"] == PREVIEW and audio["performer"] == "Jazz Band 2"
    assert audio["audio_duration"] == 30 and "Jazz" in audio["caption"]
    assert answer["cache_time"] <= 60
