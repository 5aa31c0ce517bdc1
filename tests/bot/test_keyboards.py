"""Keyboards are pure functions: DTOs (and labels) in, markup out — no bot needed."""

from __future__ import annotations

from bot.telegram.callbacks import (
    LikesItemCallback,
    NoopCallback,
    RadioAction,
    RadioCallback,
    SearchPageCallback,
    SettingsAction,
    SettingsCallback,
)
from bot.telegram.keyboards import (
    candidates_keyboard,
    dial_step,
    likes_keyboard,
    radio_keyboard,
    settings_keyboard,
    track_keyboard,
)
from bot.telegram.texts import BUTTON_TEXT_LIMIT, Texts
from services.dto import Page, RadioStep, UserInfo
from tests.bot.fakes_services import make_track

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
    assert len(button.text) <= BUTTON_TEXT_LIMIT and button.text.endswith("…")


def test_track_keyboard_flips_between_like_and_liked() -> None:
    assert track_keyboard(5, liked=False, labels=LABELS).inline_keyboard[1][0].callback_data == "t:l:5"
    assert track_keyboard(5, liked=True, labels=LABELS).inline_keyboard[1][0].callback_data == "t:u:5"


def test_radio_keyboard_carries_radio_and_track_and_ends_with_the_radio() -> None:
    step = RadioStep(radio_id="r" * 22, track=make_track(9, "jazz"), position=1)
    rows = radio_keyboard(step, LABELS).inline_keyboard  # type: ignore[union-attr]
    actions = [RadioCallback.unpack(b.callback_data).action for row in rows for b in row]  # type: ignore[arg-type]
    assert actions == [RadioAction.LIKE, RadioAction.SKIP, RadioAction.NEXT, RadioAction.STOP]
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


def test_settings_keyboard_marks_the_current_choices() -> None:
    user = UserInfo(id=1, telegram_id=1, first_name="A", language="ru", diversity=0.76, subscribed=False, pick_hour=8)
    rows = settings_keyboard(user, LABELS).inline_keyboard
    assert [b.text for b in rows[0]] == ["English", "• Русский"]
    assert dial_step(0.76) == 3 and rows[1][3].text == "• 3"
    assert SettingsCallback.unpack(rows[2][0].callback_data) == SettingsCallback(  # type: ignore[arg-type]
        action=SettingsAction.SUBSCRIBE, value=8
    )
