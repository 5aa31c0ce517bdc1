"""The six-genre benchmark across datasets: folding against the seed file, candidates, choice."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.data import Dataset, duplicate_groups, feature_hash
from ml.features import FeatureSpec
from ml.seed_cross import BOTH, CATALOG_ONLY, SEED_ONLY, SIX, compare, load_cross
from tests.ml.conftest import SEED_GENRES, _features, make_seed_frame


def _dataset(frame: pd.DataFrame, task: str, label: str) -> Dataset:
    frame = frame.reset_index(drop=True)
    return Dataset(task, frame, frame[label].astype(str).to_numpy(), duplicate_groups(frame), "hash")


def _catalog_six(seed_frame: pd.DataFrame, per_genre: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    parts = []
    names = {v: k for k, v in SIX.items()}
    for gi, genre in enumerate(SEED_GENRES):
        frame = pd.DataFrame(_features(rng, gi, per_genre))
        frame.insert(0, "track_id", [f"c{gi}_{i}" for i in range(per_genre)])
        frame.insert(1, "artists", [f"Artist {gi}-{i % 5}" for i in range(per_genre)])
        frame.insert(2, "track_name", [f"Song {gi}-{i}" for i in range(per_genre)])
        frame["duration_ms"] = 200_000.0
        frame["explicit"] = False
        frame["track_genre"] = names[genre]
        parts.append(frame)
    # two songs the seed file holds too: one under its track_id, one as the same recording (features)
    copy_id = (
        seed_frame.iloc[[0]].drop(columns=["genre_track"]).assign(artists="X", track_name="Y", track_genre="hip-hop")
    )
    copy_vec = (
        seed_frame.iloc[[60]]
        .drop(columns=["genre_track"])
        .assign(track_id="other", artists="Z", track_name="W", track_genre="k-pop")
    )
    # and a genre outside the six, which never enters
    jazz = parts[0].head(5).assign(track_genre="jazz", track_id=lambda f: "j" + f["track_id"])
    return pd.concat([*parts, copy_id, copy_vec, jazz], ignore_index=True)


def test_catalogue_six_is_folded_against_the_seed_file() -> None:
    seed = _dataset(make_seed_frame(per_genre=40), "seed6", "genre_track")
    catalog = _dataset(_catalog_six(seed.frame), "catalog", "track_genre")
    data = load_cross(seed, catalog, seed=3)
    assert data.folded == 2
    assert set(data.cat_labels) <= set(SEED_GENRES)
    assert not set(data.cat_frame["track_id"]) & set(seed.frame["track_id"])
    assert not set(feature_hash(data.cat_frame)) & set(feature_hash(seed.frame))
    assert len(data.cat_frame) == 6 * 40
    # each side keeps its own split and the parts are disjoint
    fit, val, test = data.cat_split
    assert not (set(fit) & set(val) or set(fit) & set(test) or set(val) & set(test))
    assert len(fit) + len(val) + len(test) == len(data.cat_frame)


def test_candidates_are_scored_on_both_datasets_and_the_best_mean_is_kept() -> None:
    seed = _dataset(make_seed_frame(per_genre=40), "seed6", "genre_track")
    catalog = _dataset(_catalog_six(seed.frame), "catalog", "track_genre")
    data = load_cross(seed, catalog, seed=3)
    params = {
        "catboost": {"iterations": 30, "learning_rate": 0.3, "depth": 4},
        "random_forest": {"n_estimators": 10, "min_samples_leaf": 2},
    }
    result = compare(data, params, FeatureSpec(extra=True), 3, progress=lambda _m: None)
    names = [c.name for c in result.candidates]
    assert names == [SEED_ONLY, CATALOG_ONLY, BOTH]
    for c in result.candidates:
        assert set(c.val) == {"seed", CATALOG_ONLY} and set(c.test) == {"seed", CATALOG_ONLY}
        assert all(0.0 <= v <= 1.0 for v in c.val.values())
    best = max(result.candidates, key=lambda c: c.val_mean)
    assert result.kept == best.name
    assert (result.extra_rows is not None) == (best.name == BOTH)
    if result.extra_rows is not None:
        raw, labels = result.extra_rows
        assert raw.shape == (len(data.cat_split[0]), 14) and set(labels) <= set(SEED_GENRES)
    assert {c.name: c.rows["fit"] for c in result.candidates}[BOTH] == len(data.seed_split[0]) + len(data.cat_split[0])
