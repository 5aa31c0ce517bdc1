"""Deezer links in `parse_input`: track links in every form, short links, friendly messages for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.resolver import DEEZER_SHORT_HOSTS, InputKind, ParsedInput, parse_input


@pytest.mark.parametrize(
    "text",
    [
        "https://www.deezer.com/track/3135556",
        "https://www.deezer.com/en/track/3135556",
        "https://www.deezer.com/fr/track/3135556?utm_source=deezer&utm_content=track-3135556",
        "https://deezer.com/us/track/3135556",
        "http://www.deezer.com/pt-br/track/3135556/",
        "deezer.com/track/3135556",
        "www.deezer.com/de/track/3135556",
        "listen to this https://www.deezer.com/en/track/3135556!",
    ],
)
def test_deezer_track_forms(text: str) -> None:
    assert parse_input(text) == ParsedInput(InputKind.DEEZER_TRACK, deezer_id=3135556)


@pytest.mark.parametrize(
    ("text", "short_url"),
    [
        ("https://deezer.page.link/AbC123xYz", "https://deezer.page.link/AbC123xYz"),
        ("deezer.page.link/AbC123xYz?utm=1", "https://deezer.page.link/AbC123xYz"),
        ("https://link.deezer.com/s/30ZQ0J6Q1Q2x", "https://link.deezer.com/s/30ZQ0J6Q1Q2x"),
        ("link.deezer.com/s/30ZQ0J6Q1Q2x", "https://link.deezer.com/s/30ZQ0J6Q1Q2x"),
        ("http://dzr.page.link/q1W2e3", "https://dzr.page.link/q1W2e3"),
    ],
)
def test_deezer_short_links(text: str, short_url: str) -> None:
    assert parse_input(text) == ParsedInput(InputKind.DEEZER_SHORT, short_url=short_url)


@pytest.mark.parametrize(
    ("text", "what", "word"),
    [
        ("https://www.deezer.com/en/album/302127", "album", "album"),
        ("https://www.deezer.com/album/302127", "album", "album"),
        ("https://www.deezer.com/fr/playlist/908622995", "playlist", "playlist"),
        ("https://www.deezer.com/us/artist/27", "artist", "artist"),
        ("https://www.deezer.com/en/show/1000", "podcast", "podcast"),
        ("https://www.deezer.com/en/episode/1000", "podcast", "podcast"),
        ("https://www.deezer.com/en/profile/12345", "user", "profile"),
        ("https://www.deezer.com/en/", "link", "Deezer"),
        ("https://www.deezer.com/en/channels/explore", "link", "Deezer"),
        ("https://link.deezer.com/other/abc", "link", "Deezer"),
        ("https://deezer.page.link/a/b", "link", "Deezer"),
    ],
)
def test_other_deezer_pages_get_specific_messages(text: str, what: str, word: str) -> None:
    parsed = parse_input(text)
    assert parsed.kind is InputKind.UNSUPPORTED
    assert parsed.unsupported == what
    assert parsed.message and word in parsed.message
    if what in ("album", "playlist", "artist"):
        assert "Deezer" in parsed.message


@pytest.mark.parametrize(
    "text",
    [
        "https://www.deezer.com/track/",
        "https://www.deezer.com/track/abc",
        "https://www.deezer.com/en/track/0",
        "https://www.deezer.com/track/99999999999999999999",
    ],
)
def test_bad_deezer_track_ids(text: str) -> None:
    parsed = parse_input(text)
    assert parsed.kind is InputKind.INVALID
    assert parsed.message and "Deezer" in parsed.message


def test_other_links_mention_deezer() -> None:
    parsed = parse_input("https://soundcloud.com/artist/track")
    assert parsed.kind is InputKind.UNSUPPORTED and parsed.message and "Deezer" in parsed.message


_parts = st.sampled_from(
    [
        "https://",
        "http://",
        "",
        "www.deezer.com/",
        "deezer.com/",
        "deezer.page.link/",
        "link.deezer.com/",
        "s/",
        "en/",
        "fr/",
        "pt-br/",
        "track/",
        "album/",
        "3135556",
        "0",
        "99999999999999999999999",
        "?utm_source=x",
        "&",
        "/",
        " ",
        "AbC123",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_parts, st.text(max_size=20)), max_size=30).map("".join))
def test_never_crashes_on_deezer_like_text(text: str) -> None:
    parsed = parse_input(text)
    assert isinstance(parsed, ParsedInput)
    if parsed.kind is InputKind.DEEZER_TRACK:
        assert parsed.deezer_id is not None and 0 < parsed.deezer_id < 2**63
    if parsed.kind is InputKind.DEEZER_SHORT:
        assert parsed.short_url is not None
        host = parsed.short_url.removeprefix("https://").split("/")[0]
        assert host in DEEZER_SHORT_HOSTS
    if parsed.kind in (InputKind.INVALID, InputKind.UNSUPPORTED):
        assert parsed.message


@given(st.integers(min_value=1, max_value=2**63 - 1), st.sampled_from(["", "en/", "fr/", "us/", "pt-br/"]))
def test_any_track_id_round_trips(ident: int, lang: str) -> None:
    assert parse_input(f"https://www.deezer.com/{lang}track/{ident}").deezer_id == ident
