"""Audio features for any track: catalog → Spotify (while allowed) → ReccoBeats by Spotify id →
ReccoBeats' analysis of the song's 30-s Deezer preview → none.

Each answer is cached in `cache_entries` (namespace `features`, keyed by Spotify id): found
features for `ttl` (they never change), "none anywhere" for `negative_ttl` (a provider may learn
the track later). Provider failures are not cached. Features found for a track that has a row in
`tracks` are also written to that row, so the recommender and the genre model see them.

ReccoBeats (https://api.reccobeats.com/v1/audio-features?ids=…) is free and keyless and answers
``{"content": [{"id": <uuid>, "href": "https://open.spotify.com/track/<id>", "danceability": …}]}``.
It has no `time_signature`; Encore fills in 4 (the value of ~90 % of the 114-genre dataset) and
records that in the cached answer (`imputed`).

ReccoBeats also analyses audio itself: `POST {api_url}analysis/audio-features`, multipart with the
file in the field `audioFile` (at most 5 MB; MP3, OGG Vorbis, AIFF/AIFC or WAV; it analyses about
the first 30 s), answering nine values: acousticness, danceability, energy, instrumentalness,
liveness, loudness, speechiness, tempo, valence — no key, mode or time signature.
`ReccoBeatsClient.analyse_audio` checks size and format before sending anything.

The preview step (`AudioFeatureChain.for_track`, for a song no provider knows by Spotify id): the
track's Deezer id (or, for a song found elsewhere, Deezer's track with the same ISRC, or with the same
artist and title), a preview URL fetched fresh (they are signed and expire), the MP3 downloaded with a
size cap, converted with `services.audio_clip.make_clip` to a WAV excerpt (ReccoBeats takes MP3, but
the clip is decoded anyway to refuse silence and broken files before paying for an analysis), and
analysed. The nine values are stored on the track row with `features_source = "analysis"`; key, mode
and time signature stay NULL (nothing is imputed). "No preview" and "not analysable" are cached
(namespace `features_pv`, by Deezer id) for `negative_ttl`; provider failures are not.
"""

from __future__ import annotations

import asyncio
import enum
import io
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import AUDIO_FEATURE_COLUMNS
from db.repositories import TrackRepository
from services.audio_errors import AudioRejected
from services.cache import MISS, CacheService
from services.deezer_match import match_on_deezer
from services.dto import TrackInfo
from services.errors import AudioNotAnalysable, ProviderUnavailable
from services.retry import RetriesExhausted, RetryPolicy, TryAgain
from services.spotify import SpotifyClient, features_from_mapping

if TYPE_CHECKING:
    from services.deezer import DeezerClient

log = logging.getLogger(__name__)

T = TypeVar("T")

NS_FEATURES = "features"
NS_PREVIEW_FEATURES = "features_pv"
MAX_PREVIEW_BYTES = 2 * 1024 * 1024  # a 30-s 128 kbit/s MP3 is ~480 kB
RECCOBEATS_BATCH = 40
DEFAULT_TIME_SIGNATURE = 4.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE = 0.25
BACKOFF_MAX = 4.0
_SPOTIFY_TRACK_HREF = re.compile(r"open\.spotify\.com/track/([0-9A-Za-z]{22})")

# What `POST analysis/audio-features` answers, in this order.
ANALYSIS_FEATURES = (
    "acousticness",
    "danceability",
    "energy",
    "instrumentalness",
    "liveness",
    "loudness",
    "speechiness",
    "tempo",
    "valence",
)
MAX_ANALYSIS_BYTES = 5 * 1024 * 1024
ANALYSIS_FIELD = "audioFile"


def sniff_audio(data: bytes) -> tuple[str, str] | None:
    """(content type, file extension) of audio ReccoBeats can analyse, from the file's first bytes;
    None for anything else (pictures, documents, AAC/M4A, FLAC, Ogg Opus …)."""
    head = data[:64]
    if head[:4] == b"OggS":
        # The first page carries the codec's identification header at byte 28.
        return ("audio/ogg", "ogg") if head[28:35] == b"\x01vorbis" else None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ("audio/wav", "wav")
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return ("audio/aiff", "aiff")
    if head[:3] == b"ID3":
        return ("audio/mpeg", "mp3")
    # An MPEG audio frame: 11 sync bits, then a layer that is not 00 (00 is AAC's ADTS).
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and (head[1] >> 1) & 0x03:
        return ("audio/mpeg", "mp3")
    return None


class FeatureSource(enum.StrEnum):
    CATALOG = "catalog"
    SPOTIFY = "spotify"
    RECCOBEATS = "reccobeats"
    ANALYSIS = "analysis"  # ReccoBeats' analysis of audio: nine values, no key, mode, time signature
    NONE = "none"


@dataclass(frozen=True, slots=True)
class FeatureResult:
    features: Mapping[str, float] | None
    source: FeatureSource
    imputed: tuple[str, ...] = ()
    note: str | None = None  # why there are none (providers down, unknown everywhere)
    providers_failed: tuple[str, ...] = field(default=())

    @property
    def found(self) -> bool:
        return self.features is not None


class ReccoBeatsClient:
    """GET {api_url}audio-features?ids=… with a timeout and capped retries (`services.retry.RetryPolicy`;
    a Retry-After over `max_retry_after` fails at once, without blocking later calls). One aiohttp
    session, made lazily."""

    def __init__(
        self,
        api_url: str = "https://api.reccobeats.com/v1/",
        timeout: float = 5.0,
        max_retries: int = 2,
        max_retry_after: float = 10.0,
        *,
        analysis_timeout: float = 30.0,
        max_upload_bytes: int = MAX_ANALYSIS_BYTES,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        base = api_url if api_url.endswith("/") else api_url + "/"
        self._url = base + "audio-features"
        self._analysis_url = base + "analysis/audio-features"
        self._analysis_timeout = aiohttp.ClientTimeout(total=analysis_timeout)
        self._max_upload_bytes = max_upload_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = RetryPolicy(max(0, max_retries), max_retry_after, BACKOFF_BASE, BACKOFF_MAX)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self.calls = 0

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers={"Accept": "application/json"})
        return self._session

    async def audio_features(self, spotify_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{spotify id: {"features": {...}, "imputed": [...]}} for the ids ReccoBeats knows.

        Raises `ProviderUnavailable` when it cannot answer.
        """
        out: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(i for i in spotify_ids if i))
        for start in range(0, len(ids), RECCOBEATS_BATCH):
            chunk = ids[start : start + RECCOBEATS_BATCH]
            data = await self._get(chunk)
            for item in _content(data):
                parsed = _parse_reccobeats(item, chunk)
                if parsed is not None:
                    out[parsed[0]] = {"features": parsed[1], "imputed": parsed[2]}
        return out

    async def _get(self, ids: list[str]) -> Any:
        async def attempt() -> Any:
            self.calls += 1
            try:
                async with self._http().get(self._url, params={"ids": ",".join(ids)}) as resp:
                    if resp.status == 200:
                        return await resp.json(content_type=None)
                    if resp.status in (400, 404):
                        return {"content": []}
                    raise _failure(resp)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise TryAgain(type(exc).__name__) from exc

        return await self._run("reccobeats audio-features", attempt)

    async def _run(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._retry.run(what, attempt, sleep=self._sleep)
        except RetriesExhausted as exc:
            raise ProviderUnavailable("ReccoBeats is unavailable right now") from exc

    async def analyse_audio(self, data: bytes) -> Mapping[str, float]:
        """The nine values ReccoBeats computes from an audio file (its first ~30 s).

        Raises `AudioNotAnalysable` for an empty file, one over 5 MB, one that is not MP3 / OGG
        Vorbis / AIFF / WAV (checked before sending), or one ReccoBeats refuses (4xx);
        `ProviderUnavailable` when it cannot answer (429 beyond the wait cap, 5xx, timeouts).
        """
        if not data:
            raise AudioNotAnalysable("The audio file is empty.", "empty")
        if len(data) > self._max_upload_bytes:
            mb = self._max_upload_bytes / (1024 * 1024)
            raise AudioNotAnalysable(f"The audio file is larger than {mb:g} MB.", "too_large")
        kind = sniff_audio(data)
        if kind is None:
            raise AudioNotAnalysable(
                "That is not audio I can analyse (MP3, OGG Vorbis, AIFF or WAV).", "unsupported_format"
            )
        content_type, extension = kind

        async def attempt() -> Mapping[str, float]:
            self.calls += 1
            form = aiohttp.FormData()
            # A BytesIO, not bytes: aiohttp streams it instead of warning about a large raw body.
            form.add_field(ANALYSIS_FIELD, io.BytesIO(data), filename=f"audio.{extension}", content_type=content_type)
            try:
                async with self._http().post(self._analysis_url, data=form, timeout=self._analysis_timeout) as resp:
                    if resp.status == 200:
                        return _parse_analysis(await resp.json(content_type=None))
                    if resp.status == 413:
                        raise AudioNotAnalysable("ReccoBeats says the audio file is too large.", "too_large")
                    if resp.status in (400, 415, 422):
                        raise AudioNotAnalysable("ReccoBeats could not analyse that audio file.", "rejected")
                    raise _failure(resp)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise TryAgain(type(exc).__name__) from exc

        return await self._run("reccobeats analysis", attempt)


def _failure(resp: aiohttp.ClientResponse) -> Exception:
    """What an unexpected HTTP status means: worth another attempt (429, 5xx) or not."""
    if resp.status in RETRY_STATUSES:
        return TryAgain(f"HTTP {resp.status}", _float(resp.headers.get("Retry-After")))
    log.warning("reccobeats answered HTTP %s", resp.status)
    return ProviderUnavailable(f"ReccoBeats answered HTTP {resp.status}")


def _parse_analysis(data: Any) -> Mapping[str, float]:
    values: dict[str, float] = {}
    if isinstance(data, Mapping):
        for name in ANALYSIS_FEATURES:
            value = _float(data.get(name))
            if value is None or not math.isfinite(value):
                break
            values[name] = value
    if len(values) != len(ANALYSIS_FEATURES):
        log.warning("reccobeats analysis answer lacks values")
        raise ProviderUnavailable("ReccoBeats answered something unexpected")
    return MappingProxyType(values)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _content(data: Any) -> list[Any]:
    if isinstance(data, Mapping):
        for key in ("content", "audio_features", "data"):
            if isinstance(data.get(key), list):
                return list(data[key])
    return list(data) if isinstance(data, list) else []


def _parse_reccobeats(item: Any, asked: Sequence[str]) -> tuple[str, dict[str, float], list[str]] | None:
    if not isinstance(item, Mapping):
        return None
    spotify_id = None
    match = _SPOTIFY_TRACK_HREF.search(str(item.get("href") or ""))
    if match:
        spotify_id = match.group(1)
    elif str(item.get("id")) in asked:
        spotify_id = str(item["id"])
    elif len(asked) == 1:
        spotify_id = asked[0]
    if spotify_id is None:
        return None
    imputed: list[str] = []
    values = dict(item)
    if values.get("time_signature") is None:
        values["time_signature"] = DEFAULT_TIME_SIGNATURE
        imputed.append("time_signature")
    features = features_from_mapping(values)
    return (spotify_id, features, imputed) if features is not None else None


def _freeze(features: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType({c: float(features[c]) for c in AUDIO_FEATURE_COLUMNS})


class AudioFeatureChain:
    """catalog → Spotify audio features (where allowed) → ReccoBeats → none, with a DB cache."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cache: CacheService,
        *,
        spotify: SpotifyClient | None = None,
        reccobeats: ReccoBeatsClient | None = None,
        ttl: timedelta = timedelta(days=180),
        negative_ttl: timedelta = timedelta(days=7),
        deezer: DeezerClient | None = None,
        max_preview_bytes: int = MAX_PREVIEW_BYTES,
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self._spotify = spotify
        self._reccobeats = reccobeats
        self._deezer = deezer
        self._max_preview_bytes = max_preview_bytes
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._analysing: dict[int, asyncio.Future[FeatureResult]] = {}
        self.previews_analysed = 0  # ReccoBeats analyses of previews (for logs and tests)

    async def for_track(self, track: TrackInfo) -> FeatureResult:
        """The track's features: those it has; Spotify / ReccoBeats by its Spotify id; else the
        analysis of its Deezer preview (nine values). Never raises for provider failures."""
        if track.features is not None:
            source = FeatureSource(track.features_source) if track.features_source in _SOURCES else None
            if not track.features_complete:
                return FeatureResult(MappingProxyType(dict(track.features)), source or FeatureSource.ANALYSIS)
            return FeatureResult(_freeze(track.features), source or FeatureSource.CATALOG)
        result = FeatureResult(None, FeatureSource.NONE, note=NOTE_UNKNOWN)
        if track.spotify_id is not None:
            result = (await self.for_spotify_ids([track.spotify_id]))[track.spotify_id]
            if result.found:
                return result
        if self._deezer is None or self._reccobeats is None:
            return result
        flight = self._analysing.get(track.id)
        if flight is None:  # one analysis per track at a time, however many cards ask for it
            flight = asyncio.ensure_future(self._from_preview(track))
            self._analysing[track.id] = flight
            flight.add_done_callback(lambda _: self._analysing.pop(track.id, None))
        analysed = await asyncio.shield(flight)
        if analysed.found:
            return analysed
        failed = tuple(dict.fromkeys((*result.providers_failed, *analysed.providers_failed)))
        if failed:
            note = NOTE_FAILED.format(" and ".join(failed))
            return FeatureResult(None, FeatureSource.NONE, note=note, providers_failed=failed)
        return FeatureResult(None, FeatureSource.NONE, note=analysed.note or result.note)

    async def _from_preview(self, track: TrackInfo) -> FeatureResult:
        assert self._deezer is not None and self._reccobeats is not None
        try:
            deezer_id = track.deezer_id or await self._find_on_deezer(track)
        except ProviderUnavailable:
            return FeatureResult(None, FeatureSource.NONE, providers_failed=("Deezer",))
        if deezer_id is None:
            return FeatureResult(None, FeatureSource.NONE, note=NOTE_NO_PREVIEW)
        key = str(deezer_id)
        cached = await self._cache.get(NS_PREVIEW_FEATURES, key)
        if cached is not MISS:
            if isinstance(cached, dict) and cached.get("features"):
                features = MappingProxyType({c: float(v) for c, v in cached["features"].items()})
                await self._store(track.id, features)
                return FeatureResult(features, FeatureSource.ANALYSIS)
            return FeatureResult(None, FeatureSource.NONE, note=str((cached or {}).get("note") or NOTE_NO_PREVIEW))
        try:
            data = await self._deezer.download_preview(deezer_id, max_bytes=self._max_preview_bytes)
        except ProviderUnavailable:
            return FeatureResult(None, FeatureSource.NONE, providers_failed=("Deezer",))
        if data is None:
            await self._cache.put(NS_PREVIEW_FEATURES, key, {"note": NOTE_NO_PREVIEW}, self._negative_ttl)
            return FeatureResult(None, FeatureSource.NONE, note=NOTE_NO_PREVIEW)
        from services.audio_clip import make_clip  # PyAV: loaded when a preview is first analysed

        try:
            clip = await asyncio.to_thread(make_clip, io.BytesIO(data))
            values = await self._reccobeats.analyse_audio(clip.data)
        except (AudioRejected, AudioNotAnalysable) as exc:
            log.info("deezer preview %s not analysable (%s)", deezer_id, exc.code)
            await self._cache.put(NS_PREVIEW_FEATURES, key, {"note": NOTE_PREVIEW_UNUSABLE}, self._negative_ttl)
            return FeatureResult(None, FeatureSource.NONE, note=NOTE_PREVIEW_UNUSABLE)
        except ProviderUnavailable:
            return FeatureResult(None, FeatureSource.NONE, providers_failed=("ReccoBeats",))
        self.previews_analysed += 1
        features = MappingProxyType(dict(values))
        await self._cache.put(NS_PREVIEW_FEATURES, key, {"features": dict(values)}, self._ttl)
        await self._store(track.id, features)
        return FeatureResult(features, FeatureSource.ANALYSIS)

    async def _find_on_deezer(self, track: TrackInfo) -> int | None:
        """The Deezer id of a song found elsewhere (Spotify): by ISRC, else by artist and title when
        Deezer's answer is the same song (same song key). Remembered on the track row."""
        assert self._deezer is not None
        found = await match_on_deezer(self._deezer, isrc=track.isrc, artists=track.artists, name=track.name)
        if found is None:
            return None
        async with self._sessions.begin() as session:
            await TrackRepository(session).attach_deezer(
                track.id, found.id, isrc=found.isrc, cover_url=found.cover_url, release_year=found.year
            )
        return found.id

    async def _store(self, track_id: int, features: Mapping[str, float]) -> None:
        async with self._sessions.begin() as session:
            await TrackRepository(session).store_features(track_id, features, FeatureSource.ANALYSIS.value)

    async def for_spotify_ids(self, spotify_ids: Iterable[str]) -> dict[str, FeatureResult]:
        """Features for each id; never raises for provider failures (they show in `note`)."""
        ids = list(dict.fromkeys(i for i in spotify_ids if i))
        results: dict[str, FeatureResult] = {}
        rows: dict[str, int] = {}

        async with self._sessions() as session:
            repo = TrackRepository(session)
            for sid in ids:
                row = await repo.by_spotify_id(sid)
                if row is None:
                    continue
                rows[sid] = row.id
                if row.has_features:
                    values = {c: float(getattr(row, c)) for c in AUDIO_FEATURE_COLUMNS}
                    results[sid] = FeatureResult(_freeze(values), FeatureSource.CATALOG)

        for sid in ids:
            if sid in results:
                continue
            cached = await self._cache.get(NS_FEATURES, sid)
            if cached is MISS:
                continue
            if isinstance(cached, dict) and cached.get("features"):
                results[sid] = FeatureResult(
                    _freeze(cached["features"]),
                    FeatureSource(cached.get("source", FeatureSource.RECCOBEATS)),
                    tuple(cached.get("imputed") or ()),
                )
            else:
                results[sid] = FeatureResult(None, FeatureSource.NONE, note=NOTE_UNKNOWN)

        missing = [sid for sid in ids if sid not in results]
        failed: list[str] = []
        found: dict[str, dict[str, Any]] = {}
        if missing and self._spotify is not None and self._spotify.audio_features_available:
            try:
                for sid, feats in (await self._spotify.audio_features(missing)).items():
                    found[sid] = {"features": feats, "source": FeatureSource.SPOTIFY.value, "imputed": []}
            except ProviderUnavailable:
                failed.append("Spotify")
        still = [sid for sid in missing if sid not in found]
        if still and self._reccobeats is not None:
            try:
                for sid, rb_answer in (await self._reccobeats.audio_features(still)).items():
                    if sid in still:
                        found[sid] = {**rb_answer, "source": FeatureSource.RECCOBEATS.value}
            except ProviderUnavailable:
                failed.append("ReccoBeats")

        for sid in missing:
            if (answer := found.get(sid)) is not None:
                await self._cache.put(NS_FEATURES, sid, answer, self._ttl)
                results[sid] = FeatureResult(
                    _freeze(answer["features"]), FeatureSource(answer["source"]), tuple(answer["imputed"])
                )
            elif failed:
                results[sid] = FeatureResult(
                    None,
                    FeatureSource.NONE,
                    note=NOTE_FAILED.format(" and ".join(failed)),
                    providers_failed=tuple(failed),
                )
            else:
                await self._cache.put(NS_FEATURES, sid, None, self._negative_ttl)
                results[sid] = FeatureResult(None, FeatureSource.NONE, note=NOTE_UNKNOWN)

        to_store = {
            rows[sid]: (dict(r.features), r.source.value)
            for sid, r in results.items()
            if sid in rows and r.features is not None and r.source is not FeatureSource.CATALOG
        }
        if to_store:
            async with self._sessions.begin() as session:
                repo = TrackRepository(session)
                for track_id, (feats, source) in to_store.items():
                    await repo.store_features(track_id, feats, source)
        return results


_SOURCES = frozenset(s.value for s in FeatureSource)
NOTE_UNKNOWN = "No audio features are known for this track (Spotify no longer shares them and ReccoBeats has none)."
NOTE_NO_PREVIEW = "No audio features are known for this track, and Deezer has no preview of it to analyse."
NOTE_PREVIEW_UNUSABLE = "No audio features are known for this track, and its Deezer preview could not be analysed."
NOTE_FAILED = "Audio features are unavailable right now ({} did not answer)."
