"""The analysis head: a song known by the nine values of an excerpt's audio analysis (issue 13 §2)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest

from ml.data import eval_units, load_task, task_split
from ml.ensemble import ByKnownInputs
from ml.features import (
    ANALYSIS_INPUTS,
    ANALYSIS_VALUES,
    MISSING,
    RAW_INPUTS,
    FeatureError,
    FeatureSpec,
    build_features,
    rows_to_matrix,
)
from ml.predictor import GenrePredictor, NoHead
from ml.training.analysis import PATTERNS, STRATEGIES, fit_strategy, hide
from tests.ml.test_features import GOOD

NINE = {k: GOOD[k] for k in ANALYSIS_VALUES}


@pytest.fixture(scope="module")
def catalog(trained_models: Path) -> GenrePredictor:
    return GenrePredictor.load(trained_models / "catalog")


def test_the_artefact_carries_the_analysis_head(trained_models: Path, catalog: GenrePredictor) -> None:
    meta = json.loads((trained_models / "catalog" / "meta.json").read_text())
    head = next(h for h in meta["heads"] if h["name"] == "analysis")
    assert head["raw_inputs"] == list(ANALYSIS_INPUTS)
    assert head["optional_inputs"] == ["duration_ms", "explicit"]
    assert head["feature_spec"]["analysis"] is True
    assert (trained_models / "catalog" / head["file"]).stat().st_size > 0
    assert meta["analysis"]["strategy"] in STRATEGIES
    assert set(meta["analysis"]["test_patterns"]) == set(PATTERNS)
    assert head["temperature"] > 0 and 0.0 <= head["metrics"]["test"]["accuracy"] <= 1.0
    assert catalog.heads == ("full", "audio_only", "analysis")


@pytest.mark.parametrize(
    "extra",
    [{}, {"duration_ms": 200_000}, {"explicit": True}, {"duration_ms": 200_000, "explicit": False}],
)
def test_the_nine_values_go_to_the_analysis_head(catalog: GenrePredictor, extra: dict[str, object]) -> None:
    features = {**NINE, **extra}
    assert catalog.head_for(features).name == "analysis"
    pred = catalog.predict_one(features)
    assert pred.head == "analysis" and pred.evidence == "30-s excerpt analysis"
    # the same answer as the analysis head's matrix form (NaN = unknown)
    row = [[float(features.get(n, math.nan)) if features.get(n) is not None else math.nan for n in ANALYSIS_INPUTS]]
    proba = catalog.predict_proba(np.array(row))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert pred.genre == catalog.classes[int(proba.argmax())]
    assert pred.probability == pytest.approx(float(proba.max()))
    batch = catalog.predict_batch([GOOD, features])
    assert [p.head for p in batch] == ["audio", "analysis"]
    assert batch[1].genre == pred.genre and batch[1].probability == pytest.approx(pred.probability)


def test_known_duration_is_read_not_ignored(catalog: GenrePredictor) -> None:
    """Unknown is its own value: the head reads the duration when it is given."""
    head = catalog.analysis
    assert head is not None
    rows = np.array([[*(NINE[n] for n in ANALYSIS_VALUES), d, 0.0] for d in (60_000.0, 200_000.0, 900_000.0)])
    unknown = rows.copy()
    unknown[:, -2] = np.nan
    features = build_features(unknown, head.spec)
    assert (features[:, head.spec.names().index("log_duration_ms")] == MISSING).all()
    assert not np.isnan(build_features(rows, head.spec)).any()


def test_full_audio_features_keep_their_heads(catalog: GenrePredictor) -> None:
    assert catalog.head_for(GOOD).name == "full"
    assert catalog.head_for({**GOOD, "explicit": None}).name == "audio_only"
    # one of key / mode / time signature missing: the nine values still answer
    assert catalog.head_for({**GOOD, "key": None}).name == "analysis"


@pytest.mark.parametrize(
    "bad",
    [
        {**NINE, "energy": None},
        {**NINE, "tempo": float("nan")},
        {**NINE, "loudness": 99.0},
        {**NINE, "duration_ms": -5},
        {**NINE, "explicit": "maybe"},
        {**NINE, "duration_ms": float("inf")},
    ],
)
def test_bad_analysis_values_are_refused(catalog: GenrePredictor, bad: dict[str, object]) -> None:
    with pytest.raises(FeatureError):
        catalog.predict_one(bad)


def test_a_matrix_refuses_nan_in_the_nine_values(catalog: GenrePredictor) -> None:
    matrix = rows_to_matrix(
        [{**NINE, "duration_ms": None, "explicit": None}], ANALYSIS_INPUTS, ("duration_ms", "explicit")
    )
    assert np.isnan(matrix[0, -2:]).all()
    catalog.predict_proba(matrix)
    matrix[0, 0] = np.nan
    with pytest.raises(FeatureError, match="danceability"):
        catalog.predict_proba(matrix)


def test_the_metadata_heads_blend_over_the_analysis_head(catalog: GenrePredictor) -> None:
    assert catalog.blend is not None
    artist = catalog.predict_one({**NINE, "duration_ms": 200_000}, artists=["Artist 0-1"])
    assert artist.head == "analysis+artist" and artist.artists_known == 1
    assert artist.evidence.startswith("30-s excerpt analysis + artist")
    both = catalog.predict_one(NINE, artists="Artist 0-1", title="Song 0-3")
    assert both.head == "analysis+artist+title"
    alone = catalog.predict_one(NINE, artists="Artist 0-1", audio_only=True)
    assert alone.head == "analysis"
    proba, heads = catalog.predict_distribution(
        np.array([[*(NINE[n] for n in ANALYSIS_VALUES), np.nan, np.nan]] * 2), artists=["Artist 0-1", None]
    )
    assert heads == ["analysis+artist", "analysis"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


def test_an_artefact_trained_before_the_head_still_loads(trained_models: Path, tmp_path: Path) -> None:
    """Old artefacts: no analysis head in meta.json, no `analysis` / `optional_inputs` keys."""
    old = tmp_path / "old"
    shutil.copytree(trained_models / "catalog", old)
    meta = json.loads((old / "meta.json").read_text())
    (analysis,) = (h for h in meta["heads"] if h["name"] == "analysis")
    for h in meta["heads"]:
        h.pop("optional_inputs")
        h["feature_spec"].pop("analysis")
    meta["heads"] = [h for h in meta["heads"] if h["name"] != "analysis"]
    meta.pop("analysis")
    (old / "meta.json").write_text(json.dumps(meta))
    (old / analysis["file"]).unlink()
    predictor = GenrePredictor.load(old)
    new = GenrePredictor.load(trained_models / "catalog")
    assert predictor.heads == ("full", "audio_only") and predictor.analysis is None
    matrix = rows_to_matrix([GOOD])
    np.testing.assert_allclose(predictor.predict_proba(matrix), new.predict_proba(matrix))
    with pytest.raises(NoHead):
        predictor.predict_one(NINE)
    with pytest.raises(FeatureError, match="shape"):
        predictor.predict_proba(np.zeros((1, len(ANALYSIS_INPUTS))))


def test_two_variants_route_rows_by_what_is_known(tiny_data_dir: Path, tmp_path: Path) -> None:
    ds = load_task(tiny_data_dir, "catalog")
    classes = tuple(sorted(set(ds.labels)))
    y = np.searchsorted(np.asarray(classes), ds.labels)
    x = ds.frame[list(ANALYSIS_INPUTS)].astype(float).to_numpy()
    fit_idx, val_idx, test_idx = task_split(ds.labels, ds.groups, 3)
    spec = FeatureSpec(log=True, analysis=True)
    params = {"n_estimators": 10, "min_samples_leaf": 2, "max_features": 0.5}
    model = fit_strategy("two variants", params, spec, x[fit_idx], y[fit_idx], x[val_idx], y[val_idx], len(classes), 3)
    assert isinstance(model, ByKnownInputs)
    rows = x[eval_units(ds.frame, ds.labels, ds.groups, test_idx).rows]
    complete = build_features(rows, spec)
    partial = build_features(hide(rows, False, True), spec)  # explicit unknown → the partial model
    np.testing.assert_allclose(model.predict_proba(complete), model.complete.predict_proba(complete))
    np.testing.assert_allclose(
        model.predict_proba(partial), model.partial.predict_proba(build_features(hide(rows, True, True), spec))
    )
    joblib.dump(model, tmp_path / "m.joblib", compress=3)
    again = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_allclose(again.predict_proba(partial), model.predict_proba(partial))
    assert RAW_INPUTS[-2:] == ("duration_ms", "explicit")


def test_predict_reads_a_table_of_analysis_values(catalog: GenrePredictor) -> None:
    """`main.py predict` on a CSV with the nine values and no key / mode / time signature columns."""
    import pandas as pd

    from ml.batch import predict_frame

    frame = pd.DataFrame([{**NINE, "duration_ms": 200_000}, {**NINE, "duration_ms": None}])
    out = predict_frame(catalog, frame, "track_genre")
    assert out["head"].tolist() == ["analysis", "analysis"]
    assert out["track_genre"].iloc[0] == catalog.predict_one({**NINE, "duration_ms": 200_000}).genre
    with pytest.raises(FeatureError, match="key"):
        predict_frame(catalog, frame.drop(columns=["energy"]), "track_genre")
