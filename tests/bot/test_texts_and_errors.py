"""Templates (both languages, valid Telegram HTML, the 4,096 limit) and the error handling."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from bot.telegram.texts import MESSAGE_LIMIT, TEMPLATES_DIR, Texts, fit, visible_length
from services.dto import GenreGuess, Page, RadioStep, Recommendation, UserInfo
from tests.bot.conftest import Chat
from tests.bot.fakes_services import FakeServices, GenreHistoryEntry, make_track
from tests.fakes.telegram import BadRequest, check_message_text, parse_html

EVIL = "<script>&amp; \"quoted\" 'x' </b>"
TRACK = make_track(1, "jazz", name=EVIL, artist=EVIL)
USER = UserInfo(id=1, telegram_id=1, first_name=EVIL, language="en", diversity=0.5, subscribed=True, pick_hour=9)
GUESS = GenreGuess("jazz", 0.4, (("jazz", 0.4), ("blues", 0.3), ("soul", 0.3)), "jazz", 0.4)
STEP = RadioStep(radio_id=1, track=TRACK, position=3, likes=1, skips=2)
CONTEXTS = {
    "start": {"name": EVIL, "example": EVIL},
    "help": {"bot_username": "encore_bot"},
    "card": {"track": TRACK, "genre": GUESS, "note": EVIL, "youtube_url": "https://y.t/?a=1&b=2", "deep_link": None},
    "results": {"query": EVIL, "page": 0, "pages": 2, "notice": EVIL},
    "not_found": {"kind": "not_found", "query": EVIL, "example": EVIL},
    "similar": {"seed": TRACK, "recommendations": [Recommendation(TRACK, 1.0, EVIL)]},
    "radio": {"step": STEP, "track": TRACK},
    "radio_end": {"step": STEP},
    "radio_none": {},
    "history": {"page": Page((GenreHistoryEntry("jazz", 3, 2, 1, (TRACK,)),), 0, 1, 1)},
    "likes": {"page": Page((TRACK,), 0, 1, 1), "first": 0},
    "settings": {"user": USER, "dial": 2},
    "subscribed": {"user": USER},
    "unsubscribed": {},
    "bad_hour": {},
    "daily_pick": {"track": TRACK, "reason": EVIL},
    "error": {},
    "throttled": {},
    "unavailable": {},
}


def test_both_languages_have_the_same_templates() -> None:
    en = sorted(p.name for p in (TEMPLATES_DIR / "en").glob("*.html"))
    ru = sorted(p.name for p in (TEMPLATES_DIR / "ru").glob("*.html"))
    assert en == ru
    assert sorted(n.removesuffix(".html") for n in en if n != "labels.html") == sorted(CONTEXTS)
    texts = Texts()
    assert set(texts.labels("en")._values) == set(texts.labels("ru")._values)


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_every_template_is_valid_telegram_html_with_user_data_escaped(language: str, name: str) -> None:
    text = Texts().render(language, name, **CONTEXTS[name])
    plain = check_message_text(text, "HTML")  # raises like Telegram on bad HTML / empty / too long
    assert "<script>" not in text
    if EVIL in plain:
        assert "&lt;script&gt;" in text


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
    fakes.tracks.add(dataclasses.replace(track, features=None))
    await chat.send("/start t_600")
    assert "unknown" in chat.last()["text"] and "No audio features" in chat.last()["text"]
