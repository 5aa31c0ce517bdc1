"""Save to Spotify against the fake accounts service and Web API on 127.0.0.1 (SQLite and PostgreSQL):
PKCE authorization, token exchange and refresh, batches of 100, the allow-list's 403, 429 Retry-After,
expired and revoked authorizations, encryption at rest and key rotation, disconnect, ownership."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import SpotifyAuthRequest, SpotifyLink, Track
from services.dto import Listener
from services.errors import (
    InvalidInput,
    PlaylistNotFound,
    SpotifyNotConfigured,
    SpotifyNotConnected,
    SpotifyRateLimited,
    SpotifyRefused,
)
from services.playlists import PlaylistService
from services.spotify_accounts import (
    MSG_DENIED,
    MSG_REFUSED,
    SCOPE,
    SpotifySaveService,
    SpotifyUserApi,
    TokenCipher,
    code_challenge,
)
from tests.fakes.spotify import Failure
from tests.fakes.spotify_accounts import CLIENT_ID, FakeSpotifyAccounts
from tests.playlists.conftest import ANN, BEN, seed

Sessions = async_sessionmaker[AsyncSession]
REDIRECT = "https://encore.example/spotify/callback"
KEY = TokenCipher.generate_key()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def spotify() -> AsyncIterator[FakeSpotifyAccounts]:
    async with FakeSpotifyAccounts(allowed=("ann",)) as fake:
        fake.redirect_uris.add(REDIRECT)
        yield fake


class Waits(list[float]):
    async def __call__(self, seconds: float) -> None:  # Retry-After is honoured without a real wait
        self.append(seconds)


def make(
    sessions: Sessions, fake: FakeSpotifyAccounts, *, keys: tuple[str, ...] = (KEY,), clock: Clock | None = None
) -> tuple[SpotifySaveService, PlaylistService, Waits, SpotifyUserApi]:
    waits = Waits()
    api = SpotifyUserApi(
        CLIENT_ID,
        accounts_url=fake.base_url + "/",
        token_url=fake.base_url + "/api/token",
        api_url=fake.base_url + "/v1/",
        max_wait=10.0,
        sleep=waits,
    )
    playlists = PlaylistService(sessions, None)  # type: ignore[arg-type]
    service = SpotifySaveService(
        sessions, playlists, api=api, cipher=TokenCipher(keys), redirect_uri=REDIRECT, clock=clock or Clock()
    )
    return service, playlists, waits, api


async def approve(authorize_url: str) -> dict[str, str]:
    """The person approves on Spotify's page: the redirect's query (code and state, or error)."""
    async with aiohttp.ClientSession() as http, http.get(authorize_url, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def big_playlist(sessions: Sessions, playlists: PlaylistService, who: Listener, songs: int = 250) -> str:
    await seed(sessions, tracks=songs)
    async with sessions.begin() as s:  # a Deezer-only song: no Spotify id, left out
        s.add(Track(id=songs + 1, deezer_id=555, name="Only on Deezer", artists="Somebody", search_key="x"))
    pid = (await playlists.create(who, "Road <trip> & more")).id
    for t in range(1, songs + 2):
        await playlists.add(who, pid, t)
    return pid


async def connect(service: SpotifySaveService, who: Listener, pid: str | None = None) -> object:
    query = await approve(await service.connect_url(who, pid))
    return await service.complete(query["state"], code=query.get("code"), error=query.get("error"))


async def test_authorize_then_save_in_batches_of_100(sessions: Sessions, spotify: FakeSpotifyAccounts) -> None:
    service, playlists, _waits, api = make(sessions, spotify)
    pid = await big_playlist(sessions, playlists, ANN)

    with pytest.raises(SpotifyNotConnected) as needed:
        await service.save(ANN, pid)
    url = urlsplit(needed.value.authorize_url)
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert params["client_id"] == CLIENT_ID and params["response_type"] == "code"
    assert params["redirect_uri"] == REDIRECT
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["scope"] == SCOPE == "playlist-modify-private"  # playlist writing only
    assert len(params["state"]) >= 43
    assert not needed.value.expired

    query = await approve(needed.value.authorize_url)
    done = await service.complete(query["state"], code=query["code"])
    assert done.error is None and done.saved is not None
    saved = done.saved
    assert (saved.added, saved.skipped, saved.name) == (250, 1, "Road <trip> & more")
    [made] = spotify.playlists_of("ann")
    assert made.name == "Road <trip> & more" and made.public is False
    assert saved.url == f"https://open.spotify.com/playlist/{made.id}"
    assert spotify.item_batches == [100, 100, 50]
    assert made.items == [f"spotify:track:sp{i:020d}" for i in range(1, 251)]
    assert spotify.grants == ["authorization_code"]
    assert await service.connected(ANN) and not await service.connected(BEN)

    # Saved again later: the stored token is used (no new authorization).
    again = await service.save(ANN, pid)
    assert again.spotify_id != saved.spotify_id and spotify.grants == ["authorization_code"]
    await api.close()


async def test_tokens_are_encrypted_at_rest_and_keys_rotate(sessions: Sessions, spotify: FakeSpotifyAccounts) -> None:
    service, playlists, _waits, api = make(sessions, spotify)
    pid = await big_playlist(sessions, playlists, ANN, songs=3)
    await connect(service, ANN)
    access = next(iter(spotify.tokens))
    refresh = next(iter(spotify.refresh_tokens))
    async with sessions() as s:
        dump = " ".join(str(v) for row in (await s.execute(text("SELECT * FROM spotify_links"))).all() for v in row)
        verifiers = (await s.scalars(select(SpotifyAuthRequest.verifier))).all()
    assert access not in dump and refresh not in dump  # only Fernet tokens are stored
    assert "gAAAAA" in dump
    assert verifiers == []  # the request was used up

    # A new key first, the old one still readable: saving works without a new authorization.
    rotated, _p, _w, api2 = make(sessions, spotify, keys=(TokenCipher.generate_key(), KEY))
    assert (await rotated.save(ANN, pid)).added == 3
    # A key that cannot read the tokens: as good as no authorization — a new authorize link.
    lost, _p, _w, api3 = make(sessions, spotify, keys=(TokenCipher.generate_key(),))
    with pytest.raises(SpotifyNotConnected) as caught:
        await lost.save(ANN, pid)
    assert caught.value.expired
    with pytest.raises(ValueError, match="Fernet"):
        TokenCipher(["not-a-key"])
    for a in (api, api2, api3):
        await a.close()


async def test_refresh_when_expiring_and_on_401(sessions: Sessions, spotify: FakeSpotifyAccounts) -> None:
    clock = Clock()
    service, playlists, _waits, api = make(sessions, spotify, clock=clock)
    pid = await big_playlist(sessions, playlists, ANN, songs=5)
    await connect(service, ANN)

    clock.now += timedelta(hours=2)  # past expires_in: refreshed before the first call
    assert (await service.save(ANN, pid)).added == 5
    assert spotify.grants == ["authorization_code", "refresh_token"] and spotify.unauthorized == 0

    spotify.expire_access_tokens()  # Spotify drops the token early: 401, refresh once, retry
    assert (await service.save(ANN, pid)).added == 5
    assert spotify.grants[-1] == "refresh_token" and spotify.unauthorized == 1
    await api.close()


async def test_revoked_authorization_asks_to_connect_again(sessions: Sessions, spotify: FakeSpotifyAccounts) -> None:
    service, playlists, _waits, api = make(sessions, spotify)
    pid = await big_playlist(sessions, playlists, ANN, songs=2)
    await connect(service, ANN)
    spotify.revoke("ann")
    with pytest.raises(SpotifyNotConnected) as caught:
        await service.save(ANN, pid)
    assert caught.value.expired and "expired or was revoked" in caught.value.message
    assert not await service.connected(ANN)  # the dead tokens are gone
    async with sessions() as s:
        assert (await s.scalars(select(SpotifyLink))).all() == []
    # The new link works and saves the playlist it was made for.
    query = await approve(caught.value.authorize_url)
    done = await service.complete(query["state"], code=query["code"])
    assert done.saved is not None and done.saved.added == 2
    await api.close()


async def test_outside_the_allow_list_is_told_plainly(sessions: Sessions, spotify: FakeSpotifyAccounts) -> None:
    service, playlists, _waits, api = make(sessions, spotify)
    pid = await big_playlist(sessions, playlists, BEN, songs=2)
    spotify.next_user = "boris"  # not among the app's (at most 5) users
    done = await connect(service, BEN, pid)
    assert done.saved is None and done.error == MSG_REFUSED
    assert "at most 5" in MSG_REFUSED and "Export" in MSG_REFUSED
    with pytest.raises(SpotifyRefused):
        await service.save(BEN, pid)
    assert spotify.playlists == {}
    await api.close()


async def test_429_is_waited_for_when_short_and_said_when_long(
    sessions: Sessions, spotify: FakeSpotifyAccounts
) -> None:
    service, playlists, waits, api = make(sessions, spotify)
    pid = await big_playlist(sessions, playlists, ANN, songs=150)
    await connect(service, ANN)
    spotify.fail("items", Failure(429, headers={"Retry-After": "2"}))
    assert (await service.save(ANN, pid)).added == 150
    assert waits == [2.0] and spotify.item_batches == [100, 50]

    spotify.fail("create", Failure(429, headers={"Retry-After": "3600"}))
    with pytest.raises(SpotifyRateLimited) as caught:
        await service.save(ANN, pid)
    assert caught.value.retry_after == 3600 and "60 minutes" in caught.value.message
    assert waits == [2.0]  # an hour is not waited for
    await api.close()


async def test_states_are_single_use_expire_and_denials_save_nothing(
    sessions: Sessions, spotify: FakeSpotifyAccounts
) -> None:
    clock = Clock()
    service, playlists, _waits, api = make(sessions, spotify, clock=clock)
    pid = await big_playlist(sessions, playlists, ANN, songs=2)
    query = await approve(await service.connect_url(ANN, pid))
    await service.complete(query["state"], code=query["code"])
    with pytest.raises(InvalidInput):  # the same state again
        await service.complete(query["state"], code=query["code"])
    with pytest.raises(InvalidInput):
        await service.complete("forged-state", code="whatever")

    late = await approve(await service.connect_url(ANN, pid))
    clock.now += timedelta(minutes=11)
    with pytest.raises(InvalidInput):
        await service.complete(late["state"], code=late["code"])

    spotify.deny = True
    denied = await approve(await service.connect_url(ANN, pid))
    assert denied["error"] == "access_denied"
    with pytest.raises(InvalidInput) as caught:
        await service.complete(denied["state"], code=None, error="access_denied")
    assert caught.value.message == MSG_DENIED
    assert len(spotify.playlists) == 1  # only the first, approved save
    await api.close()


async def test_the_token_endpoint_checks_the_pkce_verifier(spotify: FakeSpotifyAccounts) -> None:
    api = SpotifyUserApi(CLIENT_ID, accounts_url=spotify.base_url, token_url=spotify.base_url + "/api/token")
    verifier = "v" * 64
    url = api.authorize_url(redirect_uri=REDIRECT, state="s" * 43, challenge=code_challenge(verifier))
    query = await approve(url)
    from services.spotify_accounts import _InvalidGrant

    with pytest.raises(_InvalidGrant):
        await api.exchange(query["code"], "w" * 64, REDIRECT)  # wrong verifier: refused (and the code used up)
    query = await approve(url)
    tokens = await api.exchange(query["code"], verifier, REDIRECT)
    assert tokens.access_token in spotify.tokens and tokens.refresh_token
    await api.close()


async def test_disconnect_ownership_and_switched_off(sessions: Sessions, spotify: FakeSpotifyAccounts) -> None:
    service, playlists, _waits, api = make(sessions, spotify)
    pid = await big_playlist(sessions, playlists, ANN, songs=2)
    await connect(service, ANN)
    with pytest.raises(PlaylistNotFound):
        await service.save(BEN, pid)  # someone else's playlist: not found, nothing sent to Spotify
    assert await service.disconnect(ANN) is True
    assert await service.disconnect(ANN) is False
    with pytest.raises(SpotifyNotConnected):
        await service.save(ANN, pid)
    assert spotify.playlists == {}

    off = SpotifySaveService(sessions, playlists)
    assert not off.enabled
    with pytest.raises(SpotifyNotConfigured):
        await off.save(ANN, pid)
    with pytest.raises(SpotifyNotConfigured):
        await off.connect_url(ANN)
    await api.close()
