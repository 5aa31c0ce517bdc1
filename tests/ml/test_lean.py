"""Lean model files (ml.lean): a head with a lean form is saved as its lean file alone, which gives the
fitted model's probabilities; the serving process imports neither catboost nor scikit-learn; an
artefact trained before lean files (pickles) gets them written beside, and a stale one is ignored."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from ml import lean
from ml.ensemble import ByKnownInputs, CompactForest, SoftVote
from ml.features import AUDIO_FEATURES, MISSING, FeatureSpec, build_features
from ml.predictor import GenrePredictor
from ml.training.analysis import optional_feature_cols
from ml.training.artefacts import check_rows, checked_lean, ensure_lean
from ml.training.results import ModelRun

ROOT = Path(__file__).resolve().parents[2]
N_CLASSES = 9


def _forest(x: np.ndarray, y: np.ndarray, seed: int) -> CompactForest:
    from sklearn.ensemble import RandomForestClassifier

    fitted = RandomForestClassifier(12, min_samples_leaf=2, max_features=0.5, random_state=seed).fit(x, y)
    return CompactForest(fitted, N_CLASSES)


def _catboost(x: np.ndarray, y: np.ndarray) -> Any:
    from catboost import CatBoostClassifier

    model = CatBoostClassifier(iterations=25, depth=4, loss_function="MultiClass", verbose=False, thread_count=1)
    return model.fit(x, y)


def _data(spec: FeatureSpec, n: int = 900, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rows over every input's range, labelled by a rule plus noise (every class present)."""
    x = build_features(check_rows(spec, n, seed=seed), spec)
    rng = np.random.default_rng(seed)
    score = np.nan_to_num(x[:, 0] * 3 + x[:, 1] * 2 - x[:, 4], nan=0.0) + rng.normal(0, 0.3, n)
    y = np.clip(np.digitize(score, np.quantile(score, np.linspace(0, 1, N_CLASSES + 1)[1:-1])), 0, N_CLASSES - 1)
    return x, y


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[Any, FeatureSpec]]:
    """The production shapes, small: a vote of CatBoost and a forest, a forest, two variants by inputs."""
    full, audio, analysis = FeatureSpec(log=True), FeatureSpec(log=True, audio_only=True), FeatureSpec(analysis=True)
    x, y = _data(full)
    vote = SoftVote([_catboost(x, y), _forest(x, y, 1)], [0.4, 0.6], N_CLASSES, ["catboost", "random_forest"])
    xa, ya = _data(audio, seed=2)
    xs, ys = _data(analysis, seed=3)
    optional = optional_feature_cols(analysis)
    partial = xs.copy()
    partial[:, optional] = MISSING
    by_known = ByKnownInputs(_forest(xs, ys, 3), _forest(partial, ys, 4), optional, N_CLASSES, MISSING)
    return {"full": (vote, full), "audio_only": (_forest(xa, ya, 2), audio), "analysis": (by_known, analysis)}


@pytest.mark.parametrize("head", ["full", "audio_only", "analysis"])
def test_a_lean_file_gives_the_fitted_models_probabilities(
    fitted: dict[str, tuple[Any, FeatureSpec]], head: str, tmp_path: Path
) -> None:
    model, spec = fitted[head]
    file = lean.save_lean(lean.to_lean(model), tmp_path / f"{head}.lean", {"file": f"{head}.lean"})
    served = lean.load_lean(file)
    x = build_features(check_rows(spec, 300, seed=11), spec)
    expected = model.predict_proba(x)
    np.testing.assert_allclose(served.predict_proba(x), expected, rtol=0, atol=1e-9)
    one = np.vstack([served.predict_proba(row[None, :]) for row in x[:20]])  # the few-rows path
    np.testing.assert_allclose(one, expected[:20], rtol=0, atol=1e-9)


def test_the_check_refuses_a_lean_form_that_disagrees(
    fitted: dict[str, tuple[Any, FeatureSpec]], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, spec = fitted["audio_only"]
    run = ModelRun("random_forest", {}, {}, {}, 0.0, 0.0, 0.0, 0, model=model, spec=spec)
    assert checked_lean(run) is not None
    good = lean.to_lean(model)
    off = lean.LeanForest(good.nodes, good.roots, good.leaf_start, good.leaf_cls[::-1].copy(), good.leaf_p, N_CLASSES)
    monkeypatch.setattr("ml.training.artefacts.to_lean", lambda _model: off)
    assert checked_lean(run) is None  # saved in its own format instead


def test_a_member_that_does_not_score_every_class_has_no_lean_form(fitted: dict[str, tuple[Any, FeatureSpec]]) -> None:
    model, spec = fitted["audio_only"]
    x, y = _data(spec, seed=5)
    few = _catboost(x, np.minimum(y, 3))  # four classes of nine
    with pytest.raises(lean.NotLean):
        lean.to_lean(SoftVote([few, model], [0.5, 0.5], N_CLASSES, ["catboost", "random_forest"]))


def test_training_saves_each_head_as_its_lean_file_alone_and_serving_maps_it(trained_models: Path) -> None:
    path = trained_models / "catalog"
    meta = json.loads((path / "meta.json").read_text())
    assert [h["format"] for h in meta["heads"]] == [lean.FORMAT] * len(meta["heads"])
    assert sorted(p.name for p in path.glob("*.*") if p.suffix in (".lean", ".joblib", ".cbm", ".txt")) == sorted(
        h["file"] for h in meta["heads"]
    )
    served = GenrePredictor.load(path)
    assert all(type(h.estimator).__module__ == "ml.lean" for h in served._heads.values())


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


@pytest.fixture
def pickled(trained_models: Path, tmp_path: Path) -> Path:
    """The trained artefact as one trained before lean files: its full head a pickled vote (fitted here
    on rows of the head's shape, its members named as the blend expects), no lean file beside it."""
    path = tmp_path / "catalog"
    shutil.copytree(trained_models / "catalog", path)
    meta = json.loads((path / "meta.json").read_text())
    full = meta["heads"][0]
    spec = FeatureSpec.from_dict(full["feature_spec"])
    n = len(meta["classes"])
    x = build_features(check_rows(spec, 600, seed=4), spec)
    y = np.arange(len(x)) % n
    from catboost import CatBoostClassifier
    from sklearn.ensemble import RandomForestClassifier

    boost = CatBoostClassifier(iterations=15, depth=3, loss_function="MultiClass", verbose=False, thread_count=1)
    forest = CompactForest(RandomForestClassifier(8, min_samples_leaf=2, random_state=0).fit(x, y), n)
    vote = SoftVote([boost.fit(x, y), forest], [0.4, 0.6], n, ["catboost", "random_forest"])
    (path / full["file"]).unlink()
    joblib.dump(vote, path / "full.joblib")
    full.update(format="sklearn", file="full.joblib")
    meta["version"] = "catalog-before-lean-files"
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def test_an_artefact_of_pickles_gets_lean_files_beside_them_with_the_same_answers(pickled: Path) -> None:
    before = GenrePredictor.load(pickled)  # no lean file for the full head: served from its pickle
    assert type(before.full.estimator).__module__ != "ml.lean"
    assert ensure_lean(pickled) == ["full"]
    assert ensure_lean(pickled) == []  # current now
    after = GenrePredictor.load(pickled)
    assert all(type(h.estimator).__module__ == "ml.lean" for h in after._heads.values())
    matrix = check_rows(FeatureSpec(), 60, seed=9)
    np.testing.assert_allclose(after.predict_proba(matrix), before.predict_proba(matrix), rtol=0, atol=1e-9)
    artists = ["Artist 0-1", "Artist 3-2", None, "Nobody"] * 15
    titles = ["Song 0-1", None, "Song 5-5", "x"] * 15
    a, heads_a = after.predict_distribution(matrix, artists=artists, titles=titles)  # the blend's vote member
    b, heads_b = before.predict_distribution(matrix, artists=artists, titles=titles)
    assert heads_a == heads_b
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_a_lean_file_of_another_version_is_ignored_until_rewritten(pickled: Path) -> None:
    ensure_lean(pickled)
    meta = json.loads((pickled / "meta.json").read_text())
    meta["version"] = "catalog-retrained"
    (pickled / "meta.json").write_text(json.dumps(meta))
    stale = GenrePredictor.load(pickled)  # full.lean names the old version: served from the pickle
    assert type(stale.full.estimator).__module__ != "ml.lean"
    assert ensure_lean(pickled) == ["full"]
    assert type(GenrePredictor.load(pickled).full.estimator).__module__ == "ml.lean"


def test_a_mapped_lean_file_replaced_by_a_new_one_keeps_serving(trained_models: Path, tmp_path: Path) -> None:
    meta = json.loads((trained_models / "catalog" / "meta.json").read_text())
    (head,) = (h for h in meta["heads"] if h["name"] == "audio_only")
    spec = FeatureSpec.from_dict(head["feature_spec"])
    file = tmp_path / "audio_only.lean"
    shutil.copyfile(trained_models / "catalog" / head["file"], file)
    model = lean.load_lean(file)
    matrix = build_features(check_rows(spec, 30), spec)
    assert spec.raw_names() == AUDIO_FEATURES
    before = model.predict_proba(matrix)
    lean.save_lean(lean.load_lean(trained_models / "catalog" / "full.lean"), file, {"file": "other"})
    np.testing.assert_array_equal(model.predict_proba(matrix), before)  # the old mapping is intact
    assert lean.read_source(file) == {"file": "other"}


def test_a_file_of_the_older_layout_is_not_read_as_a_model(trained_models: Path, tmp_path: Path) -> None:
    file = tmp_path / "full.lean"
    shutil.copyfile(trained_models / "catalog" / "full.lean", file)
    data = bytearray(file.read_bytes())
    data[: len(lean.MAGIC)] = b"ENCORE-LEAN-1\n"
    file.write_bytes(bytes(data))
    assert lean.read_source(file) is None  # ensure_lean rewrites it from the model file
    with pytest.raises(ValueError, match="not a lean model file"):
        lean.load_lean(file)


def test_a_part_without_lean_form_is_refused() -> None:
    with pytest.raises(lean.NotLean):
        lean.to_lean(object())
