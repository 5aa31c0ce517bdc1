"""Every CallbackData the bot puts on a button: short unique prefixes, internal ids and enums only."""

from __future__ import annotations

import enum

from aiogram.filters.callback_data import CallbackData


class TrackAction(enum.StrEnum):
    CARD = "c"
    PICK = "p"  # a candidate chosen from search results (recorded as searched)
    RADIO = "r"
    LIKE = "l"
    UNLIKE = "u"
    SIMILAR = "s"


class RadioAction(enum.StrEnum):
    LIKE = "l"
    SKIP = "s"
    NEXT = "n"
    STOP = "x"


class LikesAction(enum.StrEnum):
    RADIO = "r"
    UNLIKE = "u"


class SettingsAction(enum.StrEnum):
    LANGUAGE = "l"
    DIAL = "d"
    SUBSCRIBE = "s"
    UNSUBSCRIBE = "u"


class TrackCallback(CallbackData, prefix="t"):
    """A button on a track card or a list of tracks."""

    action: TrackAction
    track_id: int


class SearchPageCallback(CallbackData, prefix="sp"):
    """Paging through the candidates of one search (`search_id` tells an old list from the current one)."""

    search_id: int
    page: int


class RadioCallback(CallbackData, prefix="r"):
    radio_id: str  # the public id (22 URL-safe characters)
    track_id: int
    action: RadioAction


class HistoryPageCallback(CallbackData, prefix="hp"):
    page: int


class LikesPageCallback(CallbackData, prefix="lp"):
    page: int


class LikesItemCallback(CallbackData, prefix="li"):
    action: LikesAction
    track_id: int
    page: int


class SettingsCallback(CallbackData, prefix="st"):
    action: SettingsAction
    value: int  # language index, dial step or hour


class NoopCallback(CallbackData, prefix="n"):
    """The page counter between ◀ and ▶: pressing it does nothing."""


ALL_CALLBACKS: tuple[type[CallbackData], ...] = (
    TrackCallback,
    SearchPageCallback,
    RadioCallback,
    HistoryPageCallback,
    LikesPageCallback,
    LikesItemCallback,
    SettingsCallback,
    NoopCallback,
)
