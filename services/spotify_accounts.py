"""Save to Spotify: a playlist created in the person's own Spotify account, through their authorization.

The flow is OAuth 2.0 Authorization Code with PKCE (RFC 7636), as Spotify documents it for apps
that cannot keep a secret in the client:

1. `connect_url()` makes a code verifier (64 random bytes, URL-safe) and a `state` (256 random bits),
   stores the verifier (encrypted) under the state with who asked and what to save afterwards, and
   returns Spotify's authorize URL (`code_challenge` = BASE64URL(SHA-256(verifier)), S256);
2. Spotify sends the person back to `{PUBLIC_URL}/spotify/callback?code=…&state=…`; `complete()`
   takes the state (once: DELETE … RETURNING, within 10 minutes), exchanges the code with the
   verifier, stores the tokens and saves the playlist that was waiting;
3. `save()` uses the stored access token, refreshing it first when it is about to expire (Spotify
   may rotate the refresh token; the new one replaces the old) and once more on a 401.

Only the scope `playlist-modify-private` is asked for: Encore creates private playlists and adds
songs to them, nothing else. Tokens are encrypted at rest with Fernet (`cryptography`; AES-128-CBC
with HMAC-SHA256) under SPOTIFY_TOKEN_KEY — a comma-separated list, the first key encrypts and every
key decrypts, so keys can be rotated. A token no key can read (the key was changed) counts as no
authorization. `disconnect()` deletes the tokens.

Spotify's answers that people meet: 403 from a development-mode app for anyone outside its
allow-list (at most 5 people since February 2026) — said plainly, with export and the share link as
the way for everybody else; 429 with Retry-After — waited for when short (up to `max_wait`
seconds), otherwise said with the wait; an expired or revoked authorization — a new authorize link.

Web API calls (February 2026 endpoints): `POST /me/playlists`, then `POST /playlists/{id}/items`
with at most 100 URIs per request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.playlists import PlaylistRepository, SpotifyLinkRepository
from services.dto import Listener, PlaylistInfo, SpotifyConnected, SpotifySaved, TrackInfo
from services.errors import (
    EncoreError,
    InvalidInput,
    ProviderUnavailable,
    SpotifyNotConfigured,
    SpotifyNotConnected,
    SpotifyRateLimited,
    SpotifyRefused,
)

log = logging.getLogger(__name__)

SCOPE = "playlist-modify-private"
ITEMS_PER_REQUEST = 100
REQUEST_TTL = timedelta(minutes=10)  # an authorization must come back within this
REFRESH_MARGIN = timedelta(seconds=60)  # refresh a token this long before it expires
MSG_OFF = "Saving to Spotify is not set up on this Encore. Export the playlist or share its link instead."
MSG_CONNECT = "Connect your Spotify account first: Encore needs your permission to create the playlist."
MSG_EXPIRED = "Your Spotify authorization has expired or was revoked. Connect your Spotify account again."
MSG_STATE = "This Spotify authorization link has expired or was used already. Start again from Encore."
MSG_DENIED = "You did not allow Encore to create playlists in your Spotify, so nothing was saved."
MSG_REFUSED = (
    "Spotify refused: this Encore's Spotify app is in development mode, and Spotify lets such an app "
    "serve only the people its owner added to it (at most 5). Export the playlist or share its link "
    "instead — they work for everybody."
)
MSG_NO_SPOTIFY_IDS = "None of these songs is known on Spotify, so there is nothing to save there."


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def code_challenge(verifier: str) -> str:
    """PKCE S256: BASE64URL(SHA-256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def wait_text(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    if seconds < 90:
        return f"{math.ceil(seconds)} seconds"
    if minutes < 90:
        return f"{minutes} minutes"
    return f"{math.ceil(seconds / 3600)} hours"


class TokenCipher:
    """Fernet over one or more keys (the first encrypts; all decrypt, so a key can be rotated)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("SPOTIFY_TOKEN_KEY is empty")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "SPOTIFY_TOKEN_KEY must be Fernet keys (32 url-safe base64-encoded bytes each), "
                "e.g. from `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            ) from exc

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str | None) -> str | None:
        """The text, or None when no key can read it (or it was tampered with)."""
        if not token:
            return None
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            return None


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_in: int
    scope: str


class _Unauthorized(Exception):
    """401 from the Web API: the access token is no longer good."""


class _InvalidGrant(Exception):
    """400 invalid_grant from the token endpoint: the code or refresh token is not good (any more)."""


class SpotifyUserApi:
    """Spotify's accounts service and Web API on behalf of a person (aiohttp; no secret: PKCE)."""

    def __init__(
        self,
        client_id: str,
        *,
        accounts_url: str = "https://accounts.spotify.com/",
        token_url: str = "https://accounts.spotify.com/api/token",
        api_url: str = "https://api.spotify.com/v1/",
        timeout: float = 10.0,
        max_wait: float = 10.0,
        max_retries: int = 2,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client_id = client_id
        self._authorize_url = accounts_url.rstrip("/") + "/authorize"
        self._token_url = token_url
        self._api = api_url.rstrip("/") + "/"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_wait = max_wait
        self._max_retries = max_retries
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def authorize_url(self, *, redirect_uri: str, state: str, challenge: str) -> str:
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "code_challenge_method": "S256",
            "code_challenge": challenge,
            "state": state,
            "scope": SCOPE,
        }
        return f"{self._authorize_url}?{urlencode(query)}"

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> Tokens:
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": self.client_id,
                "code_verifier": verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> Tokens:
        return await self._token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.client_id}
        )

    async def create_playlist(self, access_token: str, name: str, description: str) -> tuple[str, str]:
        """A private playlist in the person's account: (its id, its open.spotify.com URL)."""
        body = await self._call(
            "POST", "me/playlists", access_token, {"name": name, "public": False, "description": description}
        )
        playlist_id = str(body["id"])
        url = (body.get("external_urls") or {}).get("spotify") or f"https://open.spotify.com/playlist/{playlist_id}"
        return playlist_id, str(url)

    async def add_items(self, access_token: str, playlist_id: str, uris: Sequence[str]) -> None:
        """At most 100 URIs (one request)."""
        if len(uris) > ITEMS_PER_REQUEST:
            raise ValueError("at most 100 items per request")
        await self._call("POST", f"playlists/{playlist_id}/items", access_token, {"uris": list(uris)})

    async def _token(self, form: dict[str, str]) -> Tokens:
        for attempt in range(self._max_retries + 1):
            try:
                async with self._http().post(self._token_url, data=form) as response:
                    body = await _json(response)
                    if response.status == 429:
                        await self._wait(response, attempt)
                        continue
                    if response.status == 400 and str(body.get("error")) in ("invalid_grant", "invalid_request"):
                        raise _InvalidGrant(str(body.get("error_description") or body.get("error")))
                    if response.status >= 400:
                        raise ProviderUnavailable(f"Spotify's accounts service answered {response.status}.")
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ProviderUnavailable("Spotify's accounts service cannot be reached right now.") from exc
            access = body.get("access_token")
            if not isinstance(access, str) or not access:
                raise ProviderUnavailable("Spotify's accounts service gave no access token.")
            refresh = body.get("refresh_token")
            return Tokens(
                access_token=access,
                refresh_token=str(refresh) if refresh else None,
                expires_in=int(body.get("expires_in") or 3600),
                scope=str(body.get("scope") or ""),
            )
        raise AssertionError("unreachable")  # _wait raises on the last attempt

    async def _call(self, method: str, path: str, access_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}"}
        for attempt in range(self._max_retries + 1):
            try:
                async with self._http().request(method, self._api + path, json=payload, headers=headers) as response:
                    body = await _json(response)
                    if response.status == 429:
                        await self._wait(response, attempt)
                        continue
                    if response.status == 401:
                        raise _Unauthorized()
                    if response.status == 403:
                        log.info("Spotify refused %s %s: %s", method, path, _message(body))
                        raise SpotifyRefused(MSG_REFUSED)
                    if response.status >= 500:
                        raise ProviderUnavailable("Spotify is having trouble right now; try again in a minute.")
                    if response.status >= 400:
                        raise ProviderUnavailable(f"Spotify answered {response.status}: {_message(body)}")
                    return body
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ProviderUnavailable("Spotify cannot be reached right now.") from exc
        raise AssertionError("unreachable")

    async def _wait(self, response: aiohttp.ClientResponse, attempt: int) -> None:
        """429: wait Retry-After when it is short and tries are left; else say how long to wait."""
        try:
            retry_after = max(0.0, float(response.headers.get("Retry-After", "1")))
        except ValueError:
            retry_after = 1.0
        if retry_after > self._max_wait or attempt >= self._max_retries:
            raise SpotifyRateLimited(
                f"Spotify asks to wait {wait_text(retry_after)} before the next request. Try again then.",
                retry_after,
            )
        await self._sleep(retry_after)


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}
    return body if isinstance(body, dict) else {}


def _message(body: dict[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or "")[:200]
    return str(error or "")[:200]


class PlaylistSource(Protocol):
    """`services.playlists.PlaylistService` fits."""

    async def tracks(self, listener: Listener, playlist_id: str) -> tuple[PlaylistInfo, list[TrackInfo]]: ...


class SpotifySaveService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        playlists: PlaylistSource,
        *,
        api: SpotifyUserApi | None = None,
        cipher: TokenCipher | None = None,
        redirect_uri: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._sessions = sessions
        self._playlists = playlists
        self._api = api
        self._cipher = cipher
        self.redirect_uri = redirect_uri
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self._api is not None and self._cipher is not None and bool(self.redirect_uri)

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()

    def _require(self) -> tuple[SpotifyUserApi, TokenCipher, str]:
        if self._api is None or self._cipher is None or not self.redirect_uri:
            raise SpotifyNotConfigured(MSG_OFF)
        return self._api, self._cipher, self.redirect_uri

    async def connected(self, listener: Listener) -> bool:
        if not self.enabled or listener.owner == "open":
            return False
        async with self._sessions() as s:
            return await SpotifyLinkRepository(s).get(listener.owner) is not None

    async def connect_url(self, listener: Listener, playlist_id: str | None = None) -> str:
        """Spotify's authorize URL for this person; after it, `playlist_id` (theirs) is saved."""
        api, cipher, redirect_uri = self._require()
        if listener.owner == "open":
            raise InvalidInput("Saving to Spotify needs an API key (or the bot, or the web page).")
        verifier = secrets.token_urlsafe(64)  # 86 characters (PKCE allows 43–128)
        state = secrets.token_urlsafe(32)
        now = self._clock()
        async with self._sessions.begin() as s:
            links = SpotifyLinkRepository(s)
            await links.purge_requests(now - REQUEST_TTL * 6)
            playlist_pk = None
            if playlist_id is not None:
                row = await PlaylistRepository(s).owned(listener.owner, playlist_id)
                playlist_pk = row.id if row is not None else None
            await links.add_request(
                state,
                owner=listener.owner,
                user_id=listener.user_id,
                verifier=cipher.encrypt(verifier),
                playlist_id=playlist_pk,
                created_at=now,
            )
        return api.authorize_url(redirect_uri=redirect_uri, state=state, challenge=code_challenge(verifier))

    async def complete(self, state: str, *, code: str | None, error: str | None = None) -> SpotifyConnected:
        """The callback: connect the person (store their tokens) and save the playlist that waited.
        `InvalidInput` for an unknown, used or expired state, or a refusal on Spotify's page."""
        api, cipher, redirect_uri = self._require()
        async with self._sessions.begin() as s:
            request = await SpotifyLinkRepository(s).take_request(state, since=self._clock() - REQUEST_TTL)
            playlist = None
            if request is not None and request.playlist_id is not None:
                row = await PlaylistRepository(s).by_id(request.playlist_id)
                playlist = row.public_id if row is not None and row.owner == request.owner else None
        if request is None:
            raise InvalidInput(MSG_STATE)
        if error and error != "access_denied":
            raise InvalidInput(f"Spotify did not authorize Encore ({error[:100]}), so nothing was saved.")
        if error or not code:
            raise InvalidInput(MSG_DENIED)
        verifier = cipher.decrypt(request.verifier)
        if verifier is None:
            raise InvalidInput(MSG_STATE)
        try:
            tokens = await api.exchange(code, verifier, redirect_uri)
        except _InvalidGrant as exc:
            raise InvalidInput(MSG_STATE) from exc
        listener = Listener(request.owner, request.user_id)
        await self._store(listener, tokens, cipher)
        if playlist is None:
            return SpotifyConnected()
        try:
            return SpotifyConnected(saved=await self.save(listener, playlist))
        except EncoreError as exc:  # connected; the save itself failed (refused, rate limited …)
            return SpotifyConnected(error=exc.message)

    async def save(self, listener: Listener, playlist_id: str) -> SpotifySaved:
        """Create the playlist in the person's Spotify with every song that has a Spotify id.

        `SpotifyNotConnected` (with an authorize URL) when there is no usable authorization."""
        api, cipher, _redirect = self._require()
        info, tracks = await self._playlists.tracks(listener, playlist_id)  # PlaylistNotFound if not theirs
        uris = list(dict.fromkeys(f"spotify:track:{t.spotify_id}" for t in tracks if t.spotify_id))
        if not uris:
            raise InvalidInput(MSG_NO_SPOTIFY_IDS)
        access = await self._access(listener, playlist_id, cipher)
        name = info.name or "Encore likes"
        description = f"Saved from Encore ({len(uris)} songs)."
        spotify_id, url = await self._authorized(
            listener, playlist_id, cipher, access, lambda token: api.create_playlist(token, name, description)
        )
        for i in range(0, len(uris), ITEMS_PER_REQUEST):
            batch = uris[i : i + ITEMS_PER_REQUEST]

            async def add(token: str, batch: list[str] = batch) -> None:
                await api.add_items(token, spotify_id, batch)

            await self._authorized(listener, playlist_id, cipher, None, add)
        log.info("saved a playlist of %d songs to someone's Spotify", len(uris))
        return SpotifySaved(name=name, url=url, spotify_id=spotify_id, added=len(uris), skipped=len(tracks) - len(uris))

    async def disconnect(self, listener: Listener) -> bool:
        """Forget the person's Spotify tokens; False when there were none."""
        if listener.owner == "open":
            return False
        async with self._sessions.begin() as s:
            return await SpotifyLinkRepository(s).delete(listener.owner)

    # -- tokens ------------------------------------------------------------------------------

    async def _store(self, listener: Listener, tokens: Tokens, cipher: TokenCipher) -> None:
        async with self._sessions.begin() as s:
            await SpotifyLinkRepository(s).put(
                listener.owner,
                user_id=listener.user_id,
                access_token=cipher.encrypt(tokens.access_token),
                refresh_token=cipher.encrypt(tokens.refresh_token) if tokens.refresh_token else None,
                expires_at=self._clock() + timedelta(seconds=max(tokens.expires_in, 0)),
                scope=tokens.scope,
            )

    async def _access(self, listener: Listener, playlist_id: str, cipher: TokenCipher) -> str:
        """A usable access token (refreshed when it is about to expire)."""
        async with self._sessions() as s:
            link = await SpotifyLinkRepository(s).get(listener.owner)
        if link is None:
            raise SpotifyNotConnected(MSG_CONNECT, await self.connect_url(listener, playlist_id))
        access = cipher.decrypt(link.access_token)
        if access is None:  # the key changed: the stored tokens are unreadable
            return await self._refresh(listener, playlist_id, cipher)
        if _aware(link.expires_at) - REFRESH_MARGIN <= self._clock():
            return await self._refresh(listener, playlist_id, cipher)
        return access

    async def _refresh(self, listener: Listener, playlist_id: str, cipher: TokenCipher) -> str:
        api, _cipher, _redirect = self._require()
        async with self._sessions() as s:
            link = await SpotifyLinkRepository(s).get(listener.owner)
        refresh = cipher.decrypt(link.refresh_token) if link is not None else None
        if refresh is None:
            await self._expired(listener)
            raise SpotifyNotConnected(MSG_EXPIRED, await self.connect_url(listener, playlist_id), expired=True)
        try:
            tokens = await api.refresh(refresh)
        except _InvalidGrant:
            await self._expired(listener)
            raise SpotifyNotConnected(
                MSG_EXPIRED, await self.connect_url(listener, playlist_id), expired=True
            ) from None
        await self._store(listener, tokens, cipher)
        return tokens.access_token

    async def _expired(self, listener: Listener) -> None:
        log.info("a Spotify authorization expired or was revoked; its tokens are removed")
        async with self._sessions.begin() as s:
            await SpotifyLinkRepository(s).delete(listener.owner)

    async def _authorized(
        self,
        listener: Listener,
        playlist_id: str,
        cipher: TokenCipher,
        access: str | None,
        call: Callable[[str], Awaitable[Any]],
    ) -> Any:
        """`call(token)`, refreshing the token once on a 401."""
        token = access or await self._access(listener, playlist_id, cipher)
        try:
            return await call(token)
        except _Unauthorized:
            token = await self._refresh(listener, playlist_id, cipher)
        try:
            return await call(token)
        except _Unauthorized:
            await self._expired(listener)
            raise SpotifyNotConnected(
                MSG_EXPIRED, await self.connect_url(listener, playlist_id), expired=True
            ) from None
