"""Playlists over HTTP, on the real services: the API (bound to API keys; 401 without one, 404 for
another key's), the web page (bound to the browser's session, CSRF-protected forms), the share page,
exports, and Save to Spotify through the page's callback against the fake Spotify accounts."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.http.config import WebConfig
from services.playlists import PlaylistService
from services.spotify_accounts import SpotifySaveService, SpotifyUserApi, TokenCipher
from tests.api.test_real_services import real_container
from tests.fakes.spotify import Failure
from tests.fakes.spotify_accounts import CLIENT_ID, FakeSpotifyAccounts
from tests.wiring import Wiring

A = {"X-API-Key": "key-a"}
B = {"Authorization": "Bearer key-b"}
HTML = {"Accept": "text/html"}


@pytest.fixture
async def spotify() -> AsyncIterator[FakeSpotifyAccounts]:
    async with FakeSpotifyAccounts(allowed=("ann",)) as fake:
        yield fake


@pytest.fixture
async def real(spotify: FakeSpotifyAccounts) -> AsyncIterator[Wiring]:
    container = await real_container()
    services = container.services
    playlists = PlaylistService(container.sessions, services.radio, genres=services.genre)
    api = SpotifyUserApi(
        CLIENT_ID,
        accounts_url=spotify.base_url,
        token_url=spotify.base_url + "/api/token",
        api_url=spotify.base_url + "/v1/",
    )
    services.playlists = playlists
    services.spotify_save = SpotifySaveService(
        container.sessions, playlists, api=api, cipher=TokenCipher([TokenCipher.generate_key()]), redirect_uri="x"
    )
    yield container
    await api.close()
    await container.close()


@pytest.fixture
async def client(aiohttp_client: Any, real: Wiring, spotify: FakeSpotifyAccounts) -> TestClient:
    config = WebConfig(rate_limit_per_minute=0, api_keys=frozenset({"key-a", "key-b"}))
    test_client = await aiohttp_client(real.http_app(config))
    redirect = str(test_client.make_url("/spotify/callback"))
    real.services.spotify_save.redirect_uri = redirect  # type: ignore[union-attr]
    spotify.redirect_uris.add(redirect)
    return test_client


async def api(client: TestClient, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return await client.request(method, "/api/v1" + path, **kwargs)


async def js(response: Any, status: int) -> Any:
    assert response.status == status, (response.status, await response.text())
    return await response.json() if response.content_type.endswith("json") else None


# -- the API -----------------------------------------------------------------------------------


async def test_the_api_needs_a_key_and_keys_own_their_playlists(client: TestClient) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer nope"}):
        assert (await api(client, "GET", "/playlists", headers)).status == 401
        response = await api(client, "POST", "/playlists", headers, {"name": "x"})
        assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["code"] == "api_key_required"

    made = await js(await api(client, "POST", "/playlists", A, {"name": "A's <list>"}), 201)
    pid = made["id"]
    assert made == {
        "id": pid,
        "name": "A's <list>",
        "kind": "list",
        "count": 0,
        "version": 0,
        "shared": False,
        "share_url": None,
    }
    await js(await api(client, "POST", f"/playlists/{pid}/tracks", A, {"track_id": 1}), 201)
    assert (await js(await api(client, "GET", "/playlists", B), 200)) == {"items": []}

    unknown = "Z" * 22
    attempts = [
        ("GET", f"/playlists/{pid}", None),
        ("PATCH", f"/playlists/{pid}", {"name": "mine now"}),
        ("POST", f"/playlists/{pid}/tracks", {"track_id": 2}),
        ("DELETE", f"/playlists/{pid}/tracks/1", None),
        ("POST", f"/playlists/{pid}/move", {"track_id": 1, "position": 1}),
        ("GET", f"/playlists/{pid}/export?format=csv", None),
        ("POST", f"/playlists/{pid}/share", None),
        ("DELETE", f"/playlists/{pid}/share", None),
        ("POST", f"/playlists/{pid}/radio", {}),
        ("GET", f"/playlists/{pid}/youtube", None),
        ("POST", f"/playlists/{pid}/spotify", None),
        ("DELETE", f"/playlists/{pid}", None),
    ]
    for method, path, body in attempts:
        theirs = await api(client, method, path, B, body)
        assert theirs.status == 404, (method, path, theirs.status)
        nobody = await api(client, method, path.replace(pid, unknown), B, body)
        assert (await theirs.json())["detail"] == (await nobody.json())["detail"]  # nothing tells them apart
    assert (await js(await api(client, "GET", f"/playlists/{pid}", A), 200))["count"] == 1


async def test_api_journey(client: TestClient) -> None:
    pid = (await js(await api(client, "POST", "/playlists", A, {"name": "Road trip"}), 201))["id"]
    assert (await api(client, "POST", "/playlists", A, {"name": " Road  trip "})).status == 409
    for bad in ({"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": 5}, {"name": "ok", "extra": 1}, {}):
        assert (await api(client, "POST", "/playlists", A, bad)).status == 422, bad
    raw = await client.post("/api/v1/playlists", data="{", headers={**A, "Content-Type": "application/json"})
    assert raw.status == 400

    # Thirty taps on "add" at once: one 201, the rest 200, one row.
    answers = await asyncio.gather(
        *(api(client, "POST", f"/playlists/{pid}/tracks", A, {"track_id": 3}) for _ in range(30))
    )
    assert sorted(r.status for r in answers) == [200] * 29 + [201]
    for track in (5, 7, 9):
        await js(await api(client, "POST", f"/playlists/{pid}/tracks", A, {"track_id": track}), 201)
    assert (await api(client, "POST", f"/playlists/{pid}/tracks", A, {"track_id": 10**9})).status == 404

    view = await js(await api(client, "GET", f"/playlists/{pid}?size=2&page=1", A), 200)
    assert view["count"] == 4 and view["tracks"]["pages"] == 2 and [t["id"] for t in view["tracks"]["items"]] == [7, 9]
    version = view["version"]
    moved = await js(
        await api(client, "POST", f"/playlists/{pid}/move", A, {"track_id": 9, "position": 1, "version": version}), 200
    )
    assert moved["version"] == version + 1
    stale = await api(client, "POST", f"/playlists/{pid}/move", A, {"track_id": 5, "position": 1, "version": version})
    assert stale.status == 409 and (await stale.json())["version"] == version + 1
    order = [t["id"] for t in (await js(await api(client, "GET", f"/playlists/{pid}", A), 200))["tracks"]["items"]]
    assert order == [9, 3, 5, 7]
    assert (await api(client, "DELETE", f"/playlists/{pid}/tracks/5", A)).status == 204
    assert (await api(client, "DELETE", f"/playlists/{pid}/tracks/5", A)).status == 404

    # Export: a file to download.
    exported = await client.get(f"/api/v1/playlists/{pid}/export?format=csv", headers=A)
    assert exported.status == 200 and exported.content_type == "text/csv"
    assert exported.headers["Content-Disposition"] == 'attachment; filename="encore-Road-trip.csv"'
    rows = list(csv.DictReader(io.StringIO((await exported.read()).decode("utf-8-sig"))))
    assert [r["position"] for r in rows] == ["1", "2", "3"]
    jspf = await client.get(f"/api/v1/playlists/{pid}/export?format=jspf", headers=A)
    assert len(json.loads(await jspf.read())["playlist"]["track"]) == 3
    assert (await client.get(f"/api/v1/playlists/{pid}/export?format=xlsx", headers=A)).status == 400

    # Share, see the page (read-only, for anyone), revoke.
    share = await js(await api(client, "POST", f"/playlists/{pid}/share", A), 200)
    assert share["url"].endswith(share["path"]) and share["count"] == 3
    assert share["top_genres"] and share["top_genres"][0]["count"] >= 1
    page = await client.get(share["path"], headers=HTML)
    html = await page.text()
    assert page.status == 200 and "Road trip" in html and 'name="csrf"' not in html  # nothing to change there
    assert page.headers["X-Robots-Tag"] == "noindex"
    assert (await api(client, "DELETE", f"/playlists/{pid}/share", A)).status == 204
    assert (await client.get(share["path"], headers=HTML)).status == 404

    # A radio from the playlist belongs to the key.
    radio = await js(await api(client, "POST", f"/playlists/{pid}/radio", A, {"diversity": 0.2}), 201)
    assert radio["track"]["id"] not in (9, 3, 7)
    assert (await api(client, "GET", f"/radio/{radio['radio_id']}", A)).status == 200
    assert (await api(client, "GET", f"/radio/{radio['radio_id']}", B)).status == 404

    youtube = await js(await api(client, "GET", f"/playlists/{pid}/youtube", A), 200)
    assert youtube == {"urls": [], "known": 0, "total": 3}
    renamed = await js(await api(client, "PATCH", f"/playlists/{pid}", A, {"name": "Road trip 2"}), 200)
    assert renamed["name"] == "Road trip 2"
    assert (await api(client, "DELETE", f"/playlists/{pid}", A)).status == 204
    assert (await api(client, "GET", f"/playlists/{pid}", A)).status == 404


async def test_api_save_to_spotify(client: TestClient, spotify: FakeSpotifyAccounts) -> None:
    pid = (await js(await api(client, "POST", "/playlists", A, {"name": "For Spotify"}), 201))["id"]
    for track in (1, 2, 3):
        await api(client, "POST", f"/playlists/{pid}/tracks", A, {"track_id": track})
    needed = await api(client, "POST", f"/playlists/{pid}/spotify", A)
    problem = await js(needed, 409)
    assert problem["code"] == "spotify_not_connected" and problem["expired"] is False
    # The key holder opens the link in a browser; Spotify sends them to the page's callback.
    async with aiohttp.ClientSession() as http, http.get(problem["authorize_url"], allow_redirects=False) as response:
        back = response.headers["Location"]
    assert back.startswith(str(client.make_url("/spotify/callback")))
    landed = await client.get(urlsplit(back).path + "?" + urlsplit(back).query, headers=HTML)
    text = await landed.text()
    assert landed.status == 200 and "Saved <strong>For Spotify</strong> to your Spotify: 3 songs" in text
    saved = await js(await api(client, "POST", f"/playlists/{pid}/spotify", A), 201)
    assert saved["added"] == 3 and saved["url"].startswith("https://open.spotify.com/playlist/")
    assert len(spotify.playlists_of("ann")) == 2
    # The same callback again (a reload) is refused, and B never got a connection.
    again = await client.get(urlsplit(back).path + "?" + urlsplit(back).query, headers=HTML)
    assert "expired or was used already" in await again.text()
    assert (await js(await api(client, "POST", f"/playlists/{pid}/spotify", B), 404))["code"] == "playlist_not_found"
    assert (await api(client, "DELETE", "/spotify", A)).status == 204
    assert (await api(client, "POST", f"/playlists/{pid}/spotify", A)).status == 409
    # Spotify asks to wait: the API says 429 with Retry-After.
    await connect_again(client, problem_url=(await (await api(client, "POST", f"/playlists/{pid}/spotify", A)).json()))
    spotify.fail("create", Failure(429, headers={"Retry-After": "120"}))
    limited = await api(client, "POST", f"/playlists/{pid}/spotify", A)
    assert limited.status == 429 and limited.headers["Retry-After"] == "120"
    assert (await limited.json())["retry_after"] == 120


async def connect_again(client: TestClient, problem_url: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(problem_url["authorize_url"], allow_redirects=False) as response,
    ):
        back = urlsplit(response.headers["Location"])
    await client.get(f"{back.path}?{back.query}", headers=HTML)


async def test_spotify_switched_off_is_503_without_retry_after(aiohttp_client: Any, real: Wiring) -> None:
    real.services.spotify_save = SpotifySaveService(real.sessions, real.services.playlists)  # type: ignore[arg-type]
    client = await aiohttp_client(real.http_app(WebConfig(rate_limit_per_minute=0, api_keys=frozenset({"key-a"}))))
    pid = (await js(await api(client, "POST", "/playlists", A, {"name": "x"}), 201))["id"]
    await api(client, "POST", f"/playlists/{pid}/tracks", A, {"track_id": 1})
    off = await api(client, "POST", f"/playlists/{pid}/spotify", A)
    assert off.status == 503 and "Retry-After" not in off.headers
    assert (await off.json())["code"] == "spotify_save_off"


# -- the page ----------------------------------------------------------------------------------


def origin(client: TestClient) -> dict[str, str]:
    return {"Origin": str(client.make_url("/")).rstrip("/")}


async def token_of(client: TestClient, url: str) -> str:
    html = await (await client.get(url, headers=HTML)).text()
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "no form token"
    return match.group(1)


async def post(client: TestClient, url: str, data: dict[str, str], token: str) -> Any:
    return await client.post(url, data={**data, "csrf": token}, headers=origin(client), allow_redirects=False)


async def test_page_playlists_belong_to_the_browser(client: TestClient, aiohttp_client: Any, real: Wiring) -> None:
    token = await token_of(client, "/track/1")
    # From a card: into a new playlist named in the same form, then back to the card with a note.
    made = await post(
        client, "/playlists/add", {"track_id": "1", "playlist": "", "name": "<i>Mine</i>", "next": "/track/1"}, token
    )
    assert made.status == 303 and made.headers["Location"] == "/track/1?note=added"
    card = await (await client.get("/track/1?note=added", headers=HTML)).text()
    assert "Added to the playlist." in card and "&lt;i&gt;Mine&lt;/i&gt; (1)" in card
    pid = re.search(r'<option value="([A-Za-z0-9_-]{22})">', card).group(1)  # type: ignore[union-attr]
    again = await post(client, "/playlists/add", {"track_id": "1", "playlist": pid, "next": "//evil.example/x"}, token)
    assert again.headers["Location"] == f"/playlists/{pid}?note=already"  # never another host
    for track in ("2", "3"):
        await post(client, "/playlists/add", {"track_id": track, "playlist": pid}, token)

    listing = await (await client.get(f"/playlists/{pid}", headers=HTML)).text()
    assert "&lt;i&gt;Mine&lt;/i&gt;" in listing and "<i>Mine</i>" not in listing
    version = re.search(r'name="version" value="(\d+)"', listing).group(1)  # type: ignore[union-attr]
    moved = await post(client, f"/playlists/{pid}/move", {"track_id": "3", "position": "1", "version": version}, token)
    assert moved.status == 303
    stale = await post(client, f"/playlists/{pid}/move", {"track_id": "2", "position": "1", "version": version}, token)
    assert stale.headers["Location"].endswith("note=changed")  # an old tab: nothing moved
    _info, tracks = await real.services.playlists.tracks(page_owner(client), pid)  # type: ignore[union-attr]
    assert [t.id for t in tracks] == [3, 1, 2]

    exported = await client.get(f"/playlists/{pid}/export.m3u8")
    assert exported.status == 200 and (await exported.read()).startswith(b"#EXTM3U\n#PLAYLIST:<i>Mine</i>\n")

    # Another browser: 404 for everything, even with its own valid form token.
    stranger = await aiohttp_client(client.app)
    assert (await stranger.get(f"/playlists/{pid}", headers=HTML)).status == 404
    assert (await stranger.get(f"/playlists/{pid}/export.csv")).status == 404
    other_token = await token_of(stranger, "/track/1")
    for action, data in (
        ("rename", {"name": "x"}),
        ("remove", {"track_id": "1"}),
        ("delete", {}),
        ("share", {}),
        ("radio", {}),
    ):
        assert (await post(stranger, f"/playlists/{pid}/{action}", data, other_token)).status == 404, action
    assert (await post(stranger, "/playlists/add", {"track_id": "1", "playlist": pid}, other_token)).status == 404

    # Forms from elsewhere, or without the token, change nothing.
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {}):
        refused = await client.post(
            f"/playlists/{pid}/delete", data={"csrf": token}, headers=headers, allow_redirects=False
        )
        assert refused.status == 403
    assert (await client.post(f"/playlists/{pid}/delete", headers=origin(client), allow_redirects=False)).status == 403

    # Share: the page for anyone with the link; revoke.
    await post(client, f"/playlists/{pid}/share", {}, token)
    shown = await (await client.get(f"/playlists/{pid}?note=shared", headers=HTML)).text()
    link = re.search(r'href="(http[^"]+/p/[A-Za-z0-9_-]{43})"', shown).group(1)  # type: ignore[union-attr]
    public = await stranger.get(urlsplit(link).path, headers=HTML)
    assert public.status == 200 and "&lt;i&gt;Mine&lt;/i&gt;" in await public.text()
    await post(client, f"/playlists/{pid}/unshare", {}, token)
    assert (await stranger.get(urlsplit(link).path, headers=HTML)).status == 404

    radio = await post(client, f"/playlists/{pid}/radio", {}, token)
    assert re.fullmatch(r"/radio/[A-Za-z0-9_-]{22}", radio.headers["Location"])
    assert (await post(client, f"/playlists/{pid}/delete", {}, token)).headers["Location"] == "/playlists?note=deleted"
    assert (await client.get(f"/playlists/{pid}", headers=HTML)).status == 404


def page_owner(client: TestClient) -> Any:
    """The page's owner key for this client's session cookie (to read the playlist back)."""
    from bot.http.session import COOKIE, sessions_key
    from services.dto import Listener

    cookie = next(c for c in client.session.cookie_jar if c.key == COOKIE)
    return Listener.web(client.app[sessions_key].verify(cookie.value) or "")


async def test_page_save_to_spotify_through_the_callback(client: TestClient, spotify: FakeSpotifyAccounts) -> None:
    token = await token_of(client, "/track/1")
    made = await post(client, "/playlists/add", {"track_id": "1", "playlist": "", "name": "Page list"}, token)
    pid = made.headers["Location"].split("/")[2].split("?")[0]
    connect = await post(client, f"/playlists/{pid}/spotify", {}, token)
    html = await connect.text()
    assert connect.status == 200 and "Connect Spotify" in html
    url = re.search(r'href="(http://127\.0\.0\.1:\d+/authorize\?[^"]+)"', html).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert parse_qs(urlsplit(url).query)["scope"] == ["playlist-modify-private"]
    spotify.next_user = "stranger"  # not on the development-mode allow-list
    async with aiohttp.ClientSession() as http, http.get(url, allow_redirects=False) as response:
        back = urlsplit(response.headers["Location"])
    landed = await (await client.get(f"{back.path}?{back.query}", headers=HTML)).text()
    assert "at most 5" in landed and "Export the playlist" in landed
    assert spotify.playlists == {}
