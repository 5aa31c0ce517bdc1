"""Every SQLite connection to a database file, the async engine's and the units' own, reads pages
through a shared mapping of the file (not copies in each connection's cache) and writes in WAL mode."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from db.engine import SQLITE_MMAP_BYTES, Units, create_engine, create_session_factory


async def test_sqlite_file_connections_map_the_file(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'encore.db'}")
    units = Units(create_session_factory(engine), engine)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA mmap_size"))).scalar() == SQLITE_MMAP_BYTES
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert units.threaded
        pragmas = await units.run(
            lambda run: (run.one(text("PRAGMA mmap_size"), {}), run.one(text("PRAGMA foreign_keys"), {}))
        )
        assert pragmas == ((SQLITE_MMAP_BYTES,), (1,))
    finally:
        await units.close()
        await engine.dispose()
