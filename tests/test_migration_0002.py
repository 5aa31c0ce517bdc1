"""Migration 0002 (provider ids on tracks) keeps existing data, on SQLite and PostgreSQL.

On SQLite the migration rebuilds `tracks`; with foreign keys enforced, dropping the old table
would cascade-delete likes, history, genres and radios. These tests fill a 0001 database with
rows that reference a track, upgrade, and count them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from db.engine import create_engine
from db.migrate import alembic_config, check_sync
from tests.conftest import emptied

DEPENDENT_TABLES = ("track_genres", "track_aliases", "likes", "interactions", "radio_sessions", "daily_picks")


async def _seed_0001(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO users (id, telegram_id, language) VALUES (1, 1001, 'en')"))
            await conn.execute(
                text(
                    "INSERT INTO tracks (id, spotify_id, name, artists, source, search_key) "
                    "VALUES (1, 'Sp00000000000000000001', 'Song', 'Band', 'catalog', 'band - song'), "
                    "(2, 'Sp00000000000000000002', 'Other', 'Band', 'catalog', 'band - other')"
                )
            )
            await conn.execute(text("INSERT INTO track_genres (track_id, genre) VALUES (1, 'rock'), (2, 'pop')"))
            await conn.execute(
                text("INSERT INTO track_aliases (spotify_id, track_id) VALUES ('Alias0000000000000001', 1)")
            )
            await conn.execute(text("INSERT INTO likes (user_id, track_id) VALUES (1, 1), (1, 2)"))
            await conn.execute(
                text("INSERT INTO radio_sessions (id, user_id, seed_track_id, current_track_id) VALUES (1, 1, 1, 2)")
            )
            await conn.execute(
                text(
                    "INSERT INTO interactions (user_id, track_id, kind, radio_session_id) "
                    "VALUES (1, 1, 'liked', 1), (1, 2, 'shown', 1)"
                )
            )
            await conn.execute(
                text("INSERT INTO daily_picks (user_id, day, track_id, status) VALUES (1, '2026-01-01', 2, 'sent')")
            )
    finally:
        await engine.dispose()


async def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            out = {}
            for table in ("tracks", *DEPENDENT_TABLES):
                out[table] = int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
            return out
    finally:
        await engine.dispose()


async def _scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar()
    finally:
        await engine.dispose()


async def _deezer_rows_behave(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tracks (id, name, artists, deezer_id, isrc, features_source, cover_url, release_year) "
                    "VALUES (3, 'One More Time', 'Daft Punk', 3135556, 'GBDUW0000053', 'analysis', "
                    "'https://x/c.jpg', 2001)"
                )
            )
            # Rows that depend on the Deezer-only song (a downgrade must remove them with it).
            await conn.execute(text("INSERT INTO likes (user_id, track_id) VALUES (1, 3)"))
            await conn.execute(text("INSERT INTO radio_sessions (id, user_id, seed_track_id) VALUES (2, 1, 3)"))
            await conn.execute(
                text(
                    "INSERT INTO interactions (user_id, track_id, kind, radio_session_id) "
                    "VALUES (1, 3, 'shown', NULL), (1, 1, 'shown', 2)"
                )
            )
            await conn.execute(text("UPDATE radio_sessions SET current_track_id = 3 WHERE id = 1"))
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO tracks (id, name, artists, deezer_id) VALUES (4, 'Again', 'Daft Punk', 3135556)")
                )
        with pytest.raises(IntegrityError):  # the Spotify id stays unique
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO tracks (id, name, artists, spotify_id) "
                        "VALUES (5, 'Dup', 'Band', 'Sp00000000000000000001')"
                    )
                )
    finally:
        await engine.dispose()


def _round_trip(url: str) -> None:
    cfg = alembic_config(url)
    command.upgrade(cfg, "0001")
    asyncio.run(_seed_0001(url))
    before = asyncio.run(_counts(url))
    assert all(before[t] > 0 for t in DEPENDENT_TABLES)

    command.upgrade(cfg, "head")
    check_sync(url)
    assert asyncio.run(_counts(url)) == before
    asyncio.run(_deezer_rows_behave(url))

    command.downgrade(cfg, "0001")
    after_down = asyncio.run(_counts(url))
    assert after_down == before  # the Deezer-only row and its dependents are gone, everything else stayed
    assert asyncio.run(_scalar(url, "SELECT current_track_id FROM radio_sessions WHERE id = 1")) is None
    command.upgrade(cfg, "head")
    check_sync(url)


def test_sqlite_upgrade_keeps_rows_that_reference_tracks(tmp_path: Path) -> None:
    _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")


@pytest.mark.postgres
def test_postgresql_upgrade_keeps_rows_that_reference_tracks(pg_database_url: str) -> None:
    with emptied(pg_database_url) as url:
        _round_trip(url)
