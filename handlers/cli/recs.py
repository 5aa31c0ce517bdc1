"""CLI: `main.py recommend` (one seed, or a CSV of seeds) and `main.py evaluate-recs`.

`recommend` goes through the same services as the bot and the API: a seed named by text or link
is resolved by `TrackService.resolve`, a catalogue id read with `TrackService.get`, and the list is
`RecommendationService.similar` — what `GET /api/v1/tracks/{id}/similar` answers. A seed given as a
row of audio features goes through `RecommendationService.similar_to_features` (the genre model
places it, as for any track the catalogue never saw).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from bot.cli import CliContext
from services.container import Services
from services.dto import AUDIO_FEATURES, Recommendation, ResolutionKind, TrackInfo
from services.errors import EncoreError, TrackNotFound

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


def register(subparsers: Any) -> None:
    rec = subparsers.add_parser(
        "recommend",
        help="print recommendations for a track (or for every seed of a CSV)",
        description=(
            "Recommendations for a track given as a catalogue id, a Spotify id or link, or words of its "
            "artist and title — the same list the API's /similar gives. --input takes a CSV of seeds: each "
            "row either an `id` (catalogue id or Spotify id) or a full row of audio features (the datasets' "
            "columns; `artists` and `track_name` keep the seed's own song out); one output line per seed."
        ),
    )
    rec.add_argument("query", nargs="?", help="catalogue id, Spotify id/link, or 'artist title' words")
    rec.add_argument("-n", type=int, default=10, help="how many recommendations (default 10)")
    rec.add_argument("--json", action="store_true", help="JSON output (JSON lines with --input)")
    rec.add_argument("--input", type=Path, default=None, help="CSV of seeds")
    rec.add_argument("--output", type=Path, default=None, help="write here instead of stdout")
    rec.add_argument("--diversity", type=float, default=None, help="0 familiar … 1 new (default 0.3)")
    rec.set_defaults(handler=cmd_recommend, schema=True)

    ev = subparsers.add_parser(
        "evaluate-recs",
        help="offline evaluation of the recommender vs the original method (markdown table)",
        description="Evaluate Encore, the original method and random-within-genre on held-out seed tracks.",
    )
    ev.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "recs-eval.md", help="markdown output")
    ev.add_argument("--seeds", type=int, default=1000, help="test seeds (default 1000)")
    ev.add_argument("--validation", type=int, default=500, help="validation seeds for the weights (default 500)")
    ev.add_argument("--no-model", action="store_true", help="ignore the catalogue model")
    ev.add_argument(
        "--features-only",
        action="store_true",
        help="score seeds given as audio features only (skip the seeds given with their artists and title)",
    )
    ev.set_defaults(handler=cmd_evaluate)


# -- seeds --------------------------------------------------------------------------------------


async def resolve_seed(services: Services, text: str) -> TrackInfo | None:
    """A catalogue id, a Spotify id or link, or words of artist and title → the track (first match)."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        try:
            return await services.tracks.get(int(text))
        except TrackNotFound:
            pass
    resolution = await services.tracks.resolve(text, limit=1)
    if resolution.kind in (ResolutionKind.TRACK, ResolutionKind.CANDIDATES) and resolution.tracks:
        return resolution.tracks[0]
    return None


async def recommend_row(
    services: Services, row: Mapping[str, Any], n: int, diversity: float | None
) -> tuple[dict[str, Any], list[Recommendation]]:
    """One CSV row → (seed description, recommendations). Raises ValueError with a readable reason."""
    ref = str(row.get("id") or row.get("track_id") or "").strip()
    seed = await resolve_seed(services, ref) if ref else None
    if seed is not None:
        return describe(seed), await services.recommendations.similar(seed.id, n, diversity=diversity)
    if not any(str(row.get(c) or "").strip() for c in AUDIO_FEATURES):
        raise ValueError(f"unknown track id {ref!r} and no audio features" if ref else "empty row")
    recs = await services.recommendations.similar_to_row(row, n, diversity=diversity)
    artists, name = str(row.get("artists") or ""), str(row.get("track_name") or "")
    return {"track_id": ref or None, "artists": artists or None, "track_name": name or None, "from": "features"}, recs


def describe(track: TrackInfo) -> dict[str, Any]:
    return {"id": track.id, "spotify_id": track.spotify_id, "artists": track.artist_line, "name": track.name}


def recommendation_json(rec: Recommendation) -> dict[str, Any]:
    track = rec.track
    return {
        "id": track.id,
        "spotify_id": track.spotify_id,
        "artists": list(track.artists),
        "name": track.name,
        "genres": list(track.genres),
        "popularity": track.popularity,
        "score": round(rec.score, 4),
        "reason": rec.reason,
    }


def read_seeds(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


# -- commands -----------------------------------------------------------------------------------


async def cmd_recommend(args: argparse.Namespace, cli: CliContext) -> int:
    if not args.query and args.input is None:
        log.error("give a track (id, Spotify link or words) or --input seeds.csv")
        return 2
    if args.n < 1 or (args.diversity is not None and not 0.0 <= args.diversity <= 1.0):
        log.error("-n must be ≥ 1 and --diversity within [0, 1]")
        return 2
    if args.input is not None and not args.input.is_file():
        log.error("%s does not exist", args.input)
        return 2
    services = await cli.services()
    if await services.recommendations.catalogue_size() == 0:
        log.error("the catalogue is empty: run `python main.py setup`")
        return 1
    out: TextIO = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    try:
        if args.input is not None:
            return await run_batch(services, args, out)
        seed = await resolve_seed(services, args.query)
        if seed is None:
            log.error("no track matches %r", args.query)
            return 1
        try:
            recs = await services.recommendations.similar(seed.id, args.n, diversity=args.diversity)
        except EncoreError as exc:
            log.error("no recommendations for %s: %s", seed.title, exc.message)
            return 1
        if args.json:
            body = {"seed": describe(seed), "recommendations": [recommendation_json(r) for r in recs]}
            out.write(json.dumps(body, ensure_ascii=False, indent=2) + "\n")
        else:
            out.write(f"Because you chose {seed.title} ({', '.join(seed.genres) or 'no genre'}):\n")
            for rank, rec in enumerate(recs, 1):
                track = rec.track
                link = f"  {track.spotify_url}" if track.spotify_url else ""
                out.write(f"{rank:2d}. {track.title}  [{', '.join(track.genres)}]{link}\n")
        return 0
    finally:
        if args.output:
            out.close()


async def run_batch(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    failures = 0
    for line_no, row in enumerate(read_seeds(args.input), start=2):
        try:
            seed, recs = await recommend_row(services, row, args.n, args.diversity)
        except (ValueError, EncoreError) as exc:
            failures += 1
            reason = exc.message if isinstance(exc, EncoreError) else str(exc)
            if args.json:
                out.write(json.dumps({"line": line_no, "error": reason}, ensure_ascii=False) + "\n")
            else:
                out.write(f"{line_no}\terror: {reason}\n")
            continue
        if args.json:
            record = {"line": line_no, "seed": seed, "recommendations": [recommendation_json(r) for r in recs]}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            label = seed.get("spotify_id") or seed.get("track_id") or f"line {line_no}"
            ids = ",".join(str(r.track.spotify_id or r.track.id) for r in recs)
            titles = " | ".join(r.track.title for r in recs)
            out.write(f"{label}\t{ids}\t{titles}\n")
    if failures:
        log.warning("%d seed row(s) could not be used (see the error lines)", failures)
    return 0


async def cmd_evaluate(args: argparse.Namespace, cli: CliContext) -> int:
    services = await cli.services()
    if services.evaluation is None:
        log.error("the evaluation is not part of this composition")
        return 1
    try:
        report = await services.evaluation.run(
            seeds=args.seeds,
            validation=args.validation,
            use_model=not args.no_model,
            with_artists=not args.features_only,
            progress=lambda message: log.info("%s", message),
        )
    except EncoreError as exc:
        log.error("%s", exc.message)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.markdown, encoding="utf-8")
    print(report.markdown)
    log.info("written to %s", args.out)
    return 0
