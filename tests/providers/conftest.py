"""Fixtures for provider tests: fake Spotify / YouTube / ReccoBeats servers and clients built from settings."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import ReccoBeatsSettings, SpotifySettings, YouTubeSettings
from db.models import AUDIO_FEATURE_COLUMNS, Track, TrackGenre
from ml.text import song_key
from services.audio_features import ReccoBeatsClient
from services.spotify import SpotifyClient
from tests.fakes.reccobeats import FakeReccoBeats
from tests.fakes.spotify import FakeSpotify, FakeTrack
from tests.fakes.youtube import FakeVideo, FakeYouTube


def features(seed: float = 0.5) -> dict[str, float]:
    base = {
        "danceability": seed,
        "energy": 1 - seed / 2,
        "key": 5.0,
        "loudness": -6.0,
        "mode": 1.0,
        "speechiness": 0.05,
        "acousticness": 0.1,
        "instrumentalness": 0.0,
        "liveness": 0.12,
        "valence": seed / 2,
        "tempo": 120.0,
        "time_signature": 4.0,
    }
    assert tuple(base) == AUDIO_FEATURE_COLUMNS
    return base


def sid(n: int) -> str:
    """A valid 22-character Spotify id."""
    return f"Sp{n:020d}"[:22]


CATALOG = [
    # (spotify id, name, artists, popularity, genre, has features)
    (sid(1), "Bohemian Rhapsody", "Queen", 90, "rock", True),
    (sid(2), "Don't Stop Me Now", "Queen", 85, "rock", True),
    (sid(3), "Beyoncé Song", "Beyoncé", 70, "pop", True),
    (sid(4), "Jóga", "Björk", 60, "electronic", True),
    (sid(5), "Master of Puppets", "Metallica", 80, "metal", True),
    (sid(6), "Enter Sandman", "Metallica", 82, "metal", True),
    (sid(7), "Kimi no Na wa", "RADWIMPS", 55, "j-rock", True),
    (sid(8), "Кино Группа крови", "Кино", 58, "rock", True),
    (sid(9), "Unknown Features Song", "Mystery Band", 30, "indie", False),
]


async def add_catalog(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """Insert the small test catalog; returns internal ids by Spotify id."""
    ids: dict[str, int] = {}
    async with sessions.begin() as session:
        for i, (spotify_id, name, artists, pop, genre, has) in enumerate(CATALOG):
            row = Track(
                spotify_id=spotify_id,
                name=name,
                artists=artists,
                album=f"{name} (album)",
                popularity=pop,
                duration_ms=200000,
                explicit=False,
                source="catalog",
                search_key=song_key(artists, name),
                **(features(0.1 + i / 20) if has else {}),
            )
            row.genres = [TrackGenre(genre=genre)]
            session.add(row)
            await session.flush()
            ids[spotify_id] = row.id
    return ids


SPOTIFY_ONLY = [
    FakeTrack(sid(101), "Paranoid", ("Black Sabbath",), album="Paranoid", popularity=78, genre="metal", year=1970),
    FakeTrack(sid(102), "Iron Man", ("Black Sabbath",), album="Paranoid", popularity=75, genre="metal", year=1970),
    FakeTrack(sid(103), "Bohemian Rhapsody", ("Queen",), popularity=91, genre="rock", year=1975),  # another id
    FakeTrack(sid(104), "Obscure Tune", ("Nobody Knows",), popularity=5, genre="indie", year=2021),
]


@pytest.fixture
async def fake_spotify() -> AsyncIterator[FakeSpotify]:
    server = FakeSpotify(list(SPOTIFY_ONLY))
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def fake_youtube() -> AsyncIterator[FakeYouTube]:
    server = FakeYouTube(
        [
            FakeVideo("fJ9rUzIMcZQ", "Queen – Bohemian Rhapsody (Official Video Remastered)", "Queen Official"),
            FakeVideo("WM8bTdBs-cw", "Paranoid", "Black Sabbath - Topic"),
            FakeVideo("CD-E-LDc384", "Metallica: Enter Sandman (Official Music Video)", "Metallica"),
        ]
    )
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def fake_reccobeats() -> AsyncIterator[FakeReccoBeats]:
    server = FakeReccoBeats({sid(101): features(0.33), sid(102): features(0.44)})
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def provider_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fake_spotify: FakeSpotify,
    fake_youtube: FakeYouTube,
    fake_reccobeats: FakeReccoBeats,
) -> Iterator[None]:
    """The documented environment variables pointing at the fake servers."""
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", fake_spotify.client_id)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", fake_spotify.client_secret)
    monkeypatch.setenv("SPOTIFY_API_URL", fake_spotify.api_url)
    monkeypatch.setenv("SPOTIFY_TOKEN_URL", fake_spotify.token_url)
    monkeypatch.setenv("SPOTIFY_TIMEOUT", "0.5")
    monkeypatch.setenv("SPOTIFY_MAX_RETRIES", "2")
    monkeypatch.setenv("SPOTIFY_MAX_RETRY_AFTER", "1")
    monkeypatch.setenv("YOUTUBE_API_KEY", fake_youtube.api_key)
    monkeypatch.setenv("YOUTUBE_API_URL", fake_youtube.api_url)
    monkeypatch.setenv("YOUTUBE_TIMEOUT", "0.5")
    monkeypatch.setenv("RECCOBEATS_API_URL", fake_reccobeats.api_url)
    monkeypatch.setenv("RECCOBEATS_TIMEOUT", "0.5")
    monkeypatch.chdir(tmp_path)  # so a stray spotipy .cache file would show up here
    yield


class RecordedSleeps(list[float]):
    """Stands in for asyncio.sleep: records what the client asked to wait (no wall clock in tests)."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)


def spotify_from_settings(**overrides: Any) -> SpotifyClient:
    """A client on the documented settings; its waits between retries are recorded, not slept."""
    s = SpotifySettings(_env_file=None)  # type: ignore[call-arg]
    values = {
        "api_url": s.api_url,
        "token_url": s.token_url,
        "timeout": s.timeout,
        "max_retries": s.max_retries,
        "max_retry_after": s.max_retry_after,
        "sleep": RecordedSleeps(),
        **overrides,
    }
    assert s.client_id and s.client_secret
    return SpotifyClient(s.client_id, s.client_secret.get_secret_value(), **values)


def reccobeats_from_settings(**overrides: Any) -> ReccoBeatsClient:
    """A client on the documented settings; its waits between retries are recorded, not slept."""
    s = ReccoBeatsSettings(_env_file=None)  # type: ignore[call-arg]
    values = {
        "api_url": s.api_url,
        "timeout": s.timeout,
        "max_retry_after": 1.0,
        "sleep": RecordedSleeps(),
        **overrides,
    }
    return ReccoBeatsClient(**values)


def youtube_settings() -> YouTubeSettings:
    return YouTubeSettings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def spotify(provider_env: None) -> AsyncIterator[SpotifyClient]:
    client = spotify_from_settings()
    yield client
    client.close()


@pytest.fixture
async def reccobeats(provider_env: None) -> AsyncIterator[ReccoBeatsClient]:
    client = reccobeats_from_settings()
    yield client
    await client.close()


Clock = Callable[[], Any]
