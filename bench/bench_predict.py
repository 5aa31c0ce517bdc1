"""Prediction speed of the trained genre models (a benchmark, not a timed test).

    .venv/bin/python bench/bench_predict.py [--models-path data/models] [--data-dir data] [--task catalog]

Prints, per task: p50/p99 latency of `predict_one` (one track, full head and audio-only head, and for a
catalogue model with metadata heads also with the track's artists and title),
the time of one `predict_proba` call on 1,000 tracks, each with its target and ratio (measured /
target; below 1 is within budget); then the size of the model folder on disk against its target.
Inputs are real rows from <data_dir>/raw when present, else random valid feature vectors.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.data import TASK_FILES
from ml.features import AUDIO_FEATURES, FEATURE_RANGES, RAW_INPUTS
from ml.predictor import GenrePredictor

TARGET_ONE_P99_MS = 2.0
TARGET_BATCH_MS = 30.0  # issue 15: `predict` 1,000 rows ≤ 30 ms
TARGET_DISK_MB = 60.0  # issue 15: model artefacts on disk ≤ 60 MB (the whole models folder)


def _inputs(data_dir: Path, task: str, n: int, seed: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """(n, RAW_INPUTS) matrix and each row's (artists, track_name) ('' when the file has none)."""
    path = data_dir / "raw" / TASK_FILES[task]
    rng = np.random.default_rng(seed)
    if path.exists():
        import pandas as pd

        frame = pd.read_csv(path)
        frame["explicit"] = frame["explicit"].astype(str).str.lower().eq("true").astype(float)
        matrix = frame[list(RAW_INPUTS)].to_numpy(dtype=np.float64)
        pick = rng.choice(len(matrix), n, replace=len(matrix) < n)
        text = [("", "")] * len(frame)
        if "artists" in frame and "track_name" in frame:
            text = list(
                zip(frame["artists"].fillna("").astype(str), frame["track_name"].fillna("").astype(str), strict=True)
            )
        return matrix[pick], [text[i] for i in pick]
    low = np.array([FEATURE_RANGES[c][0] for c in RAW_INPUTS])
    high = np.array([FEATURE_RANGES[c][1] for c in RAW_INPUTS])
    return low + rng.random((n, len(RAW_INPUTS))) * (high - low), [("", "")] * n


def bench(
    predictor: GenrePredictor, matrix: np.ndarray, calls: int, text: list[tuple[str, str]] | None = None
) -> list[tuple[str, float, float]]:
    rows = [dict(zip(RAW_INPUTS, r, strict=True)) for r in matrix[:calls]]
    audio_rows = [{k: r[k] for k in AUDIO_FEATURES} for r in rows]
    out = []
    cases: list[tuple[str, list[dict[str, float]], list[dict[str, Any]]]] = [
        ("full head", rows, [{}] * len(rows)),
        ("audio-only head", audio_rows, [{}] * len(rows)),
    ]
    if predictor.metadata_heads and text and any(a for a, _ in text):
        cases.append(("full head + artists + title", rows, [{"artists": a, "title": t} for a, t in text[: len(rows)]]))
    for label, sample, meta in cases:
        for r, m in zip(sample[:20], meta[:20], strict=True):  # warm-up
            predictor.predict_one(r, **m)
        times = []
        gc.disable()  # a collection pause is not the model's latency
        for r, m in zip(sample, meta, strict=True):
            start = time.perf_counter()
            predictor.predict_one(r, **m)
            times.append(time.perf_counter() - start)
        gc.enable()
        ms = np.array(times) * 1000
        out.append((f"predict_one p50 ({label})", float(np.percentile(ms, 50)), TARGET_ONE_P99_MS))
        out.append((f"predict_one p99 ({label})", float(np.percentile(ms, 99)), TARGET_ONE_P99_MS))
    batch = matrix[:1000]
    predictor.predict_proba(batch)
    runs, cpu = [], []
    for _ in range(7):
        start, start_cpu = time.perf_counter(), time.process_time()
        predictor.predict_proba(batch)
        runs.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    out.append(("predict_proba 1,000 tracks (median of 7)", float(np.median(runs)), TARGET_BATCH_MS))
    # the CPU time of the process: what the call costs whatever else the machine runs
    out.append(("predict_proba 1,000 tracks, CPU ms (median of 7)", float(np.median(cpu)), TARGET_BATCH_MS))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-path", type=Path, default=Path("data/models"))
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--task", choices=("seed6", "catalog", "all"), default="all")
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    tasks = ("seed6", "catalog") if args.task == "all" else (args.task,)
    print("| model | measure | ms | target ms | ratio |")
    print("|---|---|---|---|---|")
    for task in tasks:
        path = args.models_path / task
        if not (path / "meta.json").exists():
            print(f"| {task} | no artefact at {path} | | | |")
            continue
        predictor = GenrePredictor.load(path)
        matrix, text = _inputs(args.data_dir, task, max(args.calls, 1000), seed=0)
        for name, ms, target in bench(predictor, matrix, args.calls, text):
            note = " (p99 is the target)" if "p50" in name else ""
            print(f"| {predictor.version} | {name}{note} | {ms:.3f} | {target:g} | {ms / target:.2f} |")
    files = [f for f in args.models_path.rglob("*") if f.is_file()]
    mb = sum(f.stat().st_size for f in files) / 1e6
    print("\n| models on disk | MB | target MB | ratio |\n|---|---|---|---|")
    print(f"| {args.models_path} ({len(files)} files) | {mb:.1f} | {TARGET_DISK_MB:g} | {mb / TARGET_DISK_MB:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
