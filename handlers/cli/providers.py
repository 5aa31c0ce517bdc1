"""CLI: `python main.py collect --genre metal --limit 5000 [--output PATH]`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bot.cli import CliContext, progress_bars
from services.data import DataError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="collect tracks of one genre from Spotify (+ audio features) into a training CSV",
        description=(
            "Search Spotify by genre, fetch audio features through the provider chain "
            "(catalog → Spotify → ReccoBeats) and append rows to a CSV with the 114-genre dataset's "
            "columns. Rerun the same command to resume after an interruption."
        ),
    )
    parser.add_argument("--genre", required=True, help="Spotify genre, e.g. metal")
    parser.add_argument("--limit", type=int, default=1000, help="rows wanted in the CSV (default 1000)")
    parser.add_argument(
        "--output", type=Path, default=None, help="CSV path (default: <data_dir>/raw/collected_<genre>.csv)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--page-pause", type=float, default=0.2, help="seconds between search pages")
    parser.set_defaults(handler=run_collect, schema=True)


async def run_collect(args: argparse.Namespace, cli: CliContext) -> int:
    data = await cli.data()
    try:
        output, stats = await data.collect(
            args.genre,
            args.limit,
            args.output,
            page_pause=args.page_pause,
            progress=progress_bars(not args.no_progress),
        )
    except DataError as exc:
        log.error("%s", exc.message)
        return 2
    print(
        f"{output}: {stats.written} rows ({stats.new_rows} new), {stats.no_features} without features, "
        f"{stats.pages} pages; {stats.stopped_reason}",
    )
    if stats.imputed:
        print("imputed: " + ", ".join(f"{k} ×{v}" for k, v in sorted(stats.imputed.items())))
    return 0 if stats.finished else 1
