"""Frozen DTOs that services return. Handlers render these; they never see ORM objects."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Generic, TypeVar
from urllib.parse import quote_plus

from db.models import AUDIO_FEATURE_COLUMNS, StoredTrack
from db.models import InteractionKind as InteractionKind  # re-exported for handlers
from db.models import Track as TrackRow
from ml.features import ANALYSIS_VALUES as _ANALYSIS_VALUES
from ml.features import FEATURE_RANGES as _FEATURE_RANGES
from ml.recsys.index import CatalogEntry
from ml.text import split_artists

# The audio feature names, in the models' order (handlers read rows by them), and their valid
# ranges: the one table the genre model, the API's validators and its OpenAPI document share.
AUDIO_FEATURES: tuple[str, ...] = AUDIO_FEATURE_COLUMNS
FEATURE_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType(dict(_FEATURE_RANGES))
WHOLE_FEATURES = frozenset({"key", "mode", "time_signature"})
# The nine values an audio analysis of an excerpt gives (no key, mode or time signature).
ANALYSIS_VALUES: tuple[str, ...] = _ANALYSIS_VALUES
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TrackInfo:
    id: int  # Encore's internal id (what callbacks and the API carry)
    spotify_id: str | None  # None: a song known only through Deezer
    name: str
    artists: tuple[str, ...]
    album: str | None = None
    duration_ms: int | None = None
    explicit: bool | None = None
    popularity: int | None = None
    genres: tuple[str, ...] = ()  # labels from the dataset, when known
    # None: no audio features known. All twelve, or the nine an audio analysis gives (no key, mode
    # or time signature; `features_complete` is False then).
    features: Mapping[str, float] | None = None
    source: str = "catalog"
    deezer_id: int | None = None
    isrc: str | None = None
    cover_url: str | None = None
    year: int | None = None
    features_source: str | None = None  # catalog / spotify / reccobeats / analysis

    @property
    def artist_line(self) -> str:
        return ", ".join(self.artists) if self.artists else "Unknown artist"

    @property
    def title(self) -> str:
        return f"{self.artist_line} — {self.name}"

    @property
    def features_complete(self) -> bool:
        """All twelve audio features are known (the genre model's heads read them all)."""
        return self.features is not None and all(self.features.get(c) is not None for c in AUDIO_FEATURE_COLUMNS)

    @property
    def spotify_url(self) -> str | None:
        return f"https://open.spotify.com/track/{self.spotify_id}" if self.spotify_id else None

    @property
    def deezer_url(self) -> str | None:
        return f"https://www.deezer.com/track/{self.deezer_id}" if self.deezer_id else None

    @property
    def youtube_search_url(self) -> str:
        return "https://www.youtube.com/results?search_query=" + quote_plus(f"{self.artist_line} {self.name}")

    @classmethod
    def from_entry(cls, entry: CatalogEntry) -> TrackInfo:
        """From the recommender's in-memory index (no database read)."""
        return cls(
            id=entry.id,
            spotify_id=entry.spotify_id,
            name=entry.name,
            artists=entry.artists,
            album=entry.album,
            explicit=entry.explicit,
            duration_ms=entry.duration_ms,
            popularity=entry.popularity,
            genres=entry.genres,
            features=entry.features,
        )

    @classmethod
    def from_row(cls, row: TrackRow | StoredTrack) -> TrackInfo:
        known = row.known_features
        features = MappingProxyType(known) if known is not None else None
        return cls(
            id=row.id,
            spotify_id=row.spotify_id,
            name=row.name,
            artists=split_artists(row.artists),
            album=row.album,
            duration_ms=row.duration_ms,
            explicit=row.explicit,
            popularity=row.popularity,
            genres=tuple(g.genre for g in row.__dict__.get("genres", ())),  # when loaded
            features=features,
            source=row.source,
            deezer_id=row.deezer_id,
            isrc=row.isrc,
            cover_url=row.cover_url,
            year=row.release_year,
            features_source=row.features_source,
        )


class GenreSource(enum.StrEnum):
    CATALOGUE = "catalogue"  # the song is in the catalogue: its own labels
    ARTIST = "artist"  # a song outside it by an artist the catalogue knows
    TITLE = "title"  # the sound, nudged by the title's and the artist name's words and script
    AUDIO = "audio"  # the sound alone


@dataclass(frozen=True, slots=True)
class GenreGuess:
    """The model's view of a track: fine genre and coarse family, each with probabilities."""

    genre: str
    probability: float
    top: tuple[tuple[str, float], ...]  # best first, up to 3
    family: str
    family_probability: float
    family_top: tuple[tuple[str, float], ...] = ()
    model_version: str = ""
    # Where the guess comes from (issue 14). `head`: the model's head that answered ("audio",
    # "audio+artist", "audio+artist+title"; for a song known by a 30-second excerpt's audio analysis
    # "analysis", "analysis+artist", "analysis+artist+title"); `evidence`: what it knew, in words;
    # `artists_known`: the song's artists with other songs in the catalogue.
    head: str = "audio"
    evidence: str = "audio"
    artists_known: int = 0
    # The audio model's own best genres, when the artists or the title moved the answer (empty otherwise).
    audio_top: tuple[tuple[str, float], ...] = ()
    # The catalogue's genre labels of the song itself (the dataset's), when it has any.
    labels: tuple[str, ...] = ()

    @property
    def confident(self) -> bool:
        return self.family_probability >= 0.5

    @property
    def excerpt(self) -> bool:
        """The sound was known from a 30-second excerpt's analysis (the model's analysis head)."""
        return self.head.startswith("analysis")

    @property
    def source(self) -> GenreSource:
        """What the card names the genre from: the catalogue's labels, the artist's other songs, the
        title (and the artist's name) with the sound, or the sound alone (`excerpt`: of an excerpt)."""
        if self.labels:
            return GenreSource.CATALOGUE
        if self.head in ("audio", "analysis"):
            return GenreSource.AUDIO
        return GenreSource.ARTIST if self.artists_known > 0 else GenreSource.TITLE


@dataclass(frozen=True, slots=True)
class YouTubeLink:
    url: str
    is_search: bool  # True: a search page (no key, quota exhausted, no match)
    video_id: str | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class TrackCard:
    track: TrackInfo
    genre: GenreGuess | None
    youtube: YouTubeLink
    note: str | None = None  # why something is missing (no features, provider down …)
    liked: bool = False
    # A fresh 30-second preview (Deezer; signed, expires within minutes): never store it.
    preview_url: str | None = None


class ResolutionKind(enum.StrEnum):
    TRACK = "track"  # one clear match
    CANDIDATES = "candidates"  # several to choose from
    NOT_FOUND = "not_found"
    UNSUPPORTED = "unsupported"  # album / playlist / artist / podcast link …
    INVALID = "invalid"  # empty, too long …


@dataclass(frozen=True, slots=True)
class Resolution:
    kind: ResolutionKind
    tracks: tuple[TrackInfo, ...] = ()
    message: str | None = None  # user-facing reason for NOT_FOUND / UNSUPPORTED / INVALID; CANDIDATES
    # with exact=False: "No exact match — closest:"
    notice: str | None = None  # e.g. "Spotify is unreachable, showing catalogue matches"
    alternatives: tuple[TrackInfo, ...] = ()  # TRACK: other versions (releases, live takes, covers)
    exact: bool = True  # CANDIDATES: False when no candidate contains every word of the query


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    page: int
    pages: int
    total: int

    @property
    def has_prev(self) -> bool:
        return self.page > 0

    @property
    def has_next(self) -> bool:
        return self.page + 1 < self.pages


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    telegram_id: int | None
    first_name: str | None
    language: str
    diversity: float
    subscribed: bool
    pick_hour: int
    active: bool = True
    pick_minute: int = 0
    timezone: str = "UTC"  # IANA name; the daily pick's time is local to it


@dataclass(frozen=True, slots=True)
class Recommendation:
    track: TrackInfo
    score: float
    reason: str = ""  # "similar sound", "liked by people who liked …", "same artist" …


@dataclass(frozen=True, slots=True)
class Listener:
    """Who is asking for a radio: the owner key of the radios they start and may see and steer, and
    their Encore user when there is one (Telegram users have likes and history)."""

    owner: str
    user_id: int | None = None

    @classmethod
    def telegram(cls, user_id: int) -> Listener:
        return cls(f"user:{user_id}", user_id)

    @classmethod
    def api_key(cls, key_hash: str) -> Listener:
        return cls(f"key:{key_hash}")

    @classmethod
    def web(cls, session_id: str) -> Listener:
        return cls(f"web:{session_id}")

    @classmethod
    def anonymous(cls) -> Listener:
        """The keyless API: its radios are "open" — whoever holds the unguessable id may use it."""
        return cls("open")


@dataclass(frozen=True, slots=True)
class RadioStep:
    radio_id: str  # the public id (128 random bits)
    track: TrackInfo | None  # None: nothing left to play
    position: int  # how many tracks this radio has shown
    likes: int = 0
    skips: int = 0
    stopped: bool = False
    extra: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GenreHistoryEntry:
    genre: str
    count: int  # searches + likes that landed in this genre
    searched: int
    liked: int
    tracks: tuple[TrackInfo, ...]  # the latest ones, newest first, up to 3 distinct
    last_at: datetime
    predicted: bool = False  # True: the genre comes from the model, not dataset labels


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: str  # "ok" | "degraded"
    database: bool
    version: str
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlaylistInfo:
    """A playlist as its owner sees it (never whom it belongs to)."""

    id: str  # the public id (128 random bits)
    name: str  # "" for the likes playlist (delivery shows its own label)
    kind: str  # "likes" (a person's likes, newest first) | "list" (named, in its own order)
    count: int
    version: int = 0  # bumped by every change of its songs or order
    share_token: str | None = None  # the read-only page's capability; None: not shared
    updated_at: datetime | None = None

    @property
    def is_likes(self) -> bool:
        return self.kind == "likes"

    @property
    def shared(self) -> bool:
        return self.share_token is not None


@dataclass(frozen=True, slots=True)
class PlaylistView:
    playlist: PlaylistInfo
    tracks: Page[TrackInfo]


@dataclass(frozen=True, slots=True)
class PlaylistTarget:
    """A playlist offered by "➕ to playlist", and whether the song is in it already."""

    playlist: PlaylistInfo
    contains: bool


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One file of an export; a long playlist comes in several parts, each complete in itself."""

    filename: str
    content_type: str
    data: bytes
    format: str  # csv | jspf | m3u8
    part: int = 1
    parts: int = 1
    tracks: int = 0  # songs in this part


@dataclass(frozen=True, slots=True)
class SharedTrack:
    track: TrackInfo
    genres: tuple[str, ...] = ()  # dataset labels, or the genre model's guess (`predicted`)
    predicted: bool = False
    preview_url: str | None = None  # fresh and signed: shown now, never stored


@dataclass(frozen=True, slots=True)
class SharedPlaylist:
    """What a share link shows: read-only, without its owner."""

    name: str
    kind: str
    count: int
    tracks: Page[SharedTrack]
    top_genres: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ShareInfo:
    playlist: PlaylistInfo
    token: str
    path: str  # /p/<token>
    url: str | None  # absolute, when the public address (PUBLIC_URL) is known
    top_genres: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class YouTubePlay:
    """One-tap YouTube links (watch_videos, up to 50 videos each) for the songs whose video is known."""

    urls: tuple[str, ...]
    known: int
    total: int


@dataclass(frozen=True, slots=True)
class SpotifySaved:
    name: str
    url: str  # the new playlist in the person's Spotify
    spotify_id: str
    added: int
    skipped: int  # songs Encore knows no Spotify id for


@dataclass(frozen=True, slots=True)
class SpotifyConnected:
    """The end of an authorization (the callback): connected, and the playlist saved when one waited."""

    saved: SpotifySaved | None = None
    error: str | None = None  # a problem saving after connecting (said to the person as it is)
