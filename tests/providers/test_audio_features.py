from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories import TrackRepository
from services.audio_features import AudioFeatureChain, FeatureSource, ReccoBeatsClient
from services.cache import CacheService
from services.dto import TrackInfo
from services.errors import ProviderUnavailable
from services.spotify import SpotifyClient
from tests.fakes.reccobeats import Failure, FakeReccoBeats
from tests.fakes.spotify import FakeSpotify
from tests.providers.conftest import RecordedSleeps, add_catalog, features, reccobeats_from_settings, sid


async def test_reccobeats_wire_format(reccobeats: ReccoBeatsClient, fake_reccobeats: FakeReccoBeats) -> None:
    got = await reccobeats.audio_features([sid(101), sid(102), sid(999)])
    assert set(got) == {sid(101), sid(102)}
    assert got[sid(101)]["features"] == features(0.33)  # time_signature filled with 4
    assert got[sid(101)]["imputed"] == ["time_signature"]
    assert fake_reccobeats.requests[0][1]["ids"] == f"{sid(101)},{sid(102)},{sid(999)}"


async def test_reccobeats_batches_of_40(reccobeats: ReccoBeatsClient, fake_reccobeats: FakeReccoBeats) -> None:
    await reccobeats.audio_features([sid(1000 + i) for i in range(90)])
    assert fake_reccobeats.calls["audio-features"] == 3


async def test_reccobeats_retries_then_gives_up(provider_env: None, fake_reccobeats: FakeReccoBeats) -> None:
    slept = RecordedSleeps()
    reccobeats = reccobeats_from_settings(sleep=slept)  # max_retries 2, Retry-After capped at 1 s
    fake_reccobeats.fail("audio-features", Failure(429, headers={"Retry-After": "0.2"}), Failure(502))
    assert sid(101) in await reccobeats.audio_features([sid(101)])
    assert fake_reccobeats.calls["audio-features"] == 3
    assert slept[0] == 0.2 and 0.25 <= slept[1] <= 0.5  # what the server asked, then backoff (retry 2)
    fake_reccobeats.fail("audio-features", *[Failure(500)] * 3)
    with pytest.raises(ProviderUnavailable):
        await reccobeats.audio_features([sid(101)])
    assert fake_reccobeats.calls["audio-features"] == 6 and len(slept) == 4
    fake_reccobeats.fail("audio-features", Failure(429, headers={"Retry-After": "600"}))
    with pytest.raises(ProviderUnavailable):  # over the cap: no hour-long wait
        await reccobeats.audio_features([sid(101)])
    assert fake_reccobeats.calls["audio-features"] == 7 and len(slept) == 4
    assert sid(101) in await reccobeats.audio_features([sid(101)])  # ReccoBeats does not block later calls
    await reccobeats.close()


async def test_reccobeats_timeout_and_refused(
    provider_env: None, fake_reccobeats: FakeReccoBeats, closed_port: int
) -> None:
    client = reccobeats_from_settings(max_retries=0)
    fake_reccobeats.fail("audio-features", Failure(None, delay=2.0))
    with pytest.raises(ProviderUnavailable):
        await client.audio_features([sid(101)])
    await client.close()
    refused = reccobeats_from_settings(api_url=f"http://127.0.0.1:{closed_port}/v1/", max_retries=1)
    with pytest.raises(ProviderUnavailable):
        await refused.audio_features([sid(101)])
    await refused.close()


def _info(spotify_id: str, track_id: int = 0) -> TrackInfo:
    return TrackInfo(id=track_id, spotify_id=spotify_id, name="x", artists=("y",))


async def test_chain_order_and_cache(
    sessions: async_sessionmaker[AsyncSession],
    spotify: SpotifyClient,
    reccobeats: ReccoBeatsClient,
    fake_spotify: FakeSpotify,
    fake_reccobeats: FakeReccoBeats,
) -> None:
    ids = await add_catalog(sessions)
    chain = AudioFeatureChain(sessions, CacheService(sessions), spotify=spotify, reccobeats=reccobeats)

    from_catalog = await chain.for_spotify_ids([sid(1)])
    assert from_catalog[sid(1)].source is FeatureSource.CATALOG
    assert fake_spotify.calls["audio-features"] == 0

    # Spotify answers 403 (closed to new apps) → ReccoBeats; 403 is remembered.
    first = await chain.for_spotify_ids([sid(101), sid(104)])
    assert first[sid(101)].source is FeatureSource.RECCOBEATS and first[sid(101)].imputed == ("time_signature",)
    assert first[sid(104)].features is None and first[sid(104)].source is FeatureSource.NONE
    assert "No audio features" in (first[sid(104)].note or "")
    assert fake_spotify.calls["audio-features"] == 1 and fake_reccobeats.calls["audio-features"] == 1

    # Both answers (found and "none") are cached in the database: no more calls.
    again = await AudioFeatureChain(
        sessions, CacheService(sessions), spotify=spotify, reccobeats=reccobeats
    ).for_spotify_ids([sid(101), sid(104)])
    assert again[sid(101)].features == first[sid(101)].features and again[sid(104)].features is None
    assert fake_spotify.calls["audio-features"] == 1 and fake_reccobeats.calls["audio-features"] == 1

    # A catalog track without features gets them written to its row.
    fake_reccobeats.features[sid(9)] = features(0.9)
    result = await chain.for_track(_info(sid(9), ids[sid(9)]))
    assert result.source is FeatureSource.RECCOBEATS
    async with sessions() as session:
        row = await TrackRepository(session).get(ids[sid(9)])
        assert row is not None and row.has_features and row.energy == pytest.approx(features(0.9)["energy"])


async def test_chain_prefers_spotify_where_allowed(
    sqlite_sessions: async_sessionmaker[AsyncSession],
    spotify: SpotifyClient,
    reccobeats: ReccoBeatsClient,
    fake_spotify: FakeSpotify,
    fake_reccobeats: FakeReccoBeats,
) -> None:
    fake_spotify.audio_features_allowed = True
    fake_spotify.tracks[sid(101)].features = features(0.8)
    chain = AudioFeatureChain(sqlite_sessions, CacheService(sqlite_sessions), spotify=spotify, reccobeats=reccobeats)
    got = await chain.for_spotify_ids([sid(101), sid(102)])
    assert got[sid(101)].source is FeatureSource.SPOTIFY and got[sid(101)].features == features(0.8)
    assert got[sid(102)].source is FeatureSource.RECCOBEATS
    assert fake_reccobeats.requests[0][1]["ids"] == sid(102)  # only what Spotify lacked


async def test_chain_failures_are_not_cached(
    sqlite_sessions: async_sessionmaker[AsyncSession],
    spotify: SpotifyClient,
    reccobeats: ReccoBeatsClient,
    fake_spotify: FakeSpotify,
    fake_reccobeats: FakeReccoBeats,
) -> None:
    chain = AudioFeatureChain(sqlite_sessions, CacheService(sqlite_sessions), spotify=spotify, reccobeats=reccobeats)
    fake_reccobeats.fail("audio-features", *[Failure(500)] * 3)
    down = await chain.for_spotify_ids([sid(101)])
    assert down[sid(101)].features is None and down[sid(101)].providers_failed == ("ReccoBeats",)
    assert "ReccoBeats" in (down[sid(101)].note or "")
    up = await chain.for_spotify_ids([sid(101)])
    assert up[sid(101)].source is FeatureSource.RECCOBEATS


async def test_chain_without_any_provider(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    chain = AudioFeatureChain(sqlite_sessions, CacheService(sqlite_sessions))
    got = await chain.for_track(_info(sid(555)))
    assert got.features is None and got.source is FeatureSource.NONE and got.note
