"""A fake Spotify accounts service and Web API for "Save to Spotify", on 127.0.0.1.

What a person's authorization meets, with Spotify's wire format:

    GET  /authorize        checks client_id, response_type=code, redirect_uri (registered),
                           code_challenge_method=S256, a code_challenge and the scopes; the person
                           `next_user` approves (or, with `deny`, cancels) and is redirected (302)
                           to redirect_uri?code=…&state=… (or ?error=access_denied&state=…)
    POST /api/token        authorization_code: the code once, the same redirect_uri and client_id,
                           and a code_verifier whose S256 is the challenge (else 400 invalid_grant);
                           refresh_token: a known refresh token (a new one is issued: rotation)
    POST /v1/me/playlists  Bearer token → 201 playlist; 401 for an unknown or expired token; 403
                           for a user outside the development-mode allow-list ("User not
                           registered in the Developer Dashboard") or without the scope
    POST /v1/playlists/{id}/items   at most 100 URIs (else 400), the token's owner only (else 403)

Failures are scripted per route with `fail()` (429 with Retry-After, 500 …), from ScriptedServer.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.spotify import ScriptedServer, spotify_error

CLIENT_ID = "encore-test-client"
KNOWN_SCOPES = frozenset(
    {"playlist-modify-private", "playlist-modify-public", "playlist-read-private", "user-read-email"}
)
NOT_REGISTERED = "User not registered in the Developer Dashboard"


@dataclass
class FakePlaylist:
    id: str
    owner: str
    name: str
    public: bool
    description: str
    items: list[str] = field(default_factory=list)


@dataclass
class _Code:
    user: str
    challenge: str
    redirect_uri: str
    scope: str


class FakeSpotifyAccounts(ScriptedServer):
    def __init__(self, *, client_id: str = CLIENT_ID, allowed: tuple[str, ...] = ("ann",)) -> None:
        super().__init__()
        self.client_id = client_id
        self.allowed = set(allowed)  # the development-mode allow-list
        self.redirect_uris: set[str] = set()
        self.next_user = "ann"
        self.deny = False
        self.access_ttl = 3600
        self._codes: dict[str, _Code] = {}
        self.tokens: dict[str, tuple[str, str]] = {}  # access token → (user, scope)
        self.refresh_tokens: dict[str, tuple[str, str]] = {}
        self.playlists: dict[str, FakePlaylist] = {}
        self.grants: list[str] = []  # grant types asked for, in order
        self.item_batches: list[int] = []
        self.unauthorized = 0  # 401s answered

    # -- test controls ------------------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        self.tokens.clear()

    def revoke(self, user: str) -> None:
        """The person removes the app in their Spotify account: every token of theirs stops working."""
        self.tokens = {k: v for k, v in self.tokens.items() if v[0] != user}
        self.refresh_tokens = {k: v for k, v in self.refresh_tokens.items() if v[0] != user}

    def playlists_of(self, user: str) -> list[FakePlaylist]:
        return [p for p in self.playlists.values() if p.owner == user]

    # -- routes -------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/api/token", self._token)
        app.router.add_post("/v1/me/playlists", self._create_playlist)
        app.router.add_post("/v1/playlists/{playlist_id}/items", self._add_items)

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if q.get("client_id") != self.client_id:
            return web.Response(status=400, text="INVALID_CLIENT: Invalid client")
        if q.get("response_type") != "code":
            return web.Response(status=400, text="unsupported_response_type")
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            return web.Response(status=400, text="INVALID_CLIENT: Invalid redirect URI")
        if q.get("code_challenge_method") != "S256" or len(q.get("code_challenge", "")) != 43:
            return web.Response(status=400, text="invalid code_challenge")
        scopes = set(q.get("scope", "").split())
        if not scopes <= KNOWN_SCOPES:
            return web.Response(status=400, text="INVALID_SCOPE: Illegal scope")
        state = q.get("state", "")
        if self.deny:
            target = {"error": "access_denied", "state": state}
        else:
            code = secrets.token_urlsafe(24)
            self._codes[code] = _Code(self.next_user, q["code_challenge"], redirect_uri, " ".join(sorted(scopes)))
            target = {"code": code, "state": state}
        raise web.HTTPFound(f"{redirect_uri}?{urlencode(target)}")

    async def _token(self, request: web.Request) -> web.Response:
        if (failed := await self.scripted("token", request, lambda status: {"error": "server_error"})) is not None:
            return failed
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        self.grants.append(grant)
        if form.get("client_id") != self.client_id:
            return self._token_error(400, "invalid_client")
        if grant == "authorization_code":
            code = self._codes.pop(str(form.get("code", "")), None)  # a code works once
            if code is None or form.get("redirect_uri") != code.redirect_uri:
                return self._token_error(400, "invalid_grant", "Invalid authorization code")
            verifier = str(form.get("code_verifier", ""))
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not 43 <= len(verifier) <= 128 or digest != code.challenge:
                return self._token_error(400, "invalid_grant", "code_verifier was incorrect")
            return self._issue(code.user, code.scope, refresh=True)
        if grant == "refresh_token":
            known = self.refresh_tokens.pop(str(form.get("refresh_token", "")), None)
            if known is None:
                return self._token_error(400, "invalid_grant", "Refresh token revoked")
            return self._issue(*known, refresh=True)
        return self._token_error(400, "unsupported_grant_type")

    def _issue(self, user: str, scope: str, *, refresh: bool) -> web.Response:
        access = "at-" + secrets.token_urlsafe(24)
        self.tokens[access] = (user, scope)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "scope": scope,
        }
        if refresh:
            token = "rt-" + secrets.token_urlsafe(24)
            self.refresh_tokens[token] = (user, scope)
            body["refresh_token"] = token
        return web.json_response(body)

    @staticmethod
    def _token_error(status: int, error: str = "server_error", description: str = "") -> web.Response:
        body = {"error": error, "error_description": description or error}
        return web.json_response(body, status=status)

    def _bearer(self, request: web.Request) -> tuple[str, str] | web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        found = self.tokens.get(token) if scheme == "Bearer" else None
        if found is None:
            self.unauthorized += 1
            return web.json_response(spotify_error(401, "The access token expired"), status=401)
        user, scope = found
        if user not in self.allowed:
            return web.json_response(spotify_error(403, NOT_REGISTERED), status=403)
        return user, scope

    async def _create_playlist(self, request: web.Request) -> web.Response:
        if (failed := await self.scripted("create", request, spotify_error)) is not None:
            return failed
        who = self._bearer(request)
        if isinstance(who, web.Response):
            return who
        user, scope = who
        body = await request.json()
        public = bool(body.get("public", True))
        needed = "playlist-modify-public" if public else "playlist-modify-private"
        if needed not in scope.split():
            return web.json_response(spotify_error(403, "Insufficient client scope"), status=403)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return web.json_response(spotify_error(400, "Missing required field: name"), status=400)
        playlist = FakePlaylist(secrets.token_hex(11), user, name, public, str(body.get("description", "")))
        self.playlists[playlist.id] = playlist
        return web.json_response(
            {
                "id": playlist.id,
                "name": name,
                "public": public,
                "type": "playlist",
                "uri": f"spotify:playlist:{playlist.id}",
                "external_urls": {"spotify": f"https://open.spotify.com/playlist/{playlist.id}"},
                "owner": {"id": user},
            },
            status=201,
        )

    async def _add_items(self, request: web.Request) -> web.Response:
        if (failed := await self.scripted("items", request, spotify_error)) is not None:
            return failed
        who = self._bearer(request)
        if isinstance(who, web.Response):
            return who
        user, _scope = who
        playlist = self.playlists.get(request.match_info["playlist_id"])
        if playlist is None:
            return web.json_response(spotify_error(404), status=404)
        if playlist.owner != user:
            return web.json_response(
                spotify_error(403, "You cannot add tracks to a playlist you don't own."), status=403
            )
        uris = (await request.json()).get("uris")
        if not isinstance(uris, list) or not uris:
            return web.json_response(spotify_error(400, "No uris provided"), status=400)
        if len(uris) > 100:
            return web.json_response(spotify_error(400, "Too many ids requested"), status=400)
        if not all(isinstance(u, str) and u.startswith("spotify:track:") for u in uris):
            return web.json_response(spotify_error(400, "Invalid track uri"), status=400)
        playlist.items.extend(uris)
        self.item_batches.append(len(uris))
        return web.json_response({"snapshot_id": secrets.token_hex(8)}, status=201)
