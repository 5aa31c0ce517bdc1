"""CLI commands for the datasets and the catalog: `main.py data` and `main.py import-catalog`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.config import Settings
from services.catalog import CatalogImporter, ImportStats, catalog_size
from services.dataset import (
    CATALOG,
    DATASETS,
    DEFAULT_URLS,
    DatasetError,
    DatasetSpec,
    default_mirror,
    ensure_datasets,
)

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


def register(subparsers: Any) -> None:
    data = subparsers.add_parser(
        "data",
        help="copy (from the mirror) or download the datasets into the data folder",
        description=(
            "Put both datasets into <data_dir>/raw: from the mirror folder (--mirror, ENCORE_DATA_MIRROR, "
            "or ../shared/data when it exists), otherwise by downloading the public originals."
        ),
    )
    data.add_argument("--mirror", type=Path, default=None, help="folder holding the dataset files")
    data.add_argument("--download", action="store_true", help="ignore any mirror and download the originals")
    data.add_argument("--no-progress", action="store_true", help="no progress bars")
    data.set_defaults(handler=cmd_data)

    imp = subparsers.add_parser(
        "import-catalog",
        help="import the 114-genre dataset into the catalog (idempotent)",
        description="Import the 114-genre dataset as the catalog: duplicates folded, a rerun changes nothing.",
    )
    imp.add_argument(
        "--file",
        type=Path,
        default=None,
        help=f"the CSV (plain or .gz); default <data_dir>/raw/{DATASETS[CATALOG].filename}",
    )
    imp.add_argument("--mirror", type=Path, default=None, help="mirror folder, when the file must be fetched")
    imp.add_argument("--no-progress", action="store_true", help="no progress bars")
    imp.set_defaults(handler=cmd_import_catalog)


def resolve_mirror(settings: Settings, override: Path | None = None) -> Path | None:
    """--mirror, else ENCORE_DATA_MIRROR, else the repository's ../shared/data when it exists."""
    if override is not None:
        return override
    if settings.encore_data_mirror is not None:
        return settings.encore_data_mirror
    return default_mirror(REPO_ROOT)


def raw_dir(settings: Settings) -> Path:
    return settings.data_dir / "raw"


async def cmd_data(args: argparse.Namespace, settings: Settings) -> int:
    mirror = None if args.download else resolve_mirror(settings, args.mirror)
    try:
        paths = await ensure_datasets(raw_dir(settings), mirror=mirror, progress=not args.no_progress)
    except DatasetError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


async def cmd_import_catalog(args: argparse.Namespace, settings: Settings) -> int:
    progress = not args.no_progress
    path = args.file
    try:
        if path is None:
            fetched = await ensure_datasets(
                raw_dir(settings),
                mirror=resolve_mirror(settings, args.mirror),
                urls=DEFAULT_URLS,
                progress=progress,
                only=(CATALOG,),
            )
            path = fetched[CATALOG]
        elif not path.is_file():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 1
        stats = await import_catalog(settings, path, progress=progress)
    except DatasetError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(format_stats(stats))
    return 0


async def import_catalog(settings: Settings, path: Path, *, progress: bool = True) -> ImportStats:
    """Bring the schema to head, then import `path` into the catalog."""
    from db.engine import create_engine, create_session_factory
    from db.migrate import upgrade_to_head

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_to_head(settings.db_url)
    engine = create_engine(settings.db_url)
    try:
        return await CatalogImporter(create_session_factory(engine)).import_file(path, progress=progress)
    finally:
        await engine.dispose()


async def setup_catalog(
    settings: Settings, *, progress: bool = True, specs: Mapping[str, DatasetSpec] = DATASETS
) -> ImportStats | None:
    """For `main.py setup` / `make run`: fetch missing datasets, import the catalog when it is empty.

    Returns the import's stats, or None when the catalog was already there. Raises DatasetError.
    """
    from db.engine import create_engine, create_session_factory
    from db.migrate import upgrade_to_head

    paths = await ensure_datasets(raw_dir(settings), mirror=resolve_mirror(settings), progress=progress, specs=specs)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_to_head(settings.db_url)
    engine = create_engine(settings.db_url)
    try:
        sessions = create_session_factory(engine)
        if await catalog_size(sessions) > 0:
            return None
        return await CatalogImporter(sessions).import_file(paths[CATALOG], progress=progress)
    finally:
        await engine.dispose()


def format_stats(stats: ImportStats) -> str:
    return (
        f"read {stats.rows_read:,} rows in {stats.seconds:.1f} s: "
        f"{stats.tracks_inserted:,} tracks inserted, {stats.tracks_updated:,} updated, "
        f"{stats.aliases:,} aliases and {stats.genres_added:,} genre labels added; "
        f"{stats.folded:,} ids folded into another track, {stats.skipped_rows:,} rows skipped "
        f"(no artists/name), {stats.conflicts:,} conflicts"
    )
