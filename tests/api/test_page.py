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


async def test_radio_without_javascript(client: TestClient) -> None:
    resp = await client.post("/radio", data={"track_id": "1"}, allow_redirects=False)
    assert resp.status == 303
    location = resp.headers["Location"]
    assert re.fullmatch(r"/radio/\d+\?t=1", location)
    html = await page(client, location)
    assert "👍" in html and "👎" in html and "Next" in html and "Bohemian Rhapsody" in html
    radio = location.split("?")[0]
    seen = {1}
    current = 1
    for action in ("like", "skip", "next"):
        resp = await client.post(
            f"{radio}/feedback", data={"track_id": str(current), "action": action}, allow_redirects=False
        )
        assert resp.status == 303
        current = int(resp.headers["Location"].rsplit("=", 1)[1])
        assert current not in seen
        seen.add(current)
    # pressing twice (an old tab) is explained, not a crash
    resp = await client.post(f"{radio}/feedback", data={"track_id": "1", "action": "like"})
    assert resp.status == 409 and "moved on" in await resp.text()


async def test_radio_form_errors(client: TestClient) -> None:
    assert (await client.post("/radio", data={"track_id": "x"})).status == 400
    assert (await client.post("/radio", data={"track_id": "999"})).status == 404
    assert (await client.post("/radio/1/feedback", data={"track_id": "1", "action": "dance"})).status == 400
    assert (await client.post("/radio/999/feedback", data={"track_id": "1", "action": "like"})).status == 404
    assert (await client.get("/radio/1?t=abc")).status == 404


async def test_cross_site_form_posts_are_refused(client: TestClient) -> None:
    resp = await client.post(
        "/radio", data={"track_id": "1"}, headers={"Origin": "https://evil.example"}, allow_redirects=False
    )
    assert resp.status == 403
    same = await client.post(
        "/radio",
        data={"track_id": "1"},
        allow_redirects=False,
        headers={"Origin": str(client.make_url("/")).rstrip("/")},
    )
    assert same.status == 303


async def test_radio_end_page(client: TestClient, container: Any) -> None:
    html = await page(client, "/radio/5")
    assert "everything this radio had" in html


async def test_a_spotify_link_opens_its_card(client: TestClient, container: Any) -> None:
    track = await container.services.tracks.get(5)
    resp = await client.get("/", params={"q": f"{track.spotify_url}?si=abc"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/track/5"
    html = await page(client, "/?q=https://open.spotify.com/album/xyz")
    assert "Albums are not supported" in html
