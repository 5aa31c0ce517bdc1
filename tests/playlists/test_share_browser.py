"""Playlists and the share page in headless Chromium (Debian's, through Playwright): a person adds songs
from cards into a playlist, shares it; someone else opens the link and sees the cards (genres, a
preview where known) without anything to change; the owner revokes it and the page is gone.
Screenshots go to test-artifacts/."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.http.config import WebConfig
from services.dto import TrackInfo
from services.playlists import PlaylistService
from tests.api.browser_setup import launch_chromium, watch_errors
from tests.api.conftest import LiveServer
from tests.api.test_real_services import real_container

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PREVIEW = "https://cdnt-preview.dzcdn.net/api/1/1/a/b/c/0/preview.mp3?hdnea=exp=1~hmac=x"
pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with launch_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    holder: dict[str, Any] = {}

    async def preview(track: TrackInfo) -> str | None:  # Deezer's signed preview, for the first song only
        return PREVIEW if track.id == 1 else None

    async def factory() -> web.Application:
        container = holder["c"] = await real_container()
        container.services.playlists = PlaylistService(
            container.sessions, container.services.radio, genres=container.services.genre, previews=preview
        )
        return container.http_app(WebConfig(rate_limit_per_minute=1_000_000))

    live = LiveServer(factory).start()
    yield live
    live.run(holder["c"].close())
    live.stop()


async def test_share_a_playlist_and_revoke_it(browser: Any, server: LiveServer) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    owner = await browser.new_context(viewport={"width": 1000, "height": 900}, color_scheme="dark")
    page = await owner.new_page()
    errors = watch_errors(page)

    # From a song's page: into a new playlist named in the same form.
    await page.goto(server.url + "/track/1")
    await page.get_by_label("New playlist name").fill('Night <drive> & "more"')
    await page.get_by_role("button", name="Add", exact=True).click()
    await page.wait_for_url("**/track/1?note=added")
    assert await page.locator(".notice").first.inner_text() == "Added to the playlist. Your playlists"
    # Another song into the same playlist, chosen in the list.
    await page.goto(server.url + "/track/30")
    await page.get_by_label("➕ Add to").select_option(label='Night <drive> & "more" (1)')
    await page.get_by_role("button", name="Add", exact=True).click()
    await page.wait_for_url("**/track/30?note=added")

    await page.goto(server.url + "/playlists")
    await page.get_by_role("link", name='Night <drive> & "more"').click()
    await page.wait_for_url("**/playlists/*")
    assert await page.locator("h1.title").inner_text() == 'Night <drive> & "more"'
    assert await page.locator(".track-row").count() == 2
    await page.get_by_role("button", name="Move Jazz Song 1-2 up").click()  # the second song to the top
    await page.wait_for_url("**note=moved")
    assert "Jazz Song 1-2" in await page.locator(".track-row").first.inner_text()
    await page.get_by_role("button", name="🔗 Share").click()
    await page.wait_for_url("**note=shared")
    link = await page.locator("a.share-link").get_attribute("href")
    assert link and "/p/" in link

    # Someone else, with the link only.
    friend = await browser.new_context(viewport={"width": 900, "height": 900})
    shared = await friend.new_page()
    friend_errors = watch_errors(shared)
    await shared.goto(link)
    assert await shared.locator("h1.title").inner_text() == 'Night <drive> & "more"'
    assert "2 songs" in await shared.locator("main p.muted").first.inner_text()
    cards = shared.locator(".shared-card")
    assert await cards.count() == 2
    assert "Jazz Song 1-2" in await cards.nth(0).inner_text()
    assert await cards.nth(0).locator(".chip").first.inner_text() == "Jazz"
    assert await cards.nth(1).locator("audio").get_attribute("src") == PREVIEW  # the preview, where known
    assert await cards.nth(0).locator("audio").count() == 0
    assert await shared.locator("form").count() == 1  # only the search box: nothing to change here
    await shared.screenshot(path=str(ARTIFACTS / "shared-playlist.png"), full_page=True)
    mine = await friend.request.get(page.url)  # the owner's playlist page itself is not theirs
    assert mine.status == 404
    assert friend_errors == []

    # The owner revokes the link: the page is gone.
    await page.get_by_role("button", name="🚫 Revoke the share link").click()
    await page.wait_for_url("**note=unshared")
    gone = await shared.goto(link)
    assert gone is not None and gone.status == 404
    await page.screenshot(path=str(ARTIFACTS / "playlist-page.png"), full_page=True)
    assert errors == []
    assert [e for e in friend_errors if "404" not in e] == []  # the revoked page's 404 is the one entry
    await owner.close()
    await friend.close()
