"""Every SQLite connection to a database file, the async engine's and the units' own, reads pages
through a shared mapping of the file (not copies in each connection's cache) and writes in WAL mode."""

from __future__ import annotations

import asyncio
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


async def test_the_units_connection_leaves_wal_checkpoints_to_a_thread_of_their_own(tmp_path: Path) -> None:
    """A checkpoint inside a commit made every answer queued behind it wait (5-15 ms): the units'
    connection does not checkpoint; every `checkpoint_every` commits a PASSIVE checkpoint copies the
    whole log back on another thread and connection, and closing leaves no log behind."""
    path = tmp_path / "encore.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v BLOB)"))
    units = Units(create_session_factory(engine), engine, checkpoint_every=5)
    checkpoints = units.checkpoints
    assert checkpoints is not None
    try:
        assert await units.run(lambda run: run.one(text("PRAGMA wal_autocheckpoint"), {})) == (0,)
        for _ in range(3):
            await units.run(lambda run: run.many(text("INSERT INTO t VALUES (zeroblob(8000))"), [{}]))
        await asyncio.to_thread(checkpoints.settled)
        assert checkpoints.done == 0  # four units (the pragma's and three inserts): not yet
        await units.run(lambda run: run.many(text("INSERT INTO t VALUES (zeroblob(8000))"), [{}]))
        await asyncio.to_thread(checkpoints.settled)
        assert checkpoints.done == 1 and checkpoints.last is not None
        busy, frames, copied = checkpoints.last
        assert busy == 0 and frames > 0 and copied == frames  # the whole log is in the file
    finally:
        await units.close()
        await engine.dispose()
    assert not path.with_name("encore.db-wal").exists() or path.with_name("encore.db-wal").stat().st_size == 0
