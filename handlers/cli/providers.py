"""CLI: `python main.py collect --genre metal --limit 5000 [--output PATH]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    parser.set_defaults(handler=run_collect)


async def run_collect(args: argparse.Namespace, settings: Settings) -> int:
    from db.engine import create_engine, create_session_factory
    from services.audio_features import AudioFeatureChain, ReccoBeatsClient
    from services.cache import CacheService
    from services.collect import GenreCollector
    from services.spotify import SpotifyClient

    if not settings.spotify.enabled:
        print("collect needs Spotify keys: set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET.", file=sys.stderr)
        return 2
    if args.limit <= 0:
        print("--limit must be positive.", file=sys.stderr)
        return 2
    genre = args.genre.strip().lower()
    output: Path = args.output or settings.data_dir / "raw" / f"collected_{genre.replace(' ', '-')}.csv"

    sp = settings.spotify
    assert sp.client_id and sp.client_secret
    spotify = SpotifyClient(
        sp.client_id,
        sp.client_secret.get_secret_value(),
        api_url=sp.api_url,
        token_url=sp.token_url,
        timeout=sp.timeout,
        max_retries=sp.max_retries,
        max_retry_after=sp.max_retry_after,
    )
    rb = settings.reccobeats
    reccobeats = ReccoBeatsClient(rb.api_url, timeout=rb.timeout) if rb.enabled else None
    engine = create_engine(settings.db_url)
    sessions = create_session_factory(engine)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=args.limit, unit="track", desc=f"collect {genre}", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.n = done
            bar.refresh()

    try:
        chain = AudioFeatureChain(sessions, CacheService(sessions), spotify=spotify, reccobeats=reccobeats)
        collector = GenreCollector(spotify, chain, page_pause=args.page_pause, progress=progress)
        try:
            stats = await collector.run(genre, args.limit, output)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
    finally:
        if bar is not None:
            bar.close()
        if reccobeats is not None:
            await reccobeats.close()
        spotify.close()
        await engine.dispose()
    print(
        f"{output}: {stats.written} rows ({stats.new_rows} new), {stats.no_features} without features, "
        f"{stats.pages} pages; {stats.stopped_reason}",
    )
    if stats.imputed:
        print("imputed: " + ", ".join(f"{k} ×{v}" for k, v in sorted(stats.imputed.items())))
    return 0 if stats.finished else 1
