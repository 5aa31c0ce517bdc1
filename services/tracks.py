"""TrackService: from what the user sent to a track, and from a track to its card.

Catalog first: text goes to the in-memory fuzzy index; Spotify search is asked only when the
catalog has no clear answer (and only when keys are configured). Tracks found on Spotify but not
in the catalog are stored in `tracks` with source='spotify' (or folded onto the catalog's copy
of the same song through `track_aliases`) so they get an internal id like every other track.
Every provider failure degrades to catalog answers with a notice; nothing escapes as an exception
except the documented `TrackNotFound` from `get` / `card`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InteractionKind, Track, TrackAlias
from db.repositories import InteractionRepository, LikeRepository, TrackRepository
from services.audio_features import AudioFeatureChain
from services.dto import GenreGuess, Resolution, ResolutionKind, TrackCard, TrackInfo, YouTubeLink
from services.errors import EncoreError, ProviderUnavailable, TrackNotFound
from services.examples import example_query
from services.genre import genre_inputs
from services.resolver import InputKind, clean_video_title, parse_input
from services.search import Candidate, Decision, SearchIndex, SearchRow, Verdict, decide, other_versions
from services.spotify import SpotifyClient, SpotifyTrack
from services.textnorm import normalize, song_key
from services.youtube import YouTubeService

log = logging.getLogger(__name__)

CANDIDATE_POOL = 32  # index hits the decision looks at (more than are shown: the right one may rank lower)

MSG_NOT_FOUND = (
    'I couldn\'t find that song. Check the spelling, or send "artist - title" or a Spotify link — '
    f"for example “{example_query('en')}”."
)
MSG_CLOSEST = "No exact match — closest:"
MSG_ID_UNKNOWN = "That track isn't in my catalogue, and I can't look it up on Spotify right now."
MSG_ID_NOT_ON_SPOTIFY = "Spotify doesn't know that track id. Copy the link again with Share → Copy link."
MSG_YT_UNREADABLE = "I can't read that YouTube video's title right now. Send me its artist and title as text instead."
# Until DeezerClient is wired in here, a Deezer link gets a clear answer rather than an empty search.
MSG_DEEZER_LINK = "I can't open Deezer links yet. Send me the song's \"artist - title\" instead."
NOTICE_SPOTIFY_DOWN = "Spotify is unreachable right now, so these are matches from my catalogue only."
NOTICE_FROM_VIDEO = "Matched using the video title “{}”."
NOTE_NO_FEATURES = (
    "{reason} So there's no genre guess; recommendations come from the same artist's catalogue "
    "tracks and your taste instead."
)
NOTE_NO_MODEL = "The genre model isn't available right now, so there's no genre guess."


class GenreGuesser(Protocol):
    """What `card()` needs from the genre model (implemented by `services.genre.GenreService`)."""

    async def guess(self, features: Mapping[str, float]) -> GenreGuess: ...


def _dialect_insert(session: AsyncSession, table: Any) -> Any:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class TrackService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        index: SearchIndex | None,
        spotify: SpotifyClient | None,
        youtube: YouTubeService | None,
        features: AudioFeatureChain | None,
        genre: GenreGuesser | None,
    ) -> None:
        self._sessions = sessions
        self._index = index
        self._spotify = spotify
        self._youtube = youtube
        self._features = features
        self._genre = genre
        self._index_lock = asyncio.Lock()

    async def index(self) -> SearchIndex:
        """The catalogue's search index, built from the database on first use when none was given."""
        if self._index is None:
            async with self._index_lock:
                if self._index is None:
                    self._index = await SearchIndex.load(self._sessions)
        return self._index

    # -- resolve ----------------------------------------------------------------------------
    async def resolve(self, text: str, *, user_id: int | None = None, limit: int = 8) -> Resolution:
        limit = max(1, min(limit, 20))
        parsed = parse_input(text)
        if parsed.kind is InputKind.INVALID:
            return Resolution(ResolutionKind.INVALID, message=parsed.message)
        if parsed.kind is InputKind.UNSUPPORTED:
            return Resolution(ResolutionKind.UNSUPPORTED, message=parsed.message)
        if parsed.kind in (InputKind.DEEZER_TRACK, InputKind.DEEZER_SHORT):
            return Resolution(ResolutionKind.UNSUPPORTED, message=MSG_DEEZER_LINK)
        if parsed.kind is InputKind.SPOTIFY_TRACK:
            assert parsed.spotify_id is not None
            resolution = await self._resolve_spotify_id(parsed.spotify_id)
        elif parsed.kind is InputKind.YOUTUBE_VIDEO:
            assert parsed.video_id is not None
            resolution = await self._resolve_video(parsed.video_id, limit)
        else:
            resolution = await self._resolve_text(parsed.query or "", limit)
        if user_id is not None and resolution.kind is ResolutionKind.TRACK:
            await self._record_search(user_id, resolution.tracks[0].id)
        return resolution

    async def _resolve_spotify_id(self, spotify_id: str) -> Resolution:
        async with self._sessions() as session:
            row = await TrackRepository(session).by_spotify_id(spotify_id)
            if row is not None:
                return Resolution(ResolutionKind.TRACK, tracks=(TrackInfo.from_row(row),))
        if self._spotify is None:
            return Resolution(ResolutionKind.NOT_FOUND, message=MSG_ID_UNKNOWN)
        try:
            found = await self._spotify.track(spotify_id)
        except ProviderUnavailable:
            return Resolution(ResolutionKind.NOT_FOUND, message=MSG_ID_UNKNOWN, notice=NOTICE_SPOTIFY_DOWN)
        if found is None:
            return Resolution(ResolutionKind.NOT_FOUND, message=MSG_ID_NOT_ON_SPOTIFY)
        return Resolution(ResolutionKind.TRACK, tracks=(await self._upsert(found),))

    async def _resolve_video(self, video_id: str, limit: int) -> Resolution:
        answer = await self._youtube.video_title(video_id) if self._youtube is not None else None
        if answer is None:
            return Resolution(ResolutionKind.NOT_FOUND, message=MSG_YT_UNREADABLE)
        title, channel = answer
        query = clean_video_title(title, channel)
        resolution = await self._resolve_text(query, limit)
        notice = NOTICE_FROM_VIDEO.format(title)
        if resolution.notice:
            notice = f"{notice} {resolution.notice}"
        return dataclasses.replace(resolution, notice=notice)

    async def _resolve_text(self, query: str, limit: int) -> Resolution:
        """The index's candidates, decided by `services.search.decide` (in memory: the database is
        read only for what is shown); Spotify (when configured) is asked only when no catalogue
        candidate contains every word of the query."""
        index = await self.index()
        candidates: list[Candidate] = list(index.candidates(query, max(limit, CANDIDATE_POOL)))
        decision = decide(query, candidates, limit=limit)
        notice = None
        if self._spotify is not None and decision.verdict in (Verdict.CLOSEST, Verdict.NONE):
            try:
                found = await self._spotify.search_tracks(query, limit=min(10, limit))
            except ProviderUnavailable:
                notice = NOTICE_SPOTIFY_DOWN
            else:
                known = {c.id for c in candidates}
                for info in [await self._upsert(t) for t in found]:
                    if info.id not in known:
                        known.add(info.id)
                        candidates.append(info)
                decision = decide(query, candidates, limit=limit)
        return await self._resolution(decision, notice)

    async def _resolution(self, decision: Decision[Candidate], notice: str | None) -> Resolution:
        if decision.verdict is Verdict.OPEN:
            chosen = decision.ranked[0]
            index = await self.index()
            versions = [index.track(i) for i in index.versions(chosen.id)]
            covers = index.distinctive_title(chosen.name)
            alternatives = other_versions(chosen, [*decision.ranked[1:], *versions], covers=covers)
            infos = await self._track_infos([chosen, *alternatives])
            if infos and infos[0].id == chosen.id:
                return Resolution(ResolutionKind.TRACK, tracks=infos[:1], notice=notice, alternatives=infos[1:])
        elif decision.verdict in (Verdict.CHOOSE, Verdict.CLOSEST):
            infos = await self._track_infos(decision.ranked)
            if infos and decision.verdict is Verdict.CHOOSE:
                return Resolution(ResolutionKind.CANDIDATES, tracks=infos, notice=notice)
            if infos:
                return Resolution(
                    ResolutionKind.CANDIDATES, tracks=infos, message=MSG_CLOSEST, notice=notice, exact=False
                )
        return Resolution(ResolutionKind.NOT_FOUND, message=MSG_NOT_FOUND, notice=notice)

    async def _track_infos(self, tracks: Sequence[Candidate]) -> tuple[TrackInfo, ...]:
        """The tracks as `TrackInfo`, in order: index hits read from the database in one query."""
        wanted = [t.id for t in tracks if not isinstance(t, TrackInfo)]
        rows: dict[int, Track] = {}
        if wanted:
            async with self._sessions() as session:
                rows = await TrackRepository(session).get_many(wanted)
        infos: list[TrackInfo] = []
        for t in tracks:
            if isinstance(t, TrackInfo):
                infos.append(t)
            elif t.id in rows:  # gone from the database since the index was built: left out
                infos.append(TrackInfo.from_row(rows[t.id]))
        return tuple(infos)

    async def _catalog_search(self, query: str, limit: int) -> list[tuple[TrackInfo, float]]:
        hits = (await self.index()).search(query, limit)
        if not hits:
            return []
        async with self._sessions() as session:
            rows = await TrackRepository(session).get_many(h.track_id for h in hits)
            return [(TrackInfo.from_row(rows[h.track_id]), h.score) for h in hits if h.track_id in rows]

    async def _record_search(self, user_id: int, track_id: int) -> None:
        try:
            async with self._sessions.begin() as session:
                await InteractionRepository(session).add(
                    track_id, InteractionKind.SEARCHED, user_id=user_id, context="resolve"
                )
        except SQLAlchemyError:
            log.warning("could not record a search by user %s", user_id)

    # -- search / get -----------------------------------------------------------------------
    async def search(self, query: str, limit: int = 10) -> list[TrackInfo]:
        """Catalog matches, best first; Spotify (when configured) only when the catalog has none."""
        limit = max(1, min(limit, 50))
        query = (query or "")[:500]
        found = [info for info, _ in await self._catalog_search(query, limit)]
        if found or self._spotify is None or not normalize(query):
            return found
        try:
            results = await self._spotify.search_tracks(query, limit=min(10, limit))
        except ProviderUnavailable:
            return []
        return [await self._upsert(t) for t in results]

    async def get(self, track_id: int) -> TrackInfo:
        async with self._sessions() as session:
            row = await TrackRepository(session).get(track_id)
            if row is None:
                raise TrackNotFound(f"Track {track_id} was not found.")
            return TrackInfo.from_row(row)

    # -- card / youtube ---------------------------------------------------------------------
    async def card(self, track_id: int, *, user_id: int | None = None) -> TrackCard:
        track = await self.get(track_id)
        notes: list[str] = []
        if track.features is None:
            reason = "No audio features are known for this track."
            if self._features is not None:
                result = await self._features.for_track(track)
                if result.features is not None:
                    track = dataclasses.replace(track, features=result.features)
                elif result.note:
                    reason = result.note
            if track.features is None:
                notes.append(NOTE_NO_FEATURES.format(reason=reason))
        genre: GenreGuess | None = None
        if track.features is not None:
            if self._genre is None:
                notes.append(NOTE_NO_MODEL)
            else:
                try:
                    # The same inputs as every other place that shows a genre (genre_inputs).
                    genre = await self._genre.guess(genre_inputs(track) or {})
                except EncoreError as exc:
                    log.info("no genre guess for track %s: %s", track.id, exc.code)
                    notes.append(exc.message or NOTE_NO_MODEL)
        youtube = await self.youtube_link(track)
        liked = False
        if user_id is not None:
            async with self._sessions() as session:
                liked = await LikeRepository(session).exists(user_id, track.id)
        return TrackCard(track=track, genre=genre, youtube=youtube, note=" ".join(notes) or None, liked=liked)

    async def youtube_link(self, track: TrackInfo) -> YouTubeLink:
        if self._youtube is None:
            return YouTubeLink(url=track.youtube_search_url, is_search=True)
        return await self._youtube.link(track)

    # -- storing Spotify tracks -------------------------------------------------------------
    async def _upsert(self, found: SpotifyTrack) -> TrackInfo:
        """The internal track for a Spotify result: existing row, the catalog's copy, or a new row."""
        async with self._sessions.begin() as session:
            repo = TrackRepository(session)
            row = await repo.by_spotify_id(found.id)
            if row is None:
                key = song_key(found.artists_joined, found.name)
                row = await session.scalar(select(Track).where(Track.search_key == key).order_by(Track.id).limit(1))
                if row is not None:
                    await session.execute(
                        _dialect_insert(session, TrackAlias)
                        .values(spotify_id=found.id, track_id=row.id)
                        .on_conflict_do_nothing(index_elements=[TrackAlias.spotify_id])
                    )
                else:
                    await session.execute(
                        _dialect_insert(session, Track)
                        .values(
                            spotify_id=found.id,
                            name=found.name[:512],
                            artists=found.artists_joined[:1024],
                            album=found.album[:512] if found.album else None,
                            duration_ms=found.duration_ms,
                            explicit=found.explicit,
                            popularity=found.popularity,
                            source="spotify",
                            search_key=key[:1024],
                        )
                        .on_conflict_do_nothing(index_elements=[Track.spotify_id])
                    )
                    row = await repo.by_spotify_id(found.id)
                    assert row is not None
            info = TrackInfo.from_row(row)
        index = await self.index()
        if info.id not in index:
            index.add([SearchRow(info.id, info.name, ";".join(info.artists), info.album, info.popularity)])
        return info
