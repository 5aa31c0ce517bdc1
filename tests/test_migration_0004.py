"""Migration 0004 (the daily pick's local time): existing users keep UTC, so their picks keep arriving
when they did; nothing that references `users` is lost on the way up or down (SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from sqlalchemy import text

from db.engine import create_engine
from db.migrate import alembic_config, check_sync


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


def test_existing_users_keep_utc_and_their_likes(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'picks.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0003")
    asyncio.run(
        _run(
            url,
            "INSERT INTO users (id, telegram_id, language, subscribed, pick_hour) VALUES (1, 1001, 'ru', 1, 8)",
            "INSERT INTO tracks (id, spotify_id, name, artists, source, search_key) "
            "VALUES (1, 'Sp00000000000000000001', 'Song', 'Band', 'catalog', 'band - song')",
            "INSERT INTO likes (user_id, track_id) VALUES (1, 1)",
        )
    )
    command.upgrade(cfg, "head")
    check_sync(url)
    assert asyncio.run(_run(url, "SELECT timezone, pick_hour, pick_minute FROM users")) == [("UTC", 8, 0)]
    command.downgrade(cfg, "0003")
    assert asyncio.run(_run(url, "SELECT count(*) FROM likes")) == [(1,)]
    assert asyncio.run(_run(url, "SELECT pick_hour FROM users")) == [(8,)]
