"""Templates (both languages, valid Telegram HTML, the 4,096 limit, Russian without English words,
plurals that agree) and the error handling."""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.telegram.texts import MESSAGE_LIMIT, TEMPLATES_DIR, Texts, fit, lower_first, plural, visible_length
from services.dto import (
    ExportFile,
    GenreGuess,
    GenreHistoryEntry,
    Page,
    PlaylistInfo,
    PlaylistView,
    RadioStep,
    Recommendation,
    ShareInfo,
    SpotifySaved,
    TrackInfo,
    UserInfo,
    YouTubePlay,
)
from services.genre import NOTE_NO_ANALYSIS_HEAD
from services.genre_labels import GenreConfidence, genre_names, genre_verdict
from tests.bot.conftest import Chat
from tests.fakes.services import FakeServices, make_track
from tests.fakes.telegram import BadRequest, check_message_text, parse_html

WHEN = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EVIL = "<script>&amp; \"quoted\" 'x' </b>"
TRACK = dataclasses.replace(
    make_track(1, "jazz", name=EVIL, artist=EVIL), duration_ms=215_000, year=1999, cover_url="https://c.dn/x.jpg"
)
USER = UserInfo(id=1, telegram_id=1, first_name=EVIL, language="en", diversity=0.5, subscribed=True, pick_hour=9)
SURE = GenreGuess("hard-rock", 0.62, (("hard-rock", 0.62), ("metal", 0.2), ("grunge", 0.1)), "rock", 0.8)
FAMILY = GenreGuess("hard-rock", 0.24, (("hard-rock", 0.24), ("r-n-b", 0.2), ("k-pop", 0.1)), "rock", 0.71)
UNSURE = GenreGuess("metal", 0.22, (("metal", 0.22), ("edm", 0.2), ("disney", 0.1)), "metal", 0.35)
# Where a genre comes from (issue 14): the catalogue's labels, the artist, the title and name, the sound.
CATALOGUE = dataclasses.replace(SURE, labels=("hard-rock", "metal"), head="audio+artist+title", artists_known=1)
ARTIST = GenreGuess(
    "k-pop",
    0.64,
    (("k-pop", 0.64), ("dance", 0.2), ("j-pop", 0.05)),
    "pop",
    0.8,
    head="audio+artist",
    evidence="audio + artist (1/1 known, 14 catalogue songs)",
    artists_known=1,
    audio_top=(("dance", 0.41), ("k-pop", 0.2), ("edm", 0.1)),
)
ARTIST_UNSURE = dataclasses.replace(ARTIST, probability=0.34, family_probability=0.4)
TITLE = dataclasses.replace(SURE, head="audio+artist+title", artists_known=0)
SOURCES = (CATALOGUE, ARTIST, ARTIST_UNSURE, TITLE, dataclasses.replace(FAMILY, head="audio+artist+title"))

# A song known by a 30-second excerpt's audio analysis: the model's analysis head answered.
EXCERPT = dataclasses.replace(SURE, head="analysis")
EXCERPT_TITLE = dataclasses.replace(SURE, head="analysis+artist+title", artists_known=0)
EXCERPTS = (
    EXCERPT,
    EXCERPT_TITLE,
    dataclasses.replace(FAMILY, head="analysis"),
    dataclasses.replace(UNSURE, head="analysis"),
)
GUESSES = (SURE, FAMILY, UNSURE, *SOURCES, *EXCERPTS)
NO_DETAILS = {
    "size": None,
    "max_bytes": 0,
    "seconds": 0.0,
    "min_seconds": 0.0,
    "max_seconds": 0.0,
    "wait": 0.0,
    "reason": None,
}


def contexts(track: TrackInfo, user: UserInfo, text: str) -> dict[str, list[dict[str, Any]]]:
    """Representative contexts for every template: each branch a person can meet."""
    step = RadioStep(radio_id=1, track=track, position=3, likes=1, skips=2)
    card = {"track": track, "note": text, "youtube_url": "https://y.t/?a=1&b=2", "deep_link": None}
    entry = GenreHistoryEntry("hard-rock", 3, 2, 1, (track,), WHEN)
    return {
        "start": [{"name": text, "example": "Кино — Группа крови"}],
        "help": [{"bot_username": "encore_bot"}],
        "unknown_command": [{"command": "/whatever", "bot_username": "encore_bot"}],
        "audio": [
            {"track": track, "name": name, "verdict": v, "no_genre": n, "similar": similar}
            for v, n in ((None, "analysis"), (None, "model"), *((genre_verdict(g), None) for g in GUESSES))
            for similar, name in (([Recommendation(track, 1.0, "similar sound")] * 2, track.name), ([], None))
        ],
        "audio_refused": [
            {**NO_DETAILS, **details}
            for details in (
                {"code": "audio_too_large", "size": 21_500_000, "max_bytes": 20 * 1024 * 1024},
                {"code": "audio_too_large", "size": None, "max_bytes": 20 * 1024 * 1024},
                {"code": "not_audio"},
                {"code": "corrupt_audio"},
                {"code": "no_audio_stream"},
                {"code": "audio_too_short", "seconds": 2.4, "min_seconds": 5.0},
                {"code": "audio_too_long", "seconds": 7500.0, "max_seconds": 1800.0},
                {"code": "silent_audio"},
                {"code": "analysis_rate_limited", "wait": 42.0},
                {"code": "analysis_rate_limited", "wait": 1500.0},
                {"code": "provider_unavailable"},
                {"code": "analysis_off"},
                {"code": "download_failed"},
                {"code": "audio_not_analysable", "reason": "unsupported_format"},
                {"code": "audio_rejected"},
            )
        ],
        "inline_caption": [
            {"track": track, "verdict": v, "deep_link": d}
            for v in (None, *(genre_verdict(g) for g in GUESSES))
            for d in ("https://t.me/b?start=t_1", None)
        ],
        "card": [
            {**card, "verdict": genre_verdict(g), "no_features": False, "youtube_is_search": s, "analysis_only": False}
            for g, s in ((SURE, True), (FAMILY, False), (UNSURE, True), *((g, True) for g in (*SOURCES, *EXCERPTS)))
        ]
        + [
            {
                **card,
                "verdict": genre_verdict(ARTIST),
                "no_features": False,
                "youtube_is_search": True,
                "from_tags": True,
                "analysis_only": False,
            }
        ]
        + [
            {
                **card,
                "verdict": None,
                "no_features": True,
                "youtube_is_search": True,
                "deep_link": "https://t.me/b?start=t_1",
                "analysis_only": False,
            },
            {**card, "verdict": None, "no_features": False, "youtube_is_search": True, "analysis_only": False},
            # A song known only by the nine values of an audio analysis: the service's (English) note says
            # why there is no genre; the Russian card must say the same in Russian, not print the note.
            {
                **card,
                "verdict": None,
                "note": NOTE_NO_ANALYSIS_HEAD,
                "no_features": False,
                "youtube_is_search": True,
                "analysis_only": True,
            },
        ],
        "inline_description": [{"track": track, "verdict": genre_verdict(g)} for g in GUESSES]
        + [{"track": track, "verdict": None}],
        "results": [
            {"query": text, "notice": None, "exact": True, "versions_of": None},
            {"query": text, "notice": None, "exact": False, "versions_of": None},
            {"query": text, "notice": None, "exact": True, "versions_of": track},
        ],
        "not_found": [
            {"kind": k, "query": text, "example": "Кино — Группа крови"}
            for k in ("not_found", "unsupported", "invalid")
        ],
        "similar": [
            {"seed": track, "recommendations": [Recommendation(track, 1.0, "similar sound")]},
            {"seed": track, "recommendations": []},
        ],
        "radio": [{"step": step, "track": track}],
        "radio_end": [{"step": step}, {"step": dataclasses.replace(step, stopped=True)}],
        "radio_none": [{}],
        "history": [
            {
                "page": Page(
                    (entry, dataclasses.replace(entry, searched=0), dataclasses.replace(entry, liked=0)), 0, 2, 6
                )
            },
            {"page": Page((), 0, 1, 0)},
        ],
        "likes": [{"page": Page((track,), 0, 1, 1), "first": 0}, {"page": Page((), 0, 1, 0), "first": 0}],
        "settings": [
            {"user": u, "dial": d, "screen": screen}
            for screen in ("main", "dial", "hours", "zones")
            for u, d in ((user, 2), (dataclasses.replace(user, subscribed=False, timezone="Europe/Moscow"), 0))
        ],
        "subscribed": [{"user": user}, {"user": dataclasses.replace(user, pick_minute=30, timezone="Asia/Tokyo")}],
        "unsubscribed": [{}],
        "bad_hour": [{"user": user, "value": text}],
        "timezone": [
            {"user": user, "value": None, "ok": False},
            {"user": user, "value": text, "ok": False},
            {"user": dataclasses.replace(user, timezone="Europe/Moscow"), "value": "europe/moscow", "ok": True},
        ],
        "daily_pick": [{"track": track, "reason": r} for r in ("similar sound", "popular right now", "")],
        "error": [{}],
        "throttled": [{}],
        "unavailable": [{}],
        **playlist_contexts(track, text),
    }


def playlist_contexts(track: TrackInfo, text: str) -> dict[str, list[dict[str, Any]]]:
    likes = PlaylistInfo("L" * 22, "", "likes", 2)
    named = PlaylistInfo("P" * 22, text, "list", 3, share_token="t" * 43)
    empty = PlaylistInfo("E" * 22, text, "list", 0)
    share = ShareInfo(named, "t" * 43, "/p/" + "t" * 43, "https://encore.example/p/" + "t" * 43, (("hard-rock", 2),))
    files = [
        ExportFile("encore-x.csv", "text/csv", b"", "csv", 1, 1, 3),
        ExportFile("x.m3u8", "", b"", "m3u8", 2, 3, 1),
    ]
    saved = SpotifySaved(text, "https://open.spotify.com/playlist/x", "x", 3, 1)
    notes = ["ask_rename", "created", "delete_ask", "deleted", "cancelled", "name_taken", "name_long", "name_empty"]
    return {
        "playlists": [
            {"playlists": [likes], "export": False},
            {"playlists": [likes, named], "export": False},
            {"playlists": [likes, named], "export": True},
        ],
        "playlist": [
            {"view": PlaylistView(v, Page((track,) if v.count else (), 0, 1, v.count)), "first": 0}
            for v in (likes, named, empty, PlaylistInfo("L" * 22, "", "likes", 0))
        ],
        "playlist_pick": [{"track": track}],
        "playlist_note": [{"event": e, "playlist": named, "track": track, "name": text} for e in notes]
        + [
            {"event": "ask_name", "track": None},
            {"event": "ask_name", "track": track},
            {"event": "created", "playlist": named, "track": None},
            {"event": "no_public_url"},
            {"event": "too_many"},
            {"event": "empty"},
        ],
        "playlist_share": [{"share": share}, {"share": dataclasses.replace(share, top_genres=())}],
        "playlist_youtube": [
            {
                "play": YouTubePlay(("https://www.youtube.com/watch_videos?video_ids=a",), 1, 3),
                "name": text,
                "shown": 10,
            },
            {"play": YouTubePlay(tuple("u" * 12), 600, 700), "name": text, "shown": 10},
            {"play": YouTubePlay((), 0, 3), "name": text, "shown": 10},
        ],
        "playlist_export": [{"file": f, "name": text} for f in files],
        "spotify": [
            {"event": "saved", "saved": saved},
            {"event": "saved", "saved": dataclasses.replace(saved, skipped=0)},
            {"event": "rate_limited", "minutes": 60},
        ]
        + [
            {"event": e}
            for e in ("connect", "expired", "disconnected", "not_connected", "refused", "off", "no_ids", "unavailable")
        ],
    }


CONTEXTS = contexts(TRACK, USER, EVIL)
# Russian data for the Russian check: whatever Latin is left in the output is the template's.
RU_TRACK = TrackInfo(
    id=7,
    spotify_id="sp7",
    name="Группа крови",
    artists=("Кино",),
    album="Группа крови",
    duration_ms=286_000,
    year=1988,
    features={"energy": 0.8},
    cover_url="https://c.dn/k.jpg",
)
RU_USER = dataclasses.replace(USER, language="ru", first_name="Борис", timezone="Europe/Moscow")
RU_CONTEXTS = contexts(RU_TRACK, RU_USER, "группа крови")
# Words that stay Latin in Russian text: names, brands and codes.
ALLOWED_LATIN = {
    "Encore",
    "Spotify",
    "YouTube",
    "Deezer",
    "ListenBrainz",
    "UTC",
    "IANA",
    "English",
    "Disney",
    "R",
    "B",
    "K",
    "J",
}
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")


def russian_leftovers(html_text: str) -> set[str]:
    """Latin words a Russian reader sees, beyond names and brands: code samples (<code>), commands,
    @usernames and URLs are not prose."""
    without_code = re.sub(r"<code>.*?</code>", " ", html_text, flags=re.S)
    plain = parse_html(without_code)
    plain = re.sub(r"https?://\S+|/[a-z_]+|@\w+", " ", plain)
    return {w for w in LATIN_WORD.findall(plain) if w not in ALLOWED_LATIN}


def test_both_languages_have_the_same_templates() -> None:
    en = sorted(p.name for p in (TEMPLATES_DIR / "en").glob("*.html"))
    ru = sorted(p.name for p in (TEMPLATES_DIR / "ru").glob("*.html"))
    assert en == ru
    messages = [n for n in en if n != "labels.html" and not n.startswith("_")]
    assert sorted(n.removesuffix(".html") for n in messages) == sorted(CONTEXTS)
    texts = Texts()
    assert set(texts.labels("en")._values) == set(texts.labels("ru")._values)


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_every_template_is_valid_telegram_html_with_user_data_escaped(language: str, name: str) -> None:
    for context in CONTEXTS[name]:
        text = Texts().render(language, name, **context)
        if name == "inline_description":  # plain text (Telegram does not parse descriptions)
            assert "<" not in Texts().plain(language, name, **context).replace(EVIL, "")
            continue
        plain = check_message_text(text, "HTML")  # raises like Telegram on bad HTML / empty / too long
        assert "<script>" not in text
        if EVIL in plain:
            assert "&lt;script&gt;" in text


@pytest.mark.parametrize("name", sorted(RU_CONTEXTS))
def test_russian_messages_have_no_english_words(name: str) -> None:
    for context in RU_CONTEXTS[name]:
        text = Texts().render("ru", name, **context)
        assert not russian_leftovers(text), (name, context, russian_leftovers(text), text)
    if name == "card":  # the same check finds English in the English card (it cannot pass vacuously)
        assert russian_leftovers(Texts().render("en", name, **RU_CONTEXTS[name][0]))


def test_a_nine_value_song_card_gives_the_analysis_reason_in_both_languages() -> None:
    """A song known only by an audio analysis has no genre because no head reads nine values, not because
    the model is down; the Russian card says so in Russian (it cannot print the service's English note)."""
    nine = next(c for c in CONTEXTS["card"] if c["analysis_only"])
    english = parse_html(Texts().render("en", "card", **nine))
    assert "30-second excerpt" in english and "isn't available" not in english
    russian = parse_html(Texts().render("ru", "card", **next(c for c in RU_CONTEXTS["card"] if c["analysis_only"])))
    assert "измерено по 30-секундному отрывку" in russian and "девять показателей" in russian
    assert "недоступна" not in russian and not russian_leftovers(russian)


def test_russian_labels_and_genre_names_have_no_english_words() -> None:
    labels = Texts().labels("ru")
    for key, value in labels._values.items():
        words = {w for w in LATIN_WORD.findall(re.sub(r"/[a-z_]+|\{\w+\}", " ", value)) if w not in ALLOWED_LATIN}
        assert not words or key == "btn_lang_en", (key, value, words)
    names = genre_names()
    for tag, name in [*names.known("ru").items(), *names.known_families("ru").items()]:
        assert not set(LATIN_WORD.findall(name)) - ALLOWED_LATIN, (tag, name)


def test_every_genre_and_family_has_a_name_in_both_languages() -> None:
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).parents[2] / "ml" / "genre_families.json").read_text(encoding="utf-8"))
    names = genre_names()
    for language in ("en", "ru"):
        known, families = names.known(language), names.known_families(language)
        for family, genres in data["families"].items():
            assert family in families, (language, family)
            for genre in genres:
                assert genre in known, (language, genre)
        for alias, target in data["aliases"].items():
            assert names.genre(alias, language) == known[target]
    assert (
        names.genre("hard-rock", "ru") == "Хард-рок" and names.family("jazz/blues/soul", "en") == "Jazz / Blues / Soul"
    )
    assert names.genre("neo-soul", "en") == "Neo soul"  # a tag nobody named yet is still readable


def test_the_genre_verdict_never_sounds_sure_of_a_weak_guess() -> None:
    assert genre_verdict(SURE).confidence is GenreConfidence.SURE
    assert genre_verdict(FAMILY).confidence is GenreConfidence.FAMILY and genre_verdict(FAMILY).headline == "rock"
    weak = genre_verdict(UNSURE)
    assert weak.confidence is GenreConfidence.UNSURE and weak.probability == pytest.approx(0.22)
    for language in ("en", "ru"):
        text = parse_html(Texts().render(language, "card", **CONTEXTS["card"][2]))
        assert "22" in text and ("not clear" in text or "точно не определён" in text)
        assert "confident" not in text and "уверен" not in text
    assert lower_first("Хард-рок") == "хард-рок" and lower_first("R&B") == "R&B" and lower_first("EDM") == "EDM"


PLURALS = {
    ("en", "radio_end"): [
        "after 1 track:",
        "after 2 tracks:",
        "after 5 tracks:",
        "after 21 tracks:",
        "after 11 tracks:",
    ],
    ("ru", "radio_end"): [
        "после 1 трека:",
        "после 2 треков:",
        "после 5 треков:",
        "после 21 трека:",
        "после 11 треков:",
    ],
    ("en", "likes"): ["— 1 track:", "— 2 tracks:", "— 5 tracks:", "— 21 tracks:", "— 11 tracks:"],
    ("ru", "likes"): ["— 1 трек:", "— 2 трека:", "— 5 треков:", "— 21 трек:", "— 11 треков:"],
    ("en", "history"): [
        "1 search, 1 like",
        "2 searches, 2 likes",
        "5 searches, 5 likes",
        "21 searches, 21 likes",
        "11 searches, 11 likes",
    ],
    ("ru", "history"): [
        "1 поиск, 1 лайк",
        "2 поиска, 2 лайка",
        "5 поисков, 5 лайков",
        "21 поиск, 21 лайк",
        "11 поисков, 11 лайков",
    ],
    ("en", "similar"): [": 1 track.", ": 2 tracks.", ": 5 tracks.", ": 21 tracks.", ": 11 tracks."],
    ("ru", "similar"): [": 1 трек.", ": 2 трека.", ": 5 треков.", ": 21 трек.", ": 11 треков."],
}


@pytest.mark.parametrize(("language", "name"), sorted(PLURALS))
def test_plurals_agree_for_1_2_5_21(language: str, name: str) -> None:
    for n, expected in zip((1, 2, 5, 21, 11), PLURALS[(language, name)], strict=True):
        if name == "radio_end":
            context: dict[str, Any] = {"step": RadioStep(radio_id=1, track=None, position=n, stopped=True)}
        elif name == "likes":
            context = {"page": Page((TRACK,), 0, n, n), "first": 0}
        elif name == "history":
            context = {"page": Page((GenreHistoryEntry("rock", 2 * n, n, n, (TRACK,), WHEN),), 0, 1, 1)}
        else:
            context = {"seed": TRACK, "recommendations": [Recommendation(TRACK, 1.0)] * n}
        text = parse_html(Texts().render(language, name, **context))
        assert expected in text, (n, expected, text)


def test_a_missing_plural_form_is_an_error_not_a_wrong_word() -> None:
    assert plural(3, "ru", {"one": "трек", "few": "трека", "many": "треков"}) == "трека"
    with pytest.raises(KeyError):
        plural(3, "ru", {"one": "трек", "other": "треков"})


def test_unknown_language_falls_back_to_english() -> None:
    assert Texts().render("de", "error") == Texts().render("en", "error")


def test_fit_cuts_long_html_to_the_limit_as_escaped_text() -> None:
    long = "<b>title</b> &amp; " + ("x < y & z\n" * 1000)
    assert visible_length(long) > MESSAGE_LIMIT
    cut = fit(long.replace("<", "&lt;").replace("&lt;b>", "<b>").replace("&lt;/b>", "</b>"))
    plain = parse_html(cut)
    assert len(plain) <= MESSAGE_LIMIT and plain.endswith("…")
    emoji = "🎵" * 3000  # two UTF-16 units each, as Telegram counts
    assert visible_length(fit(emoji)) <= MESSAGE_LIMIT


def test_fake_parser_refuses_what_telegram_refuses() -> None:
    for bad in ("<b>open", "a < b", "<div>x</div>", "<b><i>x</b></i>", "&nbsp;", "<a>x</a>"):
        with pytest.raises(BadRequest):
            check_message_text(bad, "HTML")
    with pytest.raises(BadRequest, match="too long"):
        check_message_text("x" * 4097, None)
    with pytest.raises(BadRequest, match="empty"):
        check_message_text("<b> </b>", "HTML")
    assert check_message_text('<a href="https://x.y/?a=1&amp;b=2">ok</a> &#39;&#x41;', "HTML") == "ok 'A"


async def test_a_failing_service_is_logged_and_the_user_told_without_details(
    chat: Chat, fakes: FakeServices, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret database password in this message")

    monkeypatch.setattr(fakes.tracks, "resolve", broken)
    monkeypatch.setattr(fakes.tracks, "card", broken)
    with caplog.at_level(logging.ERROR):
        await chat.send("anything")
    reply = chat.last()["text"]
    assert "Something went wrong" in reply and "password" not in reply
    assert "update" in caplog.text and "RuntimeError" in caplog.text

    await chat.press(chat.last(), "t:c:5")  # a button whose handler fails: an alert, no traceback to the user
    answer = chat.answers()[-1]
    assert answer["show_alert"] is True and "went wrong" in answer["text"]


async def test_features_less_track_says_why(chat: Chat, fakes: FakeServices) -> None:
    track = make_track(600, "rock", name="Lost Demo")
    fakes.tracks.add(dataclasses.replace(track, features=None, genres=()))
    await chat.send("/start t_600")
    assert "unknown" in chat.last()["text"] and "No audio features" in chat.last()["text"]
    # With catalogue labels, the genre is still known: the catalogue says it.
    fakes.tracks.add(dataclasses.replace(track, id=601, features=None))
    await chat.send("/start t_601")
    assert "🏷 Genre: Rock (catalogue)" in chat.last()["text"]


WHERE_FROM = {
    # source: (English card line, Russian card line, English inline, Russian inline)
    "catalogue": (
        "🏷 Genre: Hard rock · Metal (catalogue)",
        "🏷 Жанр: Хард-рок · Метал (из каталога)",
        "Hard rock · Metal",
        "Хард-рок · Метал",
    ),
    "artist": (
        "🏷 Genre: K-pop (from the artist) · sounds like dance 41%",
        "🏷 Жанр: Кей-поп (по исполнителю) · по звучанию — танцевальная музыка 41\xa0%",
        "K-pop (from the artist)",
        "Кей-поп (по исполнителю)",
    ),
    "artist, unsure": (
        "🏷 Genre: maybe K-pop (from the artist, 34%) · sounds like dance 41%",
        "🏷 Жанр: возможно, кей-поп (по исполнителю, 34\xa0%) · по звучанию — танцевальная музыка 41\xa0%",
        "maybe K-pop (from the artist)",
        "возможно, кей-поп (по исполнителю)",
    ),
    "title": (
        "🏷 Genre: Hard rock (62%, by its sound, title and artist name) · family: rock",
        "🏷 Жанр: Хард-рок (62\xa0%, по звучанию, названию и имени исполнителя) · направление: рок",
        "Hard rock",
        "Хард-рок",
    ),
    "audio": (
        "🏷 Genre: Hard rock (62%, by its sound) · family: rock",
        "🏷 Жанр: Хард-рок (62\xa0%, по звучанию) · направление: рок",
        "Hard rock",
        "Хард-рок",
    ),
    "audio, excerpt": (
        "🏷 Genre: Hard rock (62%, by the sound of a 30-s excerpt) · family: rock",
        "🏷 Жанр: Хард-рок (62\xa0%, по звучанию 30-секундного фрагмента) · направление: рок",
        "Hard rock",
        "Хард-рок",
    ),
    "title, excerpt": (
        "🏷 Genre: Hard rock (62%, by the sound of a 30-s excerpt, title and artist name) · family: rock",
        "🏷 Жанр: Хард-рок (62\xa0%, по звучанию 30-секундного фрагмента, названию и имени исполнителя)"
        " · направление: рок",
        "Hard rock",
        "Хард-рок",
    ),
}


@pytest.mark.parametrize("case", sorted(WHERE_FROM))
def test_cards_say_where_the_genre_comes_from_in_both_languages(case: str) -> None:
    guess = {
        "catalogue": CATALOGUE,
        "artist": ARTIST,
        "artist, unsure": ARTIST_UNSURE,
        "title": TITLE,
        "audio, excerpt": EXCERPT,
        "title, excerpt": EXCERPT_TITLE,
    }.get(case, SURE)
    verdict = genre_verdict(guess)
    assert verdict.source == case.split(",")[0]
    en_card, ru_card, en_inline, ru_inline = WHERE_FROM[case]
    texts = Texts()
    for language, card_line, inline, track in (("en", en_card, en_inline, TRACK), ("ru", ru_card, ru_inline, RU_TRACK)):
        context = {**CONTEXTS["card"][0], "track": track, "verdict": verdict}
        card = parse_html(texts.render(language, "card", **context))
        assert card_line in card.splitlines(), (language, card)
        description = texts.plain(language, "inline_description", track=track, verdict=verdict)
        assert f" · {inline} · " in description, (language, description)
        caption = parse_html(texts.render(language, "inline_caption", track=track, verdict=verdict, deep_link=None))
        assert f"🏷 {inline}" in caption.splitlines(), (language, caption)


def test_a_catalogue_song_names_its_labels_even_without_a_model() -> None:
    verdict = genre_verdict(None, ("jazz", "blues"))
    assert verdict is not None and verdict.source == "catalogue" and verdict.labels == ("jazz", "blues")
    assert genre_verdict(None) is None
    # With a guess, the guess's own labels decide (the same inputs everywhere).
    assert genre_verdict(SURE, ("jazz",)).source == "audio"
    card = parse_html(Texts().render("ru", "card", **{**CONTEXTS["card"][0], "verdict": verdict}))
    assert "🏷 Жанр: Джаз · Блюз (из каталога)" in card
