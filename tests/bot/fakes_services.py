"""In-memory services implementing the documented contracts (docs/architecture.md), for bot tests."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from db.models import InteractionKind
from services.dto import (
    GenreGuess,
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
from services.errors import NoFeatures, RadioConflict, RadioNotFound, RadioStopped, TrackNotFound

GENRES = ("rock", "jazz", "techno")


def make_track(track_id: int, genre: str, *, name: str | None = None, artist: str | None = None) -> TrackInfo:
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
    tracks = []
    ids = itertools.count(1)
    for genre in GENRES:
        for _ in range(per_genre):
            tracks.append(make_track(next(ids), genre))
    return tracks


def genre_of(track: TrackInfo) -> str:
    return track.genres[0] if track.genres else "unknown"


@dataclass(frozen=True, slots=True)
class GenreHistoryEntry:
    genre: str
    count: int
    searched: int
    liked: int
    tracks: tuple[TrackInfo, ...]


def _page(items: Sequence[object], page: int, size: int) -> Page:  # type: ignore[type-arg]
    total = len(items)
    pages = max(1, -(-total // size)) if total else 0
    return Page(items=tuple(items[page * size : (page + 1) * size]), page=page, pages=pages, total=total)


class FakeGenreService:
    async def guess(
        self,
        features: Mapping[str, float],
        *,
        artists: Sequence[str] | str | None = None,
        title: str | None = None,
        labels: Sequence[str] = (),
    ) -> GenreGuess:
        if not features:
            raise NoFeatures("no features")
        energy = features.get("energy", 0.5)
        if energy >= 0.9:
            top = (("techno", 0.9), ("house", 0.06), ("trance", 0.04))
        elif energy >= 0.6:
            top = (("rock", 0.45), ("metal", 0.35), ("punk", 0.2))  # unsure: top-3
        else:
            top = (("jazz", 0.8), ("blues", 0.15), ("soul", 0.05))
        family = {"rock": "rock", "techno": "electronic", "jazz": "jazz/blues/soul"}[top[0][0]]
        return GenreGuess(
            genre=top[0][0],
            probability=top[0][1],
            top=top,
            family=family,
            family_probability=top[0][1],
            family_top=top,
        )

    async def guess_tracks(self, tracks: Sequence[TrackInfo]) -> list[GenreGuess | None]:
        return [await self.guess(t.features) if t.features else None for t in tracks]


class FakeFeedbackService:
    def __init__(self, catalog: Sequence[TrackInfo]) -> None:
        self.by_id = {t.id: t for t in catalog}
        self.liked: dict[int, list[int]] = {}  # user → track ids, newest first
        self.records: list[tuple[int, int, InteractionKind, str | None]] = []

    async def like(self, user_id: int, track_id: int) -> bool:
        if track_id not in self.by_id:
            raise TrackNotFound("no such track")
        likes = self.liked.setdefault(user_id, [])
        if track_id in likes:
            return False
        likes.insert(0, track_id)
        self.records.append((user_id, track_id, InteractionKind.LIKED, None))
        return True

    async def unlike(self, user_id: int, track_id: int) -> bool:
        likes = self.liked.setdefault(user_id, [])
        if track_id not in likes:
            return False
        likes.remove(track_id)
        return True

    async def is_liked(self, user_id: int, track_id: int) -> bool:
        return track_id in self.liked.get(user_id, [])

    async def record(self, user_id: int, track_id: int, kind: InteractionKind, context: str | None = None) -> None:
        self.records.append((user_id, track_id, kind, context))

    async def likes(self, user_id: int, page: int, size: int = 5) -> Page[TrackInfo]:
        return _page([self.by_id[i] for i in self.liked.get(user_id, [])], page, size)

    async def genre_history(self, user_id: int, page: int, size: int = 5) -> Page[GenreHistoryEntry]:
        by_genre: dict[str, list[tuple[TrackInfo, InteractionKind]]] = {}
        for uid, track_id, kind, _ in reversed(self.records):
            if uid == user_id and kind in (InteractionKind.SEARCHED, InteractionKind.LIKED):
                track = self.by_id[track_id]
                by_genre.setdefault(genre_of(track), []).append((track, kind))
        entries = [
            GenreHistoryEntry(
                genre=g,
                count=len(items),
                searched=sum(k is InteractionKind.SEARCHED for _, k in items),
                liked=sum(k is InteractionKind.LIKED for _, k in items),
                tracks=tuple({t.id: t for t, _ in items}.values())[:3],
            )
            for g, items in by_genre.items()
        ]
        entries.sort(key=lambda e: (-e.count, e.genre))
        return _page(entries, page, size)


class FakeTrackService:
    def __init__(self, catalog: Sequence[TrackInfo], feedback: FakeFeedbackService, genre: FakeGenreService) -> None:
        self.catalog = list(catalog)
        self.by_id = {t.id: t for t in catalog}
        self.feedback = feedback
        self.genre = genre
        self.resolved: list[tuple[str, int | None]] = []
        self.previews: dict[int, str] = {}
        self.preview_requests: list[int] = []

    def add(self, track: TrackInfo) -> None:
        self.catalog.append(track)
        self.by_id[track.id] = track
        self.feedback.by_id[track.id] = track

    def _match(self, text: str) -> list[TrackInfo]:
        q = text.lower().strip()
        return [t for t in self.catalog if q in t.title.lower()]

    async def resolve(self, text: str, *, user_id: int | None = None, limit: int = 8) -> Resolution:
        self.resolved.append((text, user_id))
        if "open.spotify.com/album/" in text:
            return Resolution(ResolutionKind.UNSUPPORTED, message="albums are not supported")
        if "open.spotify.com/track/" in text:
            spotify_id = text.rsplit("/", 1)[-1].split("?")[0]
            found = [t for t in self.catalog if t.spotify_id == spotify_id]
        else:
            found = self._match(text)
        if not found:
            return Resolution(ResolutionKind.NOT_FOUND, message="nothing found")
        if len(found) == 1:
            if user_id is not None:
                await self.feedback.record(user_id, found[0].id, InteractionKind.SEARCHED, "resolve")
            return Resolution(ResolutionKind.TRACK, tracks=(found[0],))
        return Resolution(ResolutionKind.CANDIDATES, tracks=tuple(found[: min(limit, 20)]))

    async def search(self, query: str, limit: int = 10) -> list[TrackInfo]:
        return self._match(query)[:limit]

    async def get(self, track_id: int) -> TrackInfo:
        try:
            return self.by_id[track_id]
        except KeyError:
            raise TrackNotFound(f"Track {track_id} was not found.") from None

    async def card(self, track_id: int, *, user_id: int | None = None) -> TrackCard:
        track = await self.get(track_id)
        genre = await self.genre.guess(track.features) if track.features else None
        liked = user_id is not None and await self.feedback.is_liked(user_id, track_id)
        return TrackCard(
            track=track,
            genre=genre,
            youtube=YouTubeLink(url=track.youtube_search_url, is_search=True),
            note=None if genre else "No audio features are known for this track.",
            liked=liked,
            preview_url=self.previews.get(track_id),
        )

    async def youtube_link(self, track: TrackInfo) -> YouTubeLink:
        return YouTubeLink(url=track.youtube_search_url, is_search=True)

    async def with_deezer(self, track: TrackInfo, *, budget: float | None = None) -> TrackInfo:
        """The track as it is (the real lookup is tested against the fake Deezer server)."""
        return track

    async def preview_url(self, track: TrackInfo) -> str | None:
        """`previews[track id]` when set (a test's preview URL), else none."""
        self.preview_requests.append(track.id)
        return self.previews.get(track.id)


class FakeRecommendationService:
    def __init__(self, catalog: Sequence[TrackInfo], feedback: FakeFeedbackService) -> None:
        self.catalog = list(catalog)
        self.feedback = feedback

    async def similar(
        self, track_id: int, n: int = 5, *, user_id: int | None = None, diversity: float | None = None
    ) -> list[Recommendation]:
        seed = next((t for t in self.catalog if t.id == track_id), None)
        if seed is None:
            raise TrackNotFound("no such track")
        same = [t for t in self.catalog if t.id != track_id and genre_of(t) == genre_of(seed)]
        recs = [Recommendation(track=t, score=1.0 - i / 10, reason="similar sound") for i, t in enumerate(same[:n])]
        if user_id is not None:  # as the real service: the list is recorded as shown to the user
            for rec in recs:
                await self.feedback.record(user_id, rec.track.id, InteractionKind.SHOWN, "similar")
        return recs

    async def for_you(self, user_id: int, n: int = 10) -> list[Recommendation]:
        liked = self.feedback.liked.get(user_id, [])
        if not liked:
            return []
        return await self.similar(liked[0], n, user_id=user_id)


@dataclass
class _Radio:
    id: str
    owner: str
    user_id: int | None
    seed: TrackInfo
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
    """Keeps radios in a dict the tests share across "restarts" (like the database would)."""

    def __init__(self, catalog: Sequence[TrackInfo], feedback: FakeFeedbackService) -> None:
        self.catalog = list(catalog)
        self.likes_store = feedback
        self.radios: dict[str, _Radio] = {}
        self._ids = itertools.count(1)
        self.events: list[tuple[str, int, str]] = []

    def first(self) -> _Radio:
        """The first radio started (tests of one journey)."""
        return next(iter(self.radios.values()))

    def _next(self, radio: _Radio) -> TrackInfo | None:
        """The first unseen track: the latest like's genre first, never a skipped genre when avoidable."""
        unseen = [t for t in self.catalog if t.id not in radio.shown and t.id != radio.seed.id]
        candidates = [t for t in unseen if genre_of(t) not in radio.skipped_genres] or unseen
        wanted = radio.liked_genres[-1] if radio.liked_genres else genre_of(radio.seed)
        candidates = [t for t in candidates if genre_of(t) == wanted] or candidates
        return candidates[0] if candidates else None

    def _step(self, radio: _Radio) -> RadioStep:
        return RadioStep(
            radio_id=radio.id,
            track=None if radio.stopped else radio.current,
            position=len(radio.shown),
            likes=radio.likes,
            skips=radio.skips,
            stopped=radio.stopped,
        )

    def _advance(self, radio: _Radio) -> None:
        radio.current = self._next(radio)
        if radio.current is not None:
            radio.shown.append(radio.current.id)

    async def start(
        self,
        seed_track_id: int,
        *,
        listener: Listener,
        diversity: float | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> RadioStep:
        seed = next((t for t in self.catalog if t.id == seed_track_id), None)
        if seed is None:
            raise TrackNotFound("no such track")
        radio_id = f"radio{next(self._ids):017d}"  # 22 URL-safe characters, like a public id
        radio = _Radio(
            id=radio_id, owner=listener.owner, user_id=listener.user_id, seed=seed, current=None, chat_id=chat_id
        )
        self.radios[radio.id] = radio
        self._advance(radio)
        return self._step(radio)

    async def start_from_latest_like(
        self, *, listener: Listener, diversity: float | None = None, chat_id: int | None = None
    ) -> RadioStep | None:
        liked = self.likes_store.liked.get(listener.user_id, []) if listener.user_id is not None else []
        if not liked:
            return None
        return await self.start(liked[0], listener=listener, diversity=diversity, chat_id=chat_id)

    def _own(self, radio_id: str, listener: Listener) -> _Radio:
        radio = self.radios.get(radio_id)
        if radio is None or radio.owner != listener.owner:
            raise RadioNotFound("no such radio")
        return radio

    async def feedback(
        self, radio_id: str, track_id: int, action: Literal["like", "skip", "next"], *, listener: Listener
    ) -> RadioStep:
        radio = self._own(radio_id, listener)
        user_id = listener.user_id
        if radio.stopped:
            raise RadioStopped("This radio is over.", self._step(radio))
        if radio.current is None or radio.current.id != track_id:
            raise RadioConflict("This radio has already moved on.", self._step(radio))
        self.events.append((radio_id, track_id, action))
        if action == "like":
            radio.likes += 1
            radio.liked_genres.append(genre_of(radio.current))
            if user_id is not None:
                await self.likes_store.like(user_id, track_id)
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


@dataclass
class FakeServices:
    catalog: list[TrackInfo]
    genre: FakeGenreService
    feedback: FakeFeedbackService
    tracks: FakeTrackService
    recommendations: FakeRecommendationService
    radio: FakeRadioService


def fake_services(catalog: Sequence[TrackInfo] | None = None) -> FakeServices:
    catalog = list(catalog or make_catalog())
    genre = FakeGenreService()
    feedback = FakeFeedbackService(catalog)
    return FakeServices(
        catalog=catalog,
        genre=genre,
        feedback=feedback,
        tracks=FakeTrackService(catalog, feedback, genre),
        recommendations=FakeRecommendationService(catalog, feedback),
        radio=FakeRadioService(catalog, feedback),
    )
