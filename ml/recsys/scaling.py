"""The audio part of the recommender's space: robust per-feature scaling fitted on the catalogue.

z-scores for the well-behaved features, a quantile (rank) transform for the skewed ones
(speechiness, acousticness, instrumentalness, liveness), log duration, and key as a point on the
pitch circle (sin, cos). `raw_row` turns a feature mapping into one raw row.

Songs analysed from audio (ReccoBeats' analysis of a 30-s clip) have nine of the twelve features:
no key, mode or time signature (`UNANALYSED`). Their raw rows carry NaN there; the scaler is fitted
on the values that are known, and a missing one becomes 0 in the scaled space — the catalogue's
mean for mode and time signature (z-scores), the centre of the pitch circle for key (equally far
from every key). `PARTIAL_SCALED` names those scaled columns, which a query for such a song leaves
out of its distances (`ml.recsys.index`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ml.features import AUDIO_FEATURES, FeatureError

# Raw columns the scaler reads: the 12 audio features, then duration.
RAW_COLUMNS: tuple[str, ...] = (*AUDIO_FEATURES, "duration_ms")
_Z = ("danceability", "energy", "valence", "loudness", "tempo", "mode", "time_signature")
_RANK = ("speechiness", "acousticness", "instrumentalness", "liveness")
# Scaled columns, in matrix order.
SCALED_COLUMNS: tuple[str, ...] = (*_Z, *_RANK, "key_sin", "key_cos", "log_duration")
# What audio analysis does not give, and the scaled columns made from them.
UNANALYSED: tuple[str, ...] = ("key", "mode", "time_signature")
PARTIAL_SCALED: tuple[str, ...] = ("mode", "time_signature", "key_sin", "key_cos")


class FeatureScaler:
    """Robust per-feature scaling fitted on the catalogue (applied to any row, known or new)."""

    def __init__(self, raw: np.ndarray) -> None:
        raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(RAW_COLUMNS))
        if raw.shape[0] == 0:
            # An empty catalogue (before the import): a neutral scaler, so the service still starts.
            raw = np.zeros((1, len(RAW_COLUMNS)))
        self._col = {c: i for i, c in enumerate(RAW_COLUMNS)}
        self._mean: dict[str, float] = {}
        self._std: dict[str, float] = {}
        for name in _Z:
            col = raw[:, self._col[name]]
            col = col[np.isfinite(col)]  # songs analysed from audio have no mode or time signature
            self._mean[name] = float(np.mean(col)) if col.size else 0.0
            self._std[name] = (float(np.std(col)) if col.size else 0.0) or 1.0
        dur = np.log(np.clip(self._duration(raw), 1_000.0, None))
        self._mean["log_duration"] = float(np.mean(dur))
        self._std["log_duration"] = float(np.std(dur)) or 1.0
        self._quantiles: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        levels = np.linspace(0.0, 1.0, 401)
        for name in _RANK:
            col = raw[:, self._col[name]]
            col = col[np.isfinite(col)]
            q = np.quantile(col if col.size else np.zeros(1), levels)
            values, inverse = np.unique(q, return_inverse=True)
            ranks = np.bincount(inverse, weights=levels) / np.bincount(inverse)
            if len(values) == 1:
                values, ranks = np.array([values[0], values[0] + 1.0]), np.array([0.5, 0.5])
            self._quantiles[name] = (values, ranks)

    def to_json(self) -> dict[str, Any]:
        """What the scaler learned, for a snapshot (`from_json` gives the same scaler back)."""
        return {
            "mean": self._mean,
            "std": self._std,
            "quantiles": {k: [v.tolist(), r.tolist()] for k, (v, r) in self._quantiles.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureScaler:
        scaler = cls.__new__(cls)
        scaler._col = {c: i for i, c in enumerate(RAW_COLUMNS)}
        scaler._mean = {str(k): float(v) for k, v in data["mean"].items()}
        scaler._std = {str(k): float(v) for k, v in data["std"].items()}
        scaler._quantiles = {
            str(k): (np.asarray(v, dtype=np.float64), np.asarray(r, dtype=np.float64))
            for k, (v, r) in data["quantiles"].items()
        }
        missing = {*_Z, "log_duration"} - set(scaler._mean) | set(_RANK) - set(scaler._quantiles)
        if missing:
            raise ValueError(f"scaler without {sorted(missing)}")
        return scaler

    def _duration(self, raw: np.ndarray) -> np.ndarray:
        dur = raw[:, self._col["duration_ms"]]
        fill = np.nanmedian(dur) if np.isfinite(dur).any() else 210_000.0
        return np.where(np.isfinite(dur), dur, fill)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        raw = np.atleast_2d(np.asarray(raw, dtype=np.float64))
        out = np.empty((raw.shape[0], len(SCALED_COLUMNS)), dtype=np.float64)
        for j, name in enumerate(_Z):
            col = raw[:, self._col[name]]
            # Unknown (NaN: analysed from audio) → 0, the catalogue's mean.
            z = np.clip((np.nan_to_num(col, nan=self._mean[name]) - self._mean[name]) / self._std[name], -4.0, 4.0)
            out[:, j] = z
        for j, name in enumerate(_RANK, start=len(_Z)):
            values, ranks = self._quantiles[name]
            out[:, j] = (np.interp(raw[:, self._col[name]], values, ranks) - 0.5) * math.sqrt(12.0)
        key = raw[:, self._col["key"]]
        known = np.isfinite(key)
        angle = np.where(known, key, 0.0) * (2.0 * math.pi / 12.0)
        j = len(_Z) + len(_RANK)
        # key = -1 (no key detected) lands on its own point; sqrt(2) makes sin/cos unit-variance;
        # an unknown key (NaN) sits at the circle's centre.
        out[:, j] = np.where(known, np.sin(angle) * math.sqrt(2.0), 0.0)
        out[:, j + 1] = np.where(known, np.cos(angle) * math.sqrt(2.0), 0.0)
        dur = np.log(np.clip(self._duration(raw), 1_000.0, None))
        out[:, j + 2] = np.clip((dur - self._mean["log_duration"]) / self._std["log_duration"], -4.0, 4.0)
        return out


def is_partial(features: Mapping[str, Any]) -> bool:
    """Whether a feature mapping lacks exactly what audio analysis does not give (key, mode, time
    signature) and has every other feature."""
    present = {c for c in AUDIO_FEATURES if features.get(c) is not None}
    return present == set(AUDIO_FEATURES) - set(UNANALYSED)


def raw_row(features: Mapping[str, Any], duration_ms: float | None = None, *, partial: bool = False) -> np.ndarray:
    """One raw row (RAW_COLUMNS order) from a feature mapping; raises FeatureError if incomplete.
    With `partial`, key, mode and time signature may be missing (they become NaN)."""
    missing = set(UNANALYSED) if partial else set()
    try:
        values = [math.nan if c in missing and features.get(c) is None else float(features[c]) for c in AUDIO_FEATURES]
    except (KeyError, TypeError, ValueError) as exc:
        raise FeatureError({"features": "incomplete"}) from exc
    if not all(math.isfinite(v) for c, v in zip(AUDIO_FEATURES, values, strict=True) if c not in missing):
        raise FeatureError({"features": "not finite numbers"})
    dur = duration_ms if duration_ms is not None else features.get("duration_ms")
    values.append(float(dur) if dur is not None else math.nan)
    return np.asarray(values, dtype=np.float64)
