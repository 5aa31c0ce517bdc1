"""Deezer's public API (keyless): search, track and album lookups, ISRC lookups, 30-second previews.

Why aiohttp and pydantic rather than `deezer-python`'s async client: that client hard-codes its
base URL in `__init__`, raises on every error inside a 200 body without telling quota apart from
"no data", has no timeouts, retries or rate limiting, builds advanced queries without escaping
quotes, returns lazily-fetched mutable resources, and brings httpx as a second HTTP stack. Encore
needs all of that control, and aiohttp is already its HTTP client.

Wire format and failures:
- Errors come inside HTTP 200 bodies: ``{"error": {"type": "Exception", "message": "Quota limit
  exceeded", "code": 4}}``. Code 4 (quota) pauses every caller for `quota_backoff` seconds and
  retries; 700 (service busy) retries; 800 ("no data") and the bad-query codes (100, 500, 501,
  600) mean nothing found (None / empty); other codes are failures.
- HTTP 429 honours Retry-After up to `max_retry_after`; a longer one makes the client fail fast
  (`ProviderUnavailable`) until that moment instead of sleeping. 5xx, timeouts and refused
  connections are retried with jittered exponential backoff, at most `max_retries` times, then
  `ProviderUnavailable` (`services.retry.RetryPolicy`).
- The quota is 50 requests per 5 s per IP: one `RollingWindowLimiter` per client (pass
  `limiter=` to share one between clients) keeps every call inside it.

Caching (`CacheService`, table `cache_entries`):
- Tracks (`dz_track`), ISRC → id (`dz_isrc`), albums (`dz_album`), searches (`dz_search`) and
  short links (`dz_short`) are cached long, **without preview URLs**.
- Preview URLs are signed and expire (``hdnea=exp=<unix time>~acl=…~hmac=…``). They live in
  short-lived entries (`dz_preview` per track, `dz_search_pv` per search) whose TTL is
  `preview_ttl` or the URL's own expiry less a margin, whichever comes first. A track read from
  the long cache comes back without a preview; `preview_url(id)` always gives a fresh one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.cache import MISS, CacheService
from services.errors import InvalidInput, ProviderUnavailable, UnsupportedInput
from services.ratelimit import RollingWindowLimiter
from services.resolver import DEEZER_SHORT_HOSTS, InputKind, parse_input
from services.retry import RetriesExhausted, RetryPolicy, TryAgain

log = logging.getLogger(__name__)

NS_TRACK = "dz_track"
NS_ISRC = "dz_isrc"
NS_ALBUM = "dz_album"
NS_SEARCH = "dz_search"
NS_SEARCH_PREVIEWS = "dz_search_pv"
NS_PREVIEW = "dz_preview"
NS_SHORT = "dz_short"

QUOTA_CODE = 4
BUSY_CODE = 700
NO_DATA_CODES = frozenset({800})
BAD_QUERY_CODES = frozenset({100, 500, 501, 600})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
SEARCH_LIMIT_MAX = 50
BACKOFF_BASE = 0.25
BACKOFF_MAX = 4.0
MAX_REDIRECTS = 5
PREVIEW_MARGIN = timedelta(seconds=60)  # a URL this close to its expiry counts as expired
ISRC_RE = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$")
_EXP_RE = re.compile(r"(?:^|[?&~;=])exp=(\d{1,12})")


def _utcnow() -> datetime:
    return datetime.now(UTC)


# -- DTOs ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeezerTrack:
    """A Deezer track. `detailed` is True when it came from /track (ISRC, BPM, gain, contributors,
    release date are known); search results carry less. `preview_url` is set only when it is
    fresh (see `preview_url()` on the client)."""

    id: int
    title: str
    artists: tuple[str, ...]
    album: str | None = None
    album_id: int | None = None
    duration_ms: int | None = None
    explicit: bool | None = None
    isrc: str | None = None
    bpm: float | None = None
    gain: float | None = None
    release_date: str | None = None  # "YYYY-MM-DD"
    cover_url: str | None = None  # 500×500
    thumb_url: str | None = None  # 250×250
    rank: int | None = None
    detailed: bool = False
    preview_url: str | None = None
    preview_expires_at: datetime | None = None

    @property
    def link(self) -> str:
        return f"https://www.deezer.com/track/{self.id}"

    @property
    def year(self) -> int | None:
        if self.release_date and len(self.release_date) >= 4 and self.release_date[:4].isdigit():
            year = int(self.release_date[:4])
            return year if year > 0 else None
        return None

    @property
    def artist_line(self) -> str:
        return ", ".join(self.artists) if self.artists else "Unknown artist"

    def without_preview(self) -> DeezerTrack:
        return replace(self, preview_url=None, preview_expires_at=None)

    def _to_cache(self) -> dict[str, Any]:
        data = asdict(self.without_preview())
        data.pop("preview_url")
        data.pop("preview_expires_at")
        data["artists"] = list(self.artists)
        return data

    @classmethod
    def _from_cache(cls, data: Mapping[str, Any]) -> DeezerTrack:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["artists"] = tuple(known.get("artists") or ())
        return cls(**known)


@dataclass(frozen=True, slots=True)
class DeezerAlbum:
    id: int
    title: str
    genres: tuple[str, ...] = ()
    artist: str | None = None
    release_date: str | None = None
    label: str | None = None
    cover_url: str | None = None
    record_type: str | None = None

    def _to_cache(self) -> dict[str, Any]:
        data = asdict(self)
        data["genres"] = list(self.genres)
        return data

    @classmethod
    def _from_cache(cls, data: Mapping[str, Any]) -> DeezerAlbum:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["genres"] = tuple(known.get("genres") or ())
        return cls(**known)


@dataclass(frozen=True, slots=True)
class _Fetched:
    data: Any  # the JSON body; None for "no data"


# -- wire models (pydantic) ---------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _WireArtist(_Wire):
    id: int | None = None
    name: str = ""
    role: str | None = None


class _WireGenre(_Wire):
    id: int | None = None
    name: str = ""


class _WireGenres(_Wire):
    data: list[_WireGenre] = Field(default_factory=list)


class _WireAlbum(_Wire):
    id: int | None = None
    title: str | None = None
    cover_medium: str | None = None
    cover_big: str | None = None
    release_date: str | None = None
    label: str | None = None
    record_type: str | None = None
    artist: _WireArtist | None = None
    genres: _WireGenres | None = None


class _WireTrack(_Wire):
    id: int
    title: str
    duration: int | None = None
    explicit_lyrics: bool | None = None
    isrc: str | None = None
    bpm: float | None = None
    gain: float | None = None
    preview: str | None = None
    release_date: str | None = None
    rank: int | None = None
    artist: _WireArtist | None = None
    contributors: list[_WireArtist] | None = None
    album: _WireAlbum | None = None

    @field_validator("preview", "isrc", "release_date", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class _WireTrackList(_Wire):
    data: list[_WireTrack] = Field(default_factory=list)


def _track_from_wire(wire: _WireTrack, *, detailed: bool, now: datetime) -> DeezerTrack:
    names: list[str] = []
    seen: set[str] = set()
    for artist in ([wire.artist] if wire.artist else []) + list(wire.contributors or []):
        name = artist.name.strip()
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            names.append(name)
    album = wire.album
    release = wire.release_date or (album.release_date if album else None)
    if release and release.startswith("0000"):
        release = None
    preview = wire.preview if wire.preview and wire.preview.startswith(("http://", "https://")) else None
    expires = preview_expiry(preview) if preview else None
    if preview and expires is not None and expires - PREVIEW_MARGIN <= now:
        preview, expires = None, None
    isrc = wire.isrc.strip().upper() if wire.isrc else None
    return DeezerTrack(
        id=wire.id,
        title=wire.title,
        artists=tuple(names),
        album=album.title if album and album.title else None,
        album_id=album.id if album else None,
        duration_ms=wire.duration * 1000 if wire.duration else None,
        explicit=wire.explicit_lyrics,
        isrc=isrc if isrc and ISRC_RE.match(isrc) else None,
        bpm=wire.bpm if wire.bpm else None,  # Deezer answers 0 when it does not know
        gain=wire.gain,
        release_date=release,
        cover_url=album.cover_big if album else None,
        thumb_url=album.cover_medium if album else None,
        rank=wire.rank,
        detailed=detailed,
        preview_url=preview,
        preview_expires_at=expires,
    )


def preview_expiry(url: str) -> datetime | None:
    """When a signed preview URL expires (its `exp=<unix time>` token), or None if unsigned."""
    try:
        query = unquote(urlsplit(url).query)
    except ValueError:
        return None
    match = _EXP_RE.search(query)
    if not match:
        return None
    try:
        return datetime.fromtimestamp(int(match.group(1)), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def advanced_query(artist: str, title: str) -> str:
    """`artist:"…" track:"…"`. Deezer has no escape for a double quote inside a value, so quotes
    (and the backslash) become spaces rather than ending the value early."""

    def clean(value: str) -> str:
        return " ".join(value.replace('"', " ").replace("\\", " ").split())

    parts = [f'{key}:"{clean(value)}"' for key, value in (("artist", artist), ("track", title)) if clean(value)]
    return " ".join(parts)


def _norm_key(text: str) -> str:
    return " ".join(text.split()).casefold()


# -- client -------------------------------------------------------------------------------------


class DeezerClient:
    """Async Deezer API client with a shared quota limiter, retries and a DB cache."""

    def __init__(
        self,
        cache: CacheService | None,
        api_url: str = "https://api.deezer.com/",
        *,
        timeout: float = 5.0,
        max_retries: int = 3,
        max_retry_after: float = 10.0,
        rate_limit: int = 50,
        rate_period: float = 5.0,
        quota_backoff: float | None = None,
        limiter: RollingWindowLimiter | None = None,
        short_link_url: str | None = None,
        track_ttl: timedelta = timedelta(days=30),
        search_ttl: timedelta = timedelta(days=1),
        negative_ttl: timedelta = timedelta(days=1),
        preview_ttl: timedelta = timedelta(minutes=15),
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._cache = cache
        self._api_url = api_url if api_url.endswith("/") else api_url + "/"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = RetryPolicy(max(0, max_retries), max_retry_after, BACKOFF_BASE, BACKOFF_MAX)
        self._limiter = limiter or RollingWindowLimiter(rate_limit, rate_period, clock=monotonic, sleep=sleep)
        self._quota_backoff = self._limiter.period if quota_backoff is None else quota_backoff
        self._short_link_url = (
            (short_link_url if short_link_url.endswith("/") else short_link_url + "/") if short_link_url else None
        )
        self._track_ttl = track_ttl
        self._search_ttl = search_ttl
        self._negative_ttl = negative_ttl
        self._preview_ttl = preview_ttl
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._blocked_until = 0.0
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[str, asyncio.Future[_Fetched]] = {}
        self.calls = 0  # HTTP requests sent to the API (for logs and tests)

    @property
    def limiter(self) -> RollingWindowLimiter:
        return self._limiter

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers={"Accept": "application/json"})
        return self._session

    # -- public API -----------------------------------------------------------------------------
    async def search(self, query: str, *, limit: int = 10) -> tuple[DeezerTrack, ...]:
        """Tracks for free text (`GET /search?q=`), best first. Empty when nothing matches."""
        query = " ".join(query.split())
        if not query:
            return ()
        return await self._search("search", query, limit)

    async def search_track(self, artist: str, title: str, *, limit: int = 10) -> tuple[DeezerTrack, ...]:
        """Tracks by artist and title (`GET /search/track?q=artist:"…" track:"…"`)."""
        query = advanced_query(artist, title)
        if not query:
            return ()
        return await self._search("search/track", query, limit)

    async def track(self, deezer_id: int) -> DeezerTrack | None:
        """The full track (`GET /track/{id}`); None when Deezer has no such track."""
        if deezer_id <= 0:
            return None
        key = str(deezer_id)
        cached = await self._cache_get(NS_TRACK, key)
        if cached is not MISS:
            if not cached:
                return None
            track = DeezerTrack._from_cache(cached)
            preview = await self._cache_get(NS_PREVIEW, key)
            if isinstance(preview, dict) and preview.get("url"):
                track = self._attach_preview(track, str(preview["url"]))
            return track
        return await self._fetch_track(f"track/{deezer_id}", key)

    async def track_by_isrc(self, isrc: str) -> DeezerTrack | None:
        """The track for an ISRC (`GET /track/isrc:{ISRC}`); None when unknown or not an ISRC."""
        isrc = isrc.strip().upper()
        if not ISRC_RE.match(isrc):
            return None
        cached = await self._cache_get(NS_ISRC, isrc)
        if cached is not MISS:
            return await self.track(int(cached)) if cached else None
        track = await self._fetch_track(f"track/isrc:{isrc}", None)
        ttl = self._track_ttl if track else self._negative_ttl
        await self._cache_put(NS_ISRC, isrc, track.id if track else None, ttl)
        return track

    async def album(self, album_id: int) -> DeezerAlbum | None:
        """An album with its genres (`GET /album/{id}`); None when unknown."""
        if album_id <= 0:
            return None
        key = str(album_id)
        cached = await self._cache_get(NS_ALBUM, key)
        if cached is not MISS:
            return DeezerAlbum._from_cache(cached) if cached else None
        fetched = await self._get(f"album/{album_id}")
        album = None
        if fetched.data is not None:
            try:
                wire = _WireAlbum.model_validate(fetched.data)
            except ValidationError as exc:
                raise self._bad_answer("album", exc) from exc
            if wire.id is not None:
                album = DeezerAlbum(
                    id=wire.id,
                    title=wire.title or "",
                    genres=tuple(g.name for g in (wire.genres.data if wire.genres else []) if g.name),
                    artist=wire.artist.name if wire.artist and wire.artist.name else None,
                    release_date=wire.release_date,
                    label=wire.label,
                    cover_url=wire.cover_big,
                    record_type=wire.record_type,
                )
        await self._cache_put(
            NS_ALBUM, key, album._to_cache() if album else None, self._track_ttl if album else self._negative_ttl
        )
        return album

    async def preview_url(self, deezer_id: int) -> str | None:
        """A fresh 30-second preview URL (signed, short-lived), or None when the track has none."""
        key = str(deezer_id)
        cached = await self._cache_get(NS_PREVIEW, key)
        if isinstance(cached, dict):
            url = cached.get("url")
            if not url:
                return None
            expires = preview_expiry(str(url))
            if expires is None or expires - PREVIEW_MARGIN > self._clock():
                return str(url)
        track = await self._fetch_track(f"track/{deezer_id}", key)
        return track.preview_url if track else None

    async def remember_preview(self, track: DeezerTrack) -> None:
        """Keep the fresh preview URL a search answer carried, so `preview_url(track.id)` needs no request."""
        if track.preview_url:
            await self._store_preview(str(track.id), track)

    async def download_preview(self, deezer_id: int, *, max_bytes: int = 5 * 1024 * 1024) -> bytes | None:
        """The preview MP3 itself (for audio analysis). A URL refused as expired (403/410) is
        refreshed once. None when the track has no preview; `ProviderUnavailable` on failures."""
        for attempt in range(2):
            url = await self.preview_url(deezer_id) if attempt == 0 else await self._refresh_preview(deezer_id)
            if url is None:
                return None
            try:
                async with self._http().get(url, headers={"Accept": "audio/*"}) as resp:
                    if resp.status in (403, 410) and attempt == 0:
                        log.info("deezer preview of %s refused (HTTP %s): refreshing its URL", deezer_id, resp.status)
                        continue
                    if resp.status != 200:
                        raise ProviderUnavailable(f"Deezer's preview answered HTTP {resp.status}")
                    if resp.content_length is not None and resp.content_length > max_bytes:
                        raise ProviderUnavailable("Deezer's preview is larger than expected")
                    data = await resp.content.read(max_bytes + 1)
                    if len(data) > max_bytes:
                        raise ProviderUnavailable("Deezer's preview is larger than expected")
                    return data
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("deezer preview download failed (%s)", type(exc).__name__)
                raise ProviderUnavailable("Deezer's preview could not be downloaded") from exc
        raise ProviderUnavailable("Deezer's preview URL keeps being refused")

    async def resolve_short_link(self, url: str) -> int | None:
        """The track id behind a deezer.page.link / link.deezer.com short link, by following its
        redirects (without fetching the final deezer.com page). None when it leads to no track;
        `UnsupportedInput` when it leads to an album, playlist or artist; `InvalidInput` when `url`
        is not a Deezer short link."""
        parsed = parse_input(url)
        if parsed.kind is not InputKind.DEEZER_SHORT or parsed.short_url is None:
            raise InvalidInput("That is not a Deezer short link.")
        start = parsed.short_url
        cached = await self._cache_get(NS_SHORT, start)
        if cached is not MISS:
            if isinstance(cached, dict) and cached.get("unsupported"):
                raise UnsupportedInput(str(cached.get("message") or ""), str(cached["unsupported"]))
            return int(cached) if cached else None
        current = start
        for _ in range(MAX_REDIRECTS):
            location = await self._follow(current)
            if location is None:
                break
            target = parse_input(urljoin(current, location))
            if target.kind is InputKind.DEEZER_TRACK and target.deezer_id is not None:
                await self._cache_put(NS_SHORT, start, target.deezer_id, self._track_ttl)
                return target.deezer_id
            if target.kind is InputKind.DEEZER_SHORT and target.short_url is not None:
                current = target.short_url
                continue
            if target.kind is InputKind.UNSUPPORTED and target.unsupported not in (None, "link"):
                message = target.message or ""
                await self._cache_put(
                    NS_SHORT, start, {"unsupported": target.unsupported, "message": message}, self._track_ttl
                )
                raise UnsupportedInput(message, target.unsupported or "link")
            break
        await self._cache_put(NS_SHORT, start, None, self._negative_ttl)
        return None

    # -- internals ------------------------------------------------------------------------------
    async def _search(self, path: str, query: str, limit: int) -> tuple[DeezerTrack, ...]:
        limit = max(1, min(SEARCH_LIMIT_MAX, limit))
        key = f"{path}:{limit}:{_norm_key(query)}"
        cached = await self._cache_get(NS_SEARCH, key)
        if cached is not MISS:
            tracks = tuple(DeezerTrack._from_cache(t) for t in cached or ())
            previews = await self._cache_get(NS_SEARCH_PREVIEWS, key)
            if isinstance(previews, dict):
                tracks = tuple(
                    self._attach_preview(t, str(previews[str(t.id)])) if previews.get(str(t.id)) else t for t in tracks
                )
            return tracks
        fetched = await self._get(path, {"q": query, "limit": str(limit)})
        tracks = ()
        if fetched.data is not None:
            try:
                wire = _WireTrackList.model_validate(fetched.data)
            except ValidationError as exc:
                raise self._bad_answer("search", exc) from exc
            now = self._clock()
            tracks = tuple(_track_from_wire(t, detailed=False, now=now) for t in wire.data)
        await self._cache_put(NS_SEARCH, key, [t._to_cache() for t in tracks], self._search_ttl)
        with_previews = [t for t in tracks if t.preview_url]
        if with_previews:
            ttl = min(self._preview_ttl_for(t) for t in with_previews)
            if ttl > timedelta(0):
                await self._cache_put(NS_SEARCH_PREVIEWS, key, {str(t.id): t.preview_url for t in with_previews}, ttl)
        return tracks

    async def _fetch_track(self, path: str, key: str | None) -> DeezerTrack | None:
        fetched = await self._get(path)
        track = None
        if fetched.data is not None:
            try:
                track = _track_from_wire(_WireTrack.model_validate(fetched.data), detailed=True, now=self._clock())
            except ValidationError as exc:
                raise self._bad_answer("track", exc) from exc
        key = str(track.id) if track else key
        if key is not None:
            await self._cache_put(
                NS_TRACK, key, track._to_cache() if track else None, self._track_ttl if track else self._negative_ttl
            )
            await self._store_preview(key, track)
        return track

    async def _refresh_preview(self, deezer_id: int) -> str | None:
        track = await self._fetch_track(f"track/{deezer_id}", str(deezer_id))
        return track.preview_url if track else None

    async def _store_preview(self, key: str, track: DeezerTrack | None) -> None:
        if track is None:
            return
        if track.preview_url is None:
            await self._cache_put(NS_PREVIEW, key, {"url": None}, self._preview_ttl)
            return
        ttl = self._preview_ttl_for(track)
        if ttl > timedelta(0):
            await self._cache_put(NS_PREVIEW, key, {"url": track.preview_url}, ttl)

    def _preview_ttl_for(self, track: DeezerTrack) -> timedelta:
        if track.preview_expires_at is None:
            return self._preview_ttl
        return min(self._preview_ttl, track.preview_expires_at - PREVIEW_MARGIN - self._clock())

    def _attach_preview(self, track: DeezerTrack, url: str) -> DeezerTrack:
        expires = preview_expiry(url)
        if expires is not None and expires - PREVIEW_MARGIN <= self._clock():
            return track
        return replace(track, preview_url=url, preview_expires_at=expires)

    async def _cache_get(self, namespace: str, key: str) -> Any:
        return MISS if self._cache is None else await self._cache.get(namespace, key)

    async def _cache_put(self, namespace: str, key: str, value: Any, ttl: timedelta) -> None:
        if self._cache is not None:
            await self._cache.put(namespace, key, value, ttl)

    @staticmethod
    def _bad_answer(what: str, exc: ValidationError) -> ProviderUnavailable:
        log.warning("deezer %s answer did not parse (%d errors)", what, exc.error_count())
        return ProviderUnavailable("Deezer answered something unexpected")

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> _Fetched:
        """One API call, shared by concurrent identical requests."""
        flight = path + "?" + "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
        task = self._inflight.get(flight)
        if task is None:
            task = asyncio.ensure_future(self._get_with_retries(path, dict(params or {})))
            self._inflight[flight] = task
            task.add_done_callback(lambda _: self._inflight.pop(flight, None))
        return await asyncio.shield(task)

    async def _get_with_retries(self, path: str, params: dict[str, str]) -> _Fetched:
        """One API call under the retry policy. When Deezer says how long to wait (quota error,
        Retry-After), the wait goes through the shared limiter (`pause`), so every caller holds
        back, not just this one; the policy then does not sleep it again (`paced`)."""
        url = self._api_url + path
        what = "deezer " + path.split("/")[0]  # never log the query: it is what the user typed

        async def attempt() -> _Fetched:
            if self._monotonic() < self._blocked_until:
                raise ProviderUnavailable("Deezer asked us to wait; try again later")
            await self._limiter.acquire()
            self.calls += 1
            try:
                async with self._http().get(url, params=params) as resp:
                    if resp.status == 200:
                        return self._answer(what, await resp.json(content_type=None))
                    if resp.status == 404:
                        return _Fetched(None)
                    if resp.status not in RETRY_STATUSES:
                        log.warning("%s: HTTP %s", what, resp.status)
                        raise ProviderUnavailable(f"Deezer answered HTTP {resp.status}")
                    raise self._try_again(f"HTTP {resp.status}", _float(resp.headers.get("Retry-After")))
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise TryAgain(type(exc).__name__) from exc

        try:
            return await self._retry.run(what, attempt, sleep=self._sleep)
        except RetriesExhausted as exc:
            if exc.too_long and exc.retry_after is not None:
                self._blocked_until = max(self._blocked_until, self._monotonic() + exc.retry_after)
                log.warning("deezer: failing fast for %.0fs, as it asked", exc.retry_after)
                raise ProviderUnavailable("Deezer is rate-limiting us; try again later") from exc
            raise ProviderUnavailable("Deezer is unavailable right now") from exc

    def _answer(self, what: str, body: Any) -> _Fetched:
        """A 200 body: the data, None for "no data", or Deezer's error code as an exception."""
        error = body.get("error") if isinstance(body, dict) else None
        if not error:
            return _Fetched(body)
        code = _int(error.get("code")) if isinstance(error, dict) else None
        if code in NO_DATA_CODES:
            return _Fetched(None)
        if code in BAD_QUERY_CODES:
            log.info("%s: query refused (code %s)", what, code)
            return _Fetched(None)
        if code == QUOTA_CODE:
            raise self._try_again("quota exceeded (code 4)", self._quota_backoff)
        if code == BUSY_CODE:
            raise self._try_again("service busy (code 700)", None)
        log.warning("%s: error code %s", what, code)
        raise ProviderUnavailable("Deezer refused the request")

    def _try_again(self, failure: str, wait: float | None) -> TryAgain:
        """A retryable failure. A wait Deezer asked for pauses the shared limiter, so every caller
        holds back (the policy does not sleep it again); without one the policy backs off."""
        if wait is None:
            return TryAgain(failure)
        self._limiter.pause(wait)
        return TryAgain(failure, wait, paced=True)

    async def _follow(self, url: str) -> str | None:
        """One hop of a short link: its Location header, or None when it does not redirect."""
        parts = urlsplit(url)
        if (parts.hostname or "").lower() not in DEEZER_SHORT_HOSTS:
            return None  # never fetch anything but Deezer's short-link hosts
        fetch = f"{self._short_link_url}{parts.hostname}{parts.path}" if self._short_link_url else url
        try:
            async with self._http().get(fetch, allow_redirects=False, headers={"Accept": "text/html"}) as resp:
                if resp.status in REDIRECT_STATUSES:
                    return resp.headers.get("Location")
                if resp.status in (404, 410) or resp.status < 500:
                    return None
                raise ProviderUnavailable(f"Deezer's short link answered HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("deezer short link unreachable (%s)", type(exc).__name__)
            raise ProviderUnavailable("Deezer's short link could not be opened") from exc


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
