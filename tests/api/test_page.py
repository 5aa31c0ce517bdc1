"""The web page without JavaScript: search, card, radio with plain links and forms."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

HTML = {"Accept": "text/html"}


async def page(client: TestClient, url: str, status: int = 200) -> str:
    resp = await client.get(url, headers=HTML)
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "text/html"
    return text


async def test_home_has_a_search_box(client: TestClient) -> None:
    resp = await client.get("/")
    html = await resp.text()
    assert '<form class="search" action="/" method="get"' in html and 'name="q"' in html
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert re.search(r"/static/app\.css\?v=[\w-]+", html) and re.search(r"/static/app\.js\?v=[\w-]+", html)


async def test_static_files_are_served(client: TestClient) -> None:
    for name in ("app.css", "app.js"):
        assert (await client.get(f"/static/{name}")).status == 200


async def test_search_lists_results_linking_to_cards(client: TestClient) -> None:
    html = await page(client, "/?q=da")
    assert "Results for “da”" in html and "Daft Punk" in html and "Dave Brubeck" in html
    html = await page(client, "/?q=o")
    assert html.count('class="track-row"') >= 5
    assert '<a href="/track/1" class="track-link">' in html


async def test_a_clear_match_goes_straight_to_the_card(client: TestClient) -> None:
    resp = await client.get("/?q=Queen", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/track/1"


async def test_nothing_found_and_unsupported(client: TestClient) -> None:
    assert "Nothing found" in await page(client, "/?q=zzzzzz")


async def test_user_text_is_escaped(client: TestClient) -> None:
    html = await page(client, "/?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    card = await page(client, "/track/13")
    assert "Untitled Demo &lt;script&gt;" in card and "Nobody &amp; Co" in card


async def test_card_shows_genre_chart_players_similar_and_radio(client: TestClient) -> None:
    html = await page(client, "/track/1")
    assert "Bohemian Rhapsody" in html and "Sounds like" in html
    assert html.count('class="bar-fg') >= 3 and 'class="pct"' in html
    assert "https://open.spotify.com/track/" in html and "youtube" in html
    assert 'data-embed="https://open.spotify.com/embed/track/' in html
    assert html.count('class="track-row"') == 6  # similar tracks
    assert '<form method="post" action="/radio"' in html


async def test_card_without_features_explains(client: TestClient) -> None:
    html = await page(client, "/track/13")
    assert "No audio features" in html and "bar-fg" not in html


async def test_unknown_track_page_is_a_friendly_404(client: TestClient) -> None:
    html = await page(client, "/track/999", status=404)
    assert "No track with id 999" in html and "Back to search" in html
    await page(client, "/no/such/page", status=404)


def origin(client: TestClient) -> dict[str, str]:
    """What a browser sends with a form post from the page itself."""
    return {"Origin": str(client.make_url("/")).rstrip("/")}


async def form_token(client: TestClient, url: str) -> str:
    """The CSRF token a page embeds in its forms (the session cookie is kept by the client)."""
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', await page(client, url))
    assert match, "the page has no form token"
    return match.group(1)


async def post_form(client: TestClient, url: str, data: dict[str, str], token: str) -> Any:
    return await client.post(url, data={**data, "csrf": token}, headers=origin(client), allow_redirects=False)


async def test_radio_without_javascript(client: TestClient) -> None:
    token = await form_token(client, "/track/1")
    resp = await post_form(client, "/radio", {"track_id": "1"}, token)
    assert resp.status == 303
    radio = resp.headers["Location"]
    assert re.fullmatch(r"/radio/[A-Za-z0-9_-]{22}", radio)  # an unguessable id
    html = await page(client, radio)
    # the first pick: the seed's genre, not the seed itself
    assert "👍" in html and "👎" in html and "Next" in html and "Smells Like Teen Spirit" in html
    current = int(re.search(r'name="track_id" value="(\d+)"', html).group(1))  # type: ignore[union-attr]
    seen = {1, current}
    for action in ("like", "skip", "next"):
        resp = await post_form(client, f"{radio}/feedback", {"track_id": str(current), "action": action}, token)
        assert resp.status == 303 and resp.headers["Location"] == radio
        html = await page(client, radio)
        current = int(re.search(r'name="track_id" value="(\d+)"', html).group(1))  # type: ignore[union-attr]
        assert current not in seen
        seen.add(current)
    # Pressing twice (an old tab) is not counted, and shows where the radio stands now.
    resp = await post_form(client, f"{radio}/feedback", {"track_id": "1", "action": "like"}, token)
    assert resp.status == 303 and resp.headers["Location"] == radio
    assert "👍 1 · 👎 1" in await page(client, radio)


async def test_radio_form_errors(client: TestClient) -> None:
    token = await form_token(client, "/track/1")
    assert (await post_form(client, "/radio", {"track_id": "x"}, token)).status == 400
    assert (await post_form(client, "/radio", {"track_id": "999"}, token)).status == 404
    radio = (await post_form(client, "/radio", {"track_id": "1"}, token)).headers["Location"]
    assert (await post_form(client, f"{radio}/feedback", {"track_id": "1", "action": "dance"}, token)).status == 400
    missing = f"/radio/{'x' * 22}"
    assert (await post_form(client, f"{missing}/feedback", {"track_id": "1", "action": "like"}, token)).status == 404
    assert (await client.get(missing)).status == 404
    assert (await client.get("/radio/1")).status == 404  # counting ids lead nowhere


async def test_cross_site_and_tokenless_form_posts_are_refused(client: TestClient) -> None:
    token = await form_token(client, "/track/1")
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {}):
        resp = await client.post(
            "/radio", data={"track_id": "1", "csrf": token}, headers=headers, allow_redirects=False
        )
        assert resp.status == 403, headers
    no_token = await client.post("/radio", data={"track_id": "1"}, headers=origin(client), allow_redirects=False)
    assert no_token.status == 403
    forged = await post_form(client, "/radio", {"track_id": "1"}, "0" * 64)
    assert forged.status == 403
    assert (await post_form(client, "/radio", {"track_id": "1"}, token)).status == 303


async def test_a_radio_belongs_to_the_browser_that_started_it(client: TestClient, make_client: Any) -> None:
    token = await form_token(client, "/track/1")
    radio = (await post_form(client, "/radio", {"track_id": "1"}, token)).headers["Location"]
    stranger = await make_client()  # another browser: its own cookie jar, its own session
    assert (await stranger.get(radio, headers=HTML)).status == 404
    stranger_token = await form_token(stranger, "/track/1")
    resp = await post_form(stranger, f"{radio}/feedback", {"track_id": "1", "action": "like"}, stranger_token)
    assert resp.status == 404
    assert "👍 0" in await page(client, radio)
    # A forged cookie is a new, empty session, not anyone's.
    stranger.session.cookie_jar.update_cookies({"encore_session": "forged.value.sig"})
    assert (await stranger.get(radio, headers=HTML)).status == 404


async def test_radio_end_page(client: TestClient, container: Any) -> None:
    token = await form_token(client, "/track/1")
    radio = (await post_form(client, "/radio", {"track_id": "1"}, token)).headers["Location"]
    radio_id = radio.rsplit("/", 1)[1]
    page_listener = next(iter(container.services.radio.radios.values())).owner
    from services.dto import Listener

    await container.services.radio.stop(radio_id, listener=Listener(page_listener))
    html = await page(client, radio)
    assert "This radio is over" in html


async def test_a_spotify_link_opens_its_card(client: TestClient, container: Any) -> None:
    track = await container.services.tracks.get(5)
    resp = await client.get("/", params={"q": f"{track.spotify_url}?si=abc"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/track/5"
    html = await page(client, "/?q=https://open.spotify.com/album/xyz")
    assert "Albums are not supported" in html


async def test_the_card_says_where_the_genre_comes_from(client: TestClient, container: Any, monkeypatch: Any) -> None:
    """The page words the genre with the same verdict as the chat card (services.genre_labels)."""
    html = await page(client, "/track/1")  # a catalogue song: its own labels
    assert 'data-source="catalogue"' in html and "(catalogue)" in html and "to the genre model" in html

    from services.dto import GenreGuess

    async def by_artist(features: Any, **context: Any) -> GenreGuess:
        return GenreGuess(
            "k-pop",
            0.64,
            (("k-pop", 0.64), ("dance", 0.2)),
            "pop",
            0.8,
            head="audio+artist",
            artists_known=1,
            audio_top=(("dance", 0.41),),
        )

    monkeypatch.setattr(container.services.genre, "guess", by_artist)
    html = await page(client, "/track/2")
    assert 'data-source="artist"' in html and "K-pop" in html and "(from the artist)" in html
    assert "sounds like Dance 41%" in html
