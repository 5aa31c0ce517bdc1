"""YouTube one-tap links for a playlist: video ids from the cache (no quota), a bounded number of
searches for songs never looked up (against the fake YouTube Data API), watch_videos links of 50."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cache import CacheService
from services.playlists import VIDEOS_PER_LINK, WATCH_VIDEOS, YOUTUBE_LOOKUPS
from services.youtube import NS_SEARCH, YouTubeService
from tests.fakes.youtube import FakeVideo, FakeYouTube
from tests.playlists.conftest import KEY, seed, service

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def fake_youtube() -> AsyncIterator[FakeYouTube]:
    server = FakeYouTube([FakeVideo(f"w{n:010d}", f"Artist {n % 7} Song {n} (Official)") for n in range(106, 121)])
    await server.start()
    yield server
    await server.close()


async def test_links_from_known_videos_and_a_few_lookups(sessions: Sessions, fake_youtube: FakeYouTube) -> None:
    await seed(sessions, tracks=120)
    cache = CacheService(sessions)
    for n in range(1, 101):  # looked up before (a card was opened): a video
        await cache.put(NS_SEARCH, f"sp{n:020d}", {"video_id": f"v{n:010d}", "title": "x"}, timedelta(days=30))
    for n in range(101, 106):  # looked up before: no video
        await cache.put(NS_SEARCH, f"sp{n:020d}", None, timedelta(days=30))
    youtube = YouTubeService(cache, "test-key", fake_youtube.base_url + "/", timeout=5, oembed_url=None)
    playlists = service(sessions, youtube=youtube)
    pid = (await playlists.create(KEY, "Long")).id
    for n in range(1, 121):
        await playlists.add(KEY, pid, n)

    play = await playlists.youtube(KEY, pid)
    assert fake_youtube.calls["search"] == YOUTUBE_LOOKUPS  # at most this many searches per request
    assert (play.known, play.total) == (100 + YOUTUBE_LOOKUPS, 120)
    assert [u.count(",") + 1 for u in play.urls] == [VIDEOS_PER_LINK, VIDEOS_PER_LINK, YOUTUBE_LOOKUPS]
    assert play.urls[0] == WATCH_VIDEOS + ",".join(f"v{n:010d}" for n in range(1, 51))  # in playlist order
    assert play.urls[2].endswith(f"w{105 + YOUTUBE_LOOKUPS:010d}")

    again = await playlists.youtube(KEY, pid)  # the rest are found next time; the found ones are cached
    assert again.known == 115 and fake_youtube.calls["search"] == 15

    # The export spends no quota: the known videos, and a YouTube search for the rest.
    searches = fake_youtube.calls["search"]
    [file] = await playlists.export(KEY, pid, "csv")
    rows = list(csv.DictReader(io.StringIO(file.data.decode("utf-8-sig"))))
    assert rows[0]["youtube_url"] == "https://www.youtube.com/watch?v=v0000000001"
    assert rows[101]["youtube_url"].startswith("https://www.youtube.com/results?search_query=")
    assert rows[119]["youtube_url"] == f"https://www.youtube.com/watch?v=w{120:010d}"
    assert fake_youtube.calls["search"] == searches


async def test_without_a_key_only_known_videos(sessions: Sessions) -> None:
    await seed(sessions, tracks=3)
    cache = CacheService(sessions)
    await cache.put(NS_SEARCH, f"sp{2:020d}", {"video_id": "known", "title": "x"}, timedelta(days=30))
    playlists = service(sessions, youtube=YouTubeService(cache, None, oembed_url=None))
    pid = (await playlists.create(KEY, "Short")).id
    for n in (1, 2, 3):
        await playlists.add(KEY, pid, n)
    play = await playlists.youtube(KEY, pid)
    assert play.urls == (WATCH_VIDEOS + "known",) and (play.known, play.total) == (1, 3)
