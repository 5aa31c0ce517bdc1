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
    LANGUAGE = "l"  # value: index in SUPPORTED_LANGUAGES
    DIAL = "d"  # value: dial step
    SUBSCRIBE = "s"  # value: hour (local)
    UNSUBSCRIBE = "u"
    SCREEN = "v"  # value: SettingsScreen
    ZONE = "z"  # value: index in services.schedule.ZONES


class SettingsScreen(enum.IntEnum):
    MAIN = 0
    DIAL = 1
    HOURS = 2
    ZONES = 3


class TrackCallback(CallbackData, prefix="t"):
    """A button on a track card or a list of tracks."""

    action: TrackAction
    track_id: int


class SearchPageCallback(CallbackData, prefix="sp"):
    """Paging through the candidates of one search (`search_id` tells an old list from the current one)."""

    search_id: int
    page: int


class VersionsCallback(CallbackData, prefix="vs"):
    """ "Other versions" on a card opened from a search: the versions are kept with that search."""

    search_id: int


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
    value: int  # see SettingsAction


class PreviewCallback(CallbackData, prefix="pv"):
    """▶ 30-s preview on a track card or a radio card: the preview is fetched fresh when pressed."""

    track_id: int


class NoopCallback(CallbackData, prefix="n"):
    """The page counter between ◀ and ▶: pressing it does nothing."""


ALL_CALLBACKS: tuple[type[CallbackData], ...] = (
    TrackCallback,
    SearchPageCallback,
    VersionsCallback,
    RadioCallback,
    HistoryPageCallback,
    LikesPageCallback,
    LikesItemCallback,
    SettingsCallback,
    PreviewCallback,
    NoopCallback,
)
