from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cache import CacheService
from services.dto import TrackInfo
from services.youtube import YouTubeService, next_quota_reset
from tests.fakes.youtube import Failure, FakeVideo, FakeYouTube, quota_exceeded
from tests.providers.conftest import sid, youtube_settings

QUEEN = TrackInfo(id=1, spotify_id=sid(1), name="Bohemian Rhapsody", artists=("Queen",))
SANDMAN = TrackInfo(id=6, spotify_id=sid(6), name="Enter Sandman", artists=("Metallica",))
NOBODY = TrackInfo(id=9, spotify_id=sid(9), name="Nothing Here", artists=("Nobody",))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


_SETTINGS_KEY = object()


def make(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    api_key: str | object | None = _SETTINGS_KEY,
    api_url: str | None = None,
) -> YouTubeService:
    """A YouTubeService configured from YOUTUBE_* settings (pointing at the fake server)."""
    s = youtube_settings()
    key = s.api_key.get_secret_value() if s.api_key else None
    return YouTubeService(
        CacheService(sessions, clock=clock),
        key if api_key is _SETTINGS_KEY else api_key,  # type: ignore[arg-type]
        api_url or s.api_url,
        timeout=s.timeout,
        cache_days=s.cache_days,
        clock=clock,
    )


async def test_video_found_and_cached_30_days(
    sessions: async_sessionmaker[AsyncSession], fake_youtube: FakeYouTube, provider_env: None
) -> None:
    clock = Clock()
    yt = make(sessions, clock)
    link = await yt.link(QUEEN)
    assert (link.is_search, link.video_id) == (False, "fJ9rUzIMcZQ")
    assert link.url == "https://www.youtube.com/watch?v=fJ9rUzIMcZQ"
    assert fake_youtube.calls["search"] == 1
    # A fresh service (another process, a restart) still answers from the database.
    again = await make(sessions, clock).link(QUEEN)
    assert again == link and fake_youtube.calls["search"] == 1
    clock.now += timedelta(days=29)
    await make(sessions, clock).link(QUEEN)
    assert fake_youtube.calls["search"] == 1
    clock.now += timedelta(days=2)  # past 30 days: one new call
    await make(sessions, clock).link(QUEEN)
    assert fake_youtube.calls["search"] == 2


async def test_no_match_is_cached_too(
    sqlite_sessions: async_sessionmaker[AsyncSession], fake_youtube: FakeYouTube, provider_env: None
) -> None:
    yt = make(sqlite_sessions, Clock())
    link = await yt.link(NOBODY)
    assert link.is_search and link.url == NOBODY.youtube_search_url
    await yt.link(NOBODY)
    assert fake_youtube.calls["search"] == 1


async def test_quota_exceeded_gives_search_url_until_reset(
    sqlite_sessions: async_sessionmaker[AsyncSession], fake_youtube: FakeYouTube, provider_env: None
) -> None:
    clock = Clock()
    yt = make(sqlite_sessions, clock)
    fake_youtube.fail("search", quota_exceeded())
    link = await yt.link(QUEEN)
    assert link.is_search and "search_query=Queen+Bohemian+Rhapsody" in link.url
    assert await yt.link(SANDMAN) == (await yt.link(SANDMAN))
    assert (await yt.link(SANDMAN)).is_search
    assert fake_youtube.calls["search"] == 1  # no calls while the quota is out
    clock.now = next_quota_reset(clock.now) + timedelta(seconds=1)
    assert (await yt.link(SANDMAN)).video_id == "CD-E-LDc384"
    assert fake_youtube.calls["search"] == 2


def test_quota_reset_is_midnight_pacific() -> None:
    reset = next_quota_reset(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))  # 04:00 PST
    assert reset == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    summer = next_quota_reset(datetime(2026, 7, 1, 6, 0, tzinfo=UTC))  # 23:00 PDT on June 30
    assert summer == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


async def test_no_key_means_search_links_and_no_calls(
    sqlite_sessions: async_sessionmaker[AsyncSession], fake_youtube: FakeYouTube, provider_env: None
) -> None:
    yt = make(sqlite_sessions, Clock(), api_key=None)
    link = await yt.link(QUEEN)
    assert link.is_search and link.url == QUEEN.youtube_search_url
    assert await yt.video_title("fJ9rUzIMcZQ") is None
    assert sum(fake_youtube.calls.values()) == 0


@pytest.mark.parametrize("failure", [Failure(500), Failure(503), Failure(None, delay=2.0)])
async def test_errors_and_timeouts_give_search_urls(
    sqlite_sessions: async_sessionmaker[AsyncSession],
    fake_youtube: FakeYouTube,
    provider_env: None,
    failure: Failure,
) -> None:
    clock = Clock()
    yt = make(sqlite_sessions, clock)
    fake_youtube.fail("search", failure)
    link = await yt.link(QUEEN)
    assert link.is_search
    clock.now += timedelta(minutes=5)  # after the short back-off the next call goes out and is cached
    assert (await yt.link(QUEEN)).video_id == "fJ9rUzIMcZQ"


async def test_refused_connection(
    sqlite_sessions: async_sessionmaker[AsyncSession], provider_env: None, closed_port: int
) -> None:
    yt = make(sqlite_sessions, Clock(), api_url=f"http://127.0.0.1:{closed_port}/")
    assert (await yt.link(QUEEN)).is_search
    assert await yt.video_title("fJ9rUzIMcZQ") is None


async def test_invalid_key_disables_calls(
    sqlite_sessions: async_sessionmaker[AsyncSession], fake_youtube: FakeYouTube, provider_env: None
) -> None:
    yt = make(sqlite_sessions, Clock(), api_key="wrong")
    assert (await yt.link(QUEEN)).is_search
    assert (await yt.link(SANDMAN)).is_search
    assert fake_youtube.calls["search"] == 1
    assert not yt.enabled


async def test_video_title_cached(
    sqlite_sessions: async_sessionmaker[AsyncSession], fake_youtube: FakeYouTube, provider_env: None
) -> None:
    yt = make(sqlite_sessions, Clock())
    assert await yt.video_title("WM8bTdBs-cw") == ("Paranoid", "Black Sabbath - Topic")
    assert await yt.video_title("WM8bTdBs-cw") == ("Paranoid", "Black Sabbath - Topic")
    assert await yt.video_title("zzzzzzzzzzz") is None
    assert fake_youtube.calls["videos"] == 2


async def test_concurrent_requests_share_one_call(
    sqlite_sessions: async_sessionmaker[AsyncSession], fake_youtube: FakeYouTube, provider_env: None
) -> None:
    import asyncio

    yt = make(sqlite_sessions, Clock())
    links = await asyncio.gather(*(yt.link(QUEEN) for _ in range(5)))
    assert {link.video_id for link in links} == {"fJ9rUzIMcZQ"}
    assert fake_youtube.calls["search"] == 1


# -- oEmbed: video titles without a key --------------------------------------------------------


def make_oembed(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    oembed_url: str,
    *,
    api_key: str | object | None = None,
) -> YouTubeService:
    """A YouTubeService from YOUTUBE_* settings with YOUTUBE_OEMBED_URL set (no key unless given)."""
    monkeypatch.setenv("YOUTUBE_OEMBED_URL", oembed_url)
    s = youtube_settings()
    assert s.oembed_url == oembed_url
    key = s.api_key.get_secret_value() if s.api_key else None
    return YouTubeService(
        CacheService(sessions, clock=clock),
        key if api_key is _SETTINGS_KEY else api_key,  # type: ignore[arg-type]
        s.api_url,
        timeout=s.timeout,
        cache_days=s.cache_days,
        clock=clock,
        oembed_url=s.oembed_url,
    )


async def test_oembed_gives_title_and_channel_without_a_key(
    sessions: async_sessionmaker[AsyncSession],
    fake_youtube: FakeYouTube,
    provider_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    yt = make_oembed(sessions, clock, monkeypatch, fake_youtube.oembed_url)
    assert await yt.video_title("WM8bTdBs-cw") == ("Paranoid", "Black Sabbath - Topic")
    assert fake_youtube.calls["oembed"] == 1 and fake_youtube.calls["videos"] == 0
    route, query = fake_youtube.requests[-1]
    assert route == "oembed" and query == {"url": "https://www.youtube.com/watch?v=WM8bTdBs-cw", "format": "json"}
    # Cached like the API's answers: a fresh service (a restart) asks nobody for 30 days.
    again = make_oembed(sessions, clock, monkeypatch, fake_youtube.oembed_url)
    assert await again.video_title("WM8bTdBs-cw") == ("Paranoid", "Black Sabbath - Topic")
    clock.now += timedelta(days=29)
    assert await again.video_title("WM8bTdBs-cw") == ("Paranoid", "Black Sabbath - Topic")
    assert fake_youtube.calls["oembed"] == 1
    clock.now += timedelta(days=2)
    assert await again.video_title("WM8bTdBs-cw") == ("Paranoid", "Black Sabbath - Topic")
    assert fake_youtube.calls["oembed"] == 2


async def test_oembed_private_and_removed_videos(
    sqlite_sessions: async_sessionmaker[AsyncSession],
    fake_youtube: FakeYouTube,
    provider_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_youtube.videos["PrIvAtE0001"] = FakeVideo("PrIvAtE0001", "Secret Demo", "Band", private=True)
    clock = Clock()
    yt = make_oembed(sqlite_sessions, clock, monkeypatch, fake_youtube.oembed_url)
    assert await yt.video_title("PrIvAtE0001") is None  # 401
    assert await yt.video_title("zzzzzzzzzzz") is None  # 404
    assert await yt.video_title("PrIvAtE0001") is None
    assert fake_youtube.calls["oembed"] == 2  # both answers cached …
    clock.now += timedelta(days=1, seconds=1)  # … for a day: a private video may become public
    fake_youtube.videos["PrIvAtE0001"].private = False
    assert await yt.video_title("PrIvAtE0001") == ("Secret Demo", "Band")
    assert fake_youtube.calls["oembed"] == 3


@pytest.mark.parametrize("failure", [Failure(500), Failure(503), Failure(None, delay=2.0)])
async def test_oembed_errors_and_slowness_pause_it_briefly(
    sqlite_sessions: async_sessionmaker[AsyncSession],
    fake_youtube: FakeYouTube,
    provider_env: None,
    monkeypatch: pytest.MonkeyPatch,
    failure: Failure,
) -> None:
    clock = Clock()
    yt = make_oembed(sqlite_sessions, clock, monkeypatch, fake_youtube.oembed_url)
    fake_youtube.fail("oembed", failure)
    assert await yt.video_title("fJ9rUzIMcZQ") is None  # 5xx or timeout (YOUTUBE_TIMEOUT=0.5)
    assert await yt.video_title("CD-E-LDc384") is None  # paused: not asked
    assert fake_youtube.calls["oembed"] == 1
    clock.now += timedelta(minutes=3)  # not cached: asked again after the back-off
    assert await yt.video_title("fJ9rUzIMcZQ") == (
        "Queen – Bohemian Rhapsody (Official Video Remastered)",
        "Queen Official",
    )


async def test_oembed_refused_or_switched_off(
    sqlite_sessions: async_sessionmaker[AsyncSession],
    fake_youtube: FakeYouTube,
    provider_env: None,
    monkeypatch: pytest.MonkeyPatch,
    closed_port: int,
) -> None:
    yt = make_oembed(sqlite_sessions, Clock(), monkeypatch, f"http://127.0.0.1:{closed_port}/oembed")
    assert await yt.video_title("fJ9rUzIMcZQ") is None
    monkeypatch.setenv("YOUTUBE_OEMBED_URL", "")  # blank: off
    assert youtube_settings().oembed_url is None
    off = YouTubeService(CacheService(sqlite_sessions), None, oembed_url=youtube_settings().oembed_url)
    assert await off.video_title("fJ9rUzIMcZQ") is None
    assert sum(fake_youtube.calls.values()) == 0


async def test_with_a_key_the_api_first_and_oembed_as_fallback(
    sqlite_sessions: async_sessionmaker[AsyncSession],
    fake_youtube: FakeYouTube,
    provider_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    yt = make_oembed(sqlite_sessions, clock, monkeypatch, fake_youtube.oembed_url, api_key=_SETTINGS_KEY)
    assert await yt.video_title("WM8bTdBs-cw") == ("Paranoid", "Black Sabbath - Topic")
    assert (fake_youtube.calls["videos"], fake_youtube.calls["oembed"]) == (1, 0)
    fake_youtube.fail("videos", quota_exceeded())  # quota out: oEmbed answers
    assert await yt.video_title("CD-E-LDc384") == ("Metallica: Enter Sandman (Official Music Video)", "Metallica")
    assert (fake_youtube.calls["videos"], fake_youtube.calls["oembed"]) == (2, 1)
    assert await yt.video_title("fJ9rUzIMcZQ") is not None  # the API is paused until the reset
    assert (fake_youtube.calls["videos"], fake_youtube.calls["oembed"]) == (2, 2)
    bad = make_oembed(sqlite_sessions, clock, monkeypatch, fake_youtube.oembed_url, api_key="wrong")
    assert await bad.video_title("zzzzzzzzzzz") is None  # key refused (400), then oEmbed: 404
    assert not bad.enabled and fake_youtube.calls["oembed"] == 3
