from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.resolver import MAX_QUERY_CHARS, InputKind, ParsedInput, clean_video_title, parse_input

ID = "4uLU6hMCjMI75M1A2tKUQC"


@pytest.mark.parametrize(
    "text",
    [
        f"https://open.spotify.com/track/{ID}",
        f"https://open.spotify.com/track/{ID}?si=abc123&utm_source=copy-link",
        f"https://open.spotify.com/intl-de/track/{ID}?si=x",
        f"https://open.spotify.com/intl-pt-br/track/{ID}",
        f"open.spotify.com/track/{ID}",
        f"http://open.spotify.com/embed/track/{ID}",
        f"check this out https://open.spotify.com/track/{ID} !!",
        f"spotify:track:{ID}",
        f"  {ID}  ",
    ],
)
def test_spotify_track_forms(text: str) -> None:
    assert parse_input(text) == ParsedInput(InputKind.SPOTIFY_TRACK, spotify_id=ID)


@pytest.mark.parametrize(
    ("text", "what", "word"),
    [
        ("https://open.spotify.com/album/1DFixLWuPkv3KT3TnV35m3", "album", "album"),
        ("https://open.spotify.com/intl-fr/playlist/37i9dQZF1DXcBWIGoYBM5M?si=1", "playlist", "playlist"),
        ("https://open.spotify.com/artist/0TnOYISbd1XYRBk9myaseg", "artist", "artist"),
        ("https://open.spotify.com/show/2MAi0BvDc6GTFvKFPXnkCL", "podcast", "podcast"),
        ("https://open.spotify.com/episode/512ojhOuo1ktJprKbVcKyQ", "podcast", "podcast"),
        ("spotify:album:1DFixLWuPkv3KT3TnV35m3", "album", "album"),
        ("spotify:user:spotify:playlist:37i9dQZF1DXcBWIGoYBM5M", "playlist", "playlist"),
        ("https://spotify.link/AbCdEf", "short_link", "short link"),
        ("https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", "playlist", "playlist"),
        ("https://music.youtube.com/playlist?list=OLAK5uy_abc", "album", "album"),
        ("https://www.youtube.com/@metallica", "artist", "channel"),
        ("https://www.youtube.com/channel/UCbulh9WdLtEXiooRcYK7SWw", "artist", "channel"),
        ("https://soundcloud.com/artist/track", "link", "Spotify track links"),
        ("https://example.com/x", "link", "Spotify track links"),
    ],
)
def test_unsupported_links_get_specific_messages(text: str, what: str, word: str) -> None:
    parsed = parse_input(text)
    assert parsed.kind is InputKind.UNSUPPORTED
    assert parsed.unsupported == what
    assert parsed.message and word in parsed.message


@pytest.mark.parametrize(
    "text",
    [
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtube.com/watch?v=dQw4w9WgXcQ&list=PL123&t=42s",
        "https://m.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://music.youtube.com/watch?v=dQw4w9WgXcQ&feature=share",
        "https://youtu.be/dQw4w9WgXcQ?si=xyz",
        "https://www.youtube.com/shorts/dQw4w9WgXcQ",
        "youtube.com/embed/dQw4w9WgXcQ",
    ],
)
def test_youtube_video_forms(text: str) -> None:
    assert parse_input(text) == ParsedInput(InputKind.YOUTUBE_VIDEO, video_id="dQw4w9WgXcQ")


@pytest.mark.parametrize(
    ("text", "artist", "title"),
    [
        ("Queen - Bohemian Rhapsody", "Queen", "Bohemian Rhapsody"),
        ("Queen — Bohemian Rhapsody", "Queen", "Bohemian Rhapsody"),
        ("Bohemian Rhapsody by Queen", "Queen", "Bohemian Rhapsody"),
        ('"Jay-Z - Empire State of Mind"', "Jay-Z", "Empire State of Mind"),
        ("Кино – Группа крови", "Кино", "Группа крови"),
    ],
)
def test_free_text_hints(text: str, artist: str, title: str) -> None:
    parsed = parse_input(text)
    assert parsed.kind is InputKind.TEXT
    assert (parsed.artist, parsed.title) == (artist, title)
    assert parsed.query and artist in parsed.query and title in parsed.query


@pytest.mark.parametrize("text", ["bohemian rhapsody", "米津玄師 Lemon", "Jay-Z", "supercalifragilisticexp"])
def test_plain_text(text: str) -> None:
    parsed = parse_input(text)
    assert parsed.kind is InputKind.TEXT
    assert parsed.query == text


@pytest.mark.parametrize("text", ["", "   ", "\u200b\u200b", "!!! ???", "\x00\x01"])
def test_empty_and_wordless_are_invalid(text: str) -> None:
    parsed = parse_input(text)
    assert parsed.kind is InputKind.INVALID
    assert parsed.message


def test_too_long_is_invalid() -> None:
    parsed = parse_input("a" * (MAX_QUERY_CHARS + 1))
    assert parsed.kind is InputKind.INVALID
    assert parsed.message and str(MAX_QUERY_CHARS) in parsed.message


def test_bad_track_ids() -> None:
    assert parse_input("https://open.spotify.com/track/short").kind is InputKind.INVALID
    assert parse_input("spotify:track:nope").kind is InputKind.INVALID


def test_clean_video_title() -> None:
    assert clean_video_title("Queen – Bohemian Rhapsody (Official Video Remastered)") == "Queen – Bohemian Rhapsody"
    assert clean_video_title("Paranoid", "Black Sabbath - Topic") == "Black Sabbath - Paranoid"
    assert clean_video_title("Song ft. Someone [Lyrics]") == "Song"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=10_000))
def test_never_crashes_on_arbitrary_text(text: str) -> None:
    parsed = parse_input(text)
    assert isinstance(parsed, ParsedInput)
    if parsed.kind in (InputKind.INVALID, InputKind.UNSUPPORTED):
        assert parsed.message
    if parsed.kind is InputKind.TEXT:
        assert parsed.query and len(parsed.query) <= MAX_QUERY_CHARS


_url_parts = st.sampled_from(
    [
        "https://",
        "http://",
        "",
        "open.spotify.com/",
        "youtu.be/",
        "www.youtube.com/",
        "spotify:",
        "track/",
        "intl-de/",
        "watch?v=",
        "?si=",
        "&list=",
        "album/",
        "/",
        ":",
        "playlist",
        ID,
        "dQw4w9WgXcQ",
        " ",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_url_parts, st.text(max_size=30)), max_size=40).map("".join))
def test_never_crashes_on_link_like_text(text: str) -> None:
    parsed = parse_input(text)
    assert isinstance(parsed, ParsedInput)
    if parsed.kind is InputKind.SPOTIFY_TRACK:
        assert parsed.spotify_id and len(parsed.spotify_id) == 22
    if parsed.kind is InputKind.YOUTUBE_VIDEO:
        assert parsed.video_id and len(parsed.video_id) == 11
