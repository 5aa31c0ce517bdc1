"""A fake Deezer public API on 127.0.0.1, speaking the real wire format.

Routes (under the base URL, which is `DEEZER_API_URL`):
- `GET /search?q=…`, `GET /search/track?q=…` (free words plus `artist:"…"` / `track:"…"` / `album:"…"`
  filters), with `limit` and `index`; items shaped like Deezer's search results (no ISRC, BPM or
  contributors).
- `GET /track/{id}` and `GET /track/isrc:{ISRC}`: the full track object.
- `GET /album/{id}`: the album with its `genres`.
- `GET /preview/{id}.mp3?hdnea=exp=…~acl=…~hmac=…`: the 30-second preview. Preview URLs are signed
  with an expiry (`preview_lifetime` seconds after the answer that carried them, on the fake's
  `clock`); an expired or tampered URL gets 403, like Deezer's CDN. `preview_audio[id]` sets the bytes
  served (real audio for tests that analyse previews); otherwise a tiny stand-in MP3 header.
- `GET /links/{host}/{code}`: short links (deezer.page.link, link.deezer.com/s/…), redirecting to
  whatever `short_links` says (the client's `short_link_url` points here).

Errors come inside HTTP 200 bodies, as on the real API: unknown ids and ISRCs answer code 800,
and `quota=(n, seconds)` makes the fake enforce a rolling-window quota itself, answering code 4
("Quota limit exceeded") beyond it. Scripted failures (`fail("search", Failure(...))`) give 429
with Retry-After, 5xx, quota errors in 200 bodies (`quota_error()`), or slow answers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.spotify import Failure, ScriptedServer

__all__ = ["Failure", "FakeDeezer", "FakeDeezerAlbum", "FakeDeezerTrack", "deezer_error", "quota_error"]

_ERRORS = {
    4: ("Exception", "Quota limit exceeded"),
    501: ("MissingParameterException", "Missing parameters: q"),
    700: ("Exception", "Service busy"),
    800: ("DataException", "no data"),
}
_FILTER = re.compile(r'(\w+):"([^"]*)"')
PREVIEW_BYTES = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(4000)


def deezer_error(code: int) -> dict[str, Any]:
    kind, message = _ERRORS.get(code, ("Exception", "An error occurred"))
    return {"error": {"type": kind, "message": message, "code": code}}


def quota_error() -> Failure:
    """Deezer's quota answer: HTTP 200 with the error in the body."""
    return Failure(status=200, body=deezer_error(4))


@dataclass
class FakeDeezerTrack:
    id: int
    title: str
    artist: str
    featuring: tuple[str, ...] = ()
    album_id: int = 302127
    album: str = "Discovery"
    duration: int = 320
    explicit: bool = False
    isrc: str | None = None
    bpm: float = 0.0
    gain: float = -8.5
    release_date: str = "2001-03-07"
    rank: int = 500000
    has_preview: bool = True


@dataclass
class FakeDeezerAlbum:
    id: int
    title: str
    artist: str
    genres: tuple[str, ...] = ()
    release_date: str = "2001-03-07"
    label: str = "Parlophone"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class FakeDeezer(ScriptedServer):
    def __init__(
        self,
        tracks: list[FakeDeezerTrack] | None = None,
        albums: list[FakeDeezerAlbum] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        preview_lifetime: float = 900.0,
        quota: tuple[int, float] | None = None,
    ) -> None:
        super().__init__()
        self.tracks = {t.id: t for t in tracks or []}
        self.albums = {a.id: a for a in albums or []}
        self.clock = clock
        self.preview_lifetime = preview_lifetime
        self.quota = quota
        self.short_links: dict[str, str] = {}  # "deezer.page.link/abc" → Location
        self.quota_errors_served = 0  # by the enforced `quota` (scripted errors are not counted)
        self.previews_served = 0
        self.previews_refused = 0
        self.preview_audio: dict[int, bytes] = {}  # track id → the preview's bytes (default PREVIEW_BYTES)
        self._served: deque[float] = deque()
        self._secret = b"fake-deezer-cdn-secret"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/"

    @property
    def short_link_url(self) -> str:
        return f"{self.base_url}/links/"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/search", self._search)
        app.router.add_get("/search/track", self._search)
        app.router.add_get("/track/{id}", self._track)
        app.router.add_get("/album/{id}", self._album)
        app.router.add_get("/preview/{file}", self._preview)
        app.router.add_get("/links/{host}/{code:.*}", self._short_link)

    # -- quota and scripted failures ------------------------------------------------------------
    async def _guard(self, route: str, request: web.Request) -> web.Response | None:
        scripted = await self.scripted(route, request, lambda status: deezer_error(0))
        if scripted is not None:
            return scripted
        if self.quota is not None:
            limit, window = self.quota
            now = time.monotonic()
            while self._served and self._served[0] <= now - window:
                self._served.popleft()
            if len(self._served) >= limit:
                self.quota_errors_served += 1
                return web.json_response(deezer_error(4))
            self._served.append(now)
        return None

    # -- JSON shapes ---------------------------------------------------------------------------
    def _cover(self, album_id: int, size: int) -> str:
        return f"https://cdn-images.dzcdn.net/images/cover/{_md5(str(album_id))}/{size}x{size}-000000-80-0-0.jpg"

    def _artist(self, name: str, role: str | None = None) -> dict[str, Any]:
        artist_id = int(_md5(name)[:6], 16)
        out: dict[str, Any] = {
            "id": artist_id,
            "name": name,
            "link": f"https://www.deezer.com/artist/{artist_id}",
            "picture": f"https://api.deezer.com/artist/{artist_id}/image",
            "tracklist": f"https://api.deezer.com/artist/{artist_id}/top?limit=50",
            "type": "artist",
        }
        if role is not None:
            out["role"] = role
        return out

    def preview_url(self, track_id: int) -> str:
        exp = int(self.clock() + self.preview_lifetime)
        acl = f"/preview/{track_id}.mp3*"
        data = "user_id=0,application_id=42"
        token = f"exp={exp}~acl={acl}~data={data}"
        mac = hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()
        return f"{self.base_url}/preview/{track_id}.mp3?hdnea={token}~hmac={mac}"

    def _album_ref(self, t: FakeDeezerTrack, *, full: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": t.album_id,
            "title": t.album,
            "cover": f"https://api.deezer.com/album/{t.album_id}/image",
            "cover_small": self._cover(t.album_id, 56),
            "cover_medium": self._cover(t.album_id, 250),
            "cover_big": self._cover(t.album_id, 500),
            "cover_xl": self._cover(t.album_id, 1000),
            "md5_image": _md5(str(t.album_id)),
            "tracklist": f"https://api.deezer.com/album/{t.album_id}/tracks",
            "type": "album",
        }
        if full:
            out["link"] = f"https://www.deezer.com/album/{t.album_id}"
            out["release_date"] = t.release_date
        return out

    def _search_item(self, t: FakeDeezerTrack) -> dict[str, Any]:
        return {
            "id": t.id,
            "readable": True,
            "title": t.title,
            "title_short": t.title,
            "title_version": "",
            "link": f"https://www.deezer.com/track/{t.id}",
            "duration": t.duration,
            "rank": t.rank,
            "explicit_lyrics": t.explicit,
            "explicit_content_lyrics": 1 if t.explicit else 0,
            "explicit_content_cover": 0,
            "preview": self.preview_url(t.id) if t.has_preview else "",
            "md5_image": _md5(str(t.album_id)),
            "artist": self._artist(t.artist),
            "album": self._album_ref(t, full=False),
            "type": "track",
        }

    def _track_object(self, t: FakeDeezerTrack) -> dict[str, Any]:
        item = self._search_item(t)
        item.update(
            {
                "isrc": t.isrc or "",
                "share": f"https://www.deezer.com/track/{t.id}?utm_source=deezer",
                "track_position": 1,
                "disk_number": 1,
                "release_date": t.release_date,
                "bpm": t.bpm,
                "gain": t.gain,
                "available_countries": ["DE", "FR", "GB", "US"],
                "contributors": [self._artist(t.artist, "Main")]
                + [self._artist(name, "Featured") for name in t.featuring],
                "track_token": "AAAAAQ",
                "album": self._album_ref(t, full=True),
            }
        )
        return item

    # -- routes --------------------------------------------------------------------------------
    async def _search(self, request: web.Request) -> web.Response:
        if (denied := await self._guard("search", request)) is not None:
            return denied
        q = request.query.get("q", "")
        if not q.strip():
            return web.json_response(deezer_error(501))
        try:
            limit = max(1, min(100, int(request.query.get("limit", "25"))))
            index = max(0, int(request.query.get("index", "0")))
        except ValueError:
            return web.json_response(deezer_error(500))
        filters = {m.group(1).lower(): m.group(2).casefold() for m in _FILTER.finditer(q)}
        words = _FILTER.sub(" ", q).casefold().split()
        matches = []
        for t in sorted(self.tracks.values(), key=lambda t: -t.rank):
            hay = f"{t.artist} {' '.join(t.featuring)} {t.title} {t.album}".casefold()
            if not all(w in hay for w in words):
                continue
            if "artist" in filters and filters["artist"] not in f"{t.artist} {' '.join(t.featuring)}".casefold():
                continue
            if "track" in filters and filters["track"] not in t.title.casefold():
                continue
            if "album" in filters and filters["album"] not in t.album.casefold():
                continue
            matches.append(t)
        page = matches[index : index + limit]
        body: dict[str, Any] = {"data": [self._search_item(t) for t in page], "total": len(matches)}
        if index + limit < len(matches):
            body["next"] = f"{self.api_url}search?q={q}&index={index + limit}"
        return web.json_response(body)

    async def _track(self, request: web.Request) -> web.Response:
        if (denied := await self._guard("track", request)) is not None:
            return denied
        ident = request.match_info["id"]
        track = None
        if ident.lower().startswith("isrc:"):
            isrc = ident[5:].upper()
            track = next((t for t in self.tracks.values() if t.isrc == isrc), None)
        elif ident.isdigit():
            track = self.tracks.get(int(ident))
        if track is None:
            return web.json_response(deezer_error(800))
        return web.json_response(self._track_object(track))

    async def _album(self, request: web.Request) -> web.Response:
        if (denied := await self._guard("album", request)) is not None:
            return denied
        ident = request.match_info["id"]
        album = self.albums.get(int(ident)) if ident.isdigit() else None
        if album is None:
            return web.json_response(deezer_error(800))
        genres = [
            {"id": 100 + i, "name": g, "picture": f"https://api.deezer.com/genre/{100 + i}/image", "type": "genre"}
            for i, g in enumerate(album.genres)
        ]
        return web.json_response(
            {
                "id": album.id,
                "title": album.title,
                "upc": "724384960650",
                "link": f"https://www.deezer.com/album/{album.id}",
                "cover_medium": self._cover(album.id, 250),
                "cover_big": self._cover(album.id, 500),
                "genre_id": genres[0]["id"] if genres else -1,
                "genres": {"data": genres},
                "label": album.label,
                "release_date": album.release_date,
                "record_type": "album",
                "artist": self._artist(album.artist),
                "type": "album",
            }
        )

    async def _preview(self, request: web.Request) -> web.Response:
        self.calls["preview"] += 1
        match = re.fullmatch(r"(\d+)\.mp3", request.match_info["file"])
        token = request.query.get("hdnea", "")
        head, _, mac = token.rpartition("~hmac=")
        fields = dict(part.split("=", 1) for part in head.split("~") if "=" in part)
        expected = hmac.new(self._secret, head.encode(), hashlib.sha256).hexdigest()
        valid = (
            match is not None
            and hmac.compare_digest(mac, expected)
            and fields.get("acl") == f"/preview/{match.group(1)}.mp3*"
            and fields.get("exp", "").isdigit()
            and int(fields["exp"]) > self.clock()
        )
        if not valid:
            self.previews_refused += 1
            return web.Response(status=403, text="Forbidden")
        self.previews_served += 1
        assert match is not None
        body = self.preview_audio.get(int(match.group(1)), PREVIEW_BYTES)
        return web.Response(body=body, content_type="audio/mpeg")

    async def _short_link(self, request: web.Request) -> web.Response:
        self.calls["short_link"] += 1
        key = f"{request.match_info['host']}/{request.match_info['code']}"
        location = self.short_links.get(key)
        if location is None:
            return web.Response(status=404, text="Not found")
        raise web.HTTPFound(location)
