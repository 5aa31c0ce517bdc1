"""TrackService: from what the user sent to a track, and from a track to its card.

Resolution order: catalogue → Spotify (with keys) → Deezer (keyless) → nothing. Text goes to the
in-memory fuzzy index; Spotify search is asked only when the catalogue has no clear answer, and
Deezer's search when neither has one. Deezer links (deezer.com/track/…, short links) open the
catalogue's row with that Deezer id, or Deezer's track. Tracks found on Spotify are stored in
`tracks` with source='spotify' (or folded onto the catalogue's copy of the same song through
`track_aliases`); tracks found on Deezer with source='deezer', Deezer id, ISRC, cover and year (or
folded onto the row with the same Deezer id, ISRC or song key, which gets the Deezer id if it has
none), so both get an internal id like every other track, shown in the same result list, and the
next search finds them at once (they join the search index).

A card of a song outside the catalogue gets its features through the chain (Spotify, ReccoBeats by
id, ReccoBeats' analysis of the Deezer preview); a song known by the nine analysis values gets its
genre through `services.genre.guess_from_analysis` (the model's analysis head), and the
recommender is told about it (`on_features`) so it can be a seed and a candidate at once.
Every provider failure degrades to catalog answers with a notice; nothing escapes as an exception
except the documented `TrackNotFound` from `get` / `card`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InteractionKind, Track
from db.repositories import InteractionRepository, LikeRepository, TrackRepository
from services.audio_features import AudioFeatureChain
from services.dto import GenreGuess, Resolution, ResolutionKind, TrackCard, TrackInfo, YouTubeLink
from services.errors import EncoreError, ProviderUnavailable, TrackNotFound, UnsupportedInput
from services.examples import example_query
from services.genre import genre_context, genre_inputs, guess_from_analysis
from services.resolver import InputKind, ParsedInput, clean_video_title, parse_input
from services.search import Candidate, Decision, SearchIndex, SearchRow, Verdict, decide, other_versions
from services.spotify import SpotifyClient, SpotifyTrack
from services.textnorm import normalize, song_key
from services.youtube import YouTubeService

if TYPE_CHECKING:
    from services.deezer import DeezerClient, DeezerTrack
    from services.deezer_match import DeezerLookup

log = logging.getLogger(__name__)

CANDIDATE_POOL = 32  # index hits the decision looks at (more than are shown: the right one may rank lower)
ANSWER_TTL = 30.0  # seconds a text query's catalogue answer is reused (see TextAnswers)
ANSWER_SIZE = 2048  # text queries remembered

MSG_NOT_FOUND = (
    'I couldn\'t find that song. Check the spelling, or send "artist - title" or a Spotify link — '
    f"for example “{example_query('en')}”."
)
MSG_CLOSEST = "No exact match — closest:"
MSG_ID_UNKNOWN = "That track isn't in my catalogue, and I can't look it up on Spotify right now."
MSG_ID_NOT_ON_SPOTIFY = "Spotify doesn't know that track id. Copy the link again with Share → Copy link."
MSG_YT_UNREADABLE = "I can't read that YouTube video's title right now. Send me its artist and title as text instead."
MSG_DEEZER_LINK = "I can't open Deezer links right now. Send me the song's \"artist - title\" instead."
MSG_DEEZER_UNKNOWN = "Deezer doesn't know that track. Copy the link again with Share → Copy link."
MSG_DEEZER_SHORT_DEAD = "That Deezer link doesn't lead to a track. Open it and send the deezer.com/track/… link."
NOTICE_SPOTIFY_DOWN = "Spotify is unreachable right now, so these are matches from my catalogue only."
NOTICE_DEEZER_DOWN = "Deezer is unreachable right now, so these are matches from my catalogue only."
NOTICE_PROVIDERS_DOWN = "Spotify and Deezer are unreachable right now, so these are matches from my catalogue only."
NOTICE_FROM_VIDEO = "Matched using the video title “{}”."
NOTE_NO_FEATURES = (
    "{reason} So there's no genre guess; recommendations come from the same artist's catalogue "
    "tracks and your taste instead."
)
NOTE_NO_MODEL = "The genre model isn't available right now, so there's no genre guess."


class GenreGuesser(Protocol):
    """What `card()` needs from the genre model (implemented by `services.genre.GenreService`)."""

    async def guess(
        self,
        features: Mapping[str, float],
        *,
        artists: Sequence[str] | str | None = None,
        title: str | None = None,
        labels: Sequence[str] = (),
    ) -> GenreGuess: ...


class TextAnswers:
    """Recent catalogue answers to text queries, so that a query asked again (a popular song, a
    person retyping, a client polling) is not ranked and read from the database again.

    An answer is reused for `ttl` seconds at most and only while the search index has the same
    number of tracks (the key holds it: a track added here or by the catalogue refresh makes every
    older answer unreachable). This process's writes to a shown track (a Deezer cover attached, a
    provider's track stored, features found) `clear()` it; another process's writes show within
    `ttl`. Answers that asked Spotify or Deezer are never kept (a provider may answer next time).
    """

    def __init__(self, ttl: float = ANSWER_TTL, size: int = ANSWER_SIZE, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._items: OrderedDict[tuple[str, int, int], tuple[float, Resolution]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[str, int, int]) -> Resolution | None:
        item = self._items.get(key)
        if item is None:
            return None
        if self._clock() >= item[0]:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: tuple[str, int, int], answer: Resolution) -> None:
        if self._ttl <= 0:
            return
        self._items[key] = (self._clock() + self._ttl, answer)
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


class TrackService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        index: SearchIndex | None,
        spotify: SpotifyClient | None,
        youtube: YouTubeService | None,
        features: AudioFeatureChain | None,
        genre: GenreGuesser | None,
        *,
        deezer: DeezerClient | None = None,
        on_features: Callable[[Sequence[int]], Awaitable[object]] | None = None,
        deezer_lookup: DeezerLookup | None = None,
        snapshot_dir: Path | None = None,
        answers: TextAnswers | None = None,
    ) -> None:
        """`on_features(track ids)` is awaited when tracks get audio features here (e.g. the
        recommender's `add_tracks`, so that they can be recommended without a restart).
        `deezer_lookup`: finds a shown song without a Deezer id on Deezer (preview, cover, year).
        `answers`: the reused answers to text queries (`TextAnswers()` by default; ttl 0: none)."""
        self._sessions = sessions
        self._index = index
        self._spotify = spotify
        self._youtube = youtube
        self._features = features
        self._genre = genre
        self._deezer = deezer
        self._on_features = on_features
        self._deezer_lookup = deezer_lookup
        self._index_lock = asyncio.Lock()
        self._snapshot_dir = snapshot_dir  # where the search index is saved as arrays (SearchIndex.load)
        self._answers = answers if answers is not None else TextAnswers()

    async def index(self) -> SearchIndex:
        """The catalogue's search index, built from the database on first use when none was given."""
        if self._index is None:
            async with self._index_lock:
                if self._index is None:
                    self._index = await SearchIndex.load(self._sessions, self._snapshot_dir)
        return self._index

    async def refresh_index(self) -> int:
        """Make the tracks stored by any process since the search index was built searchable here."""
        return await (await self.index()).refresh(self._sessions)

    async def save_index(self) -> None:
        """Save the search index's snapshot (after setup or an import)."""
        if self._snapshot_dir is not None:
            await (await self.index()).save_snapshot(self._sessions, self._snapshot_dir)

    # -- resolve ----------------------------------------------------------------------------
    async def resolve(self, text: str, *, user_id: int | None = None, limit: int = 8) -> Resolution:
        limit = max(1, min(limit, 20))
        parsed = parse_input(text)
        if parsed.kind is InputKind.INVALID:
            return Resolution(ResolutionKind.INVALID, message=parsed.message)
        if parsed.kind is InputKind.UNSUPPORTED:
            return Resolution(ResolutionKind.UNSUPPORTED, message=parsed.message)
        if parsed.kind in (InputKind.DEEZER_TRACK, InputKind.DEEZER_SHORT):
            resolution = await self._resolve_deezer_link(parsed)
        elif parsed.kind is InputKind.SPOTIFY_TRACK:
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

    async def _resolve_deezer_link(self, parsed: ParsedInput) -> Resolution:
        deezer_id = parsed.deezer_id
        if deezer_id is not None:
            async with self._sessions() as session:
                row = await TrackRepository(session).by_deezer_id(deezer_id)
                if row is not None:
                    return Resolution(ResolutionKind.TRACK, tracks=(TrackInfo.from_row(row),))
        if self._deezer is None:
            return Resolution(ResolutionKind.NOT_FOUND, message=MSG_DEEZER_LINK)
        try:
            if deezer_id is None:
                assert parsed.short_url is not None
                deezer_id = await self._deezer.resolve_short_link(parsed.short_url)
                if deezer_id is None:
                    return Resolution(ResolutionKind.NOT_FOUND, message=MSG_DEEZER_SHORT_DEAD)
                return await self._resolve_deezer_link(ParsedInput(InputKind.DEEZER_TRACK, deezer_id=deezer_id))
            found = await self._deezer.track(deezer_id)
        except UnsupportedInput as exc:
            return Resolution(ResolutionKind.UNSUPPORTED, message=exc.message)
        except ProviderUnavailable:
            return Resolution(ResolutionKind.NOT_FOUND, message=MSG_DEEZER_LINK, notice=NOTICE_DEEZER_DOWN)
        if found is None:
            return Resolution(ResolutionKind.NOT_FOUND, message=MSG_DEEZER_UNKNOWN)
        return Resolution(ResolutionKind.TRACK, tracks=(await self._upsert_deezer(found),))

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
        read only for what is shown); Spotify (when configured), then Deezer, are asked only while
        no candidate contains every word of the query. Their tracks join the same candidate list."""
        index = await self.index()
        key = (query, limit, len(index))
        if (answer := self._answers.get(key)) is not None:
            return answer
        candidates: list[Candidate] = list(index.candidates(query, max(limit, CANDIDATE_POOL)))
        decision = decide(query, candidates, limit=limit)
        provider_asked = False  # a provider's answer may differ next time: such answers are not kept
        down: list[str] = []
        known = {c.id for c in candidates}

        def merge(infos: Sequence[TrackInfo]) -> None:
            for info in infos:
                if info.id not in known:
                    known.add(info.id)
                    candidates.append(info)

        if self._spotify is not None and decision.verdict in (Verdict.CLOSEST, Verdict.NONE):
            provider_asked = True
            try:
                found = await self._spotify.search_tracks(query, limit=min(10, limit))
            except ProviderUnavailable:
                down.append("Spotify")
            else:
                merge([await self._upsert(t) for t in found])
                decision = decide(query, candidates, limit=limit)
        if self._deezer is not None and decision.verdict in (Verdict.CLOSEST, Verdict.NONE):
            provider_asked = True
            try:
                hits = await self._deezer.search(query, limit=min(10, limit))
            except ProviderUnavailable:
                down.append("Deezer")
            else:
                merge([await self._upsert_deezer(t) for t in hits])
                decision = decide(query, candidates, limit=limit)
        notice = None
        if down:
            asked = int(self._spotify is not None) + int(self._deezer is not None)
            if len(down) == asked:  # every provider asked failed: catalogue matches only
                notice = (
                    NOTICE_PROVIDERS_DOWN
                    if asked == 2
                    else NOTICE_SPOTIFY_DOWN
                    if down == ["Spotify"]
                    else NOTICE_DEEZER_DOWN
                )
        answer = await self._resolution(decision, notice)
        if not provider_asked:
            self._answers.put(key, answer)
        return answer

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
        track = await self.with_deezer(await self.get(track_id))
        notes: list[str] = []
        if track.features is None:
            reason = "No audio features are known for this track."
            if self._features is not None:
                result = await self._features.for_track(track)
                if result.features is not None:
                    track = dataclasses.replace(track, features=result.features, features_source=result.source.value)
                    await self._features_found([track.id])
                elif result.note:
                    reason = result.note
            if track.features is None:
                notes.append(NOTE_NO_FEATURES.format(reason=reason))
        genre: GenreGuess | None = None
        if track.features is not None and not track.features_complete:
            context = genre_context(track)
            if track.source == "upload":  # a recording's name is its tag, a file name or a default: no title
                context["title"] = None
            try:  # the nine values of an audio analysis: the model's analysis head
                genre = await guess_from_analysis(
                    self._genre,
                    track.features,
                    duration_ms=track.duration_ms,
                    explicit=track.explicit,
                    **context,
                )
            except EncoreError as exc:
                log.info("no genre guess for track %s: %s", track.id, exc.code)
                notes.append(exc.message or NOTE_NO_MODEL)
        elif track.features is not None:
            if self._genre is None:
                notes.append(NOTE_NO_MODEL)
            else:
                try:
                    # The same inputs as every other place that shows a genre (genre_inputs, genre_context).
                    genre = await self._genre.guess(genre_inputs(track) or {}, **genre_context(track))
                except EncoreError as exc:
                    log.info("no genre guess for track %s: %s", track.id, exc.code)
                    notes.append(exc.message or NOTE_NO_MODEL)
        youtube = await self.youtube_link(track)
        liked = False
        if user_id is not None:
            async with self._sessions() as session:
                liked = await LikeRepository(session).exists(user_id, track.id)
        preview = await self.preview_url(track)
        return TrackCard(
            track=track, genre=genre, youtube=youtube, note=" ".join(notes) or None, liked=liked, preview_url=preview
        )

    async def with_deezer(self, track: TrackInfo, *, budget: float | None = None) -> TrackInfo:
        """The track with its Deezer id, cover and year, looked up on Deezer when it has none (within
        a short budget; see `services.deezer_match.DeezerLookup`); as it was when that fails."""
        if self._deezer_lookup is None:
            return track
        found = await self._deezer_lookup.attach(track, budget=budget)
        if found != track:  # its row changed: answers that show it are out of date
            self._answers.clear()
        return found

    async def preview_url(self, track: TrackInfo) -> str | None:
        """A fresh 30-second preview URL (signed; it expires within minutes, so fetch it when you show
        it), or None: no Deezer id, no preview, or Deezer unreachable."""
        if self._deezer is None or track.deezer_id is None:
            return None
        try:
            return await self._deezer.preview_url(track.deezer_id)
        except ProviderUnavailable:
            return None

    async def _features_found(self, track_ids: Sequence[int]) -> None:
        self._answers.clear()  # the tracks' rows changed
        if self._on_features is None:
            return
        try:
            await self._on_features(track_ids)
        except Exception:  # the card is shown anyway; a refresh picks the track up later
            log.exception("could not tell the recommender about tracks %s", list(track_ids))

    async def youtube_link(self, track: TrackInfo) -> YouTubeLink:
        if self._youtube is None or track.source == "upload":  # someone's recording: never looked up by its name
            return YouTubeLink(url=track.youtube_search_url, is_search=True)
        return await self._youtube.link(track)

    # -- storing provider tracks ------------------------------------------------------------
    async def _upsert_deezer(self, found: DeezerTrack) -> TrackInfo:
        """The internal track for a Deezer result: the row with its Deezer id; else the row with the
        same ISRC or song key (the catalogue's copy first), which gets the Deezer id, ISRC, cover and
        year it lacks; else a new row (source "deezer")."""
        key = song_key(";".join(found.artists), found.title)
        async with self._sessions.begin() as session:
            repo = TrackRepository(session)
            row = await repo.by_deezer_id(found.id)
            if row is None:
                row = (await repo.by_isrc(found.isrc) if found.isrc else None) or await repo.by_song_key(key)
                if row is not None:
                    await repo.attach_deezer(
                        row.id, found.id, isrc=found.isrc, cover_url=found.cover_url, release_year=found.year
                    )
                    await session.refresh(row)
                else:
                    row, _created = await repo.upsert_provider_track(
                        {
                            "deezer_id": found.id,
                            "isrc": found.isrc,
                            "name": found.title[:512],
                            "artists": ";".join(found.artists)[:1024],
                            "album": found.album[:512] if found.album else None,
                            "duration_ms": found.duration_ms,
                            "explicit": found.explicit,
                            "source": "deezer",
                            "cover_url": found.cover_url[:512] if found.cover_url else None,
                            "release_year": found.year,
                            "search_key": key[:1024],
                        }
                    )
            info = TrackInfo.from_row(row)
        index = await self.index()
        if info.id not in index:
            index.add([SearchRow(info.id, info.name, ";".join(info.artists), info.album, info.popularity)])
        self._answers.clear()  # a row was stored or changed
        return info

    # -- storing Spotify tracks -------------------------------------------------------------
    async def _upsert(self, found: SpotifyTrack) -> TrackInfo:
        """The internal track for a Spotify result: existing row, the catalog's copy, or a new row."""
        async with self._sessions.begin() as session:
            repo = TrackRepository(session)
            row = await repo.by_spotify_id(found.id)
            if row is None:
                key = song_key(found.artists_joined, found.name)
                row = await repo.by_song_key(key)
                if row is not None:
                    await repo.add_alias(found.id, row.id)
                else:
                    row, _created = await repo.upsert_provider_track(
                        {
                            "spotify_id": found.id,
                            "name": found.name[:512],
                            "artists": found.artists_joined[:1024],
                            "album": found.album[:512] if found.album else None,
                            "duration_ms": found.duration_ms,
                            "explicit": found.explicit,
                            "popularity": found.popularity,
                            "source": "spotify",
                            "search_key": key[:1024],
                            "cover_url": found.cover_url,
                            "release_year": found.year,
                        }
                    )
            if (found.cover_url and row.cover_url is None) or (found.year and row.release_year is None):
                await repo.fill_artwork(row.id, cover_url=found.cover_url, release_year=found.year)
                await session.refresh(row)
            info = TrackInfo.from_row(row)
        index = await self.index()
        if info.id not in index:
            index.add([SearchRow(info.id, info.name, ";".join(info.artists), info.album, info.popularity)])
        self._answers.clear()  # a row was stored or changed
        return info
