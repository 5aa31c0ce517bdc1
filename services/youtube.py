"""YouTube through google-api-python-client: the video for a track, and video titles for links.

Video titles also come without a key: YouTube's oEmbed endpoint (`oembed_url`, a setting:
`YOUTUBE_OEMBED_URL`) answers `?url=<watch url>&format=json` with the title and the channel
(`author_name`). With a key the Data API is asked first and oEmbed is the fallback (no key,
quota out, key refused, API down). oEmbed answers are cached like the API's: a title for
`cache_days`, "private or removed" (401/404) for a day (a private video may become public, and
a key may read what oEmbed cannot); a failure (5xx, timeout) pauses oEmbed for two minutes.

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
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlencode
from zoneinfo import ZoneInfo

import httplib2

from services.cache import MISS, CacheService
from services.dto import TrackInfo, YouTubeLink
from services.textnorm import normalize

if TYPE_CHECKING:  # the Google client (~30 MB) loads on the first API call, not in every process
    from googleapiclient.errors import HttpError

log = logging.getLogger(__name__)

NS_SEARCH = "yt_search"
NS_VIDEO = "yt_video"
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded", "rateLimitExceeded", "userRateLimitExceeded"})
KEY_REASONS = frozenset({"keyInvalid", "keyExpired", "accessNotConfigured", "forbidden", "ipRefererBlocked"})
ERROR_BACKOFF = timedelta(minutes=2)
OEMBED_URL = "https://www.youtube.com/oembed"
OEMBED_GONE_TTL = timedelta(days=1)  # 401 (private, or not embeddable) / 404 (removed) / 400
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
        oembed_url: str | None = None,
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
        self._oembed_url = oembed_url or None
        self._oembed_paused_until: datetime | None = None
        self.calls = 0  # API calls made (searches and video lookups), for logs and tests
        self.oembed_calls = 0

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
        key = self.cache_key(track)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._link(track, key))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    @staticmethod
    def cache_key(track: TrackInfo) -> str:
        return track.spotify_id or normalize(f"{track.artist_line} {track.name}")

    async def known_videos(self, tracks: list[TrackInfo], *, lookups: int = 0) -> dict[int, str]:
        """Track id → YouTube video id, for the tracks whose video is known: from the cache (no
        quota spent), then — with a key — up to `lookups` searches for tracks never looked up."""
        keys = {t.id: self.cache_key(t) for t in tracks if t.source != "upload"}
        cached = await self._cache.get_many(NS_SEARCH, list(set(keys.values())))
        out: dict[int, str] = {}
        unknown: list[TrackInfo] = []
        for track in tracks:
            key = keys.get(track.id)
            if key is None:
                continue
            if key in cached:
                value = cached[key]
                if isinstance(value, dict) and value.get("video_id"):
                    out[track.id] = str(value["video_id"])
            else:
                unknown.append(track)
        for track in unknown[: max(0, lookups) if self._can_call() else 0]:
            link = await self.link(track)
            if link.video_id:
                out[track.id] = link.video_id
        return out

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
        """(title, channel) of a video, for resolving YouTube links; None when unknown or unavailable.

        The Data API when it can be called, else (or when it fails) oEmbed, which needs no key.
        """
        cached = await self._cache.get(NS_VIDEO, video_id)
        if cached is not MISS:
            return (str(cached["title"]), cached.get("channel")) if cached else None
        if self._can_call():
            try:
                response = await self._execute(lambda s: s.videos().list(part="snippet", id=video_id, maxResults=1))
            except _YouTubeFailure:
                pass  # oEmbed below
            else:
                items = response.get("items") or [] if isinstance(response, dict) else []
                snippet = (items[0].get("snippet") or {}) if items and isinstance(items[0], dict) else {}
                title = str(snippet["title"]) if snippet.get("title") else None
                channel = str(snippet["channelTitle"]) if snippet.get("channelTitle") else None
                value = {"title": title, "channel": channel} if title else None
                await self._cache.put(NS_VIDEO, video_id, value, self._ttl)
                return (title, channel) if title else None
        return await self._oembed_title(video_id)

    async def _oembed_title(self, video_id: str) -> tuple[str, str | None] | None:
        if self._oembed_url is None:
            return None
        if self._oembed_paused_until is not None and self._clock() < self._oembed_paused_until:
            return None
        url = f"{self._oembed_url}?{urlencode({'url': watch_url(video_id), 'format': 'json'})}"

        def run() -> tuple[int, bytes]:
            http = httplib2.Http(timeout=self._timeout)
            try:
                response, content = http.request(url, "GET", headers={"Accept": "application/json"})
                return int(response.status), content
            finally:
                http.close()

        self.oembed_calls += 1
        try:
            status, content = await asyncio.to_thread(run)
        except Exception as exc:  # refused, timeout, DNS
            self._oembed_paused_until = self._clock() + ERROR_BACKOFF
            log.warning("youtube oembed unreachable (%s): no video titles for %s", type(exc).__name__, ERROR_BACKOFF)
            return None
        if status in (400, 401, 403, 404):
            await self._cache.put(NS_VIDEO, video_id, None, OEMBED_GONE_TTL)
            return None
        if status != 200:
            self._oembed_paused_until = self._clock() + ERROR_BACKOFF
            log.warning("youtube oembed failed (HTTP %s): no video titles for %s", status, ERROR_BACKOFF)
            return None
        try:
            data = json.loads(content.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            data = None
        title = data.get("title") if isinstance(data, dict) else None
        if not isinstance(title, str) or not title.strip():
            self._oembed_paused_until = self._clock() + ERROR_BACKOFF
            log.warning("youtube oembed answered without a title: no video titles for %s", ERROR_BACKOFF)
            return None
        author = data.get("author_name") if isinstance(data, dict) else None
        channel = author if isinstance(author, str) and author.strip() else None
        await self._cache.put(NS_VIDEO, video_id, {"title": title, "channel": channel}, self._ttl)
        return title, channel

    # -- plumbing ---------------------------------------------------------------------------
    def _get_service(self) -> Any:
        with self._build_lock:
            if self._service is None:
                from googleapiclient.discovery import build

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
        from googleapiclient.errors import HttpError

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
