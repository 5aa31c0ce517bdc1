"""Spotify through spotipy: search (≤ 10 per page), one-track lookup, audio features while allowed.

How it differs from a bare `spotipy.Spotify`:
- Base URLs are settings: the API prefix (`SPOTIFY_API_URL`) and the token URL (`SPOTIFY_TOKEN_URL`).
- spotipy mounts a urllib3 `Retry` that sleeps for *any* Retry-After (Spotify sends hours) inside
  the calling thread, and on exhausting it raises a 429 without headers. Encore passes its own
  `requests.Session` (no retry adapter) and retries with `services.retry.RetryPolicy`:
  429/5xx/timeouts/refused connections with jittered exponential backoff, Retry-After honoured up
  to `max_retry_after`. A longer Retry-After makes the client fail fast (`ProviderUnavailable`)
  until that moment instead of sleeping.
- The token is cached in memory (`MemoryCacheHandler`), never in a `.cache` file.
- A 403 on audio features (Spotify closed them to new apps in Nov 2024) marks that endpoint
  unavailable for the life of the process; it is not called again.
- Every call runs in `asyncio.to_thread`; waits between retries are `asyncio.sleep`s.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.exceptions import SpotifyException, SpotifyOauthError

from db.models import AUDIO_FEATURE_COLUMNS
from services.errors import ProviderUnavailable
from services.retry import RetriesExhausted, RetryPolicy, TryAgain

log = logging.getLogger(__name__)

T = TypeVar("T")

SEARCH_PAGE_MAX = 10  # Spotify's cap since 2026
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0


@dataclass(frozen=True, slots=True)
class SpotifyTrack:
    id: str
    name: str
    artists: tuple[str, ...]
    album: str | None = None
    duration_ms: int | None = None
    explicit: bool | None = None
    popularity: int | None = None
    cover_url: str | None = None  # the album's image, about 300 px (https://i.scdn.co/image/…)
    year: int | None = None  # the album's release year

    @property
    def artists_joined(self) -> str:
        return ";".join(self.artists)


class _RedactHeaders(logging.Filter):
    """Drop spotipy records that carry secrets or user text.

    spotipy logs request headers (the bearer token, the Basic client secret) at DEBUG, and every
    HTTP error with the full query string (what the user typed) at ERROR; this adapter logs its
    own sanitised line for failures instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return False
        return not any(marker in message for marker in _SECRET_MARKERS)


_SECRET_MARKERS = ("Authorization", "Headers:", "Bearer ", "Basic ", "HTTP Error for", "RESULTS:")


def _install_redaction() -> None:
    for name in ("spotipy.client", "spotipy.oauth2"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactHeaders) for f in logger.filters):
            logger.addFilter(_RedactHeaders())


class _CredentialsManager(spotipy.SpotifyClientCredentials):
    """Client credentials with a configurable token URL, an in-memory token and the HTTP status kept."""

    def __init__(self, client_id: str, client_secret: str, token_url: str, timeout: float, session: Any) -> None:
        super().__init__(
            client_id=client_id,
            client_secret=client_secret,
            requests_session=session,
            requests_timeout=timeout,
            cache_handler=MemoryCacheHandler(),
        )
        self.OAUTH_TOKEN_URL = token_url
        self._lock = threading.Lock()

    def get_access_token(self, as_dict: bool = False, check_cache: bool = True) -> Any:
        with self._lock:  # one token request at a time, not one per worker thread
            return super().get_access_token(as_dict=as_dict, check_cache=check_cache)

    def forget_token(self) -> None:
        self.cache_handler.save_token_to_cache(None)

    def _handle_oauth_error(self, http_error: requests.HTTPError) -> None:
        try:
            super()._handle_oauth_error(http_error)
        except SpotifyOauthError as exc:
            response = http_error.response
            exc.http_status = response.status_code if response is not None else None
            exc.headers = response.headers if response is not None else {}
            raise


class SpotifyClient:
    """Async facade over spotipy with Encore's retry, timeout and degradation rules."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        api_url: str = "https://api.spotify.com/v1/",
        token_url: str = "https://accounts.spotify.com/api/token",
        timeout: float = 5.0,
        max_retries: int = 3,
        max_retry_after: float = 10.0,
        *,
        market: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._retry = RetryPolicy(max(0, max_retries), max_retry_after, BACKOFF_BASE, BACKOFF_MAX)
        self._sleep = sleep
        self._market = market
        self._clock = clock
        self._blocked_until = 0.0
        self._disabled_reason: str | None = None
        self.audio_features_available = True
        _install_redaction()
        self._session = requests.Session()  # no urllib3 Retry: we retry ourselves
        self._auth = _CredentialsManager(client_id, client_secret, token_url, timeout, self._session)
        self._sp = spotipy.Spotify(
            auth_manager=self._auth,
            requests_session=self._session,
            requests_timeout=timeout,
            retries=0,
            status_retries=0,
        )
        self._sp.prefix = api_url if api_url.endswith("/") else api_url + "/"

    @property
    def available(self) -> bool:
        return self._disabled_reason is None and self._clock() >= self._blocked_until

    def close(self) -> None:
        self._session.close()

    # -- public API -------------------------------------------------------------------------
    async def search_tracks(self, query: str, limit: int = 10, offset: int = 0) -> list[SpotifyTrack]:
        """One page of track search results (at most 10). Raises `ProviderUnavailable`."""
        query = query.strip()
        if not query:
            return []
        limit = max(1, min(limit, SEARCH_PAGE_MAX))
        try:
            data = await self._call(
                "search",
                lambda: self._sp.search(q=query, limit=limit, offset=offset, type="track", market=self._market),
            )
        except SpotifyException as exc:
            if exc.http_status in (400, 404):  # a query Spotify refuses (bad filter, offset past the end)
                log.info("spotify search refused (%s)", exc.http_status)
                return []
            raise self._unavailable("search", exc) from exc
        items = ((data or {}).get("tracks") or {}).get("items") or []
        return [t for t in (_parse_track(item) for item in items) if t is not None]

    async def track(self, spotify_id: str) -> SpotifyTrack | None:
        """One track by id; None when Spotify does not know it. Raises `ProviderUnavailable`."""
        try:
            data = await self._call("track", lambda: self._sp.track(spotify_id, market=self._market))
        except SpotifyException as exc:
            if exc.http_status in (400, 404):
                return None
            raise self._unavailable("track", exc) from exc
        return _parse_track(data) if data else None

    async def audio_features(self, spotify_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """Features by id for the ids Spotify knows; {} when the endpoint is closed to this app.

        Raises `ProviderUnavailable` on transient failures (the caller tries the next provider).
        """
        ids = [i for i in dict.fromkeys(spotify_ids) if i][:100]
        if not ids or not self.audio_features_available:
            return {}
        try:
            data = await self._call("audio-features", lambda: self._sp._get("audio-features", ids=",".join(ids)))
        except SpotifyException as exc:
            if exc.http_status == 403:
                self.audio_features_available = False
                log.warning("spotify audio features answered 403: endpoint marked unavailable for this app")
                return {}
            if exc.http_status in (400, 404):
                return {}
            raise self._unavailable("audio-features", exc) from exc
        out: dict[str, dict[str, float]] = {}
        for item in (data or {}).get("audio_features") or []:
            if not isinstance(item, Mapping) or not item.get("id"):
                continue
            features = features_from_mapping(item)
            if features is not None:
                out[str(item["id"])] = features
        return out

    # -- plumbing ---------------------------------------------------------------------------
    def _unavailable(self, what: str, exc: BaseException) -> ProviderUnavailable:
        log.warning("spotify %s failed: %s", what, _describe(exc))
        return ProviderUnavailable(f"Spotify {what} is unavailable right now")

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run a spotipy call in a thread under the retry policy; non-retryable `SpotifyException`s
        pass through. A 401 fetches a new token once, without counting as an attempt."""
        if self._disabled_reason:
            raise ProviderUnavailable(f"Spotify is disabled: {self._disabled_reason}")
        if self._clock() < self._blocked_until:
            raise ProviderUnavailable("Spotify asked us to wait; not calling it yet")
        refreshed = False

        async def attempt() -> T:
            nonlocal refreshed
            while True:
                try:
                    return await asyncio.to_thread(fn)
                except SpotifyException as exc:
                    if exc.http_status == 401 and not refreshed:  # token expired or revoked: a new one, once
                        refreshed = True
                        self._auth.forget_token()
                        continue
                    if exc.http_status not in RETRY_STATUSES:
                        raise
                    raise TryAgain(_describe(exc), _retry_after(exc.headers)) from exc
                except SpotifyOauthError as exc:
                    if getattr(exc, "http_status", None) in (400, 401, 403):
                        self._disabled_reason = f"token request refused ({exc.error})"
                        log.error("spotify token request refused (%s): check SPOTIFY_CLIENT_ID/SECRET", exc.error)
                        raise ProviderUnavailable("Spotify credentials were refused") from exc
                    raise TryAgain(_describe(exc), _retry_after(getattr(exc, "headers", None))) from exc
                except (requests.RequestException, OSError, ValueError) as exc:
                    raise TryAgain(_describe(exc)) from exc

        try:
            return await self._retry.run(f"spotify {what}", attempt, sleep=self._sleep)
        except RetriesExhausted as exc:
            if exc.too_long and exc.retry_after is not None:
                self._blocked_until = max(self._blocked_until, self._clock() + exc.retry_after)
                log.warning("spotify: failing fast for %.0fs, as it asked", exc.retry_after)
            raise ProviderUnavailable(f"Spotify {what} is unavailable right now") from exc


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "http_status", None)
    return f"{type(exc).__name__}({status})" if status else type(exc).__name__


def _parse_track(item: Any) -> SpotifyTrack | None:
    if not isinstance(item, Mapping) or not item.get("id") or not item.get("name"):
        return None
    artists = tuple(str(a["name"]) for a in item.get("artists") or [] if isinstance(a, Mapping) and a.get("name"))
    album = item.get("album")
    return SpotifyTrack(
        id=str(item["id"]),
        name=str(item["name"]),
        artists=artists,
        album=str(album["name"]) if isinstance(album, Mapping) and album.get("name") else None,
        duration_ms=_int(item.get("duration_ms")),
        explicit=bool(item["explicit"]) if item.get("explicit") is not None else None,
        popularity=_int(item.get("popularity")),
        cover_url=_cover(album),
        year=_year(album.get("release_date") if isinstance(album, Mapping) else None),
    )


COVER_SIZE = 300  # px: enough for a card's small link preview and an inline thumbnail


def _cover(album: Any) -> str | None:
    """The album image closest above `COVER_SIZE` (Spotify lists 640, 300 and 64 px), else the largest."""
    images = album.get("images") if isinstance(album, Mapping) else None
    sized: list[tuple[int, str]] = []
    for image in images if isinstance(images, list) else ():
        url = image.get("url") if isinstance(image, Mapping) else None
        if isinstance(url, str) and url.startswith("https://") and len(url) <= 512:
            sized.append((_int(image.get("width")) or 0, url))
    if not sized:
        return None
    big_enough = [s for s in sized if s[0] >= COVER_SIZE]
    return min(big_enough)[1] if big_enough else max(sized)[1]


def _year(release_date: Any) -> int | None:
    """ "1975", "1975-10", "1975-10-31" → 1975."""
    if isinstance(release_date, str) and len(release_date) >= 4 and release_date[:4].isdigit():
        return int(release_date[:4]) or None
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def features_from_mapping(item: Mapping[str, Any]) -> dict[str, float] | None:
    """The 12 audio feature columns from a provider answer; None when any is missing."""
    out: dict[str, float] = {}
    for column in AUDIO_FEATURE_COLUMNS:
        value = item.get(column)
        if value is None:
            return None
        try:
            out[column] = float(value)
        except (TypeError, ValueError):
            return None
    return out
