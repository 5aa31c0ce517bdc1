from __future__ import annotations

import math

import numpy as np
import pytest

from ml.features import (
    AUDIO_FEATURES,
    RAW_INPUTS,
    FeatureError,
    FeatureSpec,
    build_features,
    rows_to_matrix,
    validate_features,
    validate_matrix,
)

GOOD = {
    "danceability": 0.5,
    "energy": 0.7,
    "key": 5,
    "loudness": -6.0,
    "mode": 1,
    "speechiness": 0.05,
    "acousticness": 0.1,
    "instrumentalness": 0.0,
    "liveness": 0.1,
    "valence": 0.4,
    "tempo": 120.0,
    "time_signature": 4,
    "duration_ms": 200_000,
    "explicit": False,
}


def test_valid_row_round_trips_in_raw_order() -> None:
    matrix = rows_to_matrix([GOOD])
    assert matrix.shape == (1, len(RAW_INPUTS))
    assert matrix[0, RAW_INPUTS.index("explicit")] == 0.0


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("energy", None, "missing"),
        ("energy", math.nan, "finite"),
        ("tempo", 900, "out of range"),
        ("loudness", "loud", "not a number"),
        ("duration_ms", -1, "out of range"),
    ],
)
def test_bad_values_are_refused_with_the_reason(name: str, value: object, reason: str) -> None:
    with pytest.raises(FeatureError) as err:
        validate_features({**GOOD, name: value}, RAW_INPUTS)
    assert reason in err.value.problems[name]


def test_matrix_validation_names_bad_rows_and_shape() -> None:
    matrix = rows_to_matrix([GOOD, GOOD])
    matrix[1, 0] = np.nan
    with pytest.raises(FeatureError, match=r"danceability.*rows 1"):
        validate_matrix(matrix)
    with pytest.raises(FeatureError, match="shape"):
        validate_matrix(np.zeros((2, 3)))


@pytest.mark.parametrize(
    "spec",
    [FeatureSpec(), FeatureSpec(log=True), FeatureSpec(log=True, extra=True), FeatureSpec(extra=True, audio_only=True)],
)
def test_build_features_matches_declared_names(spec: FeatureSpec) -> None:
    raw = rows_to_matrix([GOOD, GOOD], spec.raw_names())
    out = build_features(raw, spec)
    assert out.shape == (2, len(spec.names()))
    assert np.isfinite(out).all()
    if spec.audio_only:
        assert spec.raw_names() == AUDIO_FEATURES
