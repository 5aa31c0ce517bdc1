from __future__ import annotations

import asyncio
import os

import pytest

from services.errors import ProviderUnavailable
from services.spotify import SpotifyClient
from tests.fakes.spotify import Failure, FakeSpotify
from tests.providers.conftest import RecordedSleeps, features, sid, spotify_from_settings


async def test_search_and_track_over_the_wire(spotify: SpotifyClient, fake_spotify: FakeSpotify) -> None:
    found = await spotify.search_tracks("black sabbath", limit=50)  # asks for 50, sends ≤ 10
    assert [t.name for t in found] == ["Paranoid", "Iron Man"]
    assert found[0].artists == ("Black Sabbath",) and found[0].album == "Paranoid" and found[0].popularity == 78
    assert fake_spotify.requests[-1][1]["limit"] == "10"
    track = await spotify.track(sid(102))
    assert track is not None and track.name == "Iron Man"
    assert await spotify.track(sid(999)) is None  # 404
    assert await spotify.search_tracks("   ") == []


async def test_token_cached_in_memory_never_in_a_file(spotify: SpotifyClient, fake_spotify: FakeSpotify) -> None:
    for _ in range(3):
        await spotify.search_tracks("paranoid")
    await spotify.track(sid(101))
    assert fake_spotify.calls["token"] == 1
    assert not any(name.startswith(".cache") for name in os.listdir("."))


async def test_429_retry_after_is_honoured(fake_spotify: FakeSpotify, provider_env: None) -> None:
    slept = RecordedSleeps()
    client = spotify_from_settings(sleep=slept)
    fake_spotify.fail("search", Failure(429, headers={"Retry-After": "1"}))
    found = await client.search_tracks("paranoid")
    assert [t.name for t in found] == ["Paranoid"]
    assert fake_spotify.calls["search"] == 2
    assert slept == [1.0]  # waited exactly what the server asked before retrying
    client.close()


async def test_retry_after_over_the_cap_fails_fast_and_pauses(fake_spotify: FakeSpotify, provider_env: None) -> None:
    slept = RecordedSleeps()
    client = spotify_from_settings(max_retry_after=1.0, sleep=slept)
    fake_spotify.fail("search", Failure(429, headers={"Retry-After": "3600"}))
    with pytest.raises(ProviderUnavailable):
        await client.search_tracks("paranoid")
    assert slept == []  # did not wait an hour (spotipy's own Retry would sleep in the thread)
    assert not client.available
    with pytest.raises(ProviderUnavailable):
        await client.track(sid(101))
    assert fake_spotify.calls["search"] == 1 and fake_spotify.calls["track"] == 0
    client.close()


async def test_500s_are_retried_with_backoff(fake_spotify: FakeSpotify, provider_env: None) -> None:
    slept = RecordedSleeps()
    client = spotify_from_settings(sleep=slept)
    fake_spotify.fail("track", Failure(500), Failure(503))
    track = await client.track(sid(101))
    assert track is not None and track.name == "Paranoid"
    assert fake_spotify.calls["track"] == 3
    # Jittered exponential backoff from 0.5 s: half to all of 0.5 s, then of 1 s.
    assert len(slept) == 2 and 0.25 <= slept[0] <= 0.5 and 0.5 <= slept[1] <= 1.0
    client.close()


async def test_persistent_500s_give_up(fake_spotify: FakeSpotify, provider_env: None) -> None:
    slept = RecordedSleeps()
    client = spotify_from_settings(sleep=slept)
    fake_spotify.fail("search", *[Failure(500)] * 5)
    with pytest.raises(ProviderUnavailable):
        await client.search_tracks("paranoid")
    assert fake_spotify.calls["search"] == 3  # 1 + max_retries (2)
    assert len(slept) == 2
    assert client.available  # a give-up does not block later calls; only a long Retry-After does
    client.close()


async def test_the_pause_after_a_long_retry_after_ends(fake_spotify: FakeSpotify, provider_env: None) -> None:
    now = [1000.0]
    client = spotify_from_settings(max_retry_after=1.0, clock=lambda: now[0])
    fake_spotify.fail("search", Failure(429, headers={"Retry-After": "60"}))
    with pytest.raises(ProviderUnavailable):
        await client.search_tracks("paranoid")
    now[0] += 59
    assert not client.available
    now[0] += 2
    assert client.available
    assert [t.name for t in await client.search_tracks("paranoid")] == ["Paranoid"]
    assert fake_spotify.calls["search"] == 2
    client.close()


async def test_timeouts(fake_spotify: FakeSpotify, provider_env: None) -> None:
    slept = RecordedSleeps()
    client = spotify_from_settings(timeout=0.3, max_retries=2, sleep=slept)
    fake_spotify.fail("search", *[Failure(None, delay=2.0)] * 3)
    with pytest.raises(ProviderUnavailable):
        await client.search_tracks("paranoid")
    assert fake_spotify.calls["search"] == 3 and len(slept) == 2  # each attempt timed out, then gave up
    client.close()


async def test_refused_connection(provider_env: None, closed_port: int) -> None:
    client = spotify_from_settings(
        api_url=f"http://127.0.0.1:{closed_port}/v1/", token_url=f"http://127.0.0.1:{closed_port}/api/token"
    )
    with pytest.raises(ProviderUnavailable):
        await client.search_tracks("paranoid")
    client.close()


async def test_token_endpoint_failures(fake_spotify: FakeSpotify, provider_env: None) -> None:
    client = spotify_from_settings()
    fake_spotify.fail("token", Failure(503))
    assert [t.name for t in await client.search_tracks("iron man")] == ["Iron Man"]  # retried
    client.close()

    bad = spotify_from_settings()
    bad._auth.client_secret = "wrong"  # refused credentials disable the client, no retry storm
    with pytest.raises(ProviderUnavailable):
        await bad.search_tracks("iron man")
    calls = fake_spotify.calls["token"]
    with pytest.raises(ProviderUnavailable):
        await bad.search_tracks("iron man")
    assert fake_spotify.calls["token"] == calls
    bad.close()


async def test_expired_token_is_renewed(spotify: SpotifyClient, fake_spotify: FakeSpotify) -> None:
    await spotify.search_tracks("paranoid")
    fake_spotify.tokens.clear()  # the server forgets the token: 401
    assert [t.name for t in await spotify.search_tracks("paranoid")] == ["Paranoid"]
    assert fake_spotify.calls["token"] == 2


async def test_renewing_the_token_is_not_a_retry(fake_spotify: FakeSpotify, provider_env: None) -> None:
    slept = RecordedSleeps()
    client = spotify_from_settings(max_retries=0, sleep=slept)
    await client.search_tracks("paranoid")
    fake_spotify.tokens.clear()
    assert [t.name for t in await client.search_tracks("paranoid")] == ["Paranoid"]  # no retries allowed, still fine
    assert fake_spotify.calls["token"] == 2 and slept == []
    fake_spotify.fail("search", Failure(401), Failure(500))  # renewed, then the only attempt fails
    with pytest.raises(ProviderUnavailable):
        await client.search_tracks("paranoid")
    assert fake_spotify.calls["search"] == 5 and fake_spotify.calls["token"] == 3 and slept == []
    client.close()


async def test_audio_features_403_marks_endpoint_unavailable(spotify: SpotifyClient, fake_spotify: FakeSpotify) -> None:
    assert await spotify.audio_features([sid(101)]) == {}
    assert spotify.audio_features_available is False
    assert await spotify.audio_features([sid(102)]) == {}
    assert fake_spotify.calls["audio-features"] == 1  # not called again


async def test_audio_features_where_still_allowed(spotify: SpotifyClient, fake_spotify: FakeSpotify) -> None:
    fake_spotify.audio_features_allowed = True
    fake_spotify.tracks[sid(101)].features = features(0.7)
    got = await spotify.audio_features([sid(101), sid(102)])
    assert got == {sid(101): features(0.7)}
    assert spotify.audio_features_available


async def test_event_loop_is_not_blocked(spotify: SpotifyClient, fake_spotify: FakeSpotify) -> None:
    fake_spotify.fail("search", Failure(None, delay=0.4))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    await spotify.search_tracks("paranoid")
    task.cancel()
    assert ticks >= 10


async def test_no_secrets_or_queries_in_logs(
    spotify: SpotifyClient, fake_spotify: FakeSpotify, caplog: pytest.LogCaptureFixture
) -> None:
    import base64
    import logging

    caplog.set_level(logging.DEBUG)
    await spotify.search_tracks("paranoid")
    fake_spotify.fail("search", Failure(500), Failure(500), Failure(500))
    with pytest.raises(ProviderUnavailable):
        await spotify.search_tracks("my secret query")
    secret = base64.b64encode(f"{fake_spotify.client_id}:{fake_spotify.client_secret}".encode()).decode()
    # urllib3 logs URLs at DEBUG (bot/logging.py keeps it at WARNING); spotipy and Encore are checked here.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("spotipy", "services")))
    assert "spotify search" in ours  # something was logged …
    for token in [*fake_spotify.tokens, secret, fake_spotify.client_secret, "my secret query", "my+secret+query"]:
        assert token not in ours  # … but no token, secret or user text
    assert all(token not in caplog.text for token in [*fake_spotify.tokens, secret])
