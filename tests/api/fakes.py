"""In-memory services that keep the documented contracts (docs/architecture.md) for HTTP tests."""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from bot.config import Settings
from db.engine import create_engine, create_session_factory
from db.models import AUDIO_FEATURE_COLUMNS
from services import errors
from services.analysis import AnalysisResult, AudioInput, SongTags
from services.audio_clip import looks_like_audio
from services.audio_errors import AudioTooLarge, NotAudio
from services.container import Services
from services.dto import (
    GenreGuess,
    Listener,
    RadioStep,
    Recommendation,
    Resolution,
    ResolutionKind,
    TrackCard,
    TrackInfo,
    YouTubeLink,
)
from services.genre import genre_inputs
from services.health import HealthService
from services.users import UserService
from tests.wiring import Wiring

MODEL_VERSION = "seed6-test-1"
GENRES = ("rock", "pop", "hip-hop", "edm", "jazz", "classical")
FAMILY = {
    "rock": "pop & rock",
    "pop": "pop & rock",
    "hip-hop": "dance & urban",
    "edm": "dance & urban",
    "jazz": "acoustic",
    "classical": "acoustic",
}


# Where each genre's tracks sit in feature space (energy, danceability, speechiness, acousticness,
# instrumentalness): the fake model below places them back in their genre.
CENTRES = {
    "rock": (0.9, 0.4, 0.05, 0.1, 0.1),
    "pop": (0.5, 0.95, 0.05, 0.2, 0.0),
    "hip-hop": (0.6, 0.8, 0.35, 0.1, 0.0),
    "edm": (0.95, 0.95, 0.05, 0.0, 0.8),
    "jazz": (0.3, 0.5, 0.05, 0.6, 0.5),
    "classical": (0.1, 0.2, 0.03, 0.95, 0.9),
}


def make_track(i: int, name: str, artist: str, genre: str, *, features: bool = True) -> TrackInfo:
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


def default_catalog() -> list[TrackInfo]:
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
    tracks = [make_track(i + 1, n, a, g) for i, (n, a, g) in enumerate(rows)]
    tracks.append(make_track(len(rows) + 1, "Untitled Demo <script>", "Nobody & Co", "rock", features=False))
    return tracks


def _probabilities(features: Mapping[str, float]) -> list[tuple[str, float]]:
    """A deterministic, smooth 'model': softmax over simple feature scores."""
    e, d, a = features["energy"], features["danceability"], features["acousticness"]
    i, sp = features["instrumentalness"], features["speechiness"]
    scores = [2 * e, d + 0.5 * e, d + 2 * sp, 2 * d * e + i, a + i, 3 * a - 2 * e - d]
    exps = [math.exp(3 * s) for s in scores]
    total = sum(exps)
    return sorted(((g, x / total) for g, x in zip(GENRES, exps, strict=True)), key=lambda p: -p[1])


class FakeGenreService:
    model_version = MODEL_VERSION

    def __init__(self, *, ready: bool = True) -> None:
        self.ready = ready
        self.calls: list[dict[str, float]] = []

    @property
    def version(self) -> str:
        return MODEL_VERSION if self.ready else ""

    async def guess_tracks(self, tracks: Sequence[TrackInfo]) -> list[GenreGuess | None]:
        out: list[GenreGuess | None] = []
        for track in tracks:
            inputs = genre_inputs(track)
            try:
                out.append(await self.guess(inputs) if inputs is not None else None)
            except errors.EncoreError:
                out.append(None)
        return out

    async def guess(
        self,
        features: Mapping[str, float],
        *,
        artists: Sequence[str] | str | None = None,
        title: str | None = None,
        labels: Sequence[str] = (),
    ) -> GenreGuess:
        if not self.ready:
            raise errors.ModelNotReady("The genre model is not trained yet.")
        missing = [c for c in AUDIO_FEATURE_COLUMNS if c not in features]
        if missing:
            raise errors.NoFeatures("Missing features: " + ", ".join(missing))
        self.calls.append(dict(features))
        top = _probabilities(features)
        families: dict[str, float] = {}
        for genre, p in top:
            families[FAMILY[genre]] = families.get(FAMILY[genre], 0.0) + p
        family_top = sorted(families.items(), key=lambda p: -p[1])
        return GenreGuess(
            genre=top[0][0],
            probability=top[0][1],
            top=tuple(top[:3]),
            family=family_top[0][0],
            family_probability=family_top[0][1],
            family_top=tuple(family_top[:3]),
            model_version=MODEL_VERSION,
            labels=tuple(labels),
        )


class FakeTrackService:
    def __init__(self, catalog: Sequence[TrackInfo], genre: FakeGenreService) -> None:
        self._tracks = {t.id: t for t in catalog}
        self._genre = genre

    async def resolve(self, text: str, *, user_id: int | None = None, limit: int = 8) -> Resolution:
        text = text.strip()
        if not text or len(text) > 200:
            return Resolution(ResolutionKind.INVALID, message="Type a song name or a Spotify link.")
        if "open.spotify.com/album" in text:
            raise errors.UnsupportedInput("Albums are not supported; send a track link.", kind="album")
        if "open.spotify.com/track/" in text:
            spotify_id = text.rsplit("/", 1)[-1].split("?")[0]
            found = [t for t in self._tracks.values() if t.spotify_id == spotify_id]
            if not found:
                return Resolution(ResolutionKind.NOT_FOUND, message="That track is not in the catalogue.")
            return Resolution(ResolutionKind.TRACK, tracks=tuple(found))
        return await self._search(text, limit)

    async def _search(self, text: str, limit: int) -> Resolution:
        needle = text.casefold()
        found = [t for t in self._tracks.values() if needle in t.title.casefold()][:limit]
        if not found:
            return Resolution(ResolutionKind.NOT_FOUND, message=f"Nothing found for “{text}”.")
        kind = ResolutionKind.TRACK if len(found) == 1 else ResolutionKind.CANDIDATES
        return Resolution(kind, tracks=tuple(found))

    async def search(self, query: str, limit: int = 10) -> list[TrackInfo]:
        return list((await self._search(query, limit)).tracks)

    async def get(self, track_id: int) -> TrackInfo:
        try:
            return self._tracks[track_id]
        except KeyError:
            raise errors.TrackNotFound(f"No track with id {track_id}.") from None

    async def card(self, track_id: int, *, user_id: int | None = None) -> TrackCard:
        track = await self.get(track_id)
        youtube = await self.youtube_link(track)
        if track.features is None:
            return TrackCard(track, None, youtube, note="No audio features are known for this track.")
        return TrackCard(
            track,
            await self._genre.guess(track.features, artists=track.artists, title=track.name, labels=track.genres),
            youtube,
            preview_url=await self.preview_url(track),
        )

    async def with_deezer(self, track: TrackInfo, *, budget: float | None = None) -> TrackInfo:
        return track

    async def preview_url(self, track: TrackInfo) -> str | None:
        return f"https://cdnt-preview.dzcdn.net/stream/{track.deezer_id}.mp3" if track.deezer_id else None

    async def youtube_link(self, track: TrackInfo) -> YouTubeLink:
        if track.id % 2:
            return YouTubeLink(
                url=f"https://www.youtube.com/watch?v=vid{track.id:08d}",
                is_search=False,
                video_id=f"vid{track.id:08d}",
                title=track.title,
            )
        return YouTubeLink(url=track.youtube_search_url, is_search=True)


class FakeRecommendationService:
    def __init__(self, tracks: FakeTrackService) -> None:
        self._tracks = tracks
        self.calls: list[tuple[int, int, float | None]] = []

    async def similar(
        self, track_id: int, n: int = 5, *, user_id: int | None = None, diversity: float | None = None
    ) -> list[Recommendation]:
        seed = await self._tracks.get(track_id)
        if seed.features is None:
            raise errors.NoFeatures("No audio features are known for this track.")
        self.calls.append((track_id, n, diversity))
        others = [t for t in self._tracks._tracks.values() if t.id != track_id and t.features is not None]

        def distance(t: TrackInfo) -> float:
            assert t.features is not None and seed.features is not None
            return sum((t.features[c] - seed.features[c]) ** 2 for c in ("energy", "danceability"))

        others.sort(key=lambda t: (distance(t), t.id))
        return [Recommendation(t, score=1.0 / (1.0 + distance(t)), reason="similar sound") for t in others[:n]]


class FakeAnalysisService:
    """`services.protocols.Analysis` in memory: refuses what is not audio (by type or first bytes),
    a file over `max_bytes`, and after `budget` analyses per identity; otherwise answers the first
    catalogue track's card as what the recording sounds like."""

    def __init__(self, tracks: FakeTrackService, recs: FakeRecommendationService, *, budget: int = 10**9) -> None:
        self._tracks = tracks
        self._recs = recs
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
        track = next(iter(self._tracks._tracks.values()))
        card = await self._tracks.card(track.id)
        similar = tuple(await self._recs.similar(track.id, 3)) if track.features is not None else ()
        return AnalysisResult("analysed", card, similar, SongTags(title, performer))


@dataclass
class _Radio:
    id: str
    owner: str
    queue: list[int]
    current: int | None
    position: int = 1
    likes: int = 0
    skips: int = 0
    stopped: bool = False
    played: list[int] = field(default_factory=list)


class FakeRadioService:
    def __init__(self, tracks: FakeTrackService, recs: FakeRecommendationService) -> None:
        self._tracks = tracks
        self._recs = recs
        self._radios: dict[str, _Radio] = {}

    async def start(
        self,
        seed_track_id: int,
        *,
        listener: Listener,
        diversity: float | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> RadioStep:
        seed = await self._tracks.get(seed_track_id)
        queue = [r.track.id for r in await self._recs.similar(seed.id, 50)] if seed.features else []
        radio = _Radio(id=secrets.token_urlsafe(16), owner=listener.owner, queue=queue, current=seed.id)
        self._radios[radio.id] = radio
        return await self._step(radio)

    def _get(self, radio_id: str, listener: Listener) -> _Radio:
        radio = self._radios.get(radio_id)
        if radio is None or (radio.owner != "open" and radio.owner != listener.owner):
            raise errors.RadioNotFound("No such radio.")
        return radio

    async def feedback(
        self, radio_id: str, track_id: int, action: Literal["like", "skip", "next"], *, listener: Listener
    ) -> RadioStep:
        radio = self._get(radio_id, listener)
        if radio.stopped:  # as RadioService
            raise errors.RadioStopped("This radio is over.", await self._step(radio))
        if radio.current != track_id:
            raise errors.RadioConflict("This radio has already moved on.", await self._step(radio))
        radio.likes += action == "like"
        radio.skips += action == "skip"
        radio.played.append(track_id)
        radio.current = next((t for t in radio.queue if t not in radio.played), None)
        radio.position += radio.current is not None
        return await self._step(radio)

    async def stop(self, radio_id: str, *, listener: Listener) -> RadioStep:
        radio = self._get(radio_id, listener)
        radio.stopped = True
        return await self._step(radio)

    async def current(self, radio_id: str, *, listener: Listener) -> RadioStep:
        return await self._step(self._get(radio_id, listener))

    async def attach_message(self, radio_id: str, chat_id: int, message_id: int, *, listener: Listener) -> None:
        self._get(radio_id, listener)

    async def start_from_latest_like(self, *, listener: Listener, diversity: float | None = None) -> RadioStep | None:
        return None

    async def _step(self, radio: _Radio) -> RadioStep:
        playing = radio.current is not None and not radio.stopped
        track = await self._tracks.get(radio.current) if playing else None
        return RadioStep(radio.id, track, radio.position, radio.likes, radio.skips, radio.stopped)


def fake_container(
    settings: Settings | None = None, catalog: Sequence[TrackInfo] | None = None, *, model_ready: bool = True
) -> Wiring:
    """The fakes above as the services (an in-memory SQLite engine for health and users)."""
    settings = settings or Settings(_env_file=None)  # type: ignore[call-arg]
    engine = create_engine("sqlite+aiosqlite://")
    sessions = create_session_factory(engine)
    genre = FakeGenreService(ready=model_ready)
    tracks = FakeTrackService(catalog if catalog is not None else default_catalog(), genre)
    recs = FakeRecommendationService(tracks)
    services = Services(
        analysis=FakeAnalysisService(tracks, recs),
        users=UserService(sessions),
        health=HealthService(engine, version="test"),
        tracks=tracks,  # type: ignore[arg-type]
        genre=genre,  # type: ignore[arg-type]
        recommendations=recs,  # type: ignore[arg-type]
        radio=FakeRadioService(tracks, recs),  # type: ignore[arg-type]
        feedback=None,  # type: ignore[arg-type]
    )
    return Wiring(settings, services, engine, sessions)
