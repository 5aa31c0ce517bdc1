"""A fake YouTube Data API v3 on 127.0.0.1 (search.list, videos.list), Google's error format,
and YouTube's keyless oEmbed endpoint (`/oembed`).

googleapiclient reaches it with `client_options={"api_endpoint": f"{base}/"}` and its bundled
discovery document: requests go to `{base}/youtube/v3/search?…&key=…`. oEmbed answers as
youtube.com/oembed does: `?url=<a watch or youtu.be URL>&format=json` gives the video's title and
channel (`author_name`); a private video (or one that may not be embedded) is 401 "Unauthorized",
an unknown one 404 "Not Found", a URL that is not a video 400 "Bad Request", a format other than
json 501. Scripted failures (`fail("oembed", Failure(...))`) give 5xx answers and slow ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from tests.fakes.spotify import Failure, ScriptedServer

__all__ = ["Failure", "FakeVideo", "FakeYouTube", "google_error", "quota_exceeded"]


def google_error(status: int, reason: str = "backendError", message: str = "") -> dict[str, Any]:
    domain = "youtube.quota" if reason == "quotaExceeded" else "global"
    text = message or {
        "quotaExceeded": "The request cannot be completed because you have exceeded your "
        '<a href="/youtube/v3/getting-started#quota">quota</a>.',
        "keyInvalid": "API key not valid. Please pass a valid API key.",
    }.get(reason, "Backend Error")
    return {
        "error": {"code": status, "message": text, "errors": [{"message": text, "domain": domain, "reason": reason}]}
    }


def quota_exceeded() -> Failure:
    return Failure(status=403, body=google_error(403, "quotaExceeded"))


@dataclass
class FakeVideo:
    id: str
    title: str
    channel: str = "Some Channel"
    private: bool = False  # oEmbed answers 401 (the Data API does not list it either)


class FakeYouTube(ScriptedServer):
    def __init__(self, videos: list[FakeVideo] | None = None, *, api_key: str = "test-key") -> None:
        super().__init__()
        self.videos = {v.id: v for v in videos or []}
        self.api_key = api_key
        self.quota_exhausted = False

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/youtube/v3/search", self._search)
        app.router.add_get("/youtube/v3/videos", self._videos)
        app.router.add_get("/oembed", self._oembed)

    @property
    def oembed_url(self) -> str:
        return f"{self.base_url}/oembed"

    async def _guard(self, route: str, request: web.Request) -> web.Response | None:
        scripted = await self.scripted(route, request, lambda s: google_error(s))
        if scripted is not None:
            return scripted
        if request.query.get("key") != self.api_key:
            return web.json_response(google_error(400, "keyInvalid"), status=400)
        if self.quota_exhausted:
            return web.json_response(google_error(403, "quotaExceeded"), status=403)
        if "snippet" not in request.query.get("part", "").split(","):
            return web.json_response(google_error(400, "invalidPart", "part is required"), status=400)
        return None

    async def _search(self, request: web.Request) -> web.Response:
        if (denied := await self._guard("search", request)) is not None:
            return denied
        words = request.query.get("q", "").lower().split()
        limit = int(request.query.get("maxResults", "5"))
        found = [
            v for v in self.videos.values() if words and all(w in f"{v.channel} {v.title}".lower() for w in words)
        ][:limit]
        return web.json_response(
            {
                "kind": "youtube#searchListResponse",
                "etag": "fake",
                "regionCode": "US",
                "pageInfo": {"totalResults": len(found), "resultsPerPage": limit},
                "items": [
                    {
                        "kind": "youtube#searchResult",
                        "etag": "fake",
                        "id": {"kind": "youtube#video", "videoId": v.id},
                        "snippet": {"title": v.title, "channelTitle": v.channel, "description": ""},
                    }
                    for v in found
                ],
            }
        )

    async def _videos(self, request: web.Request) -> web.Response:
        if (denied := await self._guard("videos", request)) is not None:
            return denied
        ids = [i for i in request.query.get("id", "").split(",") if i]
        items = [
            {
                "kind": "youtube#video",
                "etag": "fake",
                "id": v.id,
                "snippet": {"title": v.title, "channelTitle": v.channel, "description": ""},
            }
            for v in (self.videos.get(i) for i in ids)
            if v is not None and not v.private
        ]
        return web.json_response(
            {
                "kind": "youtube#videoListResponse",
                "etag": "fake",
                "items": items,
                "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
            }
        )

    async def _oembed(self, request: web.Request) -> web.Response:
        scripted = await self.scripted("oembed", request, lambda s: {"error": s})
        if scripted is not None:
            return scripted
        if request.query.get("format", "json") != "json":
            return web.Response(status=501, text="Not Implemented")
        video_id = _video_id(request.query.get("url", ""))
        if video_id is None:
            return web.Response(status=400, text="Bad Request")
        video = self.videos.get(video_id)
        if video is None:
            return web.Response(status=404, text="Not Found")
        if video.private:
            return web.Response(status=401, text="Unauthorized")
        return web.json_response(
            {
                "title": video.title,
                "author_name": video.channel,
                "author_url": f"https://www.youtube.com/@{video.channel.replace(' ', '')}",
                "type": "video",
                "height": 113,
                "width": 200,
                "version": "1.0",
                "provider_name": "YouTube",
                "provider_url": "https://www.youtube.com/",
                "thumbnail_height": 360,
                "thumbnail_width": 480,
                "thumbnail_url": f"https://i.ytimg.com/vi/{video.id}/hqdefault.jpg",
                "html": f'<iframe width="200" height="113" src="https://www.youtube.com/embed/{video.id}?feature=oembed"'
                ' frameborder="0" allowfullscreen></iframe>',
            }
        )


def _video_id(url: str) -> str | None:
    """The video id in a URL the way oEmbed accepts it: watch?v=…, youtu.be/…, /shorts/…, /embed/…."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = (parts.hostname or "").removeprefix("www.").removeprefix("m.")
    segments = [s for s in parts.path.split("/") if s]
    if host == "youtu.be" and segments:
        return segments[0]
    if host in ("youtube.com", "music.youtube.com"):
        if segments == ["watch"]:
            found = parse_qs(parts.query).get("v")
            return found[0] if found else None
        if len(segments) == 2 and segments[0] in ("shorts", "embed", "v"):
            return segments[1]
    return None
