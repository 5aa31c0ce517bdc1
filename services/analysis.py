"""AnalysisService: "this sounds like …" for a song someone sends as audio.

`analyse(source, identity=…)` takes the file (bytes, a path, or a seekable binary stream, such as
the web upload spooled to disk or a Telegram download), and answers an `AnalysisResult`:

1. Refusals that cost nothing come first: larger than `max_bytes` (20 MB, Telegram's download
   limit) → `AudioTooLarge`; a MIME type / file name that is not audio → `NotAudio`.
2. A file analysed before (same bytes, by SHA-256) answers from its stored track, at no cost.
3. Each identity ("tg:<user id>", an API key's hash, an address) has a budget of analyses
   (`services.ratelimit.IdentityLimiter`, in memory or in Redis) → `AnalysisRateLimited`.
4. The audio's own performer and title tags (or those the caller passes, e.g. Telegram's audio
   metadata) come first: when `TrackService.resolve` opens one clear song by them, that song's card
   is the answer ("known").
5. Otherwise the middle 30 s are decoded (`services.audio_clip.make_clip`: corrupt, silent, too
   short, 2-hour mixes are refused with `AudioRejected` subclasses), sent to ReccoBeats' analysis
   (nine values, `ProviderUnavailable` when it cannot answer), and the song is stored as a track row
   (source "upload", the nine values with `features_source = "analysis"`, key, mode and time
   signature NULL) in one statement once everything succeeded — nothing is half-written. Its card
   (genre through `services.genre.guess_from_analysis`), the nearest catalogue tracks, and a radio
   started from its id work like any track's ("analysed"). Uploads are never searchable or
   recommended to anyone else; they are seeds only.

The blocking decoding runs in a worker thread. Nothing here knows about HTTP or Telegram.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePath
from typing import TYPE_CHECKING, BinaryIO, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories import TrackRepository
from services.audio_errors import AudioTooLarge, NotAudio
from services.audio_features import FeatureSource, ReccoBeatsClient
from services.cache import MISS, CacheService
from services.dto import Recommendation, ResolutionKind, TrackCard
from services.errors import AnalysisRateLimited, EncoreError, NoFeatures, ProviderUnavailable
from services.ratelimit import IdentityLimiter
from services.recommender import RecommendationService
from services.tracks import TrackService

if TYPE_CHECKING:
    from services.audio_clip import AudioClip, AudioInfo

log = logging.getLogger(__name__)

AudioInput = bytes | str | os.PathLike[str] | BinaryIO
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
SIMILAR = 6
NS_UPLOAD = "upload"
DEFAULT_NAME = "Your recording"
MSG_ANALYSIS_OFF = "Listening to recordings is switched off right now (no audio analysis provider)."
MSG_RATE_LIMITED = "You've sent a lot of recordings just now. Try again in {}."


@dataclass(frozen=True, slots=True)
class SongTags:
    title: str | None = None
    artist: str | None = None

    @property
    def names_a_song(self) -> bool:
        return bool(self.title and self.artist)


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """What a sent song sounds like. `kind`: "known" when its tags named a song Encore found (the
    card is that song's), "analysed" when it was measured from its sound (the card is its own
    track row). Either way `card.track.id` starts a radio or asks for more similar tracks."""

    kind: Literal["known", "analysed"]
    card: TrackCard
    similar: tuple[Recommendation, ...]
    tags: SongTags
    note: str | None = None  # e.g. why there are no similar tracks


class AnalysisService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tracks: TrackService,
        recommendations: RecommendationService | None,
        reccobeats: ReccoBeatsClient | None,
        limiter: IdentityLimiter,
        *,
        cache: CacheService | None = None,
        max_bytes: int = MAX_UPLOAD_BYTES,
        similar: int = SIMILAR,
        remember: timedelta = timedelta(days=30),
    ) -> None:
        self._sessions = sessions
        self._tracks = tracks
        self._recs = recommendations
        self._reccobeats = reccobeats
        self._limiter = limiter
        self._cache = cache
        self.max_bytes = max_bytes
        self._similar = similar
        self._remember = remember
        self.analysed = 0  # ReccoBeats analyses made (for logs and tests)

    def precheck(self, *, size: int | None, file_name: str | None = None, mime_type: str | None = None) -> None:
        """The refusals that cost nothing, for a caller that can check before it downloads (the bot
        knows a Telegram file's size and type first): larger than `max_bytes` → `AudioTooLarge`; a
        type or name that is not audio → `NotAudio`. `analyse` checks the same again."""
        from services.audio_clip import looks_like_audio

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
        """Raises `AudioRejected` subclasses (`AudioTooLarge`, `NotAudio`, `CorruptAudio`,
        `SilentAudio`, `AudioTooShort`, `AudioTooLong`, `NoAudioStream`), `AudioNotAnalysable`,
        `AnalysisRateLimited` and `ProviderUnavailable`; their messages can be shown as they are."""
        from services.audio_clip import looks_like_audio  # PyAV: loaded on the first analysis

        stream = _as_stream(source)
        owned = stream is not source
        try:
            size = _size(stream)
            if size > self.max_bytes:
                raise AudioTooLarge(size, self.max_bytes)
            if (mime_type or file_name) and not looks_like_audio(mime_type, file_name):
                raise NotAudio()
            digest = await asyncio.to_thread(_sha256, stream)
            known = await self._remembered(digest, user_id)
            if known is not None:
                return known
            wait = await self._limiter.acquire(identity)
            if wait > 0:
                raise AnalysisRateLimited(MSG_RATE_LIMITED.format(_wait_text(wait)), wait)
            return await self._analyse(stream, digest, file_name, SongTags(_clean(title), _clean(performer)), user_id)
        finally:
            if owned:
                stream.close()

    async def _analyse(
        self, stream: BinaryIO, digest: str, file_name: str | None, given: SongTags, user_id: int | None
    ) -> AnalysisResult:
        info = await asyncio.to_thread(_probe, stream)
        tags = SongTags(given.title or info.tags.title, given.artist or info.tags.artist)
        if tags.names_a_song:
            found = await self._by_tags(tags, user_id)
            if found is not None:
                return found
        clip = await asyncio.to_thread(_clip, stream)
        if self._reccobeats is None:
            raise ProviderUnavailable(MSG_ANALYSIS_OFF)
        values = await self._reccobeats.analyse_audio(clip.data)
        self.analysed += 1
        name = tags.title or _stem(file_name) or DEFAULT_NAME
        row_values: dict[str, object] = {
            "name": name[:512],
            "artists": (tags.artist or "")[:1024],
            "duration_ms": round(info.duration * 1000),
            "features_source": FeatureSource.ANALYSIS.value,
            "search_key": "",
            **dict(values),
        }
        async with self._sessions.begin() as session:
            row = await TrackRepository(session).add_upload(row_values)
            track_id = row.id
        if self._cache is not None:
            remembered = {"track_id": track_id, "tags": [tags.title, tags.artist]}
            await self._cache.put(NS_UPLOAD, digest, remembered, self._remember)
        log.info("sent audio analysed: track %d (%.0f s, %s)", track_id, info.duration, info.codec)
        return await self._result("analysed", track_id, tags, user_id)

    async def _by_tags(self, tags: SongTags, user_id: int | None) -> AnalysisResult | None:
        resolution = await self._tracks.resolve(f"{tags.artist} - {tags.title}", user_id=user_id)
        if resolution.kind is not ResolutionKind.TRACK or not resolution.tracks:
            return None
        return await self._result("known", resolution.tracks[0].id, tags, user_id)

    async def _remembered(self, digest: str, user_id: int | None) -> AnalysisResult | None:
        if self._cache is None:
            return None
        cached = await self._cache.get(NS_UPLOAD, digest)
        if cached is MISS or not isinstance(cached, Mapping):
            return None
        title, artist = [*list(cached.get("tags") or []), None, None][:2]
        try:
            return await self._result("analysed", int(cached["track_id"]), SongTags(title, artist), user_id)
        except EncoreError:  # the row is gone: analyse again
            return None

    async def _result(
        self, kind: Literal["known", "analysed"], track_id: int, tags: SongTags, user_id: int | None
    ) -> AnalysisResult:
        card = await self._tracks.card(track_id, user_id=user_id)
        similar: list[Recommendation] = []
        note = None
        if self._recs is not None:
            try:
                similar = await self._recs.similar(track_id, self._similar, user_id=user_id)
            except (NoFeatures, ProviderUnavailable) as exc:
                note = exc.message or None
        return AnalysisResult(kind, card, tuple(similar), tags, note)


def _as_stream(source: AudioInput) -> BinaryIO:
    if isinstance(source, bytes):
        return io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        return open(source, "rb")  # closed by analyse()
    return source


def _size(stream: BinaryIO) -> int:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def _sha256(stream: BinaryIO) -> str:
    stream.seek(0)
    digest = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


def _probe(stream: BinaryIO) -> AudioInfo:
    from services.audio_clip import probe_audio

    stream.seek(0)
    return probe_audio(stream)


def _clip(stream: BinaryIO) -> AudioClip:
    from services.audio_clip import make_clip

    stream.seek(0)
    return make_clip(stream)


def _clean(text: str | None) -> str | None:
    text = " ".join((text or "").split())[:300]
    return text or None


def _stem(file_name: str | None) -> str | None:
    if not file_name:
        return None
    stem = PurePath(file_name.replace("\\", "/")).stem
    return _clean(stem.replace("_", " "))


def _wait_text(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"
