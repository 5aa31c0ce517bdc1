"""A song known only through Deezer has no Spotify id: everything that shows a track copes with that,
and Deezer links get a clear answer when Deezer is switched off (DEEZER_ENABLED=false)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.telegram.keyboards import links_keyboard
from bot.telegram.texts import Texts
from handlers.http.render import card_json, track_json
from services.dto import RadioStep, ResolutionKind, TrackCard, TrackInfo, YouTubeLink
from services.search import SearchIndex
from services.tracks import MSG_DEEZER_LINK, TrackService
from tests.fakes.telegram import check_message_text

DEEZER_ONLY = TrackInfo(
    id=42,
    spotify_id=None,
    name="One More Time",
    artists=("Daft Punk",),
    album="Discovery",
    source="deezer",
    deezer_id=3135556,
    isrc="GBDUW0000053",
    year=2001,
)


def test_urls() -> None:
    assert DEEZER_ONLY.spotify_url is None
    assert DEEZER_ONLY.deezer_url == "https://www.deezer.com/track/3135556"
    both = dataclasses.replace(DEEZER_ONLY, spotify_id="0DiWol3AO6WpXZgp0goxAV")
    assert both.spotify_url == "https://open.spotify.com/track/0DiWol3AO6WpXZgp0goxAV"


def test_link_buttons_skip_spotify() -> None:
    labels = Texts().labels("en")
    markup = links_keyboard(DEEZER_ONLY, youtube_url="https://y.t/x", deep_link=None, labels=labels)
    urls = [b.url for row in markup.inline_keyboard for b in row]
    assert urls == ["https://y.t/x"]
    with_spotify = dataclasses.replace(DEEZER_ONLY, spotify_id="0DiWol3AO6WpXZgp0goxAV")
    markup = links_keyboard(with_spotify, youtube_url="https://y.t/x", deep_link=None, labels=labels)
    assert "https://open.spotify.com/track/0DiWol3AO6WpXZgp0goxAV" in [
        b.url for row in markup.inline_keyboard for b in row
    ]


@pytest.mark.parametrize("language", ["en", "ru"])
def test_messages_have_no_broken_spotify_link(language: str) -> None:
    text = Texts().render(
        language, "radio", step=RadioStep(radio_id=1, track=DEEZER_ONLY, position=1), track=DEEZER_ONLY
    )
    check_message_text(text, "HTML")
    assert "open.spotify.com" not in text and "None" not in text and "YouTube" in text


def test_api_json_has_null_spotify_fields() -> None:
    data = track_json(DEEZER_ONLY)
    assert data["spotify_id"] is None and data["spotify_url"] is None
    card = card_json(TrackCard(DEEZER_ONLY, None, YouTubeLink("https://y.t/x", is_search=True)))
    assert card["links"]["spotify"] is None


@pytest.mark.parametrize(
    "text", ["https://www.deezer.com/en/track/3135556", "https://deezer.page.link/AbC123", "link.deezer.com/s/30xyZ"]
)
async def test_deezer_links_get_a_clear_answer_without_deezer(
    sqlite_sessions: async_sessionmaker[AsyncSession], text: str
) -> None:
    service = TrackService(sqlite_sessions, await SearchIndex.load(sqlite_sessions), None, None, None, None)
    resolution = await service.resolve(text)
    assert resolution.kind is ResolutionKind.NOT_FOUND and resolution.message == MSG_DEEZER_LINK


def test_web_card_has_no_spotify_player_without_an_id() -> None:
    from bot.http.app import create_jinja_env

    macros = create_jinja_env().get_template("_macros.html").module
    card = TrackCard(DEEZER_ONLY, None, YouTubeLink("https://y.t/x", is_search=True), note="No genre yet.")
    html = str(macros.card_view(card))  # type: ignore[attr-defined]
    assert "open.spotify.com" not in html and "None" not in html and "https://y.t/x" in html
    with_spotify = dataclasses.replace(
        card, track=dataclasses.replace(DEEZER_ONLY, spotify_id="0DiWol3AO6WpXZgp0goxAV")
    )
    assert "open.spotify.com/embed/track/0DiWol3AO6WpXZgp0goxAV" in str(macros.card_view(with_spotify))  # type: ignore[attr-defined]
