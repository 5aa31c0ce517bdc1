"""Every CallbackData the bot puts on a button: short unique prefixes, internal ids and enums only."""

from __future__ import annotations

import enum
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

# A page of a playlist's songs (5 a page: 10,000 songs are 2,000 pages); bounded so that a playlist
# button with a 22-character id and a track id always packs into Telegram's 64 bytes.
PlaylistPage = Annotated[int, Field(ge=0, lt=100_000)]


class TrackAction(enum.StrEnum):
    CARD = "c"
    PICK = "p"  # a candidate chosen from search results (recorded as searched)
    RADIO = "r"
    LIKE = "l"
    UNLIKE = "u"
    SIMILAR = "s"
    PLAYLIST = "a"  # ➕ to playlist: offer the person's playlists


class RadioAction(enum.StrEnum):
    LIKE = "l"
    SKIP = "s"
    NEXT = "n"
    STOP = "x"


class LikesAction(enum.StrEnum):
    RADIO = "r"
    UNLIKE = "u"


class PlaylistAction(enum.StrEnum):
    OPEN = "o"  # value: the page of songs
    RADIO = "r"
    EXPORT = "e"
    SHARE = "s"
    UNSHARE = "u"
    YOUTUBE = "y"
    SPOTIFY = "f"
    RENAME = "n"
    DELETE = "d"  # asks first
    DELETE_YES = "D"


class PlaylistItemAction(enum.StrEnum):
    UP = "u"
    DOWN = "d"
    REMOVE = "x"


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


class PlaylistsCallback(CallbackData, prefix="pls"):
    """A page of the person's playlists (`export`: the list /export shows, whose buttons export)."""

    page: PlaylistPage
    export: bool = False


class PlaylistCallback(CallbackData, prefix="pl"):
    action: PlaylistAction
    playlist_id: str  # the public id (22 URL-safe characters)
    page: PlaylistPage = 0


class PlaylistItemCallback(CallbackData, prefix="pi"):
    action: PlaylistItemAction
    playlist_id: str
    track_id: int
    page: PlaylistPage


class AddToPlaylistCallback(CallbackData, prefix="ap"):
    """A playlist chosen for a song under "➕ to playlist"."""

    playlist_id: str
    track_id: int


class NewPlaylistCallback(CallbackData, prefix="np"):
    """➕ New playlist (named in the next message); `track_id` is added to it (0: none)."""

    track_id: int


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
    PlaylistsCallback,
    PlaylistCallback,
    PlaylistItemCallback,
    AddToPlaylistCallback,
    NewPlaylistCallback,
)
