"""Keyboards are pure functions: DTOs (and labels) in, markup out — no bot needed."""

from __future__ import annotations

import dataclasses

from bot.telegram.callbacks import (
    LikesItemCallback,
    NoopCallback,
    RadioAction,
    RadioCallback,
    SearchPageCallback,
    SettingsAction,
    SettingsCallback,
    SettingsScreen,
    TrackAction,
    TrackCallback,
    VersionsCallback,
)
from bot.telegram.keyboards import (
    candidates_keyboard,
    dial_step,
    likes_keyboard,
    links_keyboard,
    radio_keyboard,
    settings_keyboard,
    similar_keyboard,
    track_button_text,
    track_keyboard,
    with_like_state,
)
from bot.telegram.texts import BUTTON_TEXT_LIMIT, Texts
from services.dto import Page, RadioStep, Recommendation, UserInfo
from services.schedule import ZONES
from tests.fakes.services import make_track

LABELS = Texts().labels("en")


def test_pager_shows_only_the_possible_directions() -> None:
    tracks = [make_track(i, "jazz") for i in range(1, 9)]
    first = candidates_keyboard(tracks, search_id=7, page=0, pages=3, labels=LABELS).inline_keyboard
    assert [b.text for b in first[-1]] == ["1 / 3", "▶"]
    assert first[-1][0].callback_data == NoopCallback().pack()
    assert first[-1][1].callback_data == SearchPageCallback(search_id=7, page=1).pack()
    last = candidates_keyboard(tracks[:2], search_id=7, page=2, pages=3, labels=LABELS).inline_keyboard
    assert [b.text for b in last[-1]] == ["◀", "3 / 3"]
    single = candidates_keyboard(tracks[:2], search_id=7, page=0, pages=1, labels=LABELS).inline_keyboard
    assert len(single) == 2  # no pager


def test_long_titles_are_clipped_on_buttons() -> None:
    track = make_track(1, "rock", name="N" * 300)
    button = candidates_keyboard([track], search_id=1, page=0, pages=1, labels=LABELS).inline_keyboard[0][0]
    assert len(button.text) <= BUTTON_TEXT_LIMIT and "…" in button.text


def test_track_buttons_put_the_title_first_and_shorten_the_artists() -> None:
    """Seen in the issue: "Dan Tyminski, Jerry Douglas, Todd Phillips, Sam…" lost the title."""
    track = dataclasses.replace(
        make_track(1, "rock", name="Man of Constant Sorrow"),
        artists=("Dan Tyminski", "Jerry Douglas", "Todd Phillips", "Sam Bush", "Stuart Duncan"),
    )
    assert track_button_text(track) == "Man of Constant Sorrow — Dan Tyminski +4"
    long = dataclasses.replace(track, name="A Very Long Song Title That Goes On And On Forever")
    text = track_button_text(long)
    assert len(text) <= BUTTON_TEXT_LIMIT and text.startswith("A Very Long") and text.endswith("Dan Tyminski +4")
    rec = Recommendation(track, 0.9, "similar sound")
    assert similar_keyboard([rec]).inline_keyboard[0][0].text == "Man of Constant Sorrow — Dan Tyminski +4"
    versions = [
        dataclasses.replace(track, id=2, album="O Brother, Where Art Thou?", year=2000),
        dataclasses.replace(track, id=3, album="Live", year=2003),
    ]
    rows = candidates_keyboard(versions, search_id=1, page=0, pages=1, labels=LABELS, versions=True).inline_keyboard
    assert [r[0].text for r in rows] == [
        "Man of Constant Sorrow — O Brother, Wher… (2000)",
        "Man of Constant Sorrow — Live (2003)",
    ]


def test_track_keyboard_flips_between_like_and_liked() -> None:
    assert track_keyboard(5, liked=False, labels=LABELS).inline_keyboard[1][0].callback_data == "t:l:5"
    assert track_keyboard(5, liked=True, labels=LABELS).inline_keyboard[1][0].callback_data == "t:u:5"


def test_radio_keyboard_carries_radio_and_track_and_ends_with_the_radio() -> None:
    step = RadioStep(radio_id="r" * 22, track=make_track(9, "jazz"), position=1)
    rows = radio_keyboard(step, LABELS).inline_keyboard  # type: ignore[union-attr]
    actions = [RadioCallback.unpack(b.callback_data).action for row in rows[:2] for b in row]  # type: ignore[arg-type]
    assert actions == [RadioAction.LIKE, RadioAction.SKIP, RadioAction.NEXT, RadioAction.STOP]
    # ➕ to playlist for the track playing now
    assert [b.callback_data for b in rows[2]] == [TrackCallback(action=TrackAction.PLAYLIST, track_id=9).pack()]
    assert RadioCallback.unpack(rows[0][0].callback_data) == RadioCallback(  # type: ignore[arg-type]
        radio_id="r" * 22, track_id=9, action=RadioAction.LIKE
    )
    assert radio_keyboard(RadioStep(radio_id="r" * 22, track=None, position=5), LABELS) is None
    assert radio_keyboard(RadioStep(radio_id="r" * 22, track=step.track, position=5, stopped=True), LABELS) is None


def test_likes_keyboard_numbers_items_across_pages() -> None:
    page = Page(items=(make_track(1, "jazz"), make_track(2, "rock")), page=1, pages=2, total=7)
    rows = likes_keyboard(page, first=5, labels=LABELS).inline_keyboard  # type: ignore[union-attr]
    assert [b.text for b in rows[0]] == ["▶ 6", "✖ 6"]
    assert LikesItemCallback.unpack(rows[1][1].callback_data).track_id == 2  # type: ignore[arg-type]
    assert [b.text for b in rows[-1]] == ["◀", "2 / 2"]


def test_like_flips_without_losing_the_other_buttons() -> None:
    card = track_keyboard(5, liked=False, labels=LABELS, versions=(77, 3))
    assert card.inline_keyboard[2][0].text == "🔀 Other versions (3)"
    assert card.inline_keyboard[2][0].callback_data == VersionsCallback(search_id=77).pack()
    liked = with_like_state(card, 5, liked=True, labels=LABELS)
    assert liked.inline_keyboard[1][0].callback_data == "t:u:5"
    assert liked.inline_keyboard[2] == card.inline_keyboard[2] and liked.inline_keyboard[0] == card.inline_keyboard[0]
    assert with_like_state(liked, 5, liked=False, labels=LABELS) == card
    assert len(track_keyboard(5, liked=False, labels=LABELS, versions=(77, 0)).inline_keyboard) == 2


def test_settings_keyboard_marks_the_current_choices() -> None:
    user = UserInfo(id=1, telegram_id=1, first_name="A", language="ru", diversity=0.76, subscribed=False, pick_hour=8)
    labels = Texts().labels("ru")
    rows = settings_keyboard(user, labels).inline_keyboard
    assert [b.text for b in rows[0]] == ["English", "• Русский"]
    assert rows[1][0].text == "🎚 Знакомое ↔ новое: Скорее новое" and dial_step(0.76) == 3
    assert rows[2][0].text == "🔔 Трек дня: выключен" and rows[3][0].text == "🕒 UTC"
    screens = [SettingsCallback.unpack(r[0].callback_data) for r in rows[1:]]  # type: ignore[arg-type]
    assert [(s.action, s.value) for s in screens] == [
        (SettingsAction.SCREEN, int(sc)) for sc in list(SettingsScreen)[1:]
    ]

    dial = settings_keyboard(user, labels, SettingsScreen.DIAL).inline_keyboard
    assert [r[0].text for r in dial[:-1]] == ["Знакомое", "Скорее знакомое", "Поровну", "• Скорее новое", "Новое"]
    assert SettingsCallback.unpack(dial[4][0].callback_data) == SettingsCallback(action=SettingsAction.DIAL, value=4)  # type: ignore[arg-type]
    assert dial[-1][0].text == "◀ Назад"

    subscribed = dataclasses.replace(user, subscribed=True, pick_hour=21, timezone="Europe/Moscow")
    hours = settings_keyboard(subscribed, labels, SettingsScreen.HOURS).inline_keyboard
    buttons = [b for row in hours[:4] for b in row]
    assert len(buttons) == 24 and buttons[21].text == "• 21:00" and buttons[9].text == "09:00"
    assert SettingsCallback.unpack(buttons[9].callback_data) == SettingsCallback(
        action=SettingsAction.SUBSCRIBE, value=9
    )  # type: ignore[arg-type]
    assert hours[4][0].text == "🔕 Отключить трек дня"

    zones = [b for row in settings_keyboard(subscribed, labels, SettingsScreen.ZONES).inline_keyboard[:-1] for b in row]
    assert len(zones) == len(ZONES)
    marked = [b.text for b in zones if b.text.startswith("• ")]
    assert marked == ["• Москва (UTC+3)"]
    main = settings_keyboard(subscribed, labels).inline_keyboard
    assert main[2][0].text == "🔔 Трек дня: 21:00" and main[3][0].text == "🕒 Москва (UTC+3)"


def test_youtube_button_says_search_until_a_video_is_known() -> None:
    track = make_track(1, "rock")
    search = links_keyboard(track, youtube_url="https://y.t/results?q=x", deep_link=None, labels=LABELS)
    assert search.inline_keyboard[0][0].text == "🔎 YouTube"
    video = links_keyboard(
        track, youtube_url="https://y.t/watch?v=x", deep_link=None, labels=LABELS, youtube_is_search=False
    )
    assert video.inline_keyboard[0][0].text == "▶️ YouTube"
