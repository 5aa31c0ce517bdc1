"""Time the full catalog import on a SQLite file and on PostgreSQL against the 60 s target.

    .venv/bin/python -m bench.bench_import [--file PATH] [--pg-url URL] [--skip-pg]

Each backend gets a fresh database (a temporary SQLite file; a scratch PostgreSQL database that is
created on the server named by --pg-url and dropped afterwards), the schema from
`Base.metadata.create_all`, then two imports: the first fills the catalog, the second must change
nothing (idempotence) and shows the cost of a no-op rerun.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.live import table
from db.base import Base
from db.engine import create_engine, create_session_factory
from services.catalog import CatalogImporter, ImportStats, catalog_size

TARGET_SECONDS = 60.0
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT / "data" / "raw" / "spotify_tracks_114genre_train.csv.gz"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Result:
    backend: str
    first: ImportStats
    rerun: ImportStats
    tracks: int


async def _bench(backend: str, url: str, path: Path) -> Result:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = create_session_factory(engine)
        importer = CatalogImporter(sessions)
        first = await importer.import_file(path)
        rerun = await importer.import_file(path)
        return Result(backend, first, rerun, await catalog_size(sessions))
    finally:
        await engine.dispose()


async def bench_sqlite(path: Path) -> Result:
    with tempfile.TemporaryDirectory(prefix="encore-bench-") as tmp:
        return await _bench("sqlite (file)", f"sqlite+aiosqlite:///{tmp}/bench.db", path)


async def bench_postgres(path: Path, admin_url: str) -> Result:
    import asyncpg

    name = f"encore_bench_{uuid.uuid4().hex[:10]}"
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        base, _, _ = admin_url.rpartition("/")
        return await _bench("postgresql", f"{base}/{name}", path)
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def render(results: list[Result], path: Path) -> str:
    head = (
        f"{'backend':<15} {'import s':>9} {'target s':>9} {'ratio':>6} {'rerun s':>8} "
        f"{'rows':>7} {'tracks':>7} {'aliases':>8} {'genres':>7} {'skipped':>8} {'rerun no-op':>11}"
    )
    lines = [f"catalog import of {path}", head, "-" * len(head)]
    for r in results:
        f = r.first
        lines.append(
            f"{r.backend:<15} {f.seconds:>9.2f} {TARGET_SECONDS:>9.0f} {f.seconds / TARGET_SECONDS:>6.2f} "
            f"{r.rerun.seconds:>8.2f} {f.rows_read:>7,} {r.tracks:>7,} {f.aliases:>8,} {f.genres_added:>7,} "
            f"{f.skipped_rows:>8,} {'yes' if not r.rerun.changed else 'NO':>11}"
        )
    lines.append("ratio = first import time / 60 s target (below 1.00 meets it)")
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="a PostgreSQL database to create the scratch one from")
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"{args.file} not found: run `make data` first (or pass --file)", file=sys.stderr)
        return 1
    results = [await bench_sqlite(args.file)]
    if not args.skip_pg:
        try:
            results.append(await bench_postgres(args.file, args.pg_url))
        except (OSError, ConnectionError) as exc:
            print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
    print(render(results, args.file))
    print()
    rows = []
    for r in results:
        first, target = r.first.seconds, TARGET_SECONDS
        rows.append((f"{r.backend}: first import, s", f"{first:.2f}", f"≤ {target:g}", f"{first / target:.2f}"))
        rows.append((f"{r.backend}: a second import changes nothing", "no" if r.rerun.changed else "yes", "yes", "—"))
    print(table(rows))
    ok = all(r.first.seconds < TARGET_SECONDS and not r.rerun.changed for r in results)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
