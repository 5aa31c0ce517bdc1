"""A fake Spotify Web API + accounts service on 127.0.0.1, speaking the real wire format.

spotipy reaches it through its API prefix (`SPOTIFY_API_URL` = `{base}/v1/`) and token URL
(`SPOTIFY_TOKEN_URL` = `{base}/api/token`). Failures are scripted per route with `fail()`:
a status (429 with Retry-After, 500 …), a delay longer than the client's timeout, or both.
`ScriptedServer` is shared with the YouTube and ReccoBeats fakes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import secrets
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Failure:
    status: int | None = 500  # None: answer normally, after `delay`
    delay: float = 0.0  # seconds to stall before answering (beyond the client's timeout = a timeout)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # JSON body; a route-specific default when None


class ScriptedServer:
    """An aiohttp app on 127.0.0.1:<free port> with per-route scripted failures and call counters."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._failures: dict[str, deque[Failure]] = {}
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.base_url = ""

    # subclasses add their routes
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def fail(self, route: str, *failures: Failure) -> None:
        self._failures.setdefault(route, deque()).extend(failures)

    async def start(self) -> str:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def close(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ScriptedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def scripted(self, route: str, request: web.Request, error_body: Any) -> web.Response | None:
        """Count the call; play the next scripted failure for `route`, if any."""
        self.calls[route] += 1
        self.requests.append((route, dict(request.query)))
        queue = self._failures.get(route)
        if not queue:
            return None
        failure = queue.popleft()
        if failure.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), failure.delay)
        if failure.status is None:
            return None
        body = failure.body if failure.body is not None else error_body(failure.status)
        return web.json_response(body, status=failure.status, headers=dict(failure.headers))


def spotify_error(status: int, message: str = "") -> dict[str, Any]:
    default = {
        400: "Invalid request",
        401: "Invalid access token",
        403: "Forbidden",
        404: "Resource not found",
        429: "API rate limit exceeded",
    }
    return {"error": {"status": status, "message": message or default.get(status, "Server error")}}


@dataclass
class FakeTrack:
    id: str
    name: str
    artists: tuple[str, ...]
    album: str = "Album"
    popularity: int = 50
    duration_ms: int = 200000
    explicit: bool = False
    genre: str = ""
    year: int = 2020
    features: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": "track",
            "uri": f"spotify:track:{self.id}",
            "href": f"https://api.spotify.com/v1/tracks/{self.id}",
            "artists": [
                {"id": f"artist{i}", "name": a, "type": "artist", "uri": f"spotify:artist:artist{i}"}
                for i, a in enumerate(self.artists)
            ],
            "album": {
                "id": "album0",
                "name": self.album,
                "release_date": str(self.year),
                "type": "album",
                # As Spotify lists them: 640, 300 and 64 px, largest first.
                "images": [
                    {"url": f"https://i.scdn.co/image/{prefix}{self.id}", "height": size, "width": size}
                    for prefix, size in (("ab67616d0000b273", 640), ("ab67616d00001e02", 300), ("ab67616d00004851", 64))
                ],
            },
            "duration_ms": self.duration_ms,
            "explicit": self.explicit,
            "popularity": self.popularity,
            "is_local": False,
        }


_FILTER = re.compile(r'(\w+):"([^"]*)"|(\w+):(\S+)')


class FakeSpotify(ScriptedServer):
    """Routes: POST /api/token, GET /v1/search, /v1/tracks/{id}, /v1/tracks (closed), /v1/audio-features."""

    def __init__(
        self,
        tracks: list[FakeTrack] | None = None,
        *,
        client_id: str = "test-client",
        client_secret: str = "test-secret",
        audio_features_allowed: bool = False,
    ) -> None:
        super().__init__()
        self.tracks = {t.id: t for t in tracks or []}
        self.client_id = client_id
        self.client_secret = client_secret
        self.audio_features_allowed = audio_features_allowed
        self.tokens: set[str] = set()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1/"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/api/token"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/token", self._token)
        app.router.add_get("/v1/search", self._search)
        app.router.add_get("/v1/tracks/{id}", self._track)
        app.router.add_get("/v1/tracks", self._tracks_batch)
        app.router.add_get("/v1/audio-features", self._audio_features)
        app.router.add_get("/v1/audio-features/", self._audio_features)
        app.router.add_get("/v1/audio-features/{id}", self._audio_features)

    # -- auth --------------------------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.Response:
        def oauth_error(status: int) -> dict[str, str]:
            return {"error": "server_error" if status >= 500 else "invalid_client", "error_description": "fake"}

        scripted = await self.scripted("token", request, oauth_error)
        if scripted is not None:
            return scripted
        form = await request.post()
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response(
                {"error": "invalid_client", "error_description": "Invalid client secret"}, status=400
            )
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[len("Bearer ") :] in self.tokens

    async def _guard(self, route: str, request: web.Request) -> web.Response | None:
        scripted = await self.scripted(route, request, spotify_error)
        if scripted is not None:
            return scripted
        if not self._authorized(request):
            return web.json_response(spotify_error(401), status=401)
        return None

    # -- API -------------------------------------------------------------------------------
    async def _search(self, request: web.Request) -> web.Response:
        if (denied := await self._guard("search", request)) is not None:
            return denied
        q = request.query.get("q", "")
        if request.query.get("type") != "track" or not q.strip():
            return web.json_response(spotify_error(400, "No search query"), status=400)
        try:
            limit = int(request.query.get("limit", "10"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return web.json_response(spotify_error(400, "Invalid limit"), status=400)
        if not 0 <= limit <= 10:  # since 2026
            return web.json_response(spotify_error(400, "Invalid limit"), status=400)
        if not 0 <= offset <= 1000:
            return web.json_response(spotify_error(400, "Invalid offset"), status=400)
        filters = {}
        for m in _FILTER.finditer(q):
            filters[(m.group(1) or m.group(3)).lower()] = (m.group(2) or m.group(4)).lower()
        words = _FILTER.sub(" ", q).lower().split()
        matches = []
        for t in self.tracks.values():
            hay = f"{' '.join(t.artists)} {t.name}".lower()
            if not all(w in hay for w in words):
                continue
            if "genre" in filters and filters["genre"] != t.genre:
                continue
            if "year" in filters and filters["year"] != str(t.year):
                continue
            matches.append(t)
        page = matches[offset : offset + limit]
        base = f"{self.api_url}search"
        return web.json_response(
            {
                "tracks": {
                    "href": f"{base}?offset={offset}&limit={limit}",
                    "items": [t.to_json() for t in page],
                    "limit": limit,
                    "offset": offset,
                    "total": len(matches),
                    "next": f"{base}?offset={offset + limit}&limit={limit}" if offset + limit < len(matches) else None,
                    "previous": None,
                }
            }
        )

    async def _track(self, request: web.Request) -> web.Response:
        if (denied := await self._guard("track", request)) is not None:
            return denied
        track = self.tracks.get(request.match_info["id"])
        if track is None:
            return web.json_response(spotify_error(404), status=404)
        return web.json_response(track.to_json())

    async def _tracks_batch(self, request: web.Request) -> web.Response:
        if (denied := await self._guard("tracks", request)) is not None:
            return denied
        return web.json_response(spotify_error(403), status=403)  # batch lookups are closed since 2026

    async def _audio_features(self, request: web.Request) -> web.Response:
        if (denied := await self._guard("audio-features", request)) is not None:
            return denied
        if not self.audio_features_allowed:
            return web.json_response(spotify_error(403), status=403)
        ids = request.match_info.get("id") or request.query.get("ids", "")
        out: list[dict[str, object] | None] = []
        for sid in [i for i in ids.split(",") if i]:
            t = self.tracks.get(sid)
            if t is None or t.features is None:
                out.append(None)
            else:
                out.append({**t.features, "id": sid, "type": "audio_features", "uri": f"spotify:track:{sid}"})
        return web.json_response({"audio_features": out})
