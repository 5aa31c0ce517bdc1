"""CLI commands for the genre models: `main.py train` and `main.py predict`."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.cli import CliContext
from ml.data import LABEL_COLUMNS
from ml.features import AUDIO_FEATURES, RAW_INPUTS, FeatureError
from ml.predictor import META_FILE, GenrePredictor

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
TASKS = ("seed6", "catalog")


def register(subparsers: Any) -> None:
    train = subparsers.add_parser(
        "train",
        help="train the genre models (zoo + report, or the production model only)",
        description=(
            "Train the seed benchmark (seed6) and/or the product model (catalog) from <data_dir>/raw. "
            "Artefacts go to <models_path>/<task>/, a report to <reports-dir>/<run-id>/."
        ),
    )
    train.add_argument("--task", choices=(*TASKS, "all"), default="all")
    zoo = train.add_mutually_exclusive_group()
    zoo.add_argument(
        "--zoo", dest="zoo", action="store_true", default=True, help="compare the whole model zoo (default)"
    )
    zoo.add_argument("--no-zoo", "--quick", dest="zoo", action="store_false", help="train the production model only")
    train.add_argument("--if-missing", action="store_true", help="skip tasks whose artefact already exists")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--reports-dir", type=Path, default=Path("reports"))
    train.add_argument(
        "--threads",
        type=int,
        default=None,
        help="cap every fit at this many threads (default: CatBoost and the forest use two)",
    )
    train.add_argument(
        "--seed-only",
        action="store_true",
        help="seed6: train on the seed file alone (skip the cross-dataset comparison, ml.seed_cross)",
    )
    train.add_argument("--publish", action="store_true", help="also write the report to docs/model-report.md (+ PNGs)")
    train.set_defaults(handler=cmd_train)

    predict = subparsers.add_parser(
        "predict",
        help="predict genres for a CSV of audio features",
        description=(
            "Read a CSV with the audio features (the datasets' column names) and write, per row, the "
            "predicted genre (under the dataset's label column), its probability and the top 3. "
            "With duration_ms and explicit columns the full model is used, without them the audio-only "
            "one. With `artists` (';'-separated) and/or `track_name` columns, the catalogue model blends in "
            "what the catalogue knows about the artists and the title; the `head` column says which head "
            "answered each row (audio, audio+artist, audio+artist+title) and `evidence` from what. "
            "Rows with missing, NaN or out-of-range audio values are refused."
        ),
    )
    predict.add_argument(
        "--audio-only", action="store_true", help="ignore artists and titles (the original, audio-only setting)"
    )
    predict.add_argument("--input", type=Path, required=True)
    predict.add_argument("--output", type=Path, required=True)
    predict.add_argument("--model", choices=TASKS, default="catalog")
    predict.set_defaults(handler=cmd_predict)


def artefact_exists(models_path: Path, task: str) -> bool:
    return (models_path / task / META_FILE).exists()


def cmd_train(args: argparse.Namespace, cli: CliContext) -> int:
    settings = cli.settings
    from ml.train import train

    tasks: tuple[str, ...] = TASKS if args.task == "all" else (args.task,)
    if args.if_missing:
        tasks = tuple(t for t in tasks if not artefact_exists(settings.models_path, t))
        if not tasks:
            print("genre models already trained; nothing to do")
            return 0
    started = time.perf_counter()
    try:
        results = train(
            settings.data_dir,
            settings.models_path,
            tasks=tasks,
            zoo=args.zoo,
            seed=args.seed,
            reports_dir=args.reports_dir,
            docs_dir=REPO_ROOT / "docs" if args.publish else None,
            threads=getattr(args, "threads", None),
            cross_dataset=not getattr(args, "seed_only", False),
        )
    except FileNotFoundError as exc:
        print(f"error: {exc} (run `python main.py data` first)", file=sys.stderr)
        return 2
    for result in results:
        t = result.production_test
        print(
            f"{result.task}: {result.production} accuracy {t['accuracy']:.4f} top-3 {t['top3']:.4f} "
            f"→ {settings.models_path / result.task}"
        )
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def predict_frame(
    predictor: GenrePredictor, frame: pd.DataFrame, label_column: str, audio_only: bool = False
) -> pd.DataFrame:
    """Predictions for every row of `frame` (raises FeatureError naming bad rows/columns).

    `artists` / `track_name` columns, when present, go to the metadata heads (empty cells = unknown)."""
    missing = [c for c in AUDIO_FEATURES if c not in frame.columns]
    if missing:
        raise FeatureError({c: "column missing" for c in missing})
    has_extra = all(c in frame.columns for c in RAW_INPUTS[len(AUDIO_FEATURES) :])
    columns = list(RAW_INPUTS if has_extra else AUDIO_FEATURES)
    data = frame[columns].copy()
    if "explicit" in data:
        data["explicit"] = data["explicit"].map(_flag)
    try:
        matrix = data.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:  # pragma: no cover - to_numeric coerces
        raise FeatureError({"input": str(exc)}) from exc
    artists = _text_column(frame, "artists")
    titles = _text_column(frame, "track_name")
    preds = predictor.predict_matrix(matrix, artists=artists, titles=titles, audio_only=audio_only)
    out = pd.DataFrame(index=frame.index)
    if "track_id" in frame.columns:
        out["track_id"] = frame["track_id"]
    out[label_column] = [p.genre for p in preds]
    out["probability"] = [round(p.probability, 6) for p in preds]
    for k in range(3):
        out[f"top{k + 1}"] = [p.top[k][0] if len(p.top) > k else "" for p in preds]
        out[f"top{k + 1}_probability"] = [round(p.top[k][1], 6) if len(p.top) > k else 0.0 for p in preds]
    out["top_genres"] = ["|".join(g for g, _ in p.top) for p in preds]  # the top 3, best first
    if len(predictor.families) < len(predictor.classes):
        out["family"] = [p.family for p in preds]
        out["family_probability"] = [round(p.family_probability, 6) for p in preds]
    out["head"] = [p.head for p in preds]
    out["evidence"] = [p.evidence for p in preds]
    return out


def _text_column(frame: pd.DataFrame, name: str) -> list[str | None] | None:
    if name not in frame.columns:
        return None
    return [v if isinstance(v, str) and v.strip() else None for v in frame[name].tolist()]


def _flag(value: Any) -> float:
    if isinstance(value, bool | np.bool_):
        return float(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0"):
        return 1.0
    if text in ("false", "0", "0.0"):
        return 0.0
    return float("nan")


def cmd_predict(args: argparse.Namespace, cli: CliContext) -> int:
    settings = cli.settings
    path = settings.models_path / args.model
    if not artefact_exists(settings.models_path, args.model):
        print(
            f"error: no {args.model} model at {path} (run `python main.py train --task {args.model}`)", file=sys.stderr
        )
        return 2
    try:
        frame = pd.read_csv(args.input)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        print(f"error: cannot read {args.input}: {exc}", file=sys.stderr)
        return 2
    predictor = GenrePredictor.load(path)
    try:
        out = predict_frame(predictor, frame, LABEL_COLUMNS[args.model], audio_only=args.audio_only)
    except FeatureError as exc:
        print(f"error: refused {args.input}: {exc} (row numbers count data rows from 0)", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.output, index=False)
    heads = out["head"].value_counts().to_dict()
    print(
        f"wrote {len(out)} predictions to {args.output} (model {predictor.version}; heads "
        + ", ".join(f"{k}: {v}" for k, v in sorted(heads.items()))
        + ")"
    )
    return 0
