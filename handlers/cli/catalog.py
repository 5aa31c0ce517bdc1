"""CLI commands for the datasets and the catalogue: `main.py data`, `import-catalog` and `setup`'s data part."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from bot.cli import CliContext, progress_bars
from services.catalog import ImportStats
from services.data import DataError

log = logging.getLogger(__name__)

CATALOG_FILE = "spotify_tracks_114genre_train.csv.gz"


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
        "--file", type=Path, default=None, help=f"the CSV (plain or .gz); default <data_dir>/raw/{CATALOG_FILE}"
    )
    imp.add_argument("--no-progress", action="store_true", help="no progress bars")
    imp.set_defaults(handler=cmd_import_catalog, schema=True)


async def cmd_data(args: argparse.Namespace, cli: CliContext) -> int:
    data = await cli.data()
    try:
        paths = await data.fetch(
            mirror=args.mirror, use_mirror=not args.download, progress=progress_bars(not args.no_progress)
        )
    except DataError as exc:
        log.error("%s", exc.message)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


async def cmd_import_catalog(args: argparse.Namespace, cli: CliContext) -> int:
    if args.file is not None and not args.file.is_file():
        log.error("%s does not exist", args.file)
        return 1
    data = await cli.data()
    try:
        stats = await data.import_catalog(args.file, progress=progress_bars(not args.no_progress))
    except DataError as exc:
        log.error("%s", exc.message)
        return 1
    print(format_stats(stats))
    return 0


def format_stats(stats: ImportStats) -> str:
    return (
        f"read {stats.rows_read:,} rows in {stats.seconds:.1f} s: "
        f"{stats.tracks_inserted:,} tracks inserted, {stats.tracks_updated:,} updated, "
        f"{stats.aliases:,} aliases and {stats.genres_added:,} genre labels added; "
        f"{stats.folded:,} ids folded into another track, {stats.skipped_rows:,} rows skipped "
        f"(no artists/name), {stats.conflicts:,} conflicts"
    )
