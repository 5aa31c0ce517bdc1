from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml.features import AUDIO_FEATURES, RAW_INPUTS, FeatureError, rows_to_matrix
from ml.predictor import GenrePredictor
from tests.ml.conftest import CATALOG_GENRES, SEED_GENRES
from tests.ml.test_features import GOOD


@pytest.fixture(scope="module")
def catalog(trained_models: Path) -> GenrePredictor:
    return GenrePredictor.load(trained_models / "catalog")


def test_artefacts_round_trip_with_metadata(trained_models: Path) -> None:
    for task, genres in (("seed6", SEED_GENRES), ("catalog", CATALOG_GENRES)):
        meta = json.loads((trained_models / task / "meta.json").read_text())
        assert meta["raw_inputs"] == list(RAW_INPUTS)
        assert set(meta["classes"]) == set(genres)
        for key in ("data_hash", "libraries", "created_at", "metrics", "feature_names", "version"):
            assert meta[key]
        expected = ["full", "audio_only", "analysis"] if task == "catalog" else ["full", "audio_only"]
        assert [h["name"] for h in meta["heads"]] == expected
        predictor = GenrePredictor.load(trained_models / task)
        assert predictor.classes == tuple(meta["classes"])
        assert predictor.feature_names == tuple(meta["feature_names"])
    holdout = json.loads((trained_models / "catalog" / "holdout.json").read_text())
    assert holdout and all(isinstance(t, str) for t in holdout)


def test_reloaded_model_predicts_the_same(trained_models: Path, catalog: GenrePredictor) -> None:
    again = GenrePredictor.load(trained_models / "catalog")
    matrix = rows_to_matrix([GOOD, {**GOOD, "energy": 0.1, "tempo": 150.0}])
    np.testing.assert_allclose(catalog.predict_proba(matrix), again.predict_proba(matrix))


def test_one_and_batch_agree_and_are_distributions(catalog: GenrePredictor) -> None:
    rows = [GOOD, {**GOOD, "danceability": 0.9, "acousticness": 0.8}]
    batch = catalog.predict_batch(rows)
    one = [catalog.predict_one(r) for r in rows]
    for b, o in zip(batch, one, strict=True):  # equal up to BLAS rounding (batch vs one-row matmul)
        assert (b.genre, b.family) == (o.genre, o.family)
        assert [g for g, _ in b.top] == [g for g, _ in o.top]
        assert b.probability == pytest.approx(o.probability, abs=1e-9)
    proba = catalog.predict_proba(rows_to_matrix(rows))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    for p, pred in zip(proba, batch, strict=True):
        assert pred.genre == catalog.classes[int(p.argmax())]
        assert pred.probability == pytest.approx(float(p.max()))
        assert len(pred.top) == 3 and pred.top[0][0] == pred.genre
        assert pred.family == catalog.family_of(pred.genre) or pred.family_probability >= pred.probability
        assert pred.family_probability >= pred.probability - 1e-9


def test_families_come_from_the_mapping(catalog: GenrePredictor) -> None:
    assert catalog.family_of("techno") == "electronic"
    assert catalog.family_of("salsa") == "latin"
    assert set(catalog.families) <= {"rock", "metal", "electronic", "jazz/blues/soul", "latin"}
    with pytest.raises(KeyError):
        catalog.family_of("polka")


def test_missing_duration_uses_the_audio_only_head(catalog: GenrePredictor) -> None:
    audio = {k: GOOD[k] for k in AUDIO_FEATURES}
    pred = catalog.predict_one(audio)
    proba = catalog.predict_proba(rows_to_matrix([audio], AUDIO_FEATURES))
    assert pred.probability == pytest.approx(float(proba.max()))
    other = catalog.predict_one({**audio, "duration_ms": None})
    assert other.genre == pred.genre and other.probability == pytest.approx(pred.probability)


@pytest.mark.parametrize(
    "bad",
    [
        {**GOOD, "energy": float("nan")},
        {**GOOD, "tempo": 1000.0},
        {k: v for k, v in GOOD.items() if k != "valence"},
        {**GOOD, "key": "C#"},
        {**GOOD, "duration_ms": -5},
    ],
)
def test_bad_input_is_refused(catalog: GenrePredictor, bad: dict[str, object]) -> None:
    with pytest.raises(FeatureError):
        catalog.predict_one(bad)
    with pytest.raises(FeatureError):
        catalog.predict_batch([GOOD, bad])


def test_bad_matrix_is_refused(catalog: GenrePredictor) -> None:
    matrix = rows_to_matrix([GOOD, GOOD])
    matrix[1, 3] = 99.0  # loudness out of range
    with pytest.raises(FeatureError, match="loudness"):
        catalog.predict_proba(matrix)
    with pytest.raises(FeatureError, match="shape"):
        catalog.predict_proba(np.zeros((1, 5)))


def test_zoo_runs_every_model_and_writes_the_report(tiny_data_dir: Path, tmp_path: Path) -> None:
    from ml.data import load_task
    from ml.report import write_report
    from ml.training.pipeline import run_task
    from ml.training.zoo import ZOO

    small = {
        "catboost": {"iterations": 30},
        "xgboost": {"n_estimators": 20},
        "lightgbm": {"n_estimators": 20},
        "mlp": {"hidden_layer_sizes": (16,), "batch_size": 32},
        "knn": {"n_neighbors": 5},
    }
    result = run_task(load_task(tiny_data_dir, "catalog"), zoo=True, seed=5, overrides=small)
    names = [r.name for r in result.runs]
    assert set(ZOO) <= set(names)
    assert any(n.startswith("soft_vote(") for n in names)
    for run in result.runs:
        assert 0.0 <= run.test["accuracy"] <= run.test["top3"] <= 1.0
    assert {o["option"].split(" (")[0] for o in result.options} >= {"log transforms", "IQR outlier removal, k=1.5"}
    # the zoo run compares the analysis head's two ways of handling unknown duration / explicit
    assert result.analysis is not None
    assert [t["strategy"] for t in result.analysis.tried] == ["masked (p=0.2)", "masked (p=0.5)", "two variants"]
    assert result.analysis.strategy == max(result.analysis.tried, key=lambda t: t["mean"])["strategy"]
    report = write_report([result], tmp_path, total_seconds=1.0, seed=5, zoo=True)
    text = report.read_text()
    assert "| lightgbm" in text and result.data_hash in text
    assert "### Analysis head" in text and "| two variants |" in text and "| analysis | 11 raw" in text
    assert (tmp_path / "catalog-confusion.png").stat().st_size > 0
    assert (tmp_path / "catalog-importance.png").stat().st_size > 0
