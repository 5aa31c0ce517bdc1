"""CompactForest reproduces scikit-learn's forest; SoftVote averages its members."""

from __future__ import annotations

import pickle

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from ml.ensemble import CompactForest, SoftVote


def _data(n: int = 600, classes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, 4)) + y[:, None] * 0.7
    return x, y


def test_compact_forest_matches_sklearn() -> None:
    x, y = _data()
    forest = RandomForestClassifier(n_estimators=15, min_samples_leaf=2, random_state=0).fit(x, y)
    compact = CompactForest(forest, 5, top_k=5)  # top_k = all classes: exact up to float16 leaves
    np.testing.assert_allclose(compact.predict_proba(x[:50]), forest.predict_proba(x[:50]), atol=2e-3)
    one = compact.predict_proba(x[:1])
    assert one.shape == (1, 5) and abs(one.sum() - 1) < 2e-3
    clone = pickle.loads(pickle.dumps(compact))
    np.testing.assert_array_equal(clone.predict_proba(x[:20]), compact.predict_proba(x[:20]))


def test_compact_forest_pickles_small_and_walks_the_same_leaves() -> None:
    x, y = _data(2000, 6)
    forest = RandomForestClassifier(n_estimators=10, min_samples_leaf=1, random_state=1).fit(x, y)
    compact = CompactForest(forest, 6)
    blob = pickle.dumps(compact)
    assert len(blob) < len(pickle.dumps(forest)) / 4
    clone = pickle.loads(blob)
    x32 = x.astype(np.float32)  # the training points sit right at the split thresholds' neighbours
    for a, b in zip(compact.trees, clone.trees, strict=True):
        np.testing.assert_array_equal(a.apply(x32), b.apply(x32))
    np.testing.assert_array_equal(clone.predict_proba(x), compact.predict_proba(x))


def test_compact_forest_top_k_keeps_rows_normalised() -> None:
    x, y = _data(classes=6)
    forest = RandomForestClassifier(n_estimators=5, min_samples_leaf=20, random_state=0).fit(x, y)
    proba = CompactForest(forest, 6, top_k=2).predict_proba(x[:30])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (np.count_nonzero(proba, axis=1) <= 2 * 5).all()


def test_soft_vote_is_the_weighted_mean() -> None:
    x, y = _data()
    a = LogisticRegression(max_iter=200).fit(x, y)
    b = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    vote = SoftVote([a, b], [3, 1], 5)
    expected = 0.75 * a.predict_proba(x[:10]) + 0.25 * b.predict_proba(x[:10])
    np.testing.assert_allclose(vote.predict_proba(x[:10]), expected)


def test_compact_forest_loads_the_earlier_plain_pickle() -> None:
    x, y = _data(300, 3)
    compact = CompactForest(RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y), 3)
    clone = CompactForest.__new__(CompactForest)
    clone.__setstate__(dict(compact.__dict__))  # what an artefact written before the compact format holds
    np.testing.assert_array_equal(clone.predict_proba(x[:10]), compact.predict_proba(x[:10]))
