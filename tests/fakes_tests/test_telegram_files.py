"""The fake Bot API's files: getFile, the download path, and updates carrying audio, voice, video notes, documents."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramUnauthorizedError

from tests.fakes.telegram import DOWNLOAD_LIMIT, TOKEN, FakeTelegram, make_png
from tests.fakes_tests.conftest import ANN, make_bot, refusal

MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 64


async def test_get_file_then_download_the_exact_bytes(bot: Bot, telegram: FakeTelegram) -> None:
    stored = telegram.add_file(MP3, kind="audio", file_name="song.mp3")
    file = await bot.get_file(stored.file_id)
    assert (file.file_id, file.file_unique_id, file.file_size) == (stored.file_id, stored.file_unique_id, len(MP3))
    assert file.file_path is not None and file.file_path.startswith("music/") and file.file_path.endswith(".mp3")
    again = await bot.get_file(stored.file_id)
    assert again.file_path == file.file_path  # one path per file while it lives

    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == MP3
    assert [d.file_id for d in telegram.downloads] == [stored.file_id]
    assert (await telegram.wait_for_download(stored.file_id)).path == file.file_path


async def test_a_file_registered_from_a_path_is_served_from_disk(
    bot: Bot, telegram: FakeTelegram, tmp_path: Path
) -> None:
    path = tmp_path / "radio-recording.ogg"
    path.write_bytes(b"OggS" + bytes(range(256)) * 40)
    stored = telegram.add_file(path, kind="voice")
    assert stored.file_name == "radio-recording.ogg" and stored.size == path.stat().st_size
    downloaded = await bot.download(stored.file_id)  # getFile, then GET /file/bot<token>/<file_path>
    assert downloaded is not None and downloaded.read() == path.read_bytes()


async def test_get_file_refuses_unknown_ids_and_files_over_20_mb(bot: Bot, telegram: FakeTelegram) -> None:
    assert await refusal(bot.get_file("AgADnot-a-real-id"), TelegramBadRequest) == "Bad Request: invalid file_id"
    huge = telegram.add_file(MP3, kind="audio", size=DOWNLOAD_LIMIT + 1)  # the size Telegram reports
    assert await refusal(bot.get_file(huge.file_id), TelegramBadRequest) == "Bad Request: file is too big"
    at_limit = telegram.add_file(MP3, kind="audio", size=DOWNLOAD_LIMIT)
    assert (await bot.get_file(at_limit.file_id)).file_size == DOWNLOAD_LIMIT
    failed = [c.error for c in telegram.calls if not c.ok]
    assert failed == ["Bad Request: invalid file_id", "Bad Request: file is too big"]


async def test_downloads_answer_404_for_unknown_or_expired_paths(bot: Bot, telegram: FakeTelegram) -> None:
    with pytest.raises(aiohttp.ClientResponseError) as unknown:
        await bot.download_file("music/file_999.mp3")
    assert unknown.value.status == 404

    stored = telegram.add_file(MP3, kind="audio")
    path = (await bot.get_file(stored.file_id)).file_path
    assert path is not None
    telegram.expire_file_paths()
    with pytest.raises(aiohttp.ClientResponseError) as expired:
        await bot.download_file(path)
    assert expired.value.status == 404
    fresh = (await bot.get_file(stored.file_id)).file_path  # asking again gives a new, working path
    assert fresh is not None and fresh != path
    downloaded = await bot.download_file(fresh)
    assert downloaded is not None and downloaded.read() == MP3


async def test_a_wrong_token_gets_401_and_a_malformed_one_404(telegram: FakeTelegram) -> None:
    stored = telegram.add_file(MP3, kind="audio")
    async with make_bot(telegram) as good:
        path = (await good.get_file(stored.file_id)).file_path
    async with aiohttp.ClientSession() as http:
        for token, status, description in (
            ("987654321:AAWrongTokenButWellFormed_0000000000", 401, "Unauthorized"),
            ("not-a-token", 404, "Not Found"),
            (TOKEN, 200, None),
        ):
            async with http.get(f"{telegram.base_url}/file/bot{token}/{path}") as response:
                assert response.status == status, token
                if description is not None:
                    assert await response.json() == {"ok": False, "error_code": status, "description": description}
                else:
                    assert await response.read() == MP3

    async with make_bot(telegram, "987654321:AAWrongTokenButWellFormed_0000000000") as wrong:
        assert await refusal(wrong.get_me(), TelegramUnauthorizedError) == "Unauthorized"
    async with (  # aiogram itself refuses to send a malformed token
        aiohttp.ClientSession() as http,
        http.post(f"{telegram.base_url}/botnot-a-token/getMe") as response,
    ):
        assert response.status == 404
        assert await response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_updates_carry_audio_voice_video_notes_and_documents_per_spec(bot: Bot, telegram: FakeTelegram) -> None:
    """Each update is checked against the spec when queued; here aiogram parses them off the wire."""
    telegram.send_audio(
        ANN, MP3, duration=212, performer="Daft Punk", title="One More Time", file_name="omt.mp3", caption="listen"
    )
    telegram.send_voice(ANN, b"OggS" + b"\x00" * 500, duration=7)
    telegram.send_video_note(ANN, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100, duration=9, length=360)
    telegram.send_document(ANN, b"RIFF....WAVEfmt ", file_name="radio.wav")
    telegram.send_document(ANN, make_png(4, 3), file_name="cover.png", mime_type="image/png")
    telegram.send_audio(ANN, MP3, file_name=None)  # an audio without tags: no performer, no title, no name

    updates = await bot.get_updates(timeout=0)
    audio, voice, note, wav, picture, bare = (u.message for u in updates)
    assert audio is not None and audio.audio is not None and audio.caption == "listen"
    assert (audio.audio.performer, audio.audio.title, audio.audio.duration) == ("Daft Punk", "One More Time", 212)
    assert (audio.audio.file_name, audio.audio.mime_type, audio.audio.file_size) == ("omt.mp3", "audio/mpeg", len(MP3))
    assert voice is not None and voice.voice is not None
    assert (voice.voice.duration, voice.voice.mime_type, voice.voice.file_size) == (7, "audio/ogg", 504)
    assert note is not None and note.video_note is not None
    assert (note.video_note.length, note.video_note.duration) == (360, 9)
    assert wav is not None and wav.document is not None
    assert (wav.document.file_name, wav.document.mime_type) == ("radio.wav", "audio/x-wav")
    assert picture is not None and picture.document is not None and picture.document.mime_type == "image/png"
    assert bare is not None and bare.audio is not None
    assert bare.audio.performer is None and bare.audio.title is None and bare.audio.file_name is None

    # Every file a user sent is downloadable by its file_id, byte for byte.
    for message, data in ((audio, MP3), (voice, b"OggS" + b"\x00" * 500)):
        media = message.audio or message.voice
        assert media is not None
        downloaded = await bot.download(media.file_id)
        assert downloaded is not None and downloaded.read() == data


async def test_an_oversized_upload_is_reported_with_telegrams_size(bot: Bot, telegram: FakeTelegram) -> None:
    """A 2-hour mix: the update says 30 MB (nothing that big is stored) and getFile refuses it."""
    update = telegram.send_audio(ANN, MP3, duration=7200, size=30 * 1024 * 1024)
    message = (await bot.get_updates(timeout=0))[0].message
    assert message is not None and message.audio is not None and message.audio.file_size == 30 * 1024 * 1024
    file_id = update["message"]["audio"]["file_id"]
    assert await refusal(bot.get_file(file_id), TelegramBadRequest) == "Bad Request: file is too big"


async def test_get_updates_honours_offset_and_allowed_updates(bot: Bot, telegram: FakeTelegram) -> None:
    first = telegram.send_text(ANN, "one")
    inline = telegram.inline(ANN, "daft")
    got = await bot.get_updates(timeout=0, allowed_updates=["message"])  # Telegram drops the inline query
    assert [u.update_id for u in got] == [first["update_id"]]
    assert telegram.dropped_updates == [inline]
    second = telegram.send_text(ANN, "two")
    got = await bot.get_updates(offset=first["update_id"] + 1, timeout=0)
    assert [u.update_id for u in got] == [second["update_id"]]
    await telegram.wait_delivered(first)  # confirmed by the offset
    assert telegram.confirmed_offset == first["update_id"] + 1
