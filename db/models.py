"""The schema. Every change here comes with an alembic migration (a test checks they agree)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base

# The audio features every track row may carry, one column each, in Spotify's order (the order the
# genre model reads them in: tests/test_layers.py holds ml.features.AUDIO_FEATURES equal to this).
AUDIO_FEATURE_COLUMNS: tuple[str, ...] = (
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "time_signature",
)
# What an audio analysis (ReccoBeats' analysis of a 30-s clip) gives: all but these three, which stay NULL.
UNANALYSED_COLUMNS = ("key", "mode", "time_signature")
ANALYSIS_FEATURE_COLUMNS = tuple(c for c in AUDIO_FEATURE_COLUMNS if c not in UNANALYSED_COLUMNS)


class InteractionKind(enum.StrEnum):
    SEARCHED = "searched"
    SHOWN = "shown"
    LIKED = "liked"
    SKIPPED = "skipped"
    OPENED = "opened"
    UNLIKED = "unliked"


class RadioState(enum.StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"


def _now() -> datetime:
    return datetime.now(UTC)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    first_name: Mapped[str | None] = mapped_column(String(256))
    last_name: Mapped[str | None] = mapped_column(String(256))
    username: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    diversity: Mapped[float] = mapped_column(Float, default=0.3, server_default="0.3")
    subscribed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    pick_hour: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    # The daily pick's time is local: pick_hour:pick_minute in `timezone` (an IANA name).
    pick_minute: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())

    __table_args__ = (
        CheckConstraint("pick_hour >= 0 AND pick_hour <= 23", name="pick_hour_range"),
        CheckConstraint("diversity >= 0 AND diversity <= 1", name="diversity_range"),
        Index("ix_users_subscribed_hour", "subscribed", "active", "pick_hour"),
    )


class _TrackFeatures:
    """What a tracks row's feature columns say, for the mapped `Track` and a plain `StoredTrack`."""

    @property
    def has_features(self) -> bool:
        return all(getattr(self, c) is not None for c in AUDIO_FEATURE_COLUMNS)

    @property
    def known_features(self) -> dict[str, float] | None:
        """All twelve features; or the nine an audio analysis gives (key, mode and time signature
        NULL); None otherwise."""
        if self.has_features:
            return {c: float(getattr(self, c)) for c in AUDIO_FEATURE_COLUMNS}
        if all(getattr(self, c) is not None for c in ANALYSIS_FEATURE_COLUMNS):
            return {c: float(getattr(self, c)) for c in ANALYSIS_FEATURE_COLUMNS}
        return None


class Track(_TrackFeatures, Base):
    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Provider ids: a song found only on Deezer has no Spotify id, a catalogue song no Deezer id.
    spotify_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    deezer_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    isrc: Mapped[str | None] = mapped_column(String(12), index=True)
    name: Mapped[str] = mapped_column(String(512))
    artists: Mapped[str] = mapped_column(String(1024))  # ';'-separated, as in the datasets
    album: Mapped[str | None] = mapped_column(String(512))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    explicit: Mapped[bool | None] = mapped_column(Boolean)
    popularity: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16), default="catalog", server_default="catalog")
    # Where the audio features came from: catalog / spotify / reccobeats / analysis (None: none yet).
    features_source: Mapped[str | None] = mapped_column(String(16))
    cover_url: Mapped[str | None] = mapped_column(String(512))
    release_year: Mapped[int | None] = mapped_column(Integer)
    # Normalised "artist - title" used for folding duplicates and for search.
    search_key: Mapped[str] = mapped_column(String(1024), default="", server_default="")

    danceability: Mapped[float | None] = mapped_column(Float)
    energy: Mapped[float | None] = mapped_column(Float)
    key: Mapped[float | None] = mapped_column(Float)
    loudness: Mapped[float | None] = mapped_column(Float)
    mode: Mapped[float | None] = mapped_column(Float)
    speechiness: Mapped[float | None] = mapped_column(Float)
    acousticness: Mapped[float | None] = mapped_column(Float)
    instrumentalness: Mapped[float | None] = mapped_column(Float)
    liveness: Mapped[float | None] = mapped_column(Float)
    valence: Mapped[float | None] = mapped_column(Float)
    tempo: Mapped[float | None] = mapped_column(Float)
    time_signature: Mapped[float | None] = mapped_column(Float)

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())

    genres: Mapped[list[TrackGenre]] = relationship(
        back_populates="track", cascade="all, delete-orphan", lazy="selectin", order_by="TrackGenre.genre"
    )

    __table_args__ = (
        Index("ix_tracks_search_key", "search_key"),
        Index("ix_tracks_source", "source"),
    )


class TrackGenre(Base):
    """A dataset genre label of a track (a track can carry several)."""

    __tablename__ = "track_genres"

    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True)
    genre: Mapped[str] = mapped_column(String(64), primary_key=True)

    track: Mapped[Track] = relationship(back_populates="genres")

    __table_args__ = (Index("ix_track_genres_genre", "genre"),)


class TrackAlias(Base):
    """Another Spotify id of a folded track (the same recording released under several ids)."""

    __tablename__ = "track_aliases"

    spotify_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)


class RadioSession(Base):
    __tablename__ = "radio_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # What clients see: 128 random bits (URL-safe), so that radios cannot be listed by counting.
    public_id: Mapped[str] = mapped_column(String(32), server_default="")
    # Who may see and steer it: "user:<id>" (Telegram), "key:<hash>" (an API key), "web:<session>"
    # (the web page's signed session), or "open" (the keyless API: the unguessable id is the capability).
    owner: Mapped[str] = mapped_column(String(80), server_default="open")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    seed_track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    current_track_id: Mapped[int | None] = mapped_column(ForeignKey("tracks.id", ondelete="SET NULL"))
    state: Mapped[RadioState] = mapped_column(
        Enum(RadioState, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=RadioState.ACTIVE,
        server_default=RadioState.ACTIVE.value,
    )
    # How many tracks it has shown: the version every answer is checked against (one answer per position).
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    likes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    skips: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Where the taste starts (the seed's query vector and the index signature) as JSON, written once;
    # the likes, skips and shown tracks that move it on live in interactions. Loaded only when asked
    # (RadioRepository.taste): an answer does not need it.
    taste: Mapped[dict | None] = mapped_column(JSON, deferred=True)
    diversity: Mapped[float] = mapped_column(Float, default=0.3, server_default="0.3")
    # Where the bot shows this radio (so a press on an older message can be told apart).
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=_now, server_default=func.now(), onupdate=_now
    )

    __table_args__ = (
        Index("ix_radio_sessions_public_id", "public_id", unique=True),
        Index("ix_radio_sessions_owner_state", "owner", "state"),
    )


class Interaction(Base):
    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    kind: Mapped[InteractionKind] = mapped_column(
        Enum(InteractionKind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    radio_session_id: Mapped[int | None] = mapped_column(ForeignKey("radio_sessions.id", ondelete="CASCADE"))
    context: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())

    __table_args__ = (
        Index("ix_interactions_user_kind_created", "user_id", "kind", "created_at"),
        Index("ix_interactions_session", "radio_session_id", "kind"),
        Index("ix_interactions_track_kind", "track_id", "kind"),
    )


class Like(Base):
    """One like per (user, track): the source of truth for /likes and for co-likes."""

    __tablename__ = "likes"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())

    __table_args__ = (
        Index("ix_likes_track", "track_id"),
        Index("ix_likes_user_created", "user_id", "created_at"),
    )


class CacheEntry(Base):
    """Provider answers (Spotify, YouTube, ReccoBeats) with an expiry."""

    __tablename__ = "cache_entries"

    namespace: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[dict | list | str | None] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())


class DailyPick(Base):
    """A daily pick delivered (or claimed for delivery) to a user; one per user per day."""

    __tablename__ = "daily_picks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    track_id: Mapped[int | None] = mapped_column(ForeignKey("tracks.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="claimed", server_default="claimed")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())

    __table_args__ = (UniqueConstraint("user_id", "day", name="uq_daily_picks_user_day"),)


class PlaylistKind(enum.StrEnum):
    LIKES = "likes"  # a person's likes as a playlist: its songs are the `likes` rows, newest first
    LIST = "list"  # a named playlist: its songs are `playlist_items`, in their order


class Playlist(Base):
    """A playlist someone owns. Owners are the radios' (`RadioSession.owner`): "user:<id>" (Telegram),
    "key:<hash>" (an API key) or "web:<session>" (the web page); the keyless API owns none."""

    __tablename__ = "playlists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # What clients see: 128 random bits (URL-safe), so that playlists cannot be listed by counting.
    public_id: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[PlaylistKind] = mapped_column(
        Enum(PlaylistKind, native_enum=False, length=8, values_callable=lambda e: [m.value for m in e]),
        default=PlaylistKind.LIST,
        server_default=PlaylistKind.LIST.value,
    )
    # "" for the likes playlist (so the unique (owner, name) keeps one per owner); named ones are never empty.
    name: Mapped[str] = mapped_column(String(100))
    # Bumped by every change of its songs or their order: a reorder is checked against it.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The read-only share page's capability (256 random bits); NULL: not shared (or revoked).
    share_token: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())

    __table_args__ = (
        UniqueConstraint("owner", "name", name="uq_playlists_owner_name"),
        Index("ix_playlists_public_id", "public_id", unique=True),
        Index("ix_playlists_share_token", "share_token", unique=True),
    )


class PlaylistItem(Base):
    """A song in a named playlist; the primary key keeps each song once (two quick taps add it once)."""

    __tablename__ = "playlist_items"

    playlist_id: Mapped[int] = mapped_column(ForeignKey("playlists.id", ondelete="CASCADE"), primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True)
    # 1-based order; not unique (moves rewrite several rows), ties fall back to when it was added.
    position: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())

    __table_args__ = (
        Index("ix_playlist_items_order", "playlist_id", "position"),
        Index("ix_playlist_items_track", "track_id"),
    )


class SpotifyLink(Base):
    """Someone's authorization to write playlists into their own Spotify account (tokens encrypted)."""

    __tablename__ = "spotify_links"

    owner: Mapped[str] = mapped_column(String(80), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    access_token: Mapped[str] = mapped_column(Text)  # Fernet token of the access token
    refresh_token: Mapped[str | None] = mapped_column(Text)  # Fernet token of the refresh token
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    scope: Mapped[str] = mapped_column(String(256), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())


class SpotifyAuthRequest(Base):
    """An authorization under way (PKCE): the `state` sent to Spotify, used once, and what to save after."""

    __tablename__ = "spotify_auth_requests"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    verifier: Mapped[str] = mapped_column(Text)  # Fernet token of the PKCE code verifier
    playlist_id: Mapped[int | None] = mapped_column(ForeignKey("playlists.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=_now, server_default=func.now(), index=True
    )


class StoredTrack(_TrackFeatures):
    """One tracks row as plain attributes, without its genres: what a hot read returns instead of a
    mapped `Track` (building one, with its instance state, cost more than reading the row)."""

    id: int
    spotify_id: str | None
    deezer_id: int | None
    isrc: str | None
    name: str
    artists: str
    album: str | None
    duration_ms: int | None
    explicit: bool | None
    popularity: int | None
    source: str
    features_source: str | None
    cover_url: str | None
    release_year: int | None
    search_key: str
    danceability: float | None
    energy: float | None
    key: float | None
    loudness: float | None
    mode: float | None
    speechiness: float | None
    acousticness: float | None
    instrumentalness: float | None
    liveness: float | None
    valence: float | None
    tempo: float | None
    time_signature: float | None
    created_at: datetime

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)
