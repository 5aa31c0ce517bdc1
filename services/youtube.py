"""YouTube through google-api-python-client: the video for a track, and video titles for links.

The search quota is about 100 calls a day, so every answer (a video, or "no video") is cached in
the database for `cache_days` (30): one track costs at most one search call per 30 days. When
there is no key, the quota is exhausted (then nothing is called until the next quota reset,
midnight Pacific time), or the API fails, the answer is a YouTube search URL instead.

The client is built with the bundled discovery document (`static_discovery=True`) and
`client_options={"api_endpoint": api_url}`, so `YOUTUBE_API_URL` can point at a proxy or a
test server. Calls run in `asyncio.to_thread`, each with its own `httplib2.Http(timeout=…)`
(httplib2 objects are not thread-safe).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo

import httplib2
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from services.cache import MISS, CacheService
from services.dto import TrackInfo, YouTubeLink
from services.textnorm import normalize

log = logging.getLogger(__name__)

NS_SEARCH = "yt_search"
NS_VIDEO = "yt_video"
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded", "rateLimitExceeded", "userRateLimitExceeded"})
KEY_REASONS = frozenset({"keyInvalid", "keyExpired", "accessNotConfigured", "forbidden", "ipRefererBlocked"})
ERROR_BACKOFF = timedelta(minutes=2)
PACIFIC = "America/Los_Angeles"


def search_url(text: str) -> str:
    return "https://www.youtube.com/results?search_query=" + quote_plus(text)


def watch_url(video_id: str) -> str:
    return f"https://www.youtube.com/watch?v={video_id}"


def next_quota_reset(now: datetime) -> datetime:
    """YouTube quotas reset at midnight Pacific time."""
    try:
        tz: Any = ZoneInfo(PACIFIC)
    except Exception:  # no tz database: Pacific standard time is close enough
        tz = UTC
        now = now - timedelta(hours=8)
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        return midnight + timedelta(hours=8)
    local = now.astimezone(tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz) + timedelta(days=1)
    return midnight.astimezone(UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class YouTubeService:
    def __init__(
        self,
        cache: CacheService,
        api_key: str | None,
        api_url: str = "https://www.googleapis.com/",
        *,
        timeout: float = 5.0,
        cache_days: int = 30,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._cache = cache
        self._key = api_key or None
        self._api_url = api_url if api_url.endswith("/") else api_url + "/"
        self._timeout = timeout
        self._ttl = timedelta(days=cache_days)
        self._clock = clock
        self._service: Any = None
        self._build_lock = threading.Lock()
        self._paused_until: datetime | None = None
        self._disabled = False
        self._inflight: dict[str, asyncio.Future[YouTubeLink]] = {}
        self.calls = 0  # API calls made (searches and video lookups), for logs and tests

    @property
    def enabled(self) -> bool:
        return self._key is not None and not self._disabled

    def _can_call(self) -> bool:
        if not self.enabled:
            return False
        return self._paused_until is None or self._clock() >= self._paused_until

    # -- public API -------------------------------------------------------------------------
    async def link(self, track: TrackInfo) -> YouTubeLink:
        """The video for a track (cached 30 days), or a search URL. Never raises.

        Concurrent requests for the same track share one lookup, so they cost one call.
        """
        key = track.spotify_id or normalize(f"{track.artist_line} {track.name}")
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._link(track, key))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _link(self, track: TrackInfo, key: str) -> YouTubeLink:
        query = f"{track.artist_line} {track.name}"
        fallback = YouTubeLink(url=track.youtube_search_url, is_search=True)
        cached = await self._cache.get(NS_SEARCH, key)
        if cached is not MISS:
            return _link_from_cache(cached, fallback)
        if not self._can_call():
            return fallback
        try:
            response = await self._execute(
                lambda s: s.search().list(part="snippet", q=query, type="video", maxResults=1, videoEmbeddable="any")
            )
        except _YouTubeFailure:
            return fallback
        video = _first_video(response)
        await self._cache.put(NS_SEARCH, key, video, self._ttl)
        return _link_from_cache(video, fallback)

    async def video_title(self, video_id: str) -> tuple[str, str | None] | None:
        """(title, channel) of a video, for resolving YouTube links; None when unknown or unavailable."""
        cached = await self._cache.get(NS_VIDEO, video_id)
        if cached is not MISS:
            return (str(cached["title"]), cached.get("channel")) if cached else None
        if not self._can_call():
            return None
        try:
            response = await self._execute(lambda s: s.videos().list(part="snippet", id=video_id, maxResults=1))
        except _YouTubeFailure:
            return None
        items = response.get("items") or [] if isinstance(response, dict) else []
        snippet = (items[0].get("snippet") or {}) if items and isinstance(items[0], dict) else {}
        title = str(snippet["title"]) if snippet.get("title") else None
        channel = str(snippet["channelTitle"]) if snippet.get("channelTitle") else None
        await self._cache.put(NS_VIDEO, video_id, {"title": title, "channel": channel} if title else None, self._ttl)
        return (title, channel) if title else None

    # -- plumbing ---------------------------------------------------------------------------
    def _get_service(self) -> Any:
        with self._build_lock:
            if self._service is None:
                self._service = build(
                    "youtube",
                    "v3",
                    developerKey=self._key,
                    static_discovery=True,
                    cache_discovery=False,
                    client_options={"api_endpoint": self._api_url},
                )
            return self._service

    async def _execute(self, make: Callable[[Any], Any]) -> Any:
        def run() -> Any:
            request = make(self._get_service())
            http = httplib2.Http(timeout=self._timeout)
            try:
                return request.execute(http=http, num_retries=0)
            finally:
                http.close()

        self.calls += 1
        try:
            return await asyncio.to_thread(run)
        except HttpError as exc:
            reason = _error_reason(exc)
            status = exc.resp.status if exc.resp is not None else None
            if status in (403, 429) and reason in QUOTA_REASONS:
                self._paused_until = next_quota_reset(self._clock())
                log.warning("youtube quota exhausted (%s): search links until %s", reason, self._paused_until)
            elif reason in KEY_REASONS or (status in (400, 401) and reason == "badRequest" and "key" in str(exc)):
                self._disabled = True
                log.error("youtube refused the API key (%s): check YOUTUBE_API_KEY; using search links", reason)
            else:
                self._paused_until = self._clock() + ERROR_BACKOFF
                log.warning("youtube call failed (HTTP %s %s): search links for %s", status, reason, ERROR_BACKOFF)
            raise _YouTubeFailure from exc
        except Exception as exc:  # transport errors: refused, timeout, DNS, bad JSON
            self._paused_until = self._clock() + ERROR_BACKOFF
            log.warning("youtube unreachable (%s): search links for %s", type(exc).__name__, ERROR_BACKOFF)
            raise _YouTubeFailure from exc


class _YouTubeFailure(Exception):
    pass


def _error_reason(exc: HttpError) -> str | None:
    try:
        data = json.loads(exc.content.decode("utf-8") if isinstance(exc.content, bytes) else exc.content)
        errors = data["error"].get("errors") or []
        if errors and errors[0].get("reason"):
            return str(errors[0]["reason"])
        details = data["error"].get("details") or []
        for detail in details:
            if isinstance(detail, dict) and detail.get("reason"):
                return str(detail["reason"])
        return data["error"].get("status")
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        return None


def _first_video(response: Any) -> dict[str, str] | None:
    if not isinstance(response, dict):
        return None
    for item in response.get("items") or []:
        if not isinstance(item, dict):
            continue
        ident = item.get("id")
        video_id = ident.get("videoId") if isinstance(ident, dict) else None
        if video_id:
            title = (item.get("snippet") or {}).get("title")
            return {"video_id": str(video_id), "title": str(title) if title else ""}
    return None


def _link_from_cache(value: Any, fallback: YouTubeLink) -> YouTubeLink:
    if isinstance(value, dict) and value.get("video_id"):
        return YouTubeLink(
            url=watch_url(value["video_id"]),
            is_search=False,
            video_id=value["video_id"],
            title=value.get("title") or None,
        )
    return fallback
