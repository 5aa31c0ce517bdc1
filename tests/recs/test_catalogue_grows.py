"""A catalogue that grows: a song one instance stores becomes a recommendation candidate on another.

Two real `main.py serve` processes share one PostgreSQL database (a scratch database made for this
test and dropped after). Instance A finds a song through (a fake) Spotify and stores it with its
audio features; instance B never saw that request, and its index was built (or loaded) before the
song existed. B's catalogue refresh must make the song a /similar candidate there within 60 s.
Waits are event-based: B is asked again until the song is there or the deadline passes.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession

from db.engine import create_engine, create_session_factory
from db.migrate import upgrade_to_head
from db.models import AUDIO_FEATURE_COLUMNS, Track, TrackGenre
from services.textnorm import song_key
from tests.conftest import scratch_postgres
from tests.fakes.spotify import FakeSpotify, FakeTrack
from tests.serving import ROOT, Served, free_port

pytestmark = pytest.mark.postgres

DEADLINE = 60.0  # the promise: a stored song is a candidate everywhere within a minute
ADDED = "stored elsewhere added"  # what a process logs when its refresh added tracks
GENRES = ("rock", "pop", "metal", "jazz")


def features(i: int) -> dict[str, float]:
    values = {
        "danceability": 0.2 + (i % 7) / 10,
        "energy": 0.9 - (i % 5) / 10,
        "key": float(i % 12),
        "loudness": -4.0 - i % 9,
        "mode": float(i % 2),
        "speechiness": 0.03 + (i % 4) / 50,
        "acousticness": (i % 10) / 10,
        "instrumentalness": (i % 3) / 5,
        "liveness": 0.1 + (i % 6) / 20,
        "valence": (i % 8) / 8,
        "tempo": 90.0 + 5 * (i % 13),
        "time_signature": 4.0,
    }
    assert tuple(values) == AUDIO_FEATURE_COLUMNS
    return values


@pytest.fixture
async def scratch_pg() -> AsyncIterator[str]:
    """A PostgreSQL database of this test's own, at the latest migration, dropped afterwards."""
    with scratch_postgres("encore_grow") as url:
        await upgrade_to_head(url)
        yield url


async def add_catalogue(url: str, count: int = 40) -> list[int]:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    ids = []
    try:
        async with sessions.begin() as session:
            for i in range(count):
                name, artists = f"Catalogue Song {i}", f"Band {i}"
                row = Track(
                    spotify_id=f"Cat{i:019d}"[:22],
                    name=name,
                    artists=artists,
                    popularity=50 + i % 40,
                    duration_ms=180_000 + 1000 * i,
                    explicit=False,
                    source="catalog",
                    search_key=song_key(artists, name),
                    **features(i),
                )
                row.genres = [TrackGenre(genre=GENRES[i % len(GENRES)])]
                session.add(row)
                await session.flush()
                ids.append(row.id)
    finally:
        await engine.dispose()
    return ids


async def serve(tmp: Path, url: str, extra: dict[str, str]) -> Served:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "TELEGRAM_", "HTTP_", "DEEZER_"))}
    env |= {
        "DATA_DIR": str(tmp / "data"),
        "MODEL_DIR": str(tmp / "no-model"),
        "DATABASE_URL": url,
        "HTTP_PORT": str(port),
        "LOG_FORMAT": "json",
        "TELEGRAM_BOT_TOKEN": "",
        "DEEZER_ENABLED": "false",
        "RECCOBEATS_ENABLED": "false",
        "ENCORE_DATA_MIRROR": "",
        "CATALOG_REFRESH_SECONDS": "1",
        **extra,
    }
    env.pop("REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "main.py"),
        "serve",
        cwd=tmp,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    served = Served(proc, port)
    await served.ready()
    return served


async def similar_ids(http: ClientSession, served: Served, seed: int, limit: int) -> list[int]:
    async with http.get(f"{served.url}/api/v1/tracks/{seed}/similar", params={"limit": str(limit)}) as resp:
        assert resp.status == 200, await resp.text()
        return [int(item["track"]["id"]) for item in (await resp.json())["items"]]


async def test_a_song_stored_by_one_instance_becomes_a_candidate_on_another(scratch_pg: str, tmp_path: Path) -> None:
    catalogue = await add_catalogue(scratch_pg)
    seed = catalogue[7]
    # The same sound as the seed, by someone else: its nearest neighbour once B knows it.
    newcomer = FakeTrack("NewSong0000000000000A1", "Brand New Song", ("Newcomer",), features=features(7))
    spotify = FakeSpotify([newcomer], audio_features_allowed=True)
    await spotify.start()
    a = b = None
    try:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a = await serve(
            tmp_path / "a",
            scratch_pg,
            {
                "SPOTIFY_CLIENT_ID": spotify.client_id,
                "SPOTIFY_CLIENT_SECRET": spotify.client_secret,
                "SPOTIFY_API_URL": spotify.api_url,
                "SPOTIFY_TOKEN_URL": spotify.token_url,
            },
        )
        b = await serve(tmp_path / "b", scratch_pg, {})
        async with ClientSession() as http:
            before = await similar_ids(http, b, seed, 10)  # B's answer, cached, without the song
            link = f"https://open.spotify.com/track/{newcomer.id}"
            async with http.get(f"{a.url}/api/v1/tracks/search", params={"q": link}) as resp:
                body = await resp.json()
            assert body["kind"] == "track", body
            new_id = int(body["items"][0]["id"])
            assert new_id not in catalogue and new_id not in before
            async with http.get(f"{a.url}/api/v1/tracks/{new_id}") as resp:  # the card fetches its features
                assert resp.status == 200, await resp.text()
            # A added it to its own index when the features came: a candidate there at once.
            assert new_id in await similar_ids(http, a, seed, 10)

            deadline = time.monotonic() + DEADLINE
            found: list[int] = []
            while True:
                found = await similar_ids(http, b, seed, 10)
                if new_id in found:
                    break
                # Until B's next refresh adds something (its log says so), then ask again.
                seen = sum(ADDED in m for m in b.messages)

                def refreshed(messages: list[str], seen: int = seen) -> bool:
                    return sum(ADDED in m for m in messages) > seen

                try:
                    await b.wait_until(refreshed, within=max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    break
            assert new_id in found, f"not a candidate on B within {DEADLINE:g} s: {found}; B: {b.messages[-20:]}"
            async with http.get(f"{b.url}/api/v1/tracks/search", params={"q": "Brand New Song Newcomer"}) as resp:
                assert new_id in [int(t["id"]) for t in (await resp.json())["items"]]
    finally:
        for served in (a, b):
            if served is not None:
                stderr = await served.stop()
                assert "Traceback" not in stderr, stderr[-3000:]
        await spotify.close()
    assert b is not None and any(ADDED in m for m in b.messages)
