"""The one place that knows audio features: names, order, valid ranges, validation.

Both training and prediction (and the recommender) use these definitions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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
    "tempo": (0.0, 260.0),
    "time_signature": (0.0, 7.0),
    "duration_ms": (1_000.0, 6_000_000.0),
}


class FeatureError(ValueError):
    """Audio features that are missing, not numbers, or out of range. `problems` maps name → reason."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        detail = "; ".join(f"{k}: {v}" for k, v in self.problems.items())
        super().__init__(f"invalid audio features: {detail}")


def validate_features(
    values: Mapping[str, Any], names: tuple[str, ...] = AUDIO_FEATURES
) -> dict[str, float]:
    """Return `names` → float, or raise FeatureError listing every problem (never guesses)."""
    problems: dict[str, str] = {}
    out: dict[str, float] = {}
    for name in names:
        raw = values.get(name)
        if raw is None:
            problems[name] = "missing"
            continue
        if isinstance(raw, bool):
            raw = float(raw)
        try:
            number = float(raw)
        except (TypeError, ValueError):
            problems[name] = "not a number"
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
