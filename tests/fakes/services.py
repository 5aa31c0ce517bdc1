"""In-memory services for the delivery tests (bot, web page, API): one family of typed fakes.

Each fake implements its Protocol in `services/protocols.py` and keeps the contract the real service
keeps (errors from `services.errors`, a radio never plays its seed first, a Telegram user's list is
recorded as shown, …); mypy checks the fakes against the Protocols (`_satisfies_the_protocols` below,
run by `make lint` / `make test`).

Two catalogues and two genre "models" serve the two kinds of test:
- `make_catalog()` / `make_track()`: three genres told apart by energy alone (`energy_model`), the
  chat tests' songs;
- `sound_catalog()`: six genres with full audio-feature vectors classified by a smooth softmax
  (`sound_model`), the HTTP tests' songs, built by `fake_container()`.
"""

from __future__ import annotations

import itertools
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from db.engine import create_engine, create_session_factory
from db.models import AUDIO_FEATURE_COLUMNS
from services import errors
from services.analysis import AnalysisResult, AudioInput, SongTags
from services.audio_clip import looks_like_audio
from services.audio_errors import AudioTooLarge, NotAudio
from services.container import Services
from services.dto import (
    ANALYSIS_VALUES,
    GenreGuess,
    GenreHistoryEntry,
    InteractionKind,
    Listener,
    Page,
    RadioStep,
    Recommendation,
    Resolution,
    ResolutionKind,
    TrackCard,
    TrackInfo,
    YouTubeLink,
)
from services.genre import genre_context, genre_inputs
from services.health import HealthService
from services.protocols import RadioAction
from services.users import UserService
from tests.wiring import Wiring

if TYPE_CHECKING:
    from services.protocols import Analysis, Feedback, Genres, Radios, Recommendations, Tracks

MODEL_VERSION = "seed6-test-1"

# -- genre "models" ------------------------------------------------------------------------------

Ranked = tuple[tuple[str, float], ...]
# features → (the top genres, the top families), each best first.
GenreModel = Callable[[Mapping[str, Any]], tuple[Ranked, Ranked]]

SOUND_GENRES = ("rock", "pop", "hip-hop", "edm", "jazz", "classical")
SOUND_FAMILY = {
    "rock": "pop & rock",
    "pop": "pop & rock",
    "hip-hop": "dance & urban",
    "edm": "dance & urban",
    "jazz": "acoustic",
    "classical": "acoustic",
}
# Where each genre's tracks sit in feature space (energy, danceability, speechiness, acousticness,
# instrumentalness): `sound_model` places them back in their genre.
CENTRES = {
    "rock": (0.9, 0.4, 0.05, 0.1, 0.1),
    "pop": (0.5, 0.95, 0.05, 0.2, 0.0),
    "hip-hop": (0.6, 0.8, 0.35, 0.1, 0.0),
    "edm": (0.95, 0.95, 0.05, 0.0, 0.8),
    "jazz": (0.3, 0.5, 0.05, 0.6, 0.5),
    "classical": (0.1, 0.2, 0.03, 0.95, 0.9),
}


def sound_model(features: Mapping[str, Any]) -> tuple[Ranked, Ranked]:
    """A deterministic, smooth model of the audio features (the twelve, or the nine of an excerpt's
    analysis, as the real service takes): softmax over simple scores."""
    missing = [c for c in ANALYSIS_VALUES if features.get(c) is None]
    if missing:
        raise errors.NoFeatures("Missing features: " + ", ".join(missing))
    e, d, a = features["energy"], features["danceability"], features["acousticness"]
    i, sp = features["instrumentalness"], features["speechiness"]
    scores = [2 * e, d + 0.5 * e, d + 2 * sp, 2 * d * e + i, a + i, 3 * a - 2 * e - d]
    exps = [math.exp(3 * s) for s in scores]
    total = sum(exps)
    top = sorted(((g, x / total) for g, x in zip(SOUND_GENRES, exps, strict=True)), key=lambda p: -p[1])
    families: dict[str, float] = {}
    for genre, p in top:
        families[SOUND_FAMILY[genre]] = families.get(SOUND_FAMILY[genre], 0.0) + p
    family_top = sorted(families.items(), key=lambda p: -p[1])
    return tuple(top[:3]), tuple(family_top[:3])


ENERGY_GENRES = ("rock", "jazz", "techno")


def energy_model(features: Mapping[str, Any]) -> tuple[Ranked, Ranked]:
    """Energy alone: techno (sure), rock (unsure: a top-3 is shown), jazz."""
    energy = features.get("energy")
    if energy is None:
        raise errors.NoFeatures("no features")
    top: Ranked
    if energy >= 0.9:
        top = (("techno", 0.9), ("house", 0.06), ("trance", 0.04))
    elif energy >= 0.6:
        top = (("rock", 0.45), ("metal", 0.35), ("punk", 0.2))
    else:
        top = (("jazz", 0.8), ("blues", 0.15), ("soul", 0.05))
    family = {"rock": "rock", "techno": "electronic", "jazz": "jazz/blues/soul"}[top[0][0]]
    return top, ((family, top[0][1]),)


# -- catalogues ----------------------------------------------------------------------------------


def make_track(track_id: int, genre: str, *, name: str | None = None, artist: str | None = None) -> TrackInfo:
    """A song of `energy_model`'s catalogue (energy and danceability known)."""
    energy = {"rock": 0.8, "jazz": 0.3, "techno": 0.95}[genre]
    return TrackInfo(
        id=track_id,
        spotify_id=f"sp{track_id:020d}",
        name=name or f"{genre.title()} Song {track_id}",
        artists=(artist or f"{genre.title()} Band {track_id % 3}",),
        album=f"{genre.title()} Album",
        popularity=100 - track_id,
        genres=(genre,),
        features=MappingProxyType({"energy": energy, "danceability": 0.5}),
    )


def make_catalog(per_genre: int = 10) -> list[TrackInfo]:
    ids = itertools.count(1)
    return [make_track(next(ids), genre) for genre in ENERGY_GENRES for _ in range(per_genre)]


def sound_track(i: int, name: str, artist: str, genre: str, *, features: bool = True) -> TrackInfo:
    """A song of `sound_model`'s catalogue: a full feature vector near its genre's centre."""
    values = None
    if features:
        jitter = ((i * 37) % 11 - 5) / 100
        e, d, s, a, inst = (min(max(v + jitter, 0.0), 1.0) for v in CENTRES[genre])
        base = {c: 0.5 for c in AUDIO_FEATURE_COLUMNS}
        base.update(
            key=float(i % 12),
            mode=float(i % 2),
            loudness=-8.0 - i % 5,
            tempo=90.0 + 7 * i,
            time_signature=4.0,
            energy=e,
            danceability=d,
            speechiness=s,
            acousticness=a,
            instrumentalness=inst,
        )
        values = MappingProxyType(base)
    return TrackInfo(
        id=i,
        spotify_id=f"{i:022d}"[-22:].replace("0", "A"),
        name=name,
        artists=(artist,),
        album=f"{name} (album)",
        duration_ms=200_000 + i,
        explicit=False,
        popularity=50 + i % 50,
        genres=(genre,),
        features=values,
    )


def sound_catalog() -> list[TrackInfo]:
    rows = [
        ("Bohemian Rhapsody", "Queen", "rock"),
        ("Smells Like Teen Spirit", "Nirvana", "rock"),
        ("Billie Jean", "Michael Jackson", "pop"),
        ("Levitating", "Dua Lipa", "pop"),
        ("Lose Yourself", "Eminem", "hip-hop"),
        ("Strobe", "deadmau5", "edm"),
        ("So What", "Miles Davis", "jazz"),
        ("Clair de Lune", "Claude Debussy", "classical"),
        ("Paranoid Android", "Radiohead", "rock"),
        ("One More Time", "Daft Punk", "edm"),
        ("Take Five", "Dave Brubeck", "jazz"),
        ("Bad Guy", "Billie Eilish", "pop"),
    ]
    tracks = [sound_track(i + 1, n, a, g) for i, (n, a, g) in enumerate(rows)]
    tracks.append(sound_track(len(rows) + 1, "Untitled Demo <script>", "Nobody & Co", "rock", features=False))
    return tracks


def genre_of(track: TrackInfo) -> str:
    return track.genres[0] if track.genres else "unknown"


T = TypeVar("T")


def _page(items: Sequence[T], page: int, size: int) -> Page[T]:
    total = len(items)
    pages = max(1, -(-total // size)) if total else 0
    return Page(items=tuple(items[page * size : (page + 1) * size]), page=page, pages=pages, total=total)


# -- the services --------------------------------------------------------------------------------


class FakeGenreService:
    """`Genres`: `model` guesses; `ready=False` answers ModelNotReady; `calls` records the inputs.
    `labels`: a guess keeps the catalogue labels it is given, as the real service does (the card
    then says "catalogue"); off, every verdict is by the sound alone."""

    def __init__(self, model: GenreModel = energy_model, *, ready: bool = True, labels: bool = True) -> None:
        self.model = model
        self.ready = ready
        self.labels = labels
        self.calls: list[dict[str, Any]] = []

    @property
    def version(self) -> str:
        return MODEL_VERSION if self.ready else ""

    async def guess(
        self,
        features: Mapping[str, Any] | None,
        *,
        artists: Sequence[str] | str | None = None,
        title: str | None = None,
        labels: Sequence[str] = (),
    ) -> GenreGuess:
        if not self.ready:
            raise errors.ModelNotReady("The genre model is not trained yet.")
        if not features:
            raise errors.NoFeatures("No audio features are known for this track.")
        top, family_top = self.model(features)
        self.calls.append(dict(features))
        return GenreGuess(
            genre=top[0][0],
            probability=top[0][1],
            top=top,
            family=family_top[0][0],
            family_probability=family_top[0][1],
            family_top=family_top,
            model_version=MODEL_VERSION,
            labels=tuple(labels) if self.labels else (),
        )

    async def guess_tracks(self, tracks: Sequence[TrackInfo]) -> list[GenreGuess | None]:
        out: list[GenreGuess | None] = []
        for track in tracks:
            inputs = genre_inputs(track)
            try:
                out.append(await self.guess(inputs, **genre_context(track)) if inputs is not None else None)
            except errors.EncoreError:
                out.append(None)
        return out


class FakeFeedbackService:
    """`Feedback`: likes and interactions in memory (`liked`: user → track ids, newest first)."""

    def __init__(self, catalog: Sequence[TrackInfo]) -> None:
        self.by_id = {t.id: t for t in catalog}
        self.liked: dict[int, list[int]] = {}
        self.records: list[tuple[int | None, int, InteractionKind, str | None]] = []

    async def like(self, user_id: int, track_id: int, context: str | None = None) -> bool:
        if track_id not in self.by_id:
            raise errors.TrackNotFound("no such track")
        likes = self.liked.setdefault(user_id, [])
        if track_id in likes:
            return False
        likes.insert(0, track_id)
        self.records.append((user_id, track_id, InteractionKind.LIKED, context))
        return True

    async def unlike(self, user_id: int, track_id: int, context: str | None = None) -> bool:
        likes = self.liked.setdefault(user_id, [])
        if track_id not in likes:
            return False
        likes.remove(track_id)
        return True

    async def is_liked(self, user_id: int, track_id: int) -> bool:
        return track_id in self.liked.get(user_id, [])

    async def record(
        self, user_id: int | None, track_id: int, kind: InteractionKind, context: str | None = None
    ) -> None:
        self.records.append((user_id, track_id, kind, context))

    async def likes(self, user_id: int, page: int, size: int = 5) -> Page[TrackInfo]:
        return _page([self.by_id[i] for i in self.liked.get(user_id, [])], page, size)

    async def genre_history(self, user_id: int, page: int, size: int = 5) -> Page[GenreHistoryEntry]:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        by_genre: dict[str, list[tuple[TrackInfo, InteractionKind, datetime]]] = {}
        for n, (uid, track_id, kind, _) in reversed(list(enumerate(self.records))):
            if uid == user_id and kind in (InteractionKind.SEARCHED, InteractionKind.LIKED):
                track = self.by_id[track_id]
                by_genre.setdefault(genre_of(track), []).append((track, kind, start + timedelta(minutes=n)))
        entries = [
            GenreHistoryEntry(
                genre=g,
                count=len(items),
                searched=sum(k is InteractionKind.SEARCHED for _, k, _ in items),
                liked=sum(k is InteractionKind.LIKED for _, k, _ in items),
                tracks=tuple({t.id: t for t, _, _ in items}.values())[:3],
                last_at=items[0][2],
            )
            for g, items in by_genre.items()
        ]
        entries.sort(key=lambda e: (-e.count, e.genre))
        return _page(entries, page, size)


class FakeTrackService:
    """`Tracks` over a catalogue. `videos`: odd ids have a known YouTube video (else a search link);
    `previews[track id]` is the track's preview URL (a test sets it; else none)."""

    def __init__(
        self,
        catalog: Sequence[TrackInfo],
        genre: FakeGenreService,
        feedback: FakeFeedbackService,
        *,
        videos: bool = False,
    ) -> None:
        self.catalog = list(catalog)
        self.by_id = {t.id: t for t in catalog}
        self.genre = genre
        self.feedback = feedback
        self.videos = videos
        self.resolved: list[tuple[str, int | None]] = []
        self.previews: dict[int, str] = {}
        self.preview_requests: list[int] = []

    def add(self, track: TrackInfo) -> None:
        self.catalog.append(track)
        self.by_id[track.id] = track
        self.feedback.by_id[track.id] = track

    def _match(self, text: str) -> list[TrackInfo]:
        needle = text.casefold().strip()
        return [t for t in self.catalog if needle in t.title.casefold()]

    async def resolve(self, text: str, *, user_id: int | None = None, limit: int = 8) -> Resolution:
        self.resolved.append((text, user_id))
        text = text.strip()
        if not text or len(text) > 200:
            return Resolution(ResolutionKind.INVALID, message="Type a song name or a Spotify link.")
        if "open.spotify.com/album" in text:
            return Resolution(ResolutionKind.UNSUPPORTED, message="Albums are not supported; send a track link.")
        if "open.spotify.com/track/" in text:
            spotify_id = text.rsplit("/", 1)[-1].split("?")[0]
            found = [t for t in self.catalog if t.spotify_id == spotify_id]
        else:
            found = self._match(text)
        if not found:
            return Resolution(ResolutionKind.NOT_FOUND, message=f"Nothing found for “{text}”.")
        if len(found) == 1:
            if user_id is not None:  # as TrackService: a found song counts as searched
                await self.feedback.record(user_id, found[0].id, InteractionKind.SEARCHED, "resolve")
            return Resolution(ResolutionKind.TRACK, tracks=(found[0],))
        return Resolution(ResolutionKind.CANDIDATES, tracks=tuple(found[: min(limit, 20)]))

    async def search(self, query: str, limit: int = 10) -> list[TrackInfo]:
        return self._match(query)[:limit]

    async def get(self, track_id: int) -> TrackInfo:
        try:
            return self.by_id[track_id]
        except KeyError:
            raise errors.TrackNotFound(f"No track with id {track_id}.") from None

    async def card(self, track_id: int, *, user_id: int | None = None) -> TrackCard:
        track = await self.get(track_id)
        genre = None
        if track.features is not None:
            genre = await self.genre.guess(track.features, artists=track.artists, title=track.name, labels=track.genres)
        return TrackCard(
            track=track,
            genre=genre,
            youtube=self.youtube_link(track),
            note=None if genre else "No audio features are known for this track.",
            liked=user_id is not None and await self.feedback.is_liked(user_id, track_id),
            preview_url=self._preview(track),
        )

    def youtube_link(self, track: TrackInfo) -> YouTubeLink:
        if self.videos and track.id % 2:
            video = f"vid{track.id:08d}"
            return YouTubeLink(
                url=f"https://www.youtube.com/watch?v={video}", is_search=False, video_id=video, title=track.title
            )
        return YouTubeLink(url=track.youtube_search_url, is_search=True)

    def _preview(self, track: TrackInfo) -> str | None:
        return self.previews.get(track.id)

    async def with_deezer(self, track: TrackInfo, *, budget: float | None = None) -> TrackInfo:
        """The track as it is (the real lookup is tested against the fake Deezer server)."""
        return track

    async def preview_url(self, track: TrackInfo) -> str | None:
        self.preview_requests.append(track.id)
        return self._preview(track)


class FakeRecommendationService:
    """`Recommendations`: the seed's genre first, then the nearest in energy and danceability;
    `calls` records (track id, n, diversity); a Telegram user's list is recorded as shown."""

    def __init__(self, tracks: FakeTrackService) -> None:
        self.tracks = tracks
        self.calls: list[tuple[int, int, float | None]] = []

    def _ranked(self, features: Mapping[str, Any], genre: str | None, exclude: int | None) -> list[TrackInfo]:
        def distance(t: TrackInfo) -> float:
            assert t.features is not None
            return sum((float(t.features[c]) - float(features[c])) ** 2 for c in ("energy", "danceability"))

        others = [t for t in self.tracks.catalog if t.id != exclude and t.features is not None]
        return sorted(others, key=lambda t: (genre_of(t) != genre, distance(t)))  # stable: catalogue order

    async def similar(
        self, track_id: int, n: int = 5, *, user_id: int | None = None, diversity: float | None = None
    ) -> list[Recommendation]:
        seed = await self.tracks.get(track_id)
        if seed.features is None:
            raise errors.NoFeatures("No audio features are known for this track.")
        self.calls.append((track_id, n, diversity))
        ranked = self._ranked(seed.features, genre_of(seed), seed.id)[:n]
        recs = [Recommendation(t, score=1.0 / (1 + i), reason="similar sound") for i, t in enumerate(ranked)]
        if user_id is not None:  # as RecommendationService: the list is recorded as shown to the user
            for rec in recs:
                await self.tracks.feedback.record(user_id, rec.track.id, InteractionKind.SHOWN, "similar")
        return recs

    async def for_you(self, user_id: int, n: int = 10) -> list[Recommendation]:
        liked = self.tracks.feedback.liked.get(user_id, [])
        if not liked:
            return []
        return await self.similar(liked[0], n, user_id=user_id)

    async def similar_to_row(
        self, row: Mapping[str, Any], n: int = 10, *, diversity: float | None = None
    ) -> list[Recommendation]:
        try:
            features = {c: float(row[c]) for c in ("energy", "danceability")}
        except (KeyError, TypeError, ValueError):
            raise errors.InvalidInput("energy and danceability are needed") from None
        ranked = self._ranked(features, None, None)[:n]
        return [Recommendation(t, score=1.0 / (1 + i), reason="similar sound") for i, t in enumerate(ranked)]

    async def catalogue_size(self) -> int:
        return sum(t.features is not None for t in self.tracks.catalog)


@dataclass
class FakeRadio:
    id: str
    owner: str
    user_id: int | None
    seeds: tuple[int, ...]
    genre: str
    current: TrackInfo | None
    shown: list[int] = field(default_factory=list)
    likes: int = 0
    skips: int = 0
    stopped: bool = False
    liked_genres: list[str] = field(default_factory=list)
    skipped_genres: list[str] = field(default_factory=list)
    chat_id: int | None = None
    message_id: int | None = None


class FakeRadioService:
    """`Radios`: the first unseen song of the latest liked genre (the seed's at first), never a
    skipped genre when avoidable, never a seed. Radios stay in `radios` across "restarts"."""

    def __init__(self, tracks: FakeTrackService) -> None:
        self.tracks = tracks
        self.radios: dict[str, FakeRadio] = {}
        self.events: list[tuple[str, int, str]] = []

    def first(self) -> FakeRadio:
        """The first radio started (tests of one journey)."""
        return next(iter(self.radios.values()))

    def _next(self, radio: FakeRadio) -> TrackInfo | None:
        unseen = [t for t in self.tracks.catalog if t.id not in radio.shown and t.id not in radio.seeds]
        candidates = [t for t in unseen if genre_of(t) not in radio.skipped_genres] or unseen
        wanted = radio.liked_genres[-1] if radio.liked_genres else radio.genre
        candidates = [t for t in candidates if genre_of(t) == wanted] or candidates
        return candidates[0] if candidates else None

    def _advance(self, radio: FakeRadio) -> None:
        radio.current = self._next(radio)
        if radio.current is not None:
            radio.shown.append(radio.current.id)

    @staticmethod
    def _step(radio: FakeRadio) -> RadioStep:
        return RadioStep(
            radio_id=radio.id,
            track=None if radio.stopped else radio.current,
            position=len(radio.shown),
            likes=radio.likes,
            skips=radio.skips,
            stopped=radio.stopped,
        )

    async def start(
        self,
        seed_track_id: int,
        *,
        listener: Listener,
        diversity: float | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> RadioStep:
        return await self.start_from_tracks(
            [seed_track_id], listener=listener, diversity=diversity, chat_id=chat_id, message_id=message_id
        )

    async def start_from_tracks(
        self,
        track_ids: Sequence[int],
        *,
        listener: Listener,
        diversity: float | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> RadioStep:
        seeds = [await self.tracks.get(i) for i in track_ids]
        if not seeds:
            raise errors.InvalidInput("no songs to start a radio from")
        radio = FakeRadio(
            id=secrets.token_urlsafe(16),  # 22 URL-safe characters, like a public id
            owner=listener.owner,
            user_id=listener.user_id,
            seeds=tuple(t.id for t in seeds),
            genre=genre_of(seeds[0]),
            current=None,
            chat_id=chat_id,
            message_id=message_id,
        )
        self.radios[radio.id] = radio
        self._advance(radio)
        return self._step(radio)

    async def start_from_latest_like(
        self, *, listener: Listener, diversity: float | None = None, chat_id: int | None = None
    ) -> RadioStep | None:
        user = listener.user_id
        liked = self.tracks.feedback.liked.get(user, []) if user is not None else []
        if not liked:
            return None
        return await self.start(liked[0], listener=listener, diversity=diversity, chat_id=chat_id)

    def _own(self, radio_id: str, listener: Listener) -> FakeRadio:
        radio = self.radios.get(radio_id)
        if radio is None or radio.owner != listener.owner:
            raise errors.RadioNotFound("No such radio.")
        return radio

    async def feedback(self, radio_id: str, track_id: int, action: RadioAction, *, listener: Listener) -> RadioStep:
        radio = self._own(radio_id, listener)
        if radio.stopped:
            raise errors.RadioStopped("This radio is over.", self._step(radio))
        if radio.current is None or radio.current.id != track_id:
            raise errors.RadioConflict("This radio has already moved on.", self._step(radio))
        self.events.append((radio_id, track_id, action))
        if action == "like":
            radio.likes += 1
            radio.liked_genres.append(genre_of(radio.current))
            if listener.user_id is not None:
                await self.tracks.feedback.like(listener.user_id, track_id)
        elif action == "skip":
            radio.skips += 1
            radio.skipped_genres.append(genre_of(radio.current))
        self._advance(radio)
        return self._step(radio)

    async def stop(self, radio_id: str, *, listener: Listener) -> RadioStep:
        radio = self._own(radio_id, listener)
        radio.stopped = True
        return self._step(radio)

    async def current(self, radio_id: str, *, listener: Listener) -> RadioStep:
        return self._step(self._own(radio_id, listener))

    async def attach_message(self, radio_id: str, chat_id: int, message_id: int, *, listener: Listener) -> None:
        radio = self._own(radio_id, listener)
        radio.chat_id, radio.message_id = chat_id, message_id


class FakeAnalysisService:
    """`Analysis`: refuses what is not audio (by type or first bytes), a file over `max_bytes`, and
    more than `budget` analyses per identity; otherwise the first catalogue song is what it sounds like."""

    def __init__(self, tracks: FakeTrackService, recs: FakeRecommendationService, *, budget: int = 10**9) -> None:
        self.tracks = tracks
        self.recs = recs
        self.max_bytes = 20 * 1024 * 1024
        self.budget = budget
        self.seen: dict[str, int] = {}

    def precheck(self, *, size: int | None, file_name: str | None = None, mime_type: str | None = None) -> None:
        if size is not None and size > self.max_bytes:
            raise AudioTooLarge(size, self.max_bytes)
        if (mime_type or file_name) and not looks_like_audio(mime_type, file_name):
            raise NotAudio()

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
    ) -> AnalysisResult:
        data = source if isinstance(source, bytes) else source.read() if hasattr(source, "read") else b""
        if len(data) > self.max_bytes:
            raise AudioTooLarge(len(data), self.max_bytes)
        if ((mime_type or file_name) and not looks_like_audio(mime_type, file_name)) or not data.startswith(b"ID3"):
            raise NotAudio()
        self.seen[identity] = self.seen.get(identity, 0) + 1
        if self.seen[identity] > self.budget:
            raise errors.AnalysisRateLimited("Too many recordings just now.", 60.0)
        track = self.tracks.catalog[0]
        card = await self.tracks.card(track.id)
        similar = tuple(await self.recs.similar(track.id, 3)) if track.features is not None else ()
        return AnalysisResult("analysed", card, similar, SongTags(title, performer))


# -- assembled -----------------------------------------------------------------------------------


@dataclass
class FakeServices:
    catalog: list[TrackInfo]
    genre: FakeGenreService
    feedback: FakeFeedbackService
    tracks: FakeTrackService
    recommendations: FakeRecommendationService
    radio: FakeRadioService
    analysis: FakeAnalysisService

    def services(
        self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], *, analysis: bool = True, **extra: Any
    ) -> Services:
        """The container the delivery layer gets: these fakes, real users and health on `engine`."""
        return Services(
            users=UserService(sessions),
            health=HealthService(engine, version="test"),
            tracks=self.tracks,
            genre=self.genre,
            recommendations=self.recommendations,
            radio=self.radio,
            feedback=self.feedback,
            analysis=self.analysis if analysis else None,
            **extra,
        )


def fake_services(
    catalog: Sequence[TrackInfo] | None = None,
    *,
    model: GenreModel = energy_model,
    model_ready: bool = True,
    labels: bool = False,
    videos: bool = False,
) -> FakeServices:
    """The chat tests' fakes (defaults: `make_catalog()`, `energy_model`, verdicts by the sound)."""
    catalog = list(catalog if catalog is not None else make_catalog())
    genre = FakeGenreService(model, ready=model_ready, labels=labels)
    feedback = FakeFeedbackService(catalog)
    tracks = FakeTrackService(catalog, genre, feedback, videos=videos)
    recs = FakeRecommendationService(tracks)
    return FakeServices(
        catalog=catalog,
        genre=genre,
        feedback=feedback,
        tracks=tracks,
        recommendations=recs,
        radio=FakeRadioService(tracks),
        analysis=FakeAnalysisService(tracks, recs),
    )


def fake_container(
    settings: Settings | None = None, catalog: Sequence[TrackInfo] | None = None, *, model_ready: bool = True
) -> Wiring:
    """The HTTP tests' wiring: `sound_catalog()` and `sound_model` on an in-memory SQLite engine."""
    settings = settings or Settings(_env_file=None)  # type: ignore[call-arg]  # pydantic-settings' init-only option
    engine = create_engine("sqlite+aiosqlite://")
    sessions = create_session_factory(engine)
    fakes = fake_services(
        catalog if catalog is not None else sound_catalog(),
        model=sound_model,
        model_ready=model_ready,
        labels=True,
        videos=True,
    )
    return Wiring(settings, fakes.services(engine, sessions), engine, sessions)


def _satisfies_the_protocols(fakes: FakeServices) -> None:
    """Never called: mypy checks that each fake is what the delivery layer may be given."""
    tracks: Tracks = fakes.tracks
    genre: Genres = fakes.genre
    recommendations: Recommendations = fakes.recommendations
    radio: Radios = fakes.radio
    feedback: Feedback = fakes.feedback
    analysis: Analysis = fakes.analysis
    del tracks, genre, recommendations, radio, feedback, analysis
