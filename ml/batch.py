"""Genre predictions for a table of songs (`main.py predict`): the audio columns, and the artists and
titles when the table has them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.features import ANALYSIS_INPUTS, ANALYSIS_VALUES, AUDIO_FEATURES, RAW_INPUTS, FeatureError, parse_bool
from ml.predictor import GenrePredictor


def predict_frame(
    predictor: GenrePredictor, frame: pd.DataFrame, label_column: str, audio_only: bool = False
) -> pd.DataFrame:
    """Predictions for every row of `frame` (raises FeatureError naming bad rows/columns).

    `artists` / `track_name` columns, when present, go to the metadata heads (empty cells = unknown).
    A table with the nine values of an audio analysis but no key, mode and time signature columns goes
    to the analysis head (duration_ms / explicit read when those columns exist, empty cells = unknown)."""
    missing = [c for c in AUDIO_FEATURES if c not in frame.columns]
    analysis = predictor.analysis is not None and all(c in frame.columns for c in ANALYSIS_VALUES)
    if missing and not analysis:
        raise FeatureError({c: "column missing" for c in missing})
    if missing:
        data = pd.DataFrame({c: frame[c] if c in frame.columns else np.nan for c in ANALYSIS_INPUTS}, index=frame.index)
    else:
        has_extra = all(c in frame.columns for c in RAW_INPUTS[len(AUDIO_FEATURES) :])
        data = frame[list(RAW_INPUTS if has_extra else AUDIO_FEATURES)].copy()
    if "explicit" in data:
        data["explicit"] = data["explicit"].map(_flag)
    matrix = data.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
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
    flag = parse_bool(value)
    return float("nan") if flag is None else float(flag)
