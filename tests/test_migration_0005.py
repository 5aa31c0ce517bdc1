"""Migration 0005_playlists: new tables only — existing users, likes and radios are untouched on the way
up and down; the constraints the service relies on (one song once per playlist, one name per owner,
cascades) hold in the migrated schema, on SQLite and PostgreSQL."""

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


async def _run(url: str, *statements: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            rows: list[tuple[object, ...]] = []
            for sql in statements:
                result = await conn.execute(text(sql))
                if result.returns_rows:
                    rows.extend(tuple(r) for r in result)
            return rows
    finally:
        await engine.dispose()


SEED = (
    "INSERT INTO users (id, telegram_id, language, subscribed, pick_hour) VALUES (1, 1001, 'en', false, 8)",
    "INSERT INTO tracks (id, spotify_id, name, artists, source, search_key) "
    "VALUES (1, 'Sp00000000000000000001', 'Song', 'Band', 'catalog', 'band - song')",
    "INSERT INTO likes (user_id, track_id) VALUES (1, 1)",
)
PLAYLIST = (
    "INSERT INTO playlists (id, public_id, owner, user_id, kind, name) VALUES (1, 'p1', 'user:1', 1, 'list', 'Mix')",
    "INSERT INTO playlist_items (playlist_id, track_id, position) VALUES (1, 1, 1)",
)


def round_trip(url: str) -> None:
    cfg = alembic_config(url)
    command.upgrade(cfg, "0004")
    asyncio.run(_run(url, *SEED))
    command.upgrade(cfg, "head")
    check_sync(url)
    asyncio.run(_run(url, *PLAYLIST))
    with pytest.raises(IntegrityError):  # the same song twice
        asyncio.run(_run(url, "INSERT INTO playlist_items (playlist_id, track_id, position) VALUES (1, 1, 2)"))
    with pytest.raises(IntegrityError):  # the same name twice for one owner
        asyncio.run(
            _run(url, "INSERT INTO playlists (public_id, owner, kind, name) VALUES ('p2', 'user:1', 'list', 'Mix')")
        )
    # Deleting the track takes it out of the playlist (and nothing else).
    asyncio.run(_run(url, "DELETE FROM likes", "DELETE FROM tracks WHERE id = 1"))
    assert asyncio.run(_run(url, "SELECT count(*) FROM playlist_items")) == [(0,)]
    assert asyncio.run(_run(url, "SELECT name FROM playlists")) == [("Mix",)]
    command.downgrade(cfg, "0004")
    assert asyncio.run(_run(url, "SELECT telegram_id FROM users")) == [(1001,)]
    command.upgrade(cfg, "head")
    check_sync(url)


def test_round_trip_on_sqlite(tmp_path: Path) -> None:
    round_trip(f"sqlite+aiosqlite:///{tmp_path / 'playlists.db'}")


@pytest.mark.postgres
def test_round_trip_on_postgresql(pg_database_url: str) -> None:
    with emptied(pg_database_url) as url:
        round_trip(url)
