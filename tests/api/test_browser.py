"""The page in headless Chromium (Debian's package, driven by Playwright): type a song, see its
genre and recommendations, start a radio, press 👍 and next. Screenshots go to test-artifacts/
and the card's to docs/web-page.png (shown in the README)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.browser_setup import launch_chromium, watch_errors
from tests.api.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOCS_SHOT = ROOT / "docs" / "web-page.png"

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TITLE_CHANGED = "previous => (document.querySelector('h1.title') || {}).innerText !== previous"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with launch_chromium() as browser:
        yield browser


async def test_search_card_recommendations_and_radio(browser: Any, live_server: LiveServer) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    context = await browser.new_context(viewport={"width": 1100, "height": 1000}, color_scheme="dark")
    page = await context.new_page()
    errors = watch_errors(page)
    await page.goto(live_server.url + "/")

    # Type a song: several candidates, then pick one.
    await page.get_by_role("searchbox").fill("da")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_url("**/?q=da")
    results = page.locator(".results .track-row")
    assert await results.count() >= 2
    await page.get_by_role("link", name="Take Five").click()
    await page.wait_for_url("**/track/11")

    # A clear match (or a Spotify link) goes straight to the card.
    await page.get_by_role("searchbox").fill("Bohemian Rhapsody")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/track/1")
    assert await page.locator("h1.title").inner_text() == "Bohemian Rhapsody"
    genre = await page.locator(".genre-name").inner_text()
    assert genre
    bars = page.locator(".chart").first.locator("tr")
    assert await bars.count() >= 3
    assert (await bars.first.locator("th").inner_text()).lower() == genre.lower()
    assert await page.locator(".similar .track-row").count() == 6
    assert await page.get_by_role("button", name="▶ Play here").is_visible()  # JS-only control shown
    await page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)
    DOCS_SHOT.parent.mkdir(exist_ok=True)
    await page.screenshot(path=str(DOCS_SHOT), full_page=True)

    # Start a radio; 👍 and next swap the track in place (fetch, no full page load).
    await page.evaluate("window.__sameDocument = true")
    await page.get_by_role("button", name="Start a radio").click()
    await page.wait_for_url("**/radio/*")
    titles = [await page.locator("h1.title").inner_text()]
    for button in ("👍 Like", "Next ⏭", "👎 Skip"):
        await page.get_by_role("button", name=button).click()
        await page.wait_for_function(TITLE_CHANGED, arg=titles[-1])
        titles.append(await page.locator("h1.title").inner_text())
    assert len(set(titles)) == 4, titles
    assert await page.evaluate("window.__sameDocument === true")
    assert re.search(r"/radio/[A-Za-z0-9_-]{22}$", page.url)
    await page.keyboard.press("n")  # keyboard shortcut for next
    await page.wait_for_function(TITLE_CHANGED, arg=titles[-1])
    await page.screenshot(path=str(ARTIFACTS / "web-radio.png"), full_page=True)
    assert errors == []
    await context.close()


async def test_search_and_card_work_without_javascript(browser: Any, live_server: LiveServer) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(live_server.url + "/")
    await page.get_by_role("searchbox").fill("o")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("link", name="Strobe").click()
    await page.wait_for_url("**/track/6")
    assert await page.locator(".genre-name").inner_text()
    assert not await page.get_by_role("button", name="▶ Play here").is_visible()
    assert await page.get_by_role("link", name="Open in Spotify").is_visible()
    # the radio works with plain form posts and redirects
    await page.get_by_role("button", name="Start a radio").click()
    await page.wait_for_url("**/radio/*")
    first = await page.locator("h1.title").inner_text()
    async with page.expect_navigation():
        await page.get_by_role("button", name="Next ⏭").click()
    assert re.search(r"/radio/[A-Za-z0-9_-]{22}$", page.url)
    assert await page.locator("h1.title").inner_text() not in (first, "Strobe")
    await context.close()
