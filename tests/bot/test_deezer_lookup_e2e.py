"""Catalogue songs gain ▶ 30-s preview, cover and year from Deezer when they are shown (a card, a
radio card), end to end: main.build_services over the fake Deezer server, the bot against the fake
Bot API. Deezer down or slow: the card as before, no error; a miss is remembered, so Deezer is not
asked again and again about a song it does not have."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from db.engine import create_engine, create_session_factory
from db.models import Track
from services.deezer_match import NS_MISS, DeezerLookup
from tests.bot.test_audio_e2e import ANN, BORIS, JAZZ_ON_DEEZER, World, make_world
from tests.fakes.deezer import FakeDeezerTrack
from tests.fakes.spotify import Failure

CATALOGUE_ON_DEEZER = 880_000  # Deezer ids given to the catalogue's songs in `everything_on_deezer`


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    async with make_world(tmp_path, monkeypatch) as w:
        yield w


def lookup(world: World) -> DeezerLookup:
    found = world.services.tracks._deezer_lookup  # type: ignore[attr-defined]
    assert isinstance(found, DeezerLookup)
    return found


async def row(world: World, name: str) -> Track:
    engine = create_engine(world.settings.db_url)
    try:
        async with create_session_factory(engine)() as s:
            found = await s.scalar(select(Track).where(Track.name == name))
            assert found is not None
            return found
    finally:
        await engine.dispose()


async def card_of(world: World, user: dict[str, Any], text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The card the bot sends for `text`, and its sendMessage parameters."""
    telegram = world.telegram
    mark = telegram.mark()
    telegram.send_text(user, text)
    call = await telegram.wait_for("sendMessage", after=mark)
    if "pick one" in call.result["text"]:  # a list of versions: the person taps the song
        title = text.split(" - ", 1)[1]
        mark = telegram.mark()
        telegram.press(user, call.result, telegram.button(call.result, title))
        call = await telegram.wait_for("sendMessage", after=mark)
    return call.result, call.params


def has_preview_button(message: dict[str, Any]) -> bool:
    return any("preview" in b["text"] for b in _buttons(message))


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    markup = message.get("reply_markup") or {}
    return [b for r in markup.get("inline_keyboard", []) for b in r]


async def test_a_catalogue_songs_card_gains_a_preview_a_cover_and_its_year(world: World) -> None:
    before = await row(world, "Jazz Song 3-1")
    assert before.deezer_id is None and before.cover_url is None  # as the catalogue ships it
    card, params = await card_of(world, ANN, "Jazz Band 3 - Jazz Song 3-1")
    assert "Jazz Song 3-1" in card["text"] and has_preview_button(card)
    cover = params["link_preview_options"]
    assert cover["url"].startswith("https://cdn-images.dzcdn.net/images/cover/") and cover["prefer_small_media"]
    assert "2001" in card["text"]  # the year Deezer knows
    after = await row(world, "Jazz Song 3-1")
    assert (after.deezer_id, after.isrc, after.release_year) == (JAZZ_ON_DEEZER, "USJZZ0300001", 2001)

    # The preview plays, with no second lookup; the next card of the song asks Deezer nothing more.
    searches = world.deezer.calls["search"]
    mark = world.telegram.mark()
    world.telegram.press(ANN, card, world.telegram.button(card, "30-s preview"))
    await world.telegram.wait_for("sendAudio", after=mark)
    assert world.telegram.sent_media[-1].data == world.deezer.preview_audio[JAZZ_ON_DEEZER]
    again, _ = await card_of(world, ANN, "Jazz Band 3 - Jazz Song 3-1")
    assert has_preview_button(again) and world.deezer.calls["search"] == searches
    assert [c for c in world.telegram.calls if not c.ok] == []


async def test_a_miss_is_remembered(world: World) -> None:
    card, params = await card_of(world, ANN, "Rock Band 2 - Rock Song 2-1")  # Deezer has no such song
    assert "Rock Song 2-1" in card["text"] and not has_preview_button(card)
    assert params["link_preview_options"] == {"is_disabled": True}
    assert world.deezer.calls["search"] == 1 and lookup(world).lookups == 1
    for _ in range(3):
        card, _ = await card_of(world, ANN, "Rock Band 2 - Rock Song 2-1")
        assert not has_preview_button(card)
    assert world.deezer.calls["search"] == 1 and lookup(world).lookups == 1  # not asked again
    # Stored in the shared cache: another process (or a restart) knows it too.
    track_id = (await row(world, "Rock Song 2-1")).id
    assert await world.services.cache.get(NS_MISS, str(track_id)) is True  # type: ignore[union-attr]
    # A miss is about that song only: the next song is looked up.
    card, _ = await card_of(world, ANN, "Jazz Band 3 - Jazz Song 3-1")
    assert has_preview_button(card) and lookup(world).lookups == 2


async def test_deezer_down_the_card_is_as_before_and_no_error(world: World) -> None:
    down = Failure(status=503, headers={"Retry-After": "0"})
    world.deezer.fail("search", *[down] * 6)
    card, params = await card_of(world, ANN, "Jazz Band 3 - Jazz Song 3-1")
    assert "Jazz Song 3-1" in card["text"] and "🏷" in card["text"]
    assert not has_preview_button(card) and params["link_preview_options"] == {"is_disabled": True}
    assert (await row(world, "Jazz Song 3-1")).deezer_id is None
    asked = world.deezer.calls["search"]
    assert asked >= 1
    # Lookups pause for a while: the next cards (this song's or another's) do not wait for Deezer.
    card, _ = await card_of(world, ANN, "Jazz Band 3 - Jazz Song 3-1")
    assert not has_preview_button(card) and world.deezer.calls["search"] == asked
    card, _ = await card_of(world, ANN, "Jazz Band 1 - Jazz Song 1-0")
    assert "Jazz Song 1-0" in card["text"] and world.deezer.calls["search"] == asked
    assert lookup(world).lookups == 1
    assert [c for c in world.telegram.calls if not c.ok] == []


async def test_a_slow_deezer_does_not_hold_the_card_and_the_next_card_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_world(tmp_path, monkeypatch, DEEZER_LOOKUP_BUDGET="0.05", DEEZER_TIMEOUT="5") as world:
        world.deezer.fail("search", Failure(status=None, delay=1.0))  # answers, but long after the budget
        card, _ = await card_of(world, ANN, "Jazz Band 3 - Jazz Song 3-1")
        assert "Jazz Song 3-1" in card["text"] and not has_preview_button(card)  # shown without waiting
        await lookup(world).drain()  # the lookup went on and stored what it found
        assert (await row(world, "Jazz Song 3-1")).deezer_id == JAZZ_ON_DEEZER
        card, params = await card_of(world, ANN, "Jazz Band 3 - Jazz Song 3-1")
        assert has_preview_button(card) and params["link_preview_options"]["url"].startswith("https://")
        assert world.deezer.calls["search"] == 1


async def _everything_on_deezer(world: World) -> None:
    """Deezer knows every catalogue song (with its own ids): whatever a radio plays can have a preview."""
    engine = create_engine(world.settings.db_url)
    try:
        async with create_session_factory(engine)() as s:
            songs = list((await s.execute(select(Track.name, Track.artists).where(Track.name.like("% Song %")))).all())
    finally:
        await engine.dispose()
    for n, (name, artist) in enumerate(songs):
        if name != "Jazz Song 3-1":
            deezer_id = CATALOGUE_ON_DEEZER + n
            world.deezer.tracks[deezer_id] = FakeDeezerTrack(deezer_id, name, artist, album=f"{artist} Album")


async def test_radio_cards_gain_previews_and_covers(world: World) -> None:
    await _everything_on_deezer(world)
    telegram = world.telegram
    card, _ = await card_of(world, ANN, "Jazz Band 3 - Jazz Song 3-1")
    mark = telegram.mark()
    telegram.press(ANN, card, telegram.button(card, "Start radio"))
    call = await telegram.wait_for("sendMessage", after=mark)
    radio = call.result
    assert radio["text"].startswith("📻 Radio") and has_preview_button(radio)
    assert call.params["link_preview_options"]["url"].startswith("https://cdn-images.dzcdn.net/")
    # The next track (edited in place) too.
    mark = telegram.mark()
    telegram.press(ANN, radio, telegram.button(radio, "Next"))
    edit = await telegram.wait_for("editMessageText", after=mark)
    assert edit.params["link_preview_options"]["url"].startswith("https://cdn-images.dzcdn.net/")
    markup = edit.params["reply_markup"]
    assert any("preview" in b["text"] for r in markup["inline_keyboard"] for b in r)
    assert [c for c in telegram.calls if not c.ok] == []


async def test_api_radio_steps_gain_previews_and_covers(world: World) -> None:
    """The API's radio (start, each answer, the current step) shows its track with what Deezer
    knows, as the bot's radio cards do; the page's radio shows the card, which has it already."""
    from aiohttp.test_utils import TestClient, TestServer

    import main

    await _everything_on_deezer(world)
    jazz = (await row(world, "Jazz Song 3-1")).id
    async with TestClient(TestServer(main.create_http_app(world.services, world.settings))) as client:
        resp = await client.post("/api/v1/radio", json={"track_id": jazz})
        assert resp.status == 201, await resp.text()
        step = await resp.json()
        for action in ("like", "next"):
            track = step["track"]
            assert track["deezer_id"] and track["cover_url"].startswith("https://cdn-images.dzcdn.net/"), track
            resp = await client.post(
                f"/api/v1/radio/{step['radio_id']}/feedback", json={"track_id": track["id"], "action": action}
            )
            assert resp.status == 200, await resp.text()
            step = await resp.json()
        current = await (await client.get(f"/api/v1/radio/{step['radio_id']}")).json()
        assert current["track"]["id"] == step["track"]["id"] and current["track"]["deezer_id"]


async def test_lookups_share_one_request_per_song(world: World) -> None:
    tracks = world.services.tracks
    info = await tracks.get((await row(world, "Jazz Song 3-1")).id)
    found = await asyncio.gather(*[tracks.with_deezer(info) for _ in range(5)])  # type: ignore[attr-defined]
    assert {t.deezer_id for t in found} == {JAZZ_ON_DEEZER} and world.deezer.calls["search"] == 1


# -- inline mode: the same resolution as the chat ------------------------------------------------


async def inline(world: World, user: dict[str, Any], query: str) -> dict[str, Any]:
    mark = world.telegram.mark()
    world.telegram.inline(user, query)
    return (await world.telegram.wait_for("answerInlineQuery", after=mark)).params


async def test_inline_nonsense_finds_nothing_and_says_so(world: World) -> None:
    for user, label in ((ANN, "Nothing found"), (BORIS, "Ничего не нашлось")):
        answer = await inline(world, user, "asdkjh qwpoeiru zzxq")
        assert answer["results"] == []
        assert answer["button"]["text"].startswith(label) and answer["button"]["start_parameter"] == "inline"
    answer = await inline(world, ANN, "Jazz Band 3 Jazz Song 3-1")  # a clear match: no button, the song first
    assert "button" not in answer and answer["results"][0]["title"] == "Jazz Song 3-1"
    assert [c for c in world.telegram.calls if not c.ok] == []


async def test_inline_finds_a_song_only_deezer_knows(world: World) -> None:
    answer = await inline(world, ANN, "daft punk one more time")  # not in the catalogue, never asked in chat
    first = answer["results"][0]
    assert first["type"] == "audio" and (first["title"], first["performer"]) == ("One More Time", "Daft Punk")
    assert first["audio_url"].startswith(world.deezer.base_url + "/preview/")
    assert [c for c in world.telegram.calls if not c.ok] == []


async def test_inline_catalogue_songs_become_playable_with_a_thumbnail(world: World) -> None:
    answer = await inline(world, ANN, "Jazz Band 3 Jazz Song 3-1")
    first = answer["results"][0]
    assert first["type"] == "audio" and first["title"] == "Jazz Song 3-1"  # found on Deezer meanwhile
    assert (await row(world, "Jazz Song 3-1")).deezer_id == JAZZ_ON_DEEZER
    assert [c for c in world.telegram.calls if not c.ok] == []
