"""Issue 13 §3–§4 in Telegram, end to end with no keys: the composition root (main.build_services) over
fake Deezer and ReccoBeats servers and a real SQLite catalogue, the bot started as main starts it,
against the fake Bot API server (getFile and the /file/bot<token>/<path> download included).

Songs sent as audio: an MP3 with tags → its card → radio; a voice message (and a video note) without
tags → "this sounds like …" with the similar tracks → radio; every refusal in both languages, with
nothing downloaded when Telegram's own numbers already say no, nothing stored, no temporary file left.
Previews: ▶ 30-s preview sends the preview as audio (one preview message per chat), inline results
are playable audio where a preview exists.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.telegram.callbacks import PreviewCallback, TrackAction, TrackCallback
from bot.telegram.runtime import TelegramRuntime, start_telegram
from db.base import Base
from db.engine import create_engine, create_session_factory
from db.models import Track
from handlers.telegram import get_routers
from handlers.telegram import preview as preview_module
from services.container import Services
from tests.fakes import media
from tests.fakes.deezer import FakeDeezer, FakeDeezerTrack
from tests.fakes.reccobeats import FakeReccoBeats
from tests.fakes.spotify import Failure
from tests.fakes.telegram import TOKEN, ApiCall, FakeTelegram, tg_user
from tests.test_any_song import valid_catalogue

DAFT_PUNK = 3135556
JAZZ_ON_DEEZER = 777001  # the catalogue's "Jazz Band 3 — Jazz Song 3-1", as Deezer knows it
NO_PREVIEW = 777002
ANN = tg_user(8101, "Ann", "en")
BORIS = tg_user(8102, "Борис", "ru")


def song_mp3(seconds: float = 40.0, hz: float = 330.0, tags: dict[str, str] | None = None) -> bytes:
    rate = 22_050
    signal = media.tone(seconds, rate, hz) + media.noise(seconds, rate, 0.05, seed=int(hz))
    buffer = io.BytesIO()
    media.mp3(buffer, media.channels(signal, 1), rate, tags=tags)
    return buffer.getvalue()


def voice(seconds: float = 35.0, hz: float = 260.0) -> bytes:
    signal = media.tone(seconds, 48_000, hz) + media.noise(seconds, 48_000, 0.05, seed=7)
    buffer = io.BytesIO()
    media.voice_ogg(buffer, media.channels(signal, 1))
    return buffer.getvalue()


def round_video(seconds: float = 20.0, hz: float = 390.0) -> bytes:
    signal = media.tone(seconds, 44_100, hz) + media.noise(seconds, 44_100, 0.05, seed=11)
    buffer = io.BytesIO()
    media.video_note(buffer, media.channels(signal, 1))
    return buffer.getvalue()


@dataclass
class World:
    telegram: FakeTelegram
    deezer: FakeDeezer
    reccobeats: FakeReccoBeats
    services: Services
    settings: Settings
    runtime: TelegramRuntime
    temp: Path

    async def tracks(self) -> int:
        engine = create_engine(self.settings.db_url)
        try:
            async with create_session_factory(engine)() as s:
                return int(await s.scalar(select(func.count()).select_from(Track)) or 0)
        finally:
            await engine.dispose()

    def leftovers(self) -> list[Path]:
        """Temporary files or folders the bot left behind."""
        return sorted(self.temp.iterdir())

    async def reply(self, enqueue: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Enqueue an update; the bot's next message (text or media) to that chat."""
        mark = self.telegram.mark()
        enqueue()
        return (await self.telegram.wait_for("sendMessage", after=mark)).result

    async def press(self, user: dict[str, Any], message: dict[str, Any], data: str) -> tuple[ApiCall, int]:
        """Press a button; the answerCallbackQuery call, and the mark taken before the press."""
        mark = self.telegram.mark()
        query_id = self.telegram.press(user, message, data)["callback_query"]["id"]
        answer = await self.telegram.wait_for(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query_id, after=mark
        )
        return answer, mark

    def calls_since(self, mark: int, method: str) -> list[ApiCall]:
        return [c for c in self.telegram.calls[mark:] if c.method == method]


@contextlib.asynccontextmanager
async def make_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Path | None = None, **env: str
) -> AsyncIterator[World]:
    """`model`: a catalog artefact folder, copied to where main.build_services looks for it (None: no model)."""
    from main import build_services

    if model is not None:
        shutil.copytree(model, tmp_path / "models" / "catalog")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where the bot's temporary downloads go
    telegram = FakeTelegram()
    await telegram.start()
    deezer = FakeDeezer(
        [
            FakeDeezerTrack(DAFT_PUNK, "One More Time", "Daft Punk", isrc="GBDUW0000053", rank=900_000),
            FakeDeezerTrack(JAZZ_ON_DEEZER, "Jazz Song 3-1", "Jazz Band 3", album="Live", isrc="USJZZ0300001"),
            FakeDeezerTrack(NO_PREVIEW, "Silent Type", "Quiet Quartet", has_preview=False),
        ],
        preview_lifetime=600.0,
    )
    reccobeats = FakeReccoBeats()
    await deezer.start()
    await reccobeats.start()
    deezer.preview_audio[DAFT_PUNK] = song_mp3(30.0, 440.0)
    deezer.preview_audio[JAZZ_ON_DEEZER] = song_mp3(30.0, 220.0)
    for name, value in {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.base_url,
        "DEEZER_API_URL": deezer.api_url,
        "DEEZER_SHORT_LINK_URL": deezer.short_link_url,
        "DEEZER_PREVIEW_ORIGINS": deezer.base_url,
        "DEEZER_TIMEOUT": "0.5",
        "DEEZER_MAX_RETRIES": "2",
        "RECCOBEATS_API_URL": reccobeats.api_url,
        "RECCOBEATS_TIMEOUT": "1",
        "RECCOBEATS_ANALYSIS_TIMEOUT": "2",
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None, data_dir=tmp_path, redis_url=None)  # type: ignore[call-arg]
    assert not settings.spotify.enabled and not settings.youtube.enabled  # no keys at all
    engine = create_engine(settings.db_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with create_session_factory(engine).begin() as s:
        s.add_all(valid_catalogue())
    await engine.dispose()
    services = await build_services(settings)
    runtime: TelegramRuntime | None = None
    try:
        await services.warm_up()
        runtime = await start_telegram(settings, services, get_routers(), polling_timeout=1, throttle_limit=1000)
        yield World(telegram, deezer, reccobeats, services, settings, runtime, temp)
    finally:
        if runtime is not None:
            await runtime.stop()
        await services.close()
        await deezer.close()
        await reccobeats.close()
        await telegram.close()


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_models: Path) -> AsyncIterator[World]:
    async with make_world(tmp_path, monkeypatch, trained_models / "catalog") as w:
        yield w


def button(telegram: FakeTelegram, message: dict[str, Any], text: str) -> str:
    return telegram.button(message, text)


# -- songs sent as audio -------------------------------------------------------------------------


async def test_an_mp3_with_tags_opens_its_card_then_a_radio(world: World) -> None:
    telegram = world.telegram
    rows = await world.tracks()
    data = song_mp3(tags={"artist": "Jazz Band 3", "title": "Jazz Song 3-1"})
    mark = telegram.mark()
    card = await world.reply(lambda: telegram.send_audio(ANN, data, file_name="jazz.mp3"))
    assert card["text"].startswith("🎧 I found this song by your recording's tags:")
    assert "Jazz Song 3-1" in card["text"] and "Jazz Band 3" in card["text"]
    assert "🏷 Genre:" in card["text"]
    actions = world.calls_since(mark, "sendChatAction")
    assert actions and actions[0].params["action"] == "typing"  # shown while it listens
    assert len(world.calls_since(mark, "getFile")) == 1 and len(telegram.downloads) == 1
    assert world.reccobeats.uploads == []  # the tags were enough
    assert await world.tracks() == rows and world.leftovers() == []

    _, mark = await world.press(ANN, card, button(telegram, card, "Start radio"))
    radio = (await telegram.wait_for("sendMessage", after=mark)).result
    assert radio["text"].startswith("📻 Radio")
    assert [c for c in telegram.calls if not c.ok] == []


async def test_the_same_through_telegrams_own_tags(world: World) -> None:
    """An audio file whose ID3 tags are gone, but Telegram knows its performer and title."""
    telegram = world.telegram
    card = await world.reply(
        lambda: telegram.send_audio(BORIS, song_mp3(), performer="Jazz Band 3", title="Jazz Song 3-1")
    )
    assert card["text"].startswith("🎧 Нашёл эту песню по тегам вашей записи:") and "Jazz Song 3-1" in card["text"]
    assert "🏷 Жанр:" in card["text"] and world.reccobeats.uploads == []


@pytest.mark.parametrize("kind", ["voice", "video_note"])
async def test_a_recording_without_tags_sounds_like_similar_tracks_then_radio(world: World, kind: str) -> None:
    telegram = world.telegram
    rows = await world.tracks()
    if kind == "voice":
        answer = await world.reply(lambda: telegram.send_voice(ANN, voice(), duration=35))
    else:
        answer = await world.reply(lambda: telegram.send_video_note(ANN, round_video(), duration=20))
    text = answer["text"]
    assert text.startswith("🎧 Your recording")
    # its genre from the genre model's analysis head (a tiny model, `trained_models`), and where it came from
    guess = re.search(r"(This sounds like|It's not clear what this sounds like)[^\n]*\d+ ?%", text)
    assert guess is not None, text
    assert "(I measured its sound from 30 seconds in the middle.)" in text
    assert "I found 6 tracks that sound like it" in text
    buttons = telegram.buttons(answer)
    assert buttons[0]["text"] == "▶ Start radio" and len(buttons) == 7
    similar = [TrackCallback.unpack(b["callback_data"]) for b in buttons[1:]]
    assert all(c.action is TrackAction.CARD for c in similar)
    assert len(world.reccobeats.uploads) == 1 and await world.tracks() == rows + 1
    assert world.leftovers() == []

    _, mark = await world.press(ANN, answer, button(telegram, answer, "Start radio"))
    radio = (await telegram.wait_for("sendMessage", after=mark)).result
    assert radio["text"].startswith("📻 Radio")
    _, mark = await world.press(ANN, radio, button(telegram, radio, "Like"))
    edit = await telegram.wait_for("editMessageText", after=mark)
    assert int(edit.params["message_id"]) == radio["message_id"]

    # A similar track opens its card (a catalogue song: its genre comes from the catalogue).
    _, mark = await world.press(ANN, answer, buttons[1]["callback_data"])
    card = (await telegram.wait_for("sendMessage", after=mark)).result
    assert "(catalogue)" in card["text"]
    assert [c for c in telegram.calls if not c.ok] == []


Refusal = tuple[str, Callable[[World, dict[str, Any]], dict[str, Any]], str, str, bool]


def _png(world: World, user: dict[str, Any]) -> dict[str, Any]:
    return world.telegram.send_document(user, media.png(), file_name="cover.png", mime_type="image/png")


def _too_big(world: World, user: dict[str, Any]) -> dict[str, Any]:
    return world.telegram.send_audio(user, song_mp3(5.0), size=21 * 1024 * 1024 + 300_000)


def _corrupt(world: World, user: dict[str, Any]) -> dict[str, Any]:
    damaged = media.id3v23("Title", "Nobody Known", "Album") + np.random.default_rng(5).bytes(200_000)
    return world.telegram.send_audio(user, damaged, file_name="broken.mp3")


def _silent(world: World, user: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    media.mp3(buffer, np.zeros((1, 22_050 * 40), dtype=np.float32), 22_050)
    return world.telegram.send_voice(user, buffer.getvalue(), mime_type="audio/mpeg")


def _mix(world: World, user: dict[str, Any]) -> dict[str, Any]:
    path = world.temp.parent / "mix.mp3"
    media.long_mp3(path, 2 * 3600)
    return world.telegram.send_document(user, path, file_name="mix.mp3", mime_type="audio/mpeg")


REFUSALS: list[tuple[str, Callable[[World, dict[str, Any]], dict[str, Any]], str, str, bool]] = [
    # (what, send, English, Russian, downloaded)
    ("over 20 MB", _too_big, "This file is 21.3 MB; I can listen to files of up to 20 MB", "весит 21,3 МБ", False),
    ("a picture as a document", _png, "This file doesn't look like audio", "Этот файл не похож на звук", False),
    ("corrupt", _corrupt, "seems damaged or cut short", "повреждён или обрезан", True),
    ("silent", _silent, "I could only hear silence", "слышу только тишину", True),
    ("a 2-hour mix", _mix, "long, which looks like a mix or a podcast", "— похоже на микс или подкаст", True),
]


async def test_every_refusal_is_clear_in_both_languages_and_leaves_nothing(world: World) -> None:
    telegram = world.telegram
    rows = await world.tracks()
    for what, send, english, russian, downloaded in REFUSALS:
        for user, expected in ((ANN, english), (BORIS, russian)):
            mark = telegram.mark()
            downloads = len(telegram.downloads)
            answer = await world.reply(lambda send=send, user=user: send(world, user))  # type: ignore[misc]
            assert expected in answer["text"], (what, answer["text"])
            assert (len(telegram.downloads) > downloads) is downloaded, what
            if not downloaded:
                assert world.calls_since(mark, "getFile") == [], what  # refused before asking for the file
            assert world.leftovers() == [], what
    assert await world.tracks() == rows and world.reccobeats.uploads == []
    assert [c for c in telegram.calls if not c.ok] == []


async def test_reccobeats_down_or_rate_limited(world: World) -> None:
    telegram = world.telegram
    rows = await world.tracks()
    world.reccobeats.fail("analysis", Failure(status=503, headers={"Retry-After": "60"}))
    recording = voice(hz=300.0)
    down = await world.reply(lambda: telegram.send_voice(ANN, recording))
    assert "The service that listens to recordings isn't answering right now" in down["text"]
    world.reccobeats.fail("analysis", Failure(status=429, headers={"Retry-After": "120"}))
    limited = await world.reply(lambda: telegram.send_voice(BORIS, voice(hz=310.0)))
    assert "Сервис, который слушает записи, сейчас не отвечает" in limited["text"]
    assert await world.tracks() == rows and world.leftovers() == []
    # It answers again: the same recording is analysed now.
    again = await world.reply(lambda: telegram.send_voice(ANN, recording))
    assert again["text"].startswith("🎧 Your recording") and await world.tracks() == rows + 1


async def test_analyses_are_limited_per_person(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with make_world(tmp_path, monkeypatch, ANALYSIS_PER_IDENTITY="1") as world:
        telegram = world.telegram
        recording = voice(hz=320.0)
        first = await world.reply(lambda: telegram.send_voice(BORIS, recording))
        assert first["text"].startswith("🎧 Ваша запись")
        second = await world.reply(lambda: telegram.send_voice(BORIS, voice(hz=330.0)))
        assert second["text"].startswith("⏳ Вы прислали много записей подряд. Попробуйте снова через")
        # The same file again costs nothing: answered from what was stored.
        same = await world.reply(lambda: telegram.send_voice(BORIS, recording))
        assert same["text"].startswith("🎧 Ваша запись")
        other = await world.reply(lambda: telegram.send_voice(ANN, voice(hz=340.0)))  # another person's budget
        assert other["text"].startswith("🎧 Your recording")
        assert len(world.reccobeats.uploads) == 2 and world.leftovers() == []


# -- hear it where you are -----------------------------------------------------------------------


async def test_preview_press_sends_the_preview_as_audio_without_flooding(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    telegram = world.telegram
    clock = [1_000_000.0]
    monkeypatch.setattr(preview_module, "now", lambda: clock[0])
    card = await world.reply(lambda: telegram.send_text(ANN, "daft punk one more time"))
    assert "One More Time" in card["text"]
    data = button(telegram, card, "30-s preview")
    assert PreviewCallback.unpack(data).track_id == TrackCallback.unpack(button(telegram, card, "Similar")).track_id

    answer, _ = await world.press(ANN, card, data)
    assert "text" not in answer.params  # no toast: the preview itself answers
    sent = telegram.sent_media[-1]
    assert sent.method == "sendAudio" and sent.source == "url" and sent.url is not None
    assert sent.url.startswith(world.deezer.base_url + "/preview/")
    assert (sent.performer, sent.title) == ("Daft Punk", "One More Time")
    assert sent.data == world.deezer.preview_audio[DAFT_PUNK]  # Telegram fetched the fresh, signed URL
    first = sent.message

    # Pressed again at once: a toast, no second preview message.
    media_count = len(telegram.sent_media)
    clock[0] += 5
    answer, _ = await world.press(ANN, card, data)
    assert answer.params["text"] == "The preview is already in the chat, just below."
    assert len(telegram.sent_media) == media_count

    # Another song's preview replaces the previous one: one preview message in the chat at a time.
    jazz = await world.reply(lambda: telegram.send_text(ANN, f"https://www.deezer.com/track/{JAZZ_ON_DEEZER}"))
    await world.press(ANN, jazz, button(telegram, jazz, "30-s preview"))
    assert telegram.sent_media[-1].data == world.deezer.preview_audio[JAZZ_ON_DEEZER]
    assert [m["message_id"] for m in telegram.deleted] == [first["message_id"]]
    previews = [m for m in telegram.sent_to(ANN["id"]) if "audio" in m]
    assert len(previews) == 1

    # The first one again, a minute later: sent anew (at the bottom of the chat), the jazz one deleted.
    clock[0] += 120
    await world.press(ANN, card, data)
    previews = [m for m in telegram.sent_to(ANN["id"]) if "audio" in m]
    assert len(previews) == 1 and previews[0]["audio"]["title"] == "One More Time"

    # A Deezer song without a preview: the toast says so. A catalogue song Deezer never matched: no button.
    silent = await world.reply(lambda: telegram.send_text(ANN, f"https://www.deezer.com/track/{NO_PREVIEW}"))
    answer, _ = await world.press(ANN, silent, button(telegram, silent, "30-s preview"))
    assert answer.params["text"] == "There's no 30-second preview of this track."
    plain = await world.reply(lambda: telegram.send_text(ANN, "Rock Band 2 - Rock Song 2-1"))
    if "Several tracks" not in plain["text"]:
        assert not any("preview" in b["text"] for b in telegram.buttons(plain))
    assert [c for c in telegram.calls if not c.ok] == []


async def test_inline_results_are_playable_where_a_preview_exists(world: World) -> None:
    telegram = world.telegram
    await world.reply(lambda: telegram.send_text(ANN, "daft punk one more time"))  # now in the catalogue
    mark = telegram.mark()
    telegram.inline(ANN, "one more time")
    answer = await telegram.wait_for("answerInlineQuery", after=mark)
    results = answer.params["results"]
    audio = [r for r in results if r["type"] == "audio"]
    assert audio, results
    song = audio[0]
    assert song["audio_url"].startswith(world.deezer.base_url + "/preview/")
    assert (song["title"], song["performer"]) == ("One More Time", "Daft Punk")
    assert "30-second preview" in song["caption"] and song["reply_markup"]["inline_keyboard"]
    assert answer.params["cache_time"] <= 60  # far below the preview URL's lifetime (minutes)

    mark = telegram.mark()
    telegram.inline(ANN, "Jazz Band 2")  # catalogue songs Deezer never matched: text cards
    answer = await telegram.wait_for("answerInlineQuery", after=mark)
    assert answer.params["results"] and {r["type"] for r in answer.params["results"]} == {"article"}
    assert [c for c in telegram.calls if not c.ok] == []


async def test_a_song_known_by_the_nine_analysis_values_names_its_source_in_russian(world: World) -> None:
    """Daft Punk is outside the catalogue: Deezer finds it, ReccoBeats measures its preview (nine values,
    no key, mode or time signature). The analysis head answers, and the card says, in Russian, that the
    genre comes from a 30-second excerpt's sound (never "the genre model is unavailable")."""
    telegram = world.telegram
    card = await world.reply(lambda: telegram.send_text(BORIS, "daft punk one more time"))
    text = card["text"]
    assert "One More Time" in text and len(world.reccobeats.uploads) == 1
    assert "по звучанию 30-секундного фрагмента" in text
    assert "модель жанров сейчас недоступна" not in text and "Жанр не определён" not in text
    assert "excerpt" not in text and "Genre" not in text
    english = await world.reply(lambda: telegram.send_text(ANN, "daft punk one more time"))
    assert "by the sound of a 30-s excerpt" in english["text"] and "unknown" not in english["text"]
    assert [c for c in telegram.calls if not c.ok] == []
