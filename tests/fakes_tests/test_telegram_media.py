"""The fake Bot API's media: sendAudio/sendVoice/sendDocument/sendPhoto by upload, URL or file_id, and edits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge
from aiogram.methods import SendDocument
from aiogram.types import BufferedInputFile, FSInputFile, InputMediaAudio, InputMediaDocument, InputMediaVideo
from aiohttp import web

from tests.fakes.bot import RecordingBot
from tests.fakes.telegram import CAPTION_LIMIT, TOKEN, UPLOAD_LIMIT, FakeTelegram, make_jpeg, make_png
from tests.fakes_tests.conftest import ANN, refusal

MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 256
OGG = b"OggS" + b"\x01" * 300


@pytest.fixture
async def previews() -> AsyncIterator[str]:
    """A stand-in for a provider's preview host on 127.0.0.1 (the fake fetches 127.0.0.1 URLs as Telegram would)."""

    async def mp3(request: web.Request) -> web.Response:
        return web.Response(body=MP3, content_type="audio/mpeg")

    async def ogg(request: web.Request) -> web.Response:
        return web.Response(body=OGG, content_type="audio/ogg")

    app = web.Application()
    app.router.add_get("/preview.mp3", mp3)
    app.router.add_get("/preview.ogg", ogg)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_send_audio_upload_is_recorded_with_its_fields_and_appears_in_the_chat(
    bot: Bot, telegram: FakeTelegram
) -> None:
    thumb = make_jpeg(90, 90, size=2000)
    sent = await bot.send_audio(
        ANN["id"],
        BufferedInputFile(MP3, filename="One More Time.mp3"),
        caption="<b>Daft Punk</b> — One More Time",
        performer="Daft Punk",
        title="One More Time",
        duration=30,
        thumbnail=BufferedInputFile(thumb, filename="cover.jpg"),
    )
    assert sent.audio is not None and sent.caption == "Daft Punk — One More Time"
    assert (sent.audio.performer, sent.audio.title, sent.audio.duration) == ("Daft Punk", "One More Time", 30)
    assert (sent.audio.file_name, sent.audio.mime_type, sent.audio.file_size) == (
        "One More Time.mp3",
        "audio/mpeg",
        len(MP3),
    )
    assert sent.audio.thumbnail is not None and (sent.audio.thumbnail.width, sent.audio.thumbnail.height) == (90, 90)

    record = telegram.sent_media[-1]
    assert (record.method, record.kind, record.source, record.chat_id) == ("sendAudio", "audio", "upload", ANN["id"])
    assert record.data == MP3 and record.file_name == "One More Time.mp3"
    assert record.content_type == "application/octet-stream"  # what aiogram puts on the part; mime_type is derived
    assert (record.performer, record.title, record.duration, record.caption) == (
        "Daft Punk",
        "One More Time",
        30,
        "Daft Punk — One More Time",
    )
    assert record.thumbnail is not None and record.thumbnail.read() == thumb and record.thumbnail_ignored is None
    assert telegram.sent_to(ANN)[-1]["audio"]["file_id"] == sent.audio.file_id  # in the chat history
    assert (await telegram.wait_for_sent(ANN, lambda m: "audio" in m))["message_id"] == sent.message_id

    downloaded = await bot.download(sent.audio.file_id)  # the uploaded file can be fetched back
    assert downloaded is not None and downloaded.read() == MP3


async def test_send_audio_from_a_path_voice_document_and_photo(
    bot: Bot, telegram: FakeTelegram, tmp_path: Path
) -> None:
    path = tmp_path / "preview.mp3"
    path.write_bytes(MP3)
    audio = await bot.send_audio(ANN["id"], FSInputFile(path))
    assert audio.audio is not None and audio.audio.file_name == "preview.mp3" and audio.audio.duration == 0

    voice = await bot.send_voice(ANN["id"], BufferedInputFile(OGG, filename="note.ogg"), duration=3)
    assert voice.voice is not None and (voice.voice.duration, voice.voice.mime_type) == (3, "audio/ogg")

    csv = b"artist,title\r\nDaft Punk,One More Time\r\n"
    document = await bot.send_document(ANN["id"], BufferedInputFile(csv, filename="likes.csv"), caption="Your likes")
    assert document.document is not None and document.caption == "Your likes"
    assert (document.document.file_name, document.document.mime_type) == ("likes.csv", "text/csv")
    assert telegram.sent_media[-1].data == csv

    photo = await bot.send_photo(ANN["id"], BufferedInputFile(make_png(640, 480), filename="cover.png"))
    assert photo.photo is not None and (photo.photo[-1].width, photo.photo[-1].height) == (640, 480)
    assert [m.kind for m in telegram.sent_media] == ["audio", "voice", "document", "photo"]
    assert [c.ok for c in telegram.calls] == [True] * 4


async def test_send_audio_by_url_fetches_it_as_telegram_would(bot: Bot, telegram: FakeTelegram, previews: str) -> None:
    live = await bot.send_audio(ANN["id"], f"{previews}/preview.mp3", performer="Daft Punk", title="One More Time")
    assert live.audio is not None and live.audio.mime_type == "audio/mpeg"
    record = telegram.sent_media[-1]
    assert (record.source, record.url, record.data) == ("url", f"{previews}/preview.mp3", MP3)

    signed = "https://cdnt-preview.dzcdn.net/api/1/1/a/b/c/0/abc.mp3?hdnea=exp=1700000000~acl=*~hmac=ff"
    telegram.serve_url(signed, MP3, "audio/mpeg")  # a URL off 127.0.0.1 must be registered
    assert (await bot.send_audio(ANN["id"], signed)).audio is not None
    assert telegram.fetched_urls == [f"{previews}/preview.mp3", signed]

    cases = [
        (f"{previews}/preview.ogg", "Bad Request: wrong type of the web page content"),  # sendAudio wants MP3/M4A
        (f"{previews}/missing.mp3", "Bad Request: failed to get HTTP URL content"),
        ("https://expired.example.com/preview.mp3", "Bad Request: failed to get HTTP URL content"),
    ]
    for url, description in cases:
        assert await refusal(bot.send_audio(ANN["id"], url), TelegramBadRequest) == description, url
    telegram.serve_url("https://big.example.com/mix.mp3", b"\x00" * (20 * 1024 * 1024 + 1), "audio/mpeg")
    assert await refusal(bot.send_audio(ANN["id"], "https://big.example.com/mix.mp3"), TelegramBadRequest) == (
        "Bad Request: failed to get HTTP URL content"
    )


async def test_resending_by_file_id_checks_the_id_and_its_type(bot: Bot, telegram: FakeTelegram) -> None:
    audio_id = telegram.send_audio(ANN, MP3)["message"]["audio"]["file_id"]
    voice_id = telegram.send_voice(ANN, OGG)["message"]["voice"]["file_id"]
    again = await bot.send_audio(ANN["id"], audio_id)
    assert again.audio is not None and again.audio.file_id == audio_id and telegram.sent_media[-1].source == "file_id"
    assert (await bot.send_document(ANN["id"], audio_id)).document is not None  # any file goes as a document

    assert (
        await refusal(bot.send_audio(ANN["id"], voice_id), TelegramBadRequest) == "Bad Request: type of file mismatch"
    )
    assert await refusal(bot.send_audio(ANN["id"], "CQACAgIAAxkBAAIunknown"), TelegramBadRequest) == (
        "Bad Request: wrong file identifier/HTTP URL specified"
    )


async def test_captions_are_limited_to_1024_characters_after_entity_parsing(bot: Bot, telegram: FakeTelegram) -> None:
    at_limit = "<b>" + "й" * CAPTION_LIMIT + "</b>"  # tags do not count
    assert (await bot.send_audio(ANN["id"], BufferedInputFile(MP3, "a.mp3"), caption=at_limit)).caption is not None
    over = "x" * (CAPTION_LIMIT + 1)
    assert await refusal(bot.send_audio(ANN["id"], BufferedInputFile(MP3, "a.mp3"), caption=over)) == (
        "Bad Request: message caption is too long"
    )
    assert await refusal(bot.send_document(ANN["id"], BufferedInputFile(b"x", "a.txt"), caption="<b>x")) == (
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""
    )
    assert len(telegram.sent_media) == 1  # nothing half-sent


async def test_a_document_over_50_mb_is_refused_with_413(bot: Bot, telegram: FakeTelegram) -> None:
    too_big = BufferedInputFile(b"\x00" * (UPLOAD_LIMIT + 1), filename="playlist.csv")
    description = await refusal(bot.send_document(ANN["id"], too_big), TelegramEntityTooLarge)
    assert description == "Request Entity Too Large"
    assert telegram.calls[-1].code == 413 and telegram.sent_media == []


async def test_the_upload_limit_counts_bytes_exactly(telegram: FakeTelegram) -> None:
    small = FakeTelegram(upload_limit=1000)
    await small.start()
    try:
        from tests.fakes_tests.conftest import make_bot

        async with make_bot(small) as bot:
            ok = await bot.send_document(ANN["id"], BufferedInputFile(b"x" * 1000, filename="a.bin"))
            assert ok.document is not None and ok.document.file_size == 1000
            over = bot.send_document(ANN["id"], BufferedInputFile(b"x" * 1001, filename="a.bin"))
            assert await refusal(over, TelegramEntityTooLarge) == "Request Entity Too Large"
    finally:
        await small.close()


async def test_photos_must_be_images_of_sane_dimensions(bot: Bot) -> None:
    not_an_image = BufferedInputFile(b"just text", filename="x.jpg")
    assert await refusal(bot.send_photo(ANN["id"], not_an_image)) == "Bad Request: IMAGE_PROCESS_FAILED"
    banner = BufferedInputFile(make_png(2100, 100), filename="banner.png")  # ratio over 20
    assert await refusal(bot.send_photo(ANN["id"], banner)) == "Bad Request: PHOTO_INVALID_DIMENSIONS"


async def test_thumbnails_telegram_would_ignore_are_flagged(bot: Bot, telegram: FakeTelegram) -> None:
    await bot.send_audio(
        ANN["id"], BufferedInputFile(MP3, "a.mp3"), thumbnail=BufferedInputFile(make_png(90, 90), "t.png")
    )
    assert telegram.sent_media[-1].thumbnail is None and telegram.sent_media[-1].thumbnail_ignored == "not a JPEG"
    big = BufferedInputFile(make_jpeg(640, 640), "t.jpg")
    await bot.send_document(ANN["id"], BufferedInputFile(b"x", "a.txt"), thumbnail=big)
    assert telegram.sent_media[-1].thumbnail_ignored == "wider or higher than 320 px"
    # aiogram refuses a string thumbnail; a hand-built method gets one onto the wire as another client might
    method = SendDocument.model_construct(
        chat_id=ANN["id"], document=BufferedInputFile(b"x", "a.txt"), thumbnail="https://example.com/t.jpg"
    )
    sent = await bot(method)
    assert sent.document is not None and sent.document.thumbnail is None
    assert "not uploaded as a file" in (telegram.sent_media[-1].thumbnail_ignored or "")


async def test_raw_requests_missing_or_stray_files_are_refused(telegram: FakeTelegram) -> None:
    """What aiogram never sends but a hand-made request could: Telegram's own wording either way."""
    url = f"{telegram.base_url}/bot{TOKEN}/sendAudio"
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("chat_id", str(ANN["id"]))
        form.add_field("audio", "attach://nothing")
        form.add_field("other", b"data", filename="x.mp3")
        async with http.post(url, data=form) as response:
            body = await response.json()
        assert response.status == 400
        assert body["description"].startswith('Bad Request: the file part "other" is not used by any parameter')

        async with http.post(url, data={"chat_id": str(ANN["id"]), "audio": "attach://nothing"}) as response:
            assert (await response.json())["description"] == "Bad Request: there is no audio in the request"
        async with http.post(url, data={"chat_id": str(ANN["id"])}) as response:
            assert (await response.json())["description"] == "Bad Request: there is no audio in the request"

        direct = aiohttp.FormData()  # a part named like the parameter is an upload too
        direct.add_field("chat_id", str(ANN["id"]))
        direct.add_field("audio", MP3, filename="direct.mp3", content_type="audio/mpeg")
        async with http.post(url, data=direct) as response:
            assert (await response.json())["result"]["audio"]["file_name"] == "direct.mp3"
    assert telegram.sent_media[-1].content_type == "audio/mpeg"


async def test_edit_caption_and_media(bot: Bot, telegram: FakeTelegram) -> None:
    sent = await bot.send_audio(ANN["id"], BufferedInputFile(MP3, "a.mp3"), caption="first")
    edited = await bot.edit_message_caption(chat_id=ANN["id"], message_id=sent.message_id, caption="<i>second</i>")
    assert not isinstance(edited, bool) and edited.caption == "second"
    same = bot.edit_message_caption(chat_id=ANN["id"], message_id=sent.message_id, caption="second")
    assert (await refusal(same, TelegramBadRequest)).startswith("Bad Request: message is not modified")

    replaced = await bot.edit_message_media(
        chat_id=ANN["id"],
        message_id=sent.message_id,
        media=InputMediaAudio(media=BufferedInputFile(OGG + MP3, "b.mp3"), performer="Justice", title="D.A.N.C.E."),
    )
    assert not isinstance(replaced, bool) and replaced.audio is not None
    assert (replaced.audio.performer, replaced.audio.file_name) == ("Justice", "b.mp3") and replaced.caption is None
    assert telegram.sent_media[-1].method == "editMessageMedia" and telegram.sent_media[-1].data == OGG + MP3
    as_document = await bot.edit_message_media(
        chat_id=ANN["id"], message_id=sent.message_id, media=InputMediaDocument(media=replaced.audio.file_id)
    )
    assert not isinstance(as_document, bool) and as_document.document is not None and as_document.audio is None

    text = await bot.send_message(ANN["id"], "plain text")
    assert await refusal(bot.edit_message_caption(chat_id=ANN["id"], message_id=text.message_id, caption="x")) == (
        "Bad Request: there is no caption in the message to edit"
    )
    media = InputMediaAudio(media=replaced.audio.file_id)
    assert await refusal(bot.edit_message_media(chat_id=ANN["id"], message_id=text.message_id, media=media)) == (
        "Bad Request: there is no media in the message to edit"
    )
    assert await refusal(bot.edit_message_text("x", chat_id=ANN["id"], message_id=sent.message_id)) == (
        "Bad Request: there is no text in the message to edit"
    )


async def test_the_in_process_recording_bot_uploads_and_downloads_too() -> None:
    """tests/fakes/bot.py's RecordingSession hands the server the same bytes AiohttpSession would send."""
    bot = RecordingBot()
    sent = await bot.send_audio(ANN["id"], BufferedInputFile(MP3, "a.mp3"), title="T")
    assert sent.audio is not None and bot.server.sent_media[-1].data == MP3
    downloaded = await bot.download(sent.audio.file_id)
    assert downloaded is not None and downloaded.read() == MP3
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_document(ANN["id"], BufferedInputFile(b"\x00" * (UPLOAD_LIMIT + 1), "big.bin"))


async def test_video_notes_and_the_remaining_media_refusals(bot: Bot, telegram: FakeTelegram) -> None:
    mp4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
    note = await bot.send_video_note(ANN["id"], BufferedInputFile(mp4, "round.mp4"), duration=5, length=240)
    assert note.video_note is not None and (note.video_note.duration, note.video_note.length) == (5, 240)
    assert telegram.sent_media[-1].kind == "video_note" and telegram.sent_media[-1].data == mp4

    big_photo = BufferedInputFile(make_png(10, 10) + b"\x00" * (10 * 1024 * 1024), "big.png")
    assert await refusal(bot.send_photo(ANN["id"], big_photo)) == "Bad Request: PHOTO_SAVE_FILE_INVALID"
    telegram.serve_url("https://img.example.com/huge.jpg", make_jpeg(100, 100, size=5 * 1024 * 1024 + 1), "image/jpeg")
    assert await refusal(bot.send_photo(ANN["id"], "https://img.example.com/huge.jpg")) == (
        "Bad Request: failed to get HTTP URL content"  # Telegram fetches photos up to 5 MB
    )
    telegram.serve_url("https://example.com/page.html", b"<html></html>", "text/html; charset=utf-8")
    assert await refusal(bot.send_document(ANN["id"], "https://example.com/page.html")) == (
        "Bad Request: wrong type of the web page content"  # by URL only PDF, ZIP and GIF go as documents
    )
    telegram.serve_url("https://example.com/list.pdf", b"%PDF-1.4", "application/pdf")
    assert (await bot.send_document(ANN["id"], "https://example.com/list.pdf")).document is not None
    video = InputMediaVideo(media=telegram.sent_media[-1].file.file_id)
    assert (await refusal(bot.edit_message_media(chat_id=ANN["id"], message_id=note.message_id, media=video))).endswith(
        "(the fake is stricter than Telegram here)"
    )
    assert [m.kind for m in telegram.sent_media] == ["video_note", "document"]
