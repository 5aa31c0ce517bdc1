"""What the delivery layer (bot, web, API, CLI) calls on the services: one Protocol per service.

The real services in this package implement them, and so do the test fakes (tests/fakes/services.py);
mypy checks both against these definitions, so the handlers, the real services and the fakes cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from services.dto import (
    ExportFile,
    GenreGuess,
    GenreHistoryEntry,
    HealthReport,
    InteractionKind,
    Listener,
    Page,
    PlaylistInfo,
    PlaylistTarget,
    PlaylistView,
    RadioStep,
    Recommendation,
    Resolution,
    SharedPlaylist,
    ShareInfo,
    SpotifyConnected,
    SpotifySaved,
    TrackCard,
    TrackInfo,
    UserInfo,
    YouTubePlay,
)

if TYPE_CHECKING:
    from services.analysis import AnalysisResult, AudioInput

RadioAction = Literal["like", "skip", "next"]


class Tracks(Protocol):
    async def resolve(self, text: str, *, user_id: int | None = None, limit: int = 8) -> Resolution: ...

    async def search(self, query: str, limit: int = 10) -> list[TrackInfo]: ...

    async def get(self, track_id: int) -> TrackInfo: ...

    async def card(self, track_id: int, *, user_id: int | None = None) -> TrackCard: ...

    async def with_deezer(self, track: TrackInfo, *, budget: float | None = None) -> TrackInfo:
        """The track with its Deezer id (preview), cover and year when Deezer finds it within a
        short budget; the track as it was otherwise. Never raises for provider failures."""
        ...

    async def preview_url(self, track: TrackInfo) -> str | None:
        """A fresh 30-second preview URL (signed, expires within minutes: never store it), or None."""
        ...


class Genres(Protocol):
    @property
    def ready(self) -> bool: ...

    @property
    def version(self) -> str: ...

    async def guess(
        self,
        features: Mapping[str, Any] | None,
        *,
        artists: Sequence[str] | str | None = None,
        title: str | None = None,
        labels: Sequence[str] = (),
    ) -> GenreGuess: ...

    async def guess_tracks(self, tracks: Sequence[TrackInfo]) -> list[GenreGuess | None]: ...


class Recommendations(Protocol):
    async def similar(
        self, track_id: int, n: int = 5, *, user_id: int | None = None, diversity: float | None = None
    ) -> list[Recommendation]: ...

    async def for_you(self, user_id: int, n: int = 10) -> list[Recommendation]: ...

    async def similar_to_row(
        self, row: Mapping[str, Any], n: int = 10, *, diversity: float | None = None
    ) -> list[Recommendation]:
        """Neighbours of a song given as a dataset row (audio features, optional artists / title)."""
        ...

    async def catalogue_size(self) -> int: ...


class Radios(Protocol):
    async def start(
        self,
        seed_track_id: int,
        *,
        listener: Listener,
        diversity: float | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> RadioStep: ...

    async def feedback(self, radio_id: str, track_id: int, action: RadioAction, *, listener: Listener) -> RadioStep: ...

    async def stop(self, radio_id: str, *, listener: Listener) -> RadioStep: ...

    async def current(self, radio_id: str, *, listener: Listener) -> RadioStep: ...

    async def attach_message(self, radio_id: str, chat_id: int, message_id: int, *, listener: Listener) -> None: ...

    async def start_from_latest_like(
        self, *, listener: Listener, diversity: float | None = None, chat_id: int | None = None
    ) -> RadioStep | None: ...

    async def start_from_tracks(
        self,
        track_ids: Sequence[int],
        *,
        listener: Listener,
        diversity: float | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> RadioStep: ...


class Playlists(Protocol):
    """`services.playlists.PlaylistService`: every method takes the owner as a `Listener`."""

    public_url: str | None

    def url(self, path: str) -> str | None: ...

    async def playlists(self, listener: Listener) -> list[PlaylistInfo]: ...

    async def get(self, listener: Listener, playlist_id: str) -> PlaylistInfo: ...

    async def view(self, listener: Listener, playlist_id: str, page: int = 0, size: int = 5) -> PlaylistView: ...

    async def targets(self, listener: Listener, track_id: int) -> list[PlaylistTarget]: ...

    async def tracks(self, listener: Listener, playlist_id: str) -> tuple[PlaylistInfo, list[TrackInfo]]: ...

    async def create(self, listener: Listener, name: str) -> PlaylistInfo: ...

    async def rename(self, listener: Listener, playlist_id: str, name: str) -> PlaylistInfo: ...

    async def delete(self, listener: Listener, playlist_id: str) -> None: ...

    async def add(self, listener: Listener, playlist_id: str, track_id: int) -> bool: ...

    async def remove(self, listener: Listener, playlist_id: str, track_id: int) -> bool: ...

    async def move(
        self, listener: Listener, playlist_id: str, track_id: int, position: int, *, version: int | None = None
    ) -> PlaylistInfo: ...

    async def shift(self, listener: Listener, playlist_id: str, track_id: int, by: int) -> PlaylistInfo: ...

    async def start_radio(
        self, listener: Listener, playlist_id: str, *, diversity: float | None = None, chat_id: int | None = None
    ) -> RadioStep: ...

    async def export(
        self, listener: Listener, playlist_id: str, fmt: str, *, max_bytes: int | None = None
    ) -> list[ExportFile]: ...

    async def youtube(self, listener: Listener, playlist_id: str) -> YouTubePlay: ...

    async def share(self, listener: Listener, playlist_id: str) -> ShareInfo: ...

    async def unshare(self, listener: Listener, playlist_id: str) -> bool: ...

    async def shared(self, token: str, page: int = 0, size: int = 20) -> SharedPlaylist: ...


class SpotifySave(Protocol):
    """`services.spotify_accounts.SpotifySaveService`: "Save to Spotify" through the person's authorization."""

    @property
    def enabled(self) -> bool: ...

    async def connected(self, listener: Listener) -> bool: ...

    async def connect_url(self, listener: Listener, playlist_id: str | None = None) -> str: ...

    async def complete(self, state: str, *, code: str | None, error: str | None = None) -> SpotifyConnected: ...

    async def save(self, listener: Listener, playlist_id: str) -> SpotifySaved: ...

    async def disconnect(self, listener: Listener) -> bool: ...


class Feedback(Protocol):
    async def like(self, user_id: int, track_id: int, context: str | None = None) -> bool: ...

    async def unlike(self, user_id: int, track_id: int, context: str | None = None) -> bool: ...

    async def record(
        self, user_id: int | None, track_id: int, kind: InteractionKind, context: str | None = None
    ) -> None: ...

    async def likes(self, user_id: int, page: int, size: int = 5) -> Page[TrackInfo]: ...

    async def genre_history(self, user_id: int, page: int, size: int = 5) -> Page[GenreHistoryEntry]: ...


class Users(Protocol):
    async def touch_telegram(
        self,
        telegram_id: int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> UserInfo: ...

    async def set_language(self, user_id: int, language: str) -> UserInfo: ...

    async def set_diversity(self, user_id: int, diversity: float) -> UserInfo: ...

    async def set_dial(self, user_id: int, step: int) -> UserInfo: ...

    async def subscribe(self, user_id: int, hour: int | None = None, minute: int | None = None) -> UserInfo: ...

    async def set_timezone(self, user_id: int, zone: str) -> UserInfo: ...

    async def set_zone_choice(self, user_id: int, index: int) -> UserInfo: ...

    async def unsubscribe(self, user_id: int) -> UserInfo: ...


class Analysis(Protocol):
    """ "This sounds like …" for sent audio (`services.analysis.AnalysisService`)."""

    max_bytes: int

    def precheck(self, *, size: int | None, file_name: str | None = None, mime_type: str | None = None) -> None:
        """The refusals that need no download (`AudioTooLarge`, `NotAudio`)."""
        ...

    async def analyse(
        self,
        source: AudioInput,
        *,
        identity: str,
        file_name: str | None = None,
        mime_type: str | None = None,
        title: str | None = None,
        performer: str | None = None,
        user_id: int | None = None,
    ) -> AnalysisResult: ...


class Health(Protocol):
    async def check(self) -> HealthReport: ...

    def set_detail(self, name: str, value: object) -> None: ...
