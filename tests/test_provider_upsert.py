"""`TrackRepository.upsert_provider_track`: one row per Deezer id / Spotify id / ISRC, even under
concurrency, on SQLite (a file, several connections) and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import Base
from db.engine import create_engine, create_session_factory
from db.models import Track
from db.repositories import TrackRepository
from services.dto import TrackInfo


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def shared_sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on separate connections (a SQLite file in WAL mode, or PostgreSQL)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'upsert.db'}"
    else:
        url = request.getfixturevalue("pg_database_url")
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    yield create_session_factory(engine)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
    await engine.dispose()


def deezer_values(deezer_id: int = 3135556, **extra: Any) -> dict[str, Any]:
    return {
        "deezer_id": deezer_id,
        "isrc": "GBDUW0000053",
        "name": "One More Time",
        "artists": "Daft Punk",
        "album": "Discovery",
        "duration_ms": 320_000,
        "explicit": False,
        "source": "deezer",
        "search_key": "daft punk - one more time",
        "cover_url": "https://cdn-images.dzcdn.net/images/cover/x/500x500-000000-80-0-0.jpg",
        "release_year": 2001,
        **extra,
    }


async def _upsert(sessions: async_sessionmaker[AsyncSession], values: dict[str, Any]) -> tuple[int, bool]:
    async with sessions.begin() as session:
        row, created = await TrackRepository(session).upsert_provider_track(values)
        return row.id, created


async def _count(sessions: async_sessionmaker[AsyncSession], *where: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Track).where(*where)) or 0)


async def test_twenty_concurrent_upserts_of_one_deezer_track_make_one_row(
    shared_sessions: async_sessionmaker[AsyncSession],
) -> None:
    results = await asyncio.gather(*(_upsert(shared_sessions, deezer_values()) for _ in range(20)))
    assert len({track_id for track_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await _count(shared_sessions) == 1

    async with shared_sessions() as session:
        row = await TrackRepository(session).by_deezer_id(3135556)
        assert row is not None
        info = TrackInfo.from_row(row)
    assert info.spotify_id is None and info.spotify_url is None
    assert info.deezer_id == 3135556 and info.deezer_url == "https://www.deezer.com/track/3135556"
    assert (info.isrc, info.year, info.source) == ("GBDUW0000053", 2001, "deezer")
    assert info.cover_url and info.features is None


async def test_concurrent_upserts_of_one_isrc_under_several_deezer_ids_make_one_row(
    shared_sessions: async_sessionmaker[AsyncSession],
) -> None:
    results = await asyncio.gather(*(_upsert(shared_sessions, deezer_values(100 + i)) for i in range(12)))
    assert len({track_id for track_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await _count(shared_sessions, Track.isrc == "GBDUW0000053") == 1


async def test_an_existing_catalogue_row_wins_by_spotify_id(shared_sessions: async_sessionmaker[AsyncSession]) -> None:
    async with shared_sessions.begin() as session:
        catalogue = Track(spotify_id="Sp00000000000000000001", name="Song", artists="Band", search_key="band - song")
        session.add(catalogue)
        await session.flush()
        catalogue_id = catalogue.id
    values = deezer_values(777, spotify_id="Sp00000000000000000001", isrc="USAAA0000001", name="Song (Deezer)")
    track_id, created = await _upsert(shared_sessions, values)
    assert (track_id, created) == (catalogue_id, False)
    async with shared_sessions() as session:
        row = await TrackRepository(session).get(catalogue_id)
        assert row is not None and row.name == "Song" and row.deezer_id is None  # nothing overwritten
    assert await _count(shared_sessions) == 1


async def test_distinct_songs_get_distinct_rows(shared_sessions: async_sessionmaker[AsyncSession]) -> None:
    first = await _upsert(shared_sessions, deezer_values(1, isrc="USAAA0000001"))
    second = await _upsert(shared_sessions, deezer_values(2, isrc=None, name="Other"))
    third = await _upsert(shared_sessions, deezer_values(3, isrc=None, name="Third"))
    assert first[1] and second[1] and third[1]
    assert len({first[0], second[0], third[0]}) == 3


@pytest.mark.parametrize(
    "values",
    [
        {"name": "No ids", "artists": "X"},
        {"deezer_id": 5, "artists": "X"},
        {"deezer_id": 5, "name": "X", "artists": "X", "colour": "blue"},
        {"deezer_id": 5, "name": "X", "artists": "X", "id": 12},
    ],
)
async def test_bad_values_are_refused_and_nothing_is_written(
    shared_sessions: async_sessionmaker[AsyncSession], values: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        await _upsert(shared_sessions, values)
    assert await _count(shared_sessions) == 0
