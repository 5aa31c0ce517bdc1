"""CLI commands for the genre models: `main.py train` and `main.py predict`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from bot.cli import CliContext
from services.models import TASKS, DatasetMissing, ModelMissing, TableRefused

log = logging.getLogger(__name__)


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
            "one; with only the nine values of an audio analysis (no key, mode, time_signature columns) the "
            "analysis head. With `artists` (';'-separated) and/or `track_name` columns, the catalogue model blends in "
            "what the catalogue knows about the artists and the title; the `head` column says which head "
            "answered each row (audio, audio+artist, audio+artist+title; analysis… for the analysis head) and "
            "`evidence` from what. "
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


def cmd_train(args: argparse.Namespace, cli: CliContext) -> int:
    tasks: tuple[str, ...] = TASKS if args.task == "all" else (args.task,)
    try:
        run = cli.model_service().train(
            tasks,
            zoo=args.zoo,
            seed=args.seed,
            reports_dir=args.reports_dir,
            publish=args.publish,
            threads=getattr(args, "threads", None),
            cross_dataset=not getattr(args, "seed_only", False),
            if_missing=args.if_missing,
        )
    except DatasetMissing as exc:
        log.error("%s", exc.message)
        return 2
    if not run.trained:
        print("genre models already trained; nothing to do")
        return 0
    for t in run.trained:
        print(f"{t.task}: {t.production} accuracy {t.accuracy:.4f} top-3 {t.top3:.4f} → {t.path}")
    print(f"done in {run.seconds:.0f} s")
    return 0


def cmd_predict(args: argparse.Namespace, cli: CliContext) -> int:
    try:
        done = cli.model_service().predict_table(args.input, args.output, task=args.model, audio_only=args.audio_only)
    except (ModelMissing, TableRefused) as exc:
        log.error("%s", exc.message)
        return 2
    print(
        f"wrote {done.rows} predictions to {done.output} (model {done.model_version}; heads "
        + ", ".join(f"{k}: {v}" for k, v in sorted(done.heads.items()))
        + ")"
    )
    return 0
