"""The one place that knows audio features: names, order, valid ranges, validation, engineering.

Training, prediction and the recommender all use these definitions.

Raw model input (`RAW_INPUTS`): the 12 Spotify audio features in `AUDIO_FEATURES` order, then
`duration_ms` and `explicit` (0/1). Every track the catalog stores and every Spotify track object
carries these 14 values. `popularity` is deliberately absent (a scrape-time snapshot a new track
lacks). A track missing any raw input is refused (`FeatureError`), never imputed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Spotify audio features, in the fixed order models see them.
AUDIO_FEATURES: tuple[str, ...] = (
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "time_signature",
)

# The raw columns a genre model reads, in this order (see the module docstring).
RAW_INPUTS: tuple[str, ...] = (*AUDIO_FEATURES, "duration_ms", "explicit")

# What an audio analysis of a 30-second excerpt gives (ReccoBeats: nine values, no key, mode or time
# signature), in AUDIO_FEATURES order; the analysis head reads them, then duration and explicit, which
# may be unknown (NaN in a matrix, None in a mapping).
ANALYSIS_VALUES: tuple[str, ...] = tuple(c for c in AUDIO_FEATURES if c not in ("key", "mode", "time_signature"))
OPTIONAL_INPUTS: tuple[str, ...] = ("duration_ms", "explicit")
# Raw inputs that take whole values only (a class, a flag): no outlier range, no fractional samples.
DISCRETE_INPUTS: frozenset[str] = frozenset({"key", "mode", "time_signature", "explicit"})
ANALYSIS_INPUTS: tuple[str, ...] = (*ANALYSIS_VALUES, *OPTIONAL_INPUTS)
# What an unknown optional input becomes in a feature matrix: below every valid value (explicit 0/1,
# log duration ≥ 6.9), so a tree splits "unknown" off like any other value.
MISSING = -1.0

# Closed ranges the Spotify Web API documents (loudness and tempo with generous bounds).
FEATURE_RANGES: dict[str, tuple[float, float]] = {
    "danceability": (0.0, 1.0),
    "energy": (0.0, 1.0),
    "key": (-1.0, 11.0),
    "loudness": (-60.0, 7.0),
    "mode": (0.0, 1.0),
    "speechiness": (0.0, 1.0),
    "acousticness": (0.0, 1.0),
    "instrumentalness": (0.0, 1.0),
    "liveness": (0.0, 1.0),
    "valence": (0.0, 1.0),
    "tempo": (0.0, 300.0),
    "time_signature": (0.0, 7.0),
    "duration_ms": (1_000.0, 6_000_000.0),
    "explicit": (0.0, 1.0),
}

_TRUE = frozenset({"true", "1", "1.0", "yes"})
_FALSE = frozenset({"false", "0", "0.0", "no"})


def parse_bool(value: object) -> bool | None:
    """The one reading of a yes/no cell (explicit): True/False, 1/0, "true"/"false", "1"/"0",
    "yes"/"no" in any case; None for anything else (missing, NaN, other text)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return bool(value) if value in (0, 1) else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


class FeatureError(ValueError):
    """Audio features that are missing, not numbers, or out of range. `problems` maps name → reason."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        detail = "; ".join(f"{k}: {v}" for k, v in self.problems.items())
        super().__init__(f"invalid audio features: {detail}")


def _to_number(raw: Any) -> float:
    if isinstance(raw, bool | np.bool_ | str):
        flag = parse_bool(raw)
        if flag is not None:
            return float(flag)
    return float(raw)


def validate_features(
    values: Mapping[str, Any], names: tuple[str, ...] = AUDIO_FEATURES, optional: Sequence[str] = ()
) -> dict[str, float]:
    """Return `names` → float, or raise FeatureError listing every problem (never guesses).

    `optional` names may be missing (None or NaN): they come back as NaN (unknown, not imputed)."""
    problems: dict[str, str] = {}
    out: dict[str, float] = {}
    for name in names:
        raw = values.get(name)
        if raw is None:
            if name in optional:
                out[name] = math.nan
            else:
                problems[name] = "missing"
            continue
        try:
            number = _to_number(raw)
        except (TypeError, ValueError):
            problems[name] = "not a number"
            continue
        if math.isnan(number) and name in optional:
            out[name] = math.nan
            continue
        if math.isnan(number) or math.isinf(number):
            problems[name] = "not a finite number"
            continue
        low, high = FEATURE_RANGES.get(name, (-math.inf, math.inf))
        if not low <= number <= high:
            problems[name] = f"out of range [{low:g}, {high:g}]"
            continue
        out[name] = number
    if problems:
        raise FeatureError(problems)
    return out


def validate_matrix(matrix: np.ndarray, names: Sequence[str] = RAW_INPUTS, optional: Sequence[str] = ()) -> np.ndarray:
    """Check a (n, len(names)) float matrix; raise FeatureError naming the first bad rows.
    NaN is allowed (unknown) in the `optional` columns."""
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise FeatureError({"matrix": f"expected shape (n, {len(names)}), got {array.shape}"})
    problems: dict[str, str] = {}
    finite = np.isfinite(array)
    for j, name in enumerate(names):
        low, high = FEATURE_RANGES.get(name, (-math.inf, math.inf))
        bad_nan = np.flatnonzero(~finite[:, j] & ~(np.isnan(array[:, j]) if name in optional else False))
        with np.errstate(invalid="ignore"):
            bad_range = np.flatnonzero(finite[:, j] & ((array[:, j] < low) | (array[:, j] > high)))
        if bad_nan.size:
            problems[name] = f"missing or not finite in rows {_rows(bad_nan)}"
        elif bad_range.size:
            problems[name] = f"out of range [{low:g}, {high:g}] in rows {_rows(bad_range)}"
    if problems:
        raise FeatureError(problems)
    return array


def _rows(index: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in index[:limit])
    return shown + (f" … ({index.size} rows)" if index.size > limit else "")


def rows_to_matrix(
    rows: Iterable[Mapping[str, Any]], names: Sequence[str] = RAW_INPUTS, optional: Sequence[str] = ()
) -> np.ndarray:
    """Validate each mapping and stack them in `names` order; FeatureError says which row failed."""
    out: list[list[float]] = []
    for i, row in enumerate(rows):
        try:
            clean = validate_features(row, tuple(names), optional)
        except FeatureError as exc:
            raise FeatureError({f"row {i} {k}": v for k, v in exc.problems.items()}) from None
        out.append([clean[n] for n in names])
    return np.asarray(out, dtype=np.float64).reshape(len(out), len(names))


# --- engineered features ---------------------------------------------------------------------

LOG_FEATURES: tuple[str, ...] = ("speechiness", "acousticness", "instrumentalness", "liveness", "duration_ms")
_LOG_EPS = {"speechiness": 1e-3, "acousticness": 1e-6, "instrumentalness": 1e-6, "liveness": 1e-3, "duration_ms": 1.0}
EXTRA_FEATURES: tuple[str, ...] = (
    "energy_minus_acousticness",
    "dance_x_valence",
    "loudness_per_energy",
    "tempo_x_danceability",
    "key_sin",
    "key_cos",
    "speech_x_explicit",  # only with explicit among the inputs
)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Which raw inputs and transforms a model uses (chosen on validation, stored in meta).

    `audio_only` models read just AUDIO_FEATURES (for tracks whose duration/explicit are unknown);
    `analysis` models read ANALYSIS_INPUTS (the nine values of an excerpt's analysis, then duration and
    explicit, either of which may be unknown); the others read RAW_INPUTS.
    """

    log: bool = False  # replace skewed columns by log(x + eps)
    extra: bool = False  # append EXTRA_FEATURES
    audio_only: bool = False
    analysis: bool = False

    def raw_names(self) -> tuple[str, ...]:
        if self.analysis:
            return ANALYSIS_INPUTS
        return AUDIO_FEATURES if self.audio_only else RAW_INPUTS

    def optional_names(self) -> tuple[str, ...]:
        """Raw inputs that may be unknown (NaN): duration and explicit for the analysis head."""
        return OPTIONAL_INPUTS if self.analysis else ()

    def names(self) -> tuple[str, ...]:
        raw = self.raw_names()
        base = tuple(f"log_{n}" if self.log and n in LOG_FEATURES else n for n in raw)
        if not self.extra:
            return base
        return base + tuple(n for n in EXTRA_FEATURES if _extra_reads(n) <= set(raw))

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(**{k: bool(data.get(k, False)) for k in ("log", "extra", "audio_only", "analysis")})


def _extra_reads(name: str) -> set[str]:
    """The raw inputs an engineered feature needs (it is built only when they are all read)."""
    if name.startswith("key_"):
        return {"key"}
    if name == "speech_x_explicit":
        return {"explicit"}
    return set()


def build_features(raw: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Validated matrix of `spec.raw_names()` columns → the model's feature matrix. Pure."""
    raw = np.asarray(raw, dtype=np.float64)
    names = spec.raw_names()
    index = {name: i for i, name in enumerate(names)}
    out = raw.copy()
    if spec.log:
        for name in LOG_FEATURES:
            if name in index:
                out[:, index[name]] = np.log(raw[:, index[name]] + _LOG_EPS[name])
    if not spec.extra:
        return _unknown(out, spec)

    def col(name: str) -> np.ndarray:
        return raw[:, index[name]]

    extra = [
        col("energy") - col("acousticness"),
        col("danceability") * col("valence"),
        col("loudness") / (col("energy") + 0.05),
        col("tempo") * col("danceability"),
    ]
    if "key" in index:
        key_angle = 2 * np.pi * np.clip(col("key"), 0, 11) / 12
        extra.append(np.where(col("key") < 0, 0.0, np.sin(key_angle)))
        extra.append(np.where(col("key") < 0, 0.0, np.cos(key_angle)))
    if "explicit" in index:
        extra.append(col("speechiness") * col("explicit"))
    return _unknown(np.hstack([out, np.column_stack(extra)]), spec)


def _unknown(features: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Unknown optional inputs (NaN, and what was derived from them) → MISSING."""
    if spec.optional_names():
        features[np.isnan(features)] = MISSING
    return features
