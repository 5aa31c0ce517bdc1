"""Lean model files (ml.lean): the heads as arrays give the pickled models' probabilities, the serving
process imports neither catboost nor scikit-learn, and a stale or replaced file is handled."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml import lean
from ml.features import ANALYSIS_INPUTS, AUDIO_FEATURES, FEATURE_RANGES, RAW_INPUTS
from ml.predictor import GenrePredictor
from ml.training.artefacts import ensure_lean

ROOT = Path(__file__).resolve().parents[2]


def _sample(names: tuple[str, ...], n: int = 300, seed: int = 7) -> np.ndarray:
    """A fixed sample of valid rows over each feature's whole range (key, mode … whole numbers)."""
    rng = np.random.default_rng(seed)
    low = np.array([FEATURE_RANGES[c][0] for c in names])
    high = np.array([FEATURE_RANGES[c][1] for c in names])
    out = low + rng.random((n, len(names))) * (high - low)
    for j, name in enumerate(names):
        if name in ("key", "mode", "time_signature", "explicit"):
            out[:, j] = np.round(out[:, j])
        if name == "duration_ms":
            out[:, j] = rng.uniform(60_000, 400_000, n)
    return out


@pytest.fixture(scope="module")
def both(trained_models: Path) -> tuple[GenrePredictor, GenrePredictor]:
    path = trained_models / "catalog"
    return GenrePredictor.load(path), GenrePredictor.load(path, lean=False)


def test_training_writes_a_lean_file_per_head_and_serving_uses_it(
    trained_models: Path, both: tuple[GenrePredictor, GenrePredictor]
) -> None:
    served, pickled = both
    meta = json.loads((trained_models / "catalog" / "meta.json").read_text())
    for head in meta["heads"]:
        file = lean.lean_path(trained_models / "catalog", head["file"])
        assert lean.read_source(file) == lean.source_of(trained_models / "catalog", head, meta["version"])
    assert all(type(h.estimator).__module__ == "ml.lean" for h in served._heads.values())
    assert not any(type(h.estimator).__module__ == "ml.lean" for h in pickled._heads.values())


@pytest.mark.parametrize("names", [RAW_INPUTS, AUDIO_FEATURES, ANALYSIS_INPUTS], ids=["full", "audio_only", "analysis"])
def test_lean_heads_give_the_pickled_probabilities(
    both: tuple[GenrePredictor, GenrePredictor], names: tuple[str, ...]
) -> None:
    served, pickled = both
    matrix = _sample(names)
    if names == ANALYSIS_INPUTS:  # unknown duration / explicit in some rows
        matrix[::3, -1] = np.nan
        matrix[::4, -2] = np.nan
    expected = pickled.predict_proba(matrix)
    np.testing.assert_allclose(served.predict_proba(matrix), expected, rtol=0, atol=1e-6)
    one = np.vstack([served.predict_proba(row[None, :]) for row in matrix[:20]])  # the few-rows path
    np.testing.assert_allclose(one, expected[:20], rtol=0, atol=1e-6)


def test_the_metadata_blend_reads_the_same_vote_member(both: tuple[GenrePredictor, GenrePredictor]) -> None:
    served, pickled = both
    matrix = _sample(RAW_INPUTS, n=40)
    artists = ["Artist 0-1", "Artist 3-2", None, "Nobody"] * 10
    titles = ["Song 0-1", None, "Song 5-5", "x"] * 10
    a, heads_a = served.predict_distribution(matrix, artists=artists, titles=titles)
    b, heads_b = pickled.predict_distribution(matrix, artists=artists, titles=titles)
    assert heads_a == heads_b
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_serving_imports_no_catboost_scikit_learn_or_pandas(trained_models: Path) -> None:
    code = (
        "import sys; from pathlib import Path; import numpy as np\n"
        "from ml.predictor import GenrePredictor\n"
        f"p = GenrePredictor.load(Path({str(trained_models / 'catalog')!r}))\n"
        "p.predict_proba(np.array([[0.5, 0.5, 5, -8, 1, 0.05, 0.2, 0.0, 0.1, 0.5, 120, 4, 200000, 0]]))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'catboost', 'sklearn', 'pandas', 'joblib'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_stale_lean_file_is_ignored_and_ensure_lean_rewrites_it(trained_models: Path, tmp_path: Path) -> None:
    path = tmp_path / "catalog"
    shutil.copytree(trained_models / "catalog", path)
    meta = json.loads((path / "meta.json").read_text())
    meta["version"] = "catalog-retrained"
    (path / "meta.json").write_text(json.dumps(meta))
    stale = GenrePredictor.load(path)  # the lean files name the old version: served from the pickles
    assert not any(type(h.estimator).__module__ == "ml.lean" for h in stale._heads.values())
    assert sorted(ensure_lean(path)) == sorted(h["name"] for h in meta["heads"])
    assert ensure_lean(path) == []  # current now
    fresh = GenrePredictor.load(path)
    assert all(type(h.estimator).__module__ == "ml.lean" for h in fresh._heads.values())
    matrix = _sample(RAW_INPUTS, n=50)
    np.testing.assert_allclose(fresh.predict_proba(matrix), stale.predict_proba(matrix), rtol=0, atol=1e-6)


def test_a_mapped_lean_file_replaced_by_a_new_one_keeps_serving(trained_models: Path, tmp_path: Path) -> None:
    source = trained_models / "catalog" / "audio_only.lean"
    file = tmp_path / "audio_only.lean"
    shutil.copyfile(source, file)
    model = lean.load_lean(file)
    matrix = _sample(AUDIO_FEATURES, n=30)
    before = model.predict_proba(matrix)
    lean.save_lean(lean.load_lean(trained_models / "catalog" / "full.lean"), file, {"file": "other"})
    np.testing.assert_array_equal(model.predict_proba(matrix), before)  # the old mapping is intact
    assert lean.read_source(file) == {"file": "other"}


def test_a_part_without_lean_form_is_refused() -> None:
    with pytest.raises(lean.NotLean):
        lean.to_lean(object())
