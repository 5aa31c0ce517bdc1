"""The real Deezer client against the fake Deezer API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import DeezerSettings
from db.models import CacheEntry
from services.cache import CacheService
from services.deezer import (
    NS_PREVIEW,
    NS_TRACK,
    DeezerClient,
    advanced_query,
    preview_expiry,
)
from services.errors import InvalidInput, ProviderUnavailable, UnsupportedInput
from services.ratelimit import RollingWindowLimiter
from tests.fakes.deezer import (
    PREVIEW_BYTES,
    Failure,
    FakeDeezer,
    FakeDeezerAlbum,
    FakeDeezerTrack,
    quota_error,
)

ONE_MORE_TIME = FakeDeezerTrack(
    3135556,
    "One More Time",
    "Daft Punk",
    album_id=302127,
    album="Discovery",
    isrc="GBDUW0000053",
    bpm=122.7,
    gain=-9.8,
    rank=900000,
)
BABY = FakeDeezerTrack(
    71234,
    "...Baby One More Time",
    "The Baseballs",
    album_id=5001,
    album="Strike!",
    rank=300000,
    release_date="2009-05-01",
)
GET_LUCKY = FakeDeezerTrack(
    67238735,
    "Get Lucky",
    "Daft Punk",
    featuring=("Pharrell Williams", "Nile Rodgers"),
    album_id=6575789,
    album="Random Access Memories",
    isrc="USQX91300108",
    explicit=False,
    rank=950000,
    release_date="2013-05-17",
)
NO_PREVIEW = FakeDeezerTrack(999, "Silent Song", "Nobody", has_preview=False, rank=1)
ALBUMS = [FakeDeezerAlbum(302127, "Discovery", "Daft Punk", genres=("Electro", "Dance"))]


class VirtualClock:
    """Wall-clock time that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake_deezer(vclock: VirtualClock) -> AsyncIterator[FakeDeezer]:
    server = FakeDeezer([ONE_MORE_TIME, BABY, GET_LUCKY, NO_PREVIEW], ALBUMS, clock=vclock.epoch)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def deezer_env(monkeypatch: pytest.MonkeyPatch, fake_deezer: FakeDeezer) -> Iterator[None]:
    """The documented variables pointing at the fake."""
    monkeypatch.setenv("DEEZER_API_URL", fake_deezer.api_url)
    monkeypatch.setenv("DEEZER_TIMEOUT", "0.5")
    monkeypatch.setenv("DEEZER_MAX_RETRIES", "2")
    monkeypatch.setenv("DEEZER_MAX_RETRY_AFTER", "1")
    monkeypatch.setenv("DEEZER_SHORT_LINK_URL", fake_deezer.short_link_url)
    yield


def client_from_settings(cache: CacheService | None, **overrides: Any) -> DeezerClient:
    s = DeezerSettings(_env_file=None)  # type: ignore[call-arg]
    values: dict[str, Any] = {
        "timeout": s.timeout,
        "max_retries": s.max_retries,
        "max_retry_after": s.max_retry_after,
        "rate_limit": s.rate_limit,
        "rate_period": s.rate_period,
        "short_link_url": s.short_link_url,
        "quota_backoff": 0.05,
        **overrides,
    }
    return DeezerClient(cache, s.api_url, **values)


@pytest.fixture
def cache(sqlite_sessions: async_sessionmaker[AsyncSession], vclock: VirtualClock) -> CacheService:
    return CacheService(sqlite_sessions, clock=vclock)


@pytest.fixture
async def make_client(
    deezer_env: None, cache: CacheService, vclock: VirtualClock
) -> AsyncIterator[Callable[..., DeezerClient]]:
    made: list[DeezerClient] = []

    def make(**overrides: Any) -> DeezerClient:
        client = client_from_settings(overrides.pop("cache", cache), clock=vclock, **overrides)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


# -- search -----------------------------------------------------------------------------------------


async def test_search_finds_a_song_outside_the_catalogue(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer, vclock: VirtualClock
) -> None:
    found = await make_client().search("daft punk one more time", limit=5)
    assert [t.id for t in found] == [ONE_MORE_TIME.id]
    track = found[0]
    assert (track.title, track.artists, track.album, track.album_id) == (
        "One More Time",
        ("Daft Punk",),
        "Discovery",
        302127,
    )
    assert track.duration_ms == 320_000 and track.explicit is False and track.rank == 900000
    assert track.detailed is False and track.isrc is None  # search items carry no ISRC
    assert track.cover_url and "500x500" in track.cover_url and track.thumb_url and "250x250" in track.thumb_url
    assert track.preview_url and track.preview_url.startswith(fake_deezer.base_url)
    assert track.preview_expires_at == vclock.now + timedelta(seconds=fake_deezer.preview_lifetime)
    assert track.link == "https://www.deezer.com/track/3135556"
    assert fake_deezer.requests[-1] == ("search", {"q": "daft punk one more time", "limit": "5"})


async def test_search_nothing_and_blank(make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer) -> None:
    client = make_client()
    assert await client.search("zzzz nothing like this") == ()
    assert await client.search("   ") == ()
    assert await client.search_track('"', "  ") == ()
    assert fake_deezer.calls["search"] == 1  # blank queries never reach the API


async def test_search_track_sends_an_escaped_advanced_query(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer
) -> None:
    found = await make_client().search_track('Daft "Punk', 'One More Time"')
    assert [t.id for t in found] == [ONE_MORE_TIME.id]
    route, query = fake_deezer.requests[-1]
    assert route == "search" and query["q"] == 'artist:"Daft Punk" track:"One More Time"'


def test_advanced_query_forms() -> None:
    assert advanced_query("Daft Punk", "One More Time") == 'artist:"Daft Punk" track:"One More Time"'
    assert advanced_query('AC/DC "live"', "T.N.T.") == 'artist:"AC/DC live" track:"T.N.T."'
    assert advanced_query("", "Song") == 'track:"Song"'
    assert advanced_query("a\\", "b") == 'artist:"a" track:"b"'


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(max_size=80))
def test_advanced_query_never_breaks_out_of_its_quotes(artist: str, title: str) -> None:
    query = advanced_query(artist, title)
    pairs = re.findall(r'(artist|track):"([^"]*)"', query)
    # Exactly the filters given, each value closed by its own quote, nothing left over.
    assert re.sub(r'(artist|track):"[^"]*"', "", query).strip() == ""
    given_filters = [
        k for k, v in (("artist", artist), ("track", title)) if v.replace('"', " ").replace("\\", " ").split()
    ]
    assert [k for k, _ in pairs] == given_filters
    for _, value in pairs:
        assert "\\" not in value and value == value.strip()


# -- lookups ----------------------------------------------------------------------------------------


async def test_track_lookup_has_the_full_record(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer
) -> None:
    track = await make_client().track(GET_LUCKY.id)
    assert track is not None and track.detailed
    assert track.artists == ("Daft Punk", "Pharrell Williams", "Nile Rodgers")
    assert track.isrc == "USQX91300108" and track.release_date == "2013-05-17" and track.year == 2013
    assert track.bpm is None  # Deezer's 0 means "unknown"
    assert track.gain == pytest.approx(-8.5)
    assert track.preview_url is not None


async def test_track_lookup_unknown_is_none_and_cached(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer
) -> None:
    client = make_client()
    assert await client.track(424242) is None  # code 800 inside a 200 body
    assert await client.track(424242) is None
    assert fake_deezer.calls["track"] == 1
    assert await client.track(0) is None and await client.track(-5) is None
    assert fake_deezer.calls["track"] == 1


async def test_track_by_isrc(make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer) -> None:
    client = make_client()
    track = await client.track_by_isrc("gbduw0000053")
    assert track is not None and track.id == ONE_MORE_TIME.id and track.bpm == pytest.approx(122.7)
    assert fake_deezer.requests[-1][0] == "track"
    assert await client.track_by_isrc("GBDUW0000053") == track  # from the cache
    assert await client.track_by_isrc("USAAA9999999") is None
    assert await client.track_by_isrc("not an isrc") is None
    assert fake_deezer.calls["track"] == 2


async def test_album_genres(make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer) -> None:
    client = make_client()
    album = await client.album(302127)
    assert album is not None and album.genres == ("Electro", "Dance") and album.artist == "Daft Punk"
    assert album.label == "Parlophone" and album.release_date == "2001-03-07"
    assert await client.album(302127) == album
    assert await client.album(1) is None
    assert fake_deezer.calls["album"] == 2


async def test_concurrent_identical_lookups_cost_one_call(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer
) -> None:
    client = make_client(cache=None)
    results = await asyncio.gather(*(client.track(ONE_MORE_TIME.id) for _ in range(10)))
    assert {r.id for r in results if r} == {ONE_MORE_TIME.id}
    assert fake_deezer.calls["track"] == 1


async def test_a_malformed_answer_is_a_provider_failure(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer
) -> None:
    fake_deezer.fail("track", Failure(status=200, body={"id": "not a number", "title": None}))
    with pytest.raises(ProviderUnavailable):
        await make_client(cache=None).track(ONE_MORE_TIME.id)


# -- cache and previews -------------------------------------------------------------------------------


async def _entries(sessions: async_sessionmaker[AsyncSession], namespace: str) -> list[CacheEntry]:
    async with sessions() as session:
        return list((await session.scalars(select(CacheEntry).where(CacheEntry.namespace == namespace))).all())


async def test_long_cache_holds_no_preview_urls(
    make_client: Callable[..., DeezerClient],
    fake_deezer: FakeDeezer,
    sqlite_sessions: async_sessionmaker[AsyncSession],
    vclock: VirtualClock,
) -> None:
    await make_client().track(ONE_MORE_TIME.id)
    await make_client().search("daft punk")
    for namespace in ("dz_track", "dz_search"):
        for entry in await _entries(sqlite_sessions, namespace):
            assert "preview" not in str(entry.value) and "hdnea" not in str(entry.value)
    [preview] = await _entries(sqlite_sessions, NS_PREVIEW)
    expires = preview.expires_at if preview.expires_at.tzinfo else preview.expires_at.replace(tzinfo=UTC)
    assert expires <= vclock.now + timedelta(minutes=15)
    [track] = await _entries(sqlite_sessions, NS_TRACK)
    track_expires = track.expires_at if track.expires_at.tzinfo else track.expires_at.replace(tzinfo=UTC)
    assert track_expires >= vclock.now + timedelta(days=29)


async def test_cached_track_gets_a_fresh_preview_or_none(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer, vclock: VirtualClock
) -> None:
    first = await make_client().track(ONE_MORE_TIME.id)
    assert first is not None and first.preview_url
    again = await make_client().track(ONE_MORE_TIME.id)  # another client, same database
    assert again == first and fake_deezer.calls["track"] == 1

    vclock.advance(16 * 60)  # past the preview's short TTL, well inside the track's long one
    later = await make_client().track(ONE_MORE_TIME.id)
    assert later is not None and later.preview_url is None and later.title == first.title
    assert fake_deezer.calls["track"] == 1
    url = await make_client().preview_url(ONE_MORE_TIME.id)
    assert url and url != first.preview_url and fake_deezer.calls["track"] == 2


async def test_search_previews_expire_with_their_urls(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer, vclock: VirtualClock
) -> None:
    fake_deezer.preview_lifetime = 300  # signed for 5 minutes: shorter than the 15-minute TTL
    fresh = await make_client().search("daft punk")
    assert all(t.preview_url for t in fresh)
    vclock.advance(120)
    cached = await make_client().search("daft punk")
    assert [t.preview_url for t in cached] == [t.preview_url for t in fresh]
    vclock.advance(150)  # within the 60-s margin of the URLs' expiry
    stale = await make_client().search("daft punk")
    assert [t.id for t in stale] == [t.id for t in fresh] and all(t.preview_url is None for t in stale)
    assert fake_deezer.calls["search"] == 1


async def test_expired_preview_is_refused_and_refreshed(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer, vclock: VirtualClock
) -> None:
    fake_deezer.preview_lifetime = 120
    client = make_client()
    url = await client.preview_url(ONE_MORE_TIME.id)
    assert url is not None
    expires = preview_expiry(url)
    assert expires == vclock.now + timedelta(seconds=120)
    assert await client.download_preview(ONE_MORE_TIME.id) == PREVIEW_BYTES

    vclock.advance(200)
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 403  # the CDN refuses an expired URL
    fresh = await client.preview_url(ONE_MORE_TIME.id)
    assert fresh and fresh != url
    assert await client.download_preview(ONE_MORE_TIME.id) == PREVIEW_BYTES


async def test_download_refreshes_a_url_the_cdn_refuses(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer, vclock: VirtualClock
) -> None:
    client = make_client()
    assert await client.preview_url(ONE_MORE_TIME.id)
    fake_deezer.clock = lambda: vclock.epoch() + 3600  # the CDN's clock runs past the URL's expiry
    assert await client.download_preview(ONE_MORE_TIME.id) == PREVIEW_BYTES
    assert fake_deezer.previews_refused == 1 and fake_deezer.previews_served == 1
    assert fake_deezer.calls["track"] == 2


async def test_track_without_preview(make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer) -> None:
    client = make_client()
    assert await client.preview_url(NO_PREVIEW.id) is None
    assert await client.download_preview(NO_PREVIEW.id) is None
    assert await client.preview_url(424242) is None
    assert fake_deezer.calls["track"] == 2


def test_preview_expiry_parsing() -> None:
    url = "https://cdnt-preview.dzcdn.net/api/1/1/a/b/c/0/abc.mp3?hdnea=exp=1736000000~acl=/api/1/1/a*~hmac=ff"
    assert preview_expiry(url) == datetime.fromtimestamp(1736000000, UTC)
    encoded = "https://x/p.mp3?hdnea=exp%3D1736000000~acl%3D%2Fp*~hmac%3Dff"
    assert preview_expiry(encoded) == datetime.fromtimestamp(1736000000, UTC)
    assert preview_expiry("https://cdns-preview-e.dzcdn.net/stream/c-e77d23e0c8ed7567a507a6d1b6a9ca1b-11.mp3") is None


# -- failures -----------------------------------------------------------------------------------------


async def test_quota_error_inside_a_200_body_backs_off_and_retries(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer
) -> None:
    client = make_client(cache=None)
    fake_deezer.fail("search", quota_error())
    found = await client.search("get lucky")
    assert [t.id for t in found] == [GET_LUCKY.id]
    assert fake_deezer.calls["search"] == 2
    assert client.limiter.waited > 0  # the pause held the retry back

    fake_deezer.fail("track", *[quota_error()] * 3)
    with pytest.raises(ProviderUnavailable):
        await client.track(GET_LUCKY.id)
    assert fake_deezer.calls["track"] == 3  # max_retries=2: three attempts


async def test_busy_and_5xx_are_retried(make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer) -> None:
    client = make_client(cache=None)
    fake_deezer.fail("track", Failure(status=200, body={"error": {"type": "Exception", "code": 700}}), Failure(502))
    assert await client.track(GET_LUCKY.id) is not None
    fake_deezer.fail("track", *[Failure(503)] * 3)
    with pytest.raises(ProviderUnavailable):
        await client.track(GET_LUCKY.id)
    assert fake_deezer.calls["track"] == 6


async def test_other_error_codes_fail_without_retry(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer
) -> None:
    fake_deezer.fail("album", Failure(status=200, body={"error": {"type": "OAuthException", "code": 200}}))
    with pytest.raises(ProviderUnavailable):
        await make_client(cache=None).album(302127)
    assert fake_deezer.calls["album"] == 1


async def test_429_retry_after(make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer) -> None:
    client = make_client(cache=None)
    fake_deezer.fail("search", Failure(429, headers={"Retry-After": "0.2"}))
    assert await client.search("daft punk")
    assert fake_deezer.calls["search"] == 2 and client.limiter.waited > 0.1

    fake_deezer.fail("search", Failure(429, headers={"Retry-After": "600"}))
    with pytest.raises(ProviderUnavailable):  # over the cap: no ten-minute wait
        await client.search("get lucky")
    with pytest.raises(ProviderUnavailable):  # and no more calls until then
        await client.search("one more time")
    assert fake_deezer.calls["search"] == 3


async def test_timeouts_and_refused_connections(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer, closed_port: int
) -> None:
    fake_deezer.fail("search", *[Failure(None, delay=2.0)] * 2)
    with pytest.raises(ProviderUnavailable):
        await make_client(cache=None, max_retries=1).search("daft punk")
    assert fake_deezer.calls["search"] == 2

    refused = DeezerClient(None, f"http://127.0.0.1:{closed_port}/", timeout=0.5, max_retries=1)
    try:
        with pytest.raises(ProviderUnavailable):
            await refused.track(1)
        assert refused.calls == 2
    finally:
        await refused.close()


async def test_a_real_quota_is_recovered_from(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer
) -> None:
    """The fake enforces 3 requests per 0.2 s; a client that allows far more gets code 4, pauses
    everyone, and every request still gets its answer."""
    fake_deezer.quota = (3, 0.2)
    client = make_client(cache=None, rate_limit=1000, rate_period=1.0, quota_backoff=0.2, max_retries=12)
    queries = ["daft", "punk", "one", "more", "time", "get", "lucky", "baby", "baseballs", "discovery"]
    results = await asyncio.gather(*(client.search(q) for q in queries))
    assert all(isinstance(r, tuple) for r in results)
    assert fake_deezer.quota_errors_served > 0
    assert fake_deezer.calls["search"] == len(queries) + fake_deezer.quota_errors_served


async def test_retries_on_virtual_time(make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer) -> None:
    """A quota wait is slept once, by the shared limiter (the retry policy does not sleep it again);
    5xx waits are the policy's jittered backoff; a Retry-After over the cap blocks calls until it passes."""
    vt = _VirtualTime()
    client = make_client(cache=None, monotonic=vt.clock, sleep=vt.sleep, quota_backoff=0.5, max_retry_after=1.0)
    fake_deezer.fail("search", quota_error())
    assert await client.search("get lucky")
    assert vt.slept == [0.5] and fake_deezer.calls["search"] == 2

    fake_deezer.fail("track", Failure(502), Failure(503))  # retried, then answered
    assert await client.track(GET_LUCKY.id) is not None
    assert len(vt.slept) == 3 and 0.125 <= vt.slept[1] <= 0.25 and 0.25 <= vt.slept[2] <= 0.5
    fake_deezer.fail("track", *[Failure(503)] * 3)  # given up after 1 + max_retries (2)
    with pytest.raises(ProviderUnavailable, match="unavailable"):
        await client.track(GET_LUCKY.id)
    assert fake_deezer.calls["track"] == 6 and len(vt.slept) == 5

    fake_deezer.fail("search", Failure(429, headers={"Retry-After": "30"}))
    with pytest.raises(ProviderUnavailable, match="rate-limiting"):
        await client.search("daft punk")
    vt.t += 29
    with pytest.raises(ProviderUnavailable, match="asked us to wait"):
        await client.search("daft punk")
    assert fake_deezer.calls["search"] == 3 and len(vt.slept) == 5  # no call, no sleep
    vt.t += 2
    assert await client.search("daft punk")
    assert fake_deezer.calls["search"] == 4


async def test_a_retried_lookup_is_still_shared(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer
) -> None:
    vt = _VirtualTime()
    client = make_client(cache=None, monotonic=vt.clock, sleep=vt.sleep)
    fake_deezer.fail("track", Failure(503))
    results = await asyncio.gather(*(client.track(ONE_MORE_TIME.id) for _ in range(10)))
    assert all(r is not None and r.id == ONE_MORE_TIME.id for r in results)
    assert fake_deezer.calls["track"] == 2 and len(vt.slept) == 1  # one failed call, one retry, for all ten


# -- short links -----------------------------------------------------------------------------------------


async def test_short_links_follow_redirects_to_the_track(
    make_client: Callable[..., DeezerClient], fake_deezer: FakeDeezer
) -> None:
    fake_deezer.short_links["deezer.page.link/AbC123"] = (
        "https://www.deezer.com/en/track/3135556?host=0&utm_campaign=clipboard-generic&deferredFl=1"
    )
    fake_deezer.short_links["link.deezer.com/s/30xyZ"] = "https://deezer.page.link/AbC123"
    fake_deezer.short_links["link.deezer.com/s/album1"] = "https://www.deezer.com/fr/album/302127?utm_source=x"
    fake_deezer.short_links["deezer.page.link/loop"] = "https://deezer.page.link/loop"
    client = make_client()
    assert await client.resolve_short_link("https://deezer.page.link/AbC123") == 3135556
    assert await client.resolve_short_link("look: link.deezer.com/s/30xyZ") == 3135556
    with pytest.raises(UnsupportedInput) as info:
        await client.resolve_short_link("https://link.deezer.com/s/album1")
    assert info.value.kind == "album" and "album" in info.value.message
    assert await client.resolve_short_link("https://deezer.page.link/unknown") is None
    assert await client.resolve_short_link("https://deezer.page.link/loop") is None  # gives up after 5 hops
    calls = fake_deezer.calls["short_link"]
    assert await client.resolve_short_link("https://deezer.page.link/AbC123") == 3135556  # cached
    with pytest.raises(UnsupportedInput):
        await client.resolve_short_link("https://link.deezer.com/s/album1")
    assert fake_deezer.calls["short_link"] == calls
    with pytest.raises(InvalidInput):
        await client.resolve_short_link("https://example.com/s/abc")


async def test_short_link_host_down(
    deezer_env: None, cache: CacheService, vclock: VirtualClock, closed_port: int
) -> None:
    client = DeezerClient(cache, short_link_url=f"http://127.0.0.1:{closed_port}/links/", timeout=0.5, clock=vclock)
    try:
        with pytest.raises(ProviderUnavailable):
            await client.resolve_short_link("https://deezer.page.link/AbC123")
    finally:
        await client.close()


# -- the limiter, on a virtual clock --------------------------------------------------------------------


class _VirtualTime:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


async def test_limiter_never_lets_more_than_n_into_any_window() -> None:
    vt = _VirtualTime()
    limiter = RollingWindowLimiter(50, 5.0, clock=vt.clock, sleep=vt.sleep)
    starts: list[float] = []

    async def call() -> None:
        await limiter.acquire()
        starts.append(vt.t)

    await asyncio.gather(*(call() for _ in range(160)))
    assert len(starts) == 160 and starts == sorted(starts)
    for i, t in enumerate(starts):
        assert sum(1 for s in starts[i:] if s < t + 5.0) <= 50
    # Not slower than needed either: the 51st starts when the 1st leaves the window.
    assert starts[49] == 0.0 and starts[50] == pytest.approx(5.0) and starts[150] == pytest.approx(15.0)


async def test_limiter_pause_holds_everyone_back() -> None:
    vt = _VirtualTime()
    limiter = RollingWindowLimiter(50, 5.0, clock=vt.clock, sleep=vt.sleep)
    await limiter.acquire()
    limiter.pause(2.5)
    limiter.pause(1.0)  # never shortens a pause
    assert limiter.paused_for() == pytest.approx(2.5)
    await limiter.acquire()
    assert vt.t == pytest.approx(2.5) and limiter.waited == pytest.approx(2.5)
    with pytest.raises(ValueError):
        RollingWindowLimiter(0, 1.0)
