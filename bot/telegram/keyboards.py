"""Inline keyboards: pure functions from DTOs (and the user's labels) to markup."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.telegram.callbacks import (
    HistoryPageCallback,
    LikesAction,
    LikesItemCallback,
    LikesPageCallback,
    NoopCallback,
    RadioAction,
    RadioCallback,
    SearchPageCallback,
    SettingsAction,
    SettingsCallback,
    TrackAction,
    TrackCallback,
)
from bot.telegram.texts import BUTTON_TEXT_LIMIT, Labels, clip
from services.dto import Page, RadioStep, Recommendation, TrackInfo, UserInfo
from services.users import SUPPORTED_LANGUAGES

DIAL_STEPS = 4  # the familiar ↔ new dial: 0 … 4 → diversity 0.0 … 1.0


def dial_step(diversity: float) -> int:
    return max(0, min(DIAL_STEPS, round(diversity * DIAL_STEPS)))


def nav_row(page: int, pages: int, make: Callable[[int], CallbackData], labels: Labels) -> list[InlineKeyboardButton]:
    """◀ n/m ▶ for a paged list; empty when everything fits on one page."""
    if pages <= 1:
        return []
    row = []
    if page > 0:
        row.append(InlineKeyboardButton(text=labels("btn_prev"), callback_data=make(page - 1).pack()))
    row.append(
        InlineKeyboardButton(text=labels("btn_page", page=page + 1, pages=pages), callback_data=NoopCallback().pack())
    )
    if page + 1 < pages:
        row.append(InlineKeyboardButton(text=labels("btn_next"), callback_data=make(page + 1).pack()))
    return row


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


# The two keyboards below are on the hot path (every card, every radio press); they are built
# directly, as InlineKeyboardBuilder deep-copies its rows on every as_markup().
def track_keyboard(track_id: int, *, liked: bool, labels: Labels) -> InlineKeyboardMarkup:
    """▶ Start radio / 👍 / 🔎 Similar under a track card."""
    like = (
        _button(labels("btn_liked"), TrackCallback(action=TrackAction.UNLIKE, track_id=track_id))
        if liked
        else _button(labels("btn_like"), TrackCallback(action=TrackAction.LIKE, track_id=track_id))
    )
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(labels("btn_radio"), TrackCallback(action=TrackAction.RADIO, track_id=track_id))],
            [like, _button(labels("btn_similar"), TrackCallback(action=TrackAction.SIMILAR, track_id=track_id))],
        ]
    )


def candidates_keyboard(
    tracks: Sequence[TrackInfo], *, search_id: int, page: int, pages: int, labels: Labels
) -> InlineKeyboardMarkup:
    """One button per candidate track, then ◀ n/m ▶."""
    kb = InlineKeyboardBuilder()
    for track in tracks:
        kb.row(
            InlineKeyboardButton(
                text=clip(track.title, BUTTON_TEXT_LIMIT),
                callback_data=TrackCallback(action=TrackAction.PICK, track_id=track.id).pack(),
            )
        )
    nav = nav_row(page, pages, lambda p: SearchPageCallback(search_id=search_id, page=p), labels)
    if nav:
        kb.row(*nav)
    return kb.as_markup()


def similar_keyboard(recommendations: Sequence[Recommendation]) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for i, rec in enumerate(recommendations, start=1):
        kb.row(
            InlineKeyboardButton(
                text=clip(f"{i}. {rec.track.title}", BUTTON_TEXT_LIMIT),
                callback_data=TrackCallback(action=TrackAction.CARD, track_id=rec.track.id).pack(),
            )
        )
    return kb.as_markup()


def radio_keyboard(step: RadioStep, labels: Labels) -> InlineKeyboardMarkup | None:
    """👍 👎 / ⏭ ⏹ for the radio's current track; None once the radio is over."""
    if step.track is None or step.stopped:
        return None
    track_id = step.track.id

    def press(action: RadioAction, key: str) -> InlineKeyboardButton:
        return _button(labels(key), RadioCallback(radio_id=step.radio_id, track_id=track_id, action=action))

    return InlineKeyboardMarkup(
        inline_keyboard=[
            [press(RadioAction.LIKE, "btn_radio_like"), press(RadioAction.SKIP, "btn_radio_skip")],
            [press(RadioAction.NEXT, "btn_radio_next"), press(RadioAction.STOP, "btn_radio_stop")],
        ]
    )


def history_keyboard(page: Page[Any], labels: Labels) -> InlineKeyboardMarkup | None:
    nav = nav_row(page.page, page.pages, lambda p: HistoryPageCallback(page=p), labels)
    return InlineKeyboardMarkup(inline_keyboard=[nav]) if nav else None


def likes_keyboard(page: Page[TrackInfo], *, first: int, labels: Labels) -> InlineKeyboardMarkup | None:
    """Per liked track: ▶ n (radio from it) and ✖ n (remove the like); then ◀ n/m ▶."""
    rows: list[list[InlineKeyboardButton]] = []
    for n, track in enumerate(page.items, start=first + 1):
        rows.append(
            [
                InlineKeyboardButton(
                    text=labels("btn_likes_radio", n=n),
                    callback_data=LikesItemCallback(action=LikesAction.RADIO, track_id=track.id, page=page.page).pack(),
                ),
                InlineKeyboardButton(
                    text=labels("btn_likes_unlike", n=n),
                    callback_data=LikesItemCallback(
                        action=LikesAction.UNLIKE, track_id=track.id, page=page.page
                    ).pack(),
                ),
            ]
        )
    nav = nav_row(page.page, page.pages, lambda p: LikesPageCallback(page=p), labels)
    if nav:
        rows.append(nav)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def settings_keyboard(user: UserInfo, labels: Labels, *, default_hour: int = 10) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    lang_buttons = [
        InlineKeyboardButton(
            text=("• " if user.language == code else "") + labels(f"btn_lang_{code}"),
            callback_data=SettingsCallback(action=SettingsAction.LANGUAGE, value=i).pack(),
        )
        for i, code in enumerate(SUPPORTED_LANGUAGES)
    ]
    kb.row(*lang_buttons)
    current = dial_step(user.diversity)
    kb.row(
        *(
            InlineKeyboardButton(
                text=labels("btn_dial", mark="• " if step == current else "", step=step),
                callback_data=SettingsCallback(action=SettingsAction.DIAL, value=step).pack(),
            )
            for step in range(DIAL_STEPS + 1)
        )
    )
    if user.subscribed:
        kb.row(
            InlineKeyboardButton(
                text=labels("btn_unsubscribe"),
                callback_data=SettingsCallback(action=SettingsAction.UNSUBSCRIBE, value=0).pack(),
            )
        )
    else:
        kb.row(
            InlineKeyboardButton(
                text=labels("btn_subscribe", hour=user.pick_hour if user.pick_hour is not None else default_hour),
                callback_data=SettingsCallback(action=SettingsAction.SUBSCRIBE, value=user.pick_hour).pack(),
            )
        )
    return kb.as_markup()


def links_keyboard(
    track: TrackInfo, *, youtube_url: str, deep_link: str | None, labels: Labels
) -> InlineKeyboardMarkup:
    """URL buttons only: for messages posted into other chats (inline mode), where our callbacks don't belong."""
    kb = InlineKeyboardBuilder()
    kb.button(text=labels("btn_youtube"), url=youtube_url)
    if track.spotify_url:
        kb.button(text=labels("btn_spotify"), url=track.spotify_url)
    if deep_link:
        kb.button(text=labels("btn_open_bot"), url=deep_link)
    kb.adjust(2, 1)
    return kb.as_markup()
