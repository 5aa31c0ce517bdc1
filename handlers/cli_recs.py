"""CLI: `main.py recommend` (one seed or a CSV of seeds) and `main.py evaluate-recs`."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from bot.config import Settings
from ml.features import AUDIO_FEATURES, FeatureError, validate_features
from services.recommender import CatalogIndex, Hit, RecommendationService, raw_row, routed_proba

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASET_FILE = "spotify_tracks_114genre_train.csv.gz"
_SPOTIFY_ID = re.compile(r"(?:open\.spotify\.com/(?:intl-[a-z]+/)?track/|spotify:track:)?([A-Za-z0-9]{22})\b")


def register(subparsers: Any) -> None:
    rec = subparsers.add_parser(
        "recommend",
        help="print recommendations for a track (or for every seed of a CSV)",
        description=(
            "Recommendations for a track given as a catalogue id, a Spotify id or link, or words of its "
            "artist and title. --input takes a CSV of seeds: each row either an `id` (catalogue id or "
            "Spotify id) or a full row of audio features (the datasets' columns; `artists` and "
            "`track_name` keep the seed's own song out); one output line per seed."
        ),
    )
    rec.add_argument("query", nargs="?", help="catalogue id, Spotify id/link, or 'artist title' words")
    rec.add_argument("-n", type=int, default=10, help="how many recommendations (default 10)")
    rec.add_argument("--json", action="store_true", help="JSON output (JSON lines with --input)")
    rec.add_argument("--input", type=Path, default=None, help="CSV of seeds")
    rec.add_argument("--output", type=Path, default=None, help="write here instead of stdout")
    rec.add_argument("--diversity", type=float, default=0.3, help="0 familiar … 1 new (default 0.3)")
    rec.add_argument(
        "--source",
        choices=("auto", "db", "dataset"),
        default="auto",
        help="catalogue: the database, the dataset file, or auto (the DB when it holds tracks)",
    )
    rec.add_argument("--data", type=Path, default=None, help=f"dataset file (default <data_dir>/raw/{DATASET_FILE})")
    rec.set_defaults(handler=cmd_recommend)

    ev = subparsers.add_parser(
        "evaluate-recs",
        help="offline evaluation of the recommender vs the original method (markdown table)",
        description="Evaluate Encore, the original method and random-within-genre on held-out seed tracks.",
    )
    ev.add_argument("--data", type=Path, default=None, help=f"dataset file (default <data_dir>/raw/{DATASET_FILE})")
    ev.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "recs-eval.md", help="markdown output")
    ev.add_argument("--seeds", type=int, default=1000, help="test seeds (default 1000)")
    ev.add_argument("--validation", type=int, default=500, help="validation seeds for the weights (default 500)")
    ev.add_argument("--model-dir", type=Path, default=None, help="catalogue model (default <models>/catalog)")
    ev.add_argument("--no-model", action="store_true", help="ignore the catalogue model")
    ev.set_defaults(handler=cmd_evaluate)


# -- loading ------------------------------------------------------------------------------------


def dataset_path(settings: Settings, override: Path | None) -> Path:
    if override is not None:
        return override
    path = settings.data_dir / "raw" / DATASET_FILE
    if not path.exists():
        shared = REPO_ROOT.parent / "shared" / "data" / DATASET_FILE
        if shared.exists():
            return shared
    return path


def load_predictor(settings: Settings, model_dir: Path | None) -> Any | None:
    path = model_dir or settings.models_path / "catalog"
    if not (path / "meta.json").exists():
        return None
    try:
        from ml.predictor import GenrePredictor

        return GenrePredictor.load(path)
    except Exception:  # a broken artefact must not stop recommendations
        log.exception("could not load the catalogue model from %s; going on without it", path)
        return None


def index_from_dataset(path: Path) -> CatalogIndex:
    from services.rec_eval import fold_frame, load_dataset

    return CatalogIndex.from_frame(fold_frame(load_dataset(path)))


async def index_from_db(settings: Settings) -> CatalogIndex | None:
    from sqlalchemy.engine import make_url

    from db.engine import create_engine, create_session_factory

    url = make_url(settings.db_url)
    if url.get_backend_name() == "sqlite" and url.database and not _exists(url.database):
        return None  # no database file yet: do not create one just to find it empty
    engine = create_engine(settings.db_url)
    try:
        service = RecommendationService(create_session_factory(engine))
        index = await service.index()
    except Exception as exc:  # no schema yet, server down …
        log.info("no catalogue in the database (%s)", exc.__class__.__name__)
        return None
    finally:
        await engine.dispose()
    return index if len(index) else None


def _exists(path: str) -> bool:
    return Path(path).exists()


async def load_index(args: argparse.Namespace, settings: Settings) -> CatalogIndex | None:
    if args.source in ("auto", "db"):
        index = await index_from_db(settings)
        if index is not None or args.source == "db":
            return index
    path = dataset_path(settings, args.data)
    if not path.exists():
        return None
    print(f"using the dataset file {path} as the catalogue", file=sys.stderr)
    return index_from_dataset(path)


# -- seeds --------------------------------------------------------------------------------------


def resolve(index: CatalogIndex, text: str) -> int | None:
    """Catalogue id, Spotify id or link, or words of artist and title → index position."""
    text = text.strip()
    if text.isdigit():
        pos = index.position(int(text))
        if pos is not None:
            return pos
    match = _SPOTIFY_ID.search(text)
    if match:
        pos = index.position_of_spotify(match.group(1))
        if pos is not None:
            return pos
    found = index.find(text, limit=1)
    return found[0] if found else None


def recommend_position(index: CatalogIndex, pos: int, n: int, diversity: float) -> list[Hit]:
    keys = index.keys_for(index.artists[pos], index.names[pos])
    return index.search(
        index.query_for(pos), n, exclude={pos}, exclude_keys=keys, diversity=diversity, seed_artists=index.artists[pos]
    )


def recommend_row(index: CatalogIndex, row: Mapping[str, Any], n: int, diversity: float) -> tuple[dict, list[Hit]]:
    """One CSV row → (seed description, hits). Raises ValueError with a readable reason."""
    ref = str(row.get("id") or row.get("track_id") or "").strip()
    pos = resolve_id(index, ref) if ref else None
    if pos is not None:
        return _describe(index, pos), recommend_position(index, pos, n, diversity)
    present = {c: row.get(c) for c in AUDIO_FEATURES if str(row.get(c) or "").strip() != ""}
    if not present:
        raise ValueError(f"unknown track id {ref!r} and no audio features" if ref else "empty row")
    try:
        features = validate_features(row)
    except FeatureError as exc:
        raise ValueError(str(exc)) from None
    duration = _float(row.get("duration_ms"))
    genres = [g for g in re.split(r"[;,]", str(row.get("track_genre") or "")) if g.strip()]
    query = index.query_for_raw(raw_row(features, duration)[None, :], genres=genres)
    artists, name = str(row.get("artists") or ""), str(row.get("track_name") or "")
    keys = index.keys_for(artists, name) if name else set()
    seed = {"track_id": ref or None, "artists": artists or None, "track_name": name or None, "from": "features"}
    return seed, index.search(query, n, exclude_keys=keys, diversity=diversity, seed_artists=artists or None)


def resolve_id(index: CatalogIndex, ref: str) -> int | None:
    if ref.isdigit():
        return index.position(int(ref))
    return index.position_of_spotify(ref)


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _describe(index: CatalogIndex, pos: int) -> dict[str, Any]:
    info = index.track_info(pos)
    return {"id": info.id, "spotify_id": info.spotify_id, "artists": info.artist_line, "name": info.name}


def hit_json(index: CatalogIndex, hit: Hit) -> dict[str, Any]:
    info = index.track_info(hit.position)
    return {
        "id": info.id,
        "spotify_id": info.spotify_id,
        "artists": list(info.artists),
        "name": info.name,
        "genres": list(info.genres),
        "popularity": info.popularity,
        "score": round(hit.score, 4),
        "distance": round(hit.distance, 4),
        "reason": hit.reason,
    }


def read_seeds(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


# -- commands -----------------------------------------------------------------------------------


async def cmd_recommend(args: argparse.Namespace, settings: Settings) -> int:
    if not args.query and args.input is None:
        print("error: give a track (id, Spotify link or words) or --input seeds.csv", file=sys.stderr)
        return 2
    if args.n < 1 or not 0.0 <= args.diversity <= 1.0:
        print("error: -n must be ≥ 1 and --diversity within [0, 1]", file=sys.stderr)
        return 2
    index = await load_index(args, settings)
    if index is None:
        print("error: no catalogue: run `python main.py setup` (or pass --data)", file=sys.stderr)
        return 1
    out: TextIO = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    try:
        if args.input is not None:
            return run_batch(index, args, out)
        pos = resolve(index, args.query)
        if pos is None:
            print(f"error: no track in the catalogue matches {args.query!r}", file=sys.stderr)
            return 1
        hits = recommend_position(index, pos, args.n, args.diversity)
        if args.json:
            out.write(
                json.dumps(
                    {"seed": _describe(index, pos), "recommendations": [hit_json(index, h) for h in hits]},
                    ensure_ascii=False,
                    indent=2,
                )
                + "\n"
            )
        else:
            seed = index.track_info(pos)
            out.write(f"Because you chose {seed.title} ({', '.join(seed.genres) or 'no genre'}):\n")
            for rank, h in enumerate(hits, 1):
                info = index.track_info(h.position)
                link = info.spotify_url or info.deezer_url or ""
                out.write(f"{rank:2d}. {info.title}  [{', '.join(info.genres)}]  {link}\n")
        return 0
    finally:
        if args.output:
            out.close()


def run_batch(index: CatalogIndex, args: argparse.Namespace, out: TextIO) -> int:
    failures = 0
    for line_no, row in enumerate(read_seeds(args.input), start=2):
        try:
            seed, hits = recommend_row(index, row, args.n, args.diversity)
        except ValueError as exc:
            failures += 1
            if args.json:
                out.write(json.dumps({"line": line_no, "error": str(exc)}, ensure_ascii=False) + "\n")
            else:
                out.write(f"{line_no}\terror: {exc}\n")
            continue
        if args.json:
            record = {"line": line_no, "seed": seed, "recommendations": [hit_json(index, h) for h in hits]}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            label = seed.get("spotify_id") or seed.get("track_id") or f"line {line_no}"
            ids = ",".join(index.spotify_ids[h.position] or f"#{index.ids[h.position]}" for h in hits)
            titles = " | ".join(index.track_info(h.position).title for h in hits)
            out.write(f"{label}\t{ids}\t{titles}\n")
    if failures:
        print(f"{failures} seed row(s) could not be used (see the error lines)", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from services.rec_eval import run_evaluation

    path = dataset_path(settings, args.data)
    if not path.exists():
        print(f"error: {path} is missing: run `python main.py data`", file=sys.stderr)
        return 1
    predictor = None if args.no_model else load_predictor(settings, args.model_dir)
    proba_fn: Callable[[pd.DataFrame], np.ndarray] | None = None
    holdout = None
    if predictor is not None:
        model_dir = args.model_dir or settings.models_path / "catalog"
        holdout = model_dir / "holdout.json"

        def proba_fn(frame: pd.DataFrame) -> np.ndarray:
            matrix = np.column_stack(
                [
                    frame[c].to_numpy(dtype=np.float64) if c in frame else np.full(len(frame), np.nan)
                    for c in predictor.raw_inputs
                ]
            )
            return routed_proba(predictor, matrix)

    report = run_evaluation(
        path,
        holdout=holdout,
        proba_fn=proba_fn,
        proba_classes=predictor.classes if predictor is not None else None,
        n_test=args.seeds,
        n_validation=args.validation,
        progress=lambda message: print(message, file=sys.stderr),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.markdown, encoding="utf-8")
    print(report.markdown)
    print(f"written to {args.out}", file=sys.stderr)
    return 0
