"""Playlists in the bot, end to end: the real Bot and Dispatcher polling the fake Bot API on 127.0.0.1,
over the real services (tracks, radio, playlists, Save to Spotify against the fake Spotify accounts)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlalchemy import func, insert, select

from bot.telegram.callbacks import PlaylistAction, PlaylistCallback
from bot.telegram.runtime import TelegramRuntime
from db.models import AUDIO_FEATURE_COLUMNS, Like, Playlist, PlaylistItem, Track, User
from services.dto import Listener
from services.playlists import PlaylistService
from services.spotify_accounts import SpotifySaveService, SpotifyUserApi, TokenCipher
from tests.api.test_real_services import real_container
from tests.bot.conftest import make_settings
from tests.fakes.spotify_accounts import CLIENT_ID, FakeSpotifyAccounts
from tests.fakes.telegram import ApiCall, FakeTelegram, tg_user
from tests.wiring import Wiring

CARLA = tg_user(7101, "Carla", "en")
DAN = tg_user(7102, "Дан", "ru")
PUBLIC = "https://encore.example"
REDIRECT = PUBLIC + "/spotify/callback"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def spotify() -> AsyncIterator[FakeSpotifyAccounts]:
    async with FakeSpotifyAccounts(allowed=("carla",)) as fake:
        fake.redirect_uris.add(REDIRECT)
        fake.next_user = "carla"
        yield fake


@pytest.fixture
async def real(telegram: FakeTelegram, spotify: FakeSpotifyAccounts) -> AsyncIterator[Wiring]:
    container = await real_container()
    container.settings = make_settings(telegram.base_url)
    services = container.services
    playlists = PlaylistService(container.sessions, services.radio, genres=services.genre, public_url=PUBLIC)
    api = SpotifyUserApi(
        CLIENT_ID,
        accounts_url=spotify.base_url,
        token_url=spotify.base_url + "/api/token",
        api_url=spotify.base_url + "/v1/",
    )
    services.playlists = playlists
    services.spotify_save = SpotifySaveService(
        container.sessions, playlists, api=api, cipher=TokenCipher([TokenCipher.generate_key()]), redirect_uri=REDIRECT
    )
    yield container
    await api.close()
    await container.engine.dispose()


@pytest.fixture
async def runtime(real: Wiring) -> AsyncIterator[TelegramRuntime]:
    rt = await real.start(polling_timeout=1, throttle_limit=1000)
    yield rt
    await rt.stop()


async def say(telegram: FakeTelegram, user: dict[str, Any], text: str) -> dict[str, Any]:
    mark = telegram.mark()
    telegram.send_text(user, text)
    return (await telegram.wait_for("sendMessage", lambda c: int(c.params["chat_id"]) == user["id"], after=mark)).result


async def press(
    telegram: FakeTelegram, user: dict[str, Any], message: dict[str, Any], data: str, method: str
) -> ApiCall:
    mark = telegram.mark()
    query_id = telegram.press(user, message, data)["callback_query"]["id"]
    await telegram.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query_id, after=mark)
    return await telegram.wait_for(method, after=mark)


async def toast(telegram: FakeTelegram, user: dict[str, Any], message: dict[str, Any], data: str) -> str:
    mark = telegram.mark()
    query_id = telegram.press(user, message, data)["callback_query"]["id"]
    call = await telegram.wait_for(
        "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query_id, after=mark
    )
    return str(call.params.get("text") or "")


async def documents(telegram: FakeTelegram, mark: int, count: int) -> list[ApiCall]:
    found: list[ApiCall] = []
    after = mark
    while len(found) < count:
        call = await telegram.wait_for("sendDocument", after=after)
        found.append(call)
        after = telegram.calls.index(call) + 1
    return found


async def card_for(telegram: FakeTelegram, user: dict[str, Any], query: str) -> dict[str, Any]:
    first = await say(telegram, user, query)
    if "Genre" not in first["text"] and "Жанр" not in first["text"]:  # a list of candidates: take the first
        first = (await press(telegram, user, first, telegram.buttons(first)[0]["callback_data"], "sendMessage")).result
    return first


async def count(real: Wiring, stmt: Any) -> int:
    async with real.sessions() as s:
        return int(await s.scalar(stmt) or 0)


async def test_playlist_journey(
    runtime: TelegramRuntime, telegram: FakeTelegram, real: Wiring, spotify: FakeSpotifyAccounts
) -> None:
    card = await card_for(telegram, CARLA, "Jazz Song 3-1")
    picker = (await press(telegram, CARLA, card, telegram.button(card, "➕ Playlist"), "sendMessage")).result
    assert "to a playlist" in picker["text"]
    assert [b["text"] for b in telegram.buttons(picker)] == ["💚 Likes", "➕ New playlist"]

    # Two quick taps on 💚 Likes: the song is liked once.
    likes_button = telegram.button(picker, "Likes")
    answers = [await toast(telegram, CARLA, picker, likes_button) for _ in range(2)]
    assert answers == ["Added to Likes.", "Already in Likes."]
    user_id = await count(real, select(User.id).where(User.telegram_id == CARLA["id"]))
    assert await count(real, select(func.count()).select_from(Like).where(Like.user_id == user_id)) == 1

    # ➕ New playlist: its name is the next message (HTML in it stays text).
    prompt = (await press(telegram, CARLA, picker, telegram.button(picker, "New playlist"), "sendMessage")).result
    assert "Send the name" in prompt["text"]
    created = await say(telegram, CARLA, "Late <night> & jazz")
    assert "Late <night> & jazz" in created["text"] and "is made" in created["text"]
    named_id = PlaylistCallback.unpack(telegram.button(created, "Radio")).playlist_id

    # A radio from the card, then ➕ on the radio's song into the new playlist.
    radio_msg = (await press(telegram, CARLA, card, telegram.button(card, "Start radio"), "sendMessage")).result
    radio_picker = (await press(telegram, CARLA, radio_msg, telegram.button(radio_msg, "➕"), "sendMessage")).result
    assert (
        await toast(telegram, CARLA, radio_picker, telegram.button(radio_picker, "Late"))
        == "Added to Late <night> & jazz."
    )

    # /playlists: likes first, then the named one; open it, move the second song up, remove one.
    listing = await say(telegram, CARLA, "/playlists")
    assert [b["text"] for b in telegram.buttons(listing)] == [
        "💚 Likes · 1",
        "🎵 Late <night> & jazz · 2",
        "➕ New playlist",
    ]
    opened = (await press(telegram, CARLA, listing, telegram.button(listing, "Late"), "editMessageText")).result
    lines = [line for line in opened["text"].splitlines() if line[:2] in ("1.", "2.")]
    assert len(lines) == 2 and "Jazz Song 3-1" in lines[0]
    moved = (await press(telegram, CARLA, opened, telegram.button(opened, "⬆ 2"), "editMessageText")).result
    moved_lines = [line for line in moved["text"].splitlines() if line[:2] in ("1.", "2.")]
    assert moved_lines[0][3:] == lines[1][3:] and moved_lines[1][3:] == lines[0][3:]
    # ⬇ takes the first song back down, and ⬆ brings it up again.
    down = (await press(telegram, CARLA, moved, telegram.button(moved, "⬇ 1"), "editMessageText")).result
    assert [line for line in down["text"].splitlines() if line[:2] in ("1.", "2.")] == lines
    moved = (await press(telegram, CARLA, down, telegram.button(down, "⬆ 2"), "editMessageText")).result

    # Export: three documents (CSV, JSPF, M3U8), names escaped in the captions.
    mark = telegram.mark()
    telegram.press(CARLA, moved, telegram.button(moved, "Export"))
    docs = await documents(telegram, mark, 3)
    names = [d.result["document"]["file_name"] for d in docs]
    assert names == ["encore-Late-night-jazz.csv", "encore-Late-night-jazz.jspf", "encore-Late-night-jazz.m3u8"]
    media = telegram.sent_media[-3:]
    rows = list(csv.DictReader(io.StringIO(media[0].data.decode("utf-8-sig"))))
    assert [r["title"] for r in rows] == [moved_lines[0].split(". ", 1)[1].split(" — ")[0], "Jazz Song 3-1"]
    assert rows[1]["spotify_url"].startswith("https://open.spotify.com/track/")
    assert len(json.loads(media[1].data)["playlist"]["track"]) == 2
    assert media[2].data.startswith(b"#EXTM3U\n#PLAYLIST:Late <night> & jazz\n")
    assert "Late &lt;night&gt; &amp; jazz" in docs[0].params["caption"]

    # Share: the link and a summary (song count, top genres); revoking it.
    share = (await press(telegram, CARLA, moved, telegram.button(moved, "Share"), "sendMessage")).result
    assert "2 songs" in share["text"] and "mostly jazz" in share["text"]
    link = next(b["url"] for b in telegram.buttons(share) if b.get("url"))
    assert link.startswith(PUBLIC + "/p/") and link in share["text"]
    token = link.rsplit("/", 1)[1]
    assert (await real.services.playlists.shared(token)).count == 2
    assert (
        await toast(telegram, CARLA, share, telegram.button(share, "Revoke"))
        == "The link is revoked: its page is gone."
    )

    # YouTube: no video known yet, said plainly.
    youtube = (await press(telegram, CARLA, moved, telegram.button(moved, "YouTube"), "sendMessage")).result
    assert "No YouTube videos are known" in youtube["text"]

    # A radio from the whole playlist.
    radio2 = (await press(telegram, CARLA, moved, telegram.button(moved, "📻 Radio"), "sendMessage")).result
    assert "Radio" in radio2["text"]
    playlist_songs = [r["title"] for r in rows]
    assert not any(song in radio2["text"] for song in playlist_songs)

    # Save to Spotify: first a link to connect; after the authorization the playlist is saved.
    connect = (await press(telegram, CARLA, moved, telegram.button(moved, "Save to Spotify"), "sendMessage")).result
    assert "allow Encore to create playlists" in connect["text"]
    authorize = next(b["url"] for b in telegram.buttons(connect) if b.get("url"))
    async with aiohttp.ClientSession() as http, http.get(authorize, allow_redirects=False) as response:
        back = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
    done = await real.services.spotify_save.complete(back["state"], code=back["code"])  # the web callback's call
    assert done.saved is not None and done.saved.added == 2
    saved = (await press(telegram, CARLA, moved, telegram.button(moved, "Save to Spotify"), "sendMessage")).result
    assert "Saved Late <night> & jazz to your Spotify: 2 songs" in saved["text"]
    assert [b["text"] for b in telegram.buttons(saved)] == ["Open in Spotify"]
    assert len(spotify.playlists_of("carla")) == 2
    disconnected = await say(telegram, CARLA, "/disconnect")
    assert "disconnected" in disconnected["text"]

    # Rename, then delete (asked first).
    prompt = (await press(telegram, CARLA, moved, telegram.button(moved, "Rename"), "sendMessage")).result
    assert "new name" in prompt["text"]
    renamed = await say(telegram, CARLA, "Night")
    assert renamed["text"].startswith("🎵 Night — 2 songs")
    ask = (await press(telegram, CARLA, renamed, telegram.button(renamed, "Delete"), "editMessageText")).result
    assert "cannot be undone" in ask["text"]
    gone = (await press(telegram, CARLA, ask, telegram.button(ask, "Yes, delete"), "editMessageText")).result
    assert "is deleted" in gone["text"]
    assert await count(real, select(func.count()).select_from(Playlist).where(Playlist.public_id == named_id)) == 0
    assert [c for c in telegram.calls if not c.ok] == []


async def test_someone_elses_playlist_buttons_do_nothing(
    runtime: TelegramRuntime, telegram: FakeTelegram, real: Wiring
) -> None:
    created = await say(telegram, CARLA, "/newplaylist Carla's")
    carla_id = PlaylistCallback.unpack(telegram.button(created, "Rename")).playlist_id
    own = await say(telegram, DAN, "/playlists")  # Dan's own message, pressed with Carla's playlist id
    for action in PlaylistAction:
        data = PlaylistCallback(action=action, playlist_id=carla_id).pack()
        text = await toast(telegram, DAN, own, data)
        assert text == "Эта кнопка устарела.", (action, text)  # "out of date": nothing says it exists
    carla = Listener.telegram(await count(real, select(User.id).where(User.telegram_id == CARLA["id"])))
    assert [p.name for p in await real.services.playlists.playlists(carla)] == ["", "Carla's"]
    assert await count(real, select(func.count()).select_from(Playlist).where(Playlist.public_id == carla_id)) == 1
    assert not [c for c in telegram.calls if c.method == "sendDocument"]


async def test_ten_thousand_songs_export_in_parts_under_the_document_limit(
    runtime: TelegramRuntime, telegram: FakeTelegram, real: Wiring
) -> None:
    created = await say(telegram, CARLA, "/newplaylist Everything")
    pid = PlaylistCallback.unpack(telegram.button(created, "Rename")).playlist_id
    template = {c: 0.5 for c in AUDIO_FEATURE_COLUMNS}
    async with real.sessions.begin() as s:
        first = int(await s.scalar(select(func.max(Track.id))) or 0) + 1
        rows = [
            {
                "id": first + i,
                "spotify_id": f"bulk{i:018d}",
                "name": f"=cmd|' /C calc'!A{i}" if i % 1000 == 0 else f"Bulk song {i}",
                "artists": f"Bulk artist {i % 97}",
                "search_key": f"bulk {i}",
                **template,
            }
            for i in range(10_000)
        ]
        await s.execute(insert(Track), rows)
        playlist = await s.scalar(select(Playlist.id).where(Playlist.public_id == pid))
        await s.execute(
            insert(PlaylistItem),
            [{"playlist_id": playlist, "track_id": first + i, "position": i + 1} for i in range(10_000)],
        )
    real.services.playlists.part_bytes = 400_000  # small parts, to see the splitting over the wire

    listing = await say(telegram, CARLA, "/export")
    assert "choose a playlist" in listing["text"]
    mark = telegram.mark()
    telegram.press(CARLA, listing, telegram.button(listing, "Everything"))
    first_doc = await telegram.wait_for("sendDocument", after=mark)
    parts = (
        int(first_doc.params["caption"].rsplit(" of ", 1)[1].split("<")[0])
        if " of " in first_doc.params["caption"]
        else 1
    )
    assert parts > 1
    await documents(telegram, mark, parts)  # the CSV parts; then JSPF and M3U8 parts
    csv_media = [m for m in telegram.sent_media if m.file_name and m.file_name.endswith(".csv")]
    assert len(csv_media) == parts
    titles = [r["title"] for m in csv_media for r in csv.DictReader(io.StringIO(m.data.decode("utf-8-sig")))]
    assert len(titles) == 10_000 and titles[0] == "'=cmd|' /C calc'!A0"
    assert all(m.file.size <= 400_000 for m in csv_media)

    # The whole export in one file per format stays far below Telegram's 50 MB.
    real.services.playlists.part_bytes = 45 * 1024 * 1024
    carla = Listener.telegram(await count(real, select(User.id).where(User.telegram_id == CARLA["id"])))
    whole = await real.services.playlists.export(carla, pid, "jspf")
    assert len(whole) == 1 and whole[0].tracks == 10_000 and len(whole[0].data) < 50 * 1024 * 1024
