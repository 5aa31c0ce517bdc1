"""Loading the two datasets, folding duplicates into groups and splitting by group.

Grouping rule (docs: /work/shared/data/SOURCES.md): two rows belong to one group when they share a
track_id, an identical audio-feature vector, or the same artists + track name. Groups are the
connected components of that relation (union-find). Every split here keeps a group on one side.

Evaluation unit: one *track* per (group, audio-feature vector) in the test side; its label set is
every genre that any row of its group carries. A prediction counts as right when it is any of them.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ml.features import AUDIO_FEATURES, parse_bool
from ml.pipeline.datasets import read_dataset
from ml.text import fold_key

log = logging.getLogger(__name__)

SEED_FILE = "seed_6genre_train.csv"
CATALOG_FILE = "spotify_tracks_114genre_train.csv.gz"
TASK_FILES: dict[str, str] = {"seed6": SEED_FILE, "catalog": CATALOG_FILE}
# The dataset's own label column (predictions are written under the same name).
LABEL_COLUMNS: dict[str, str] = {"seed6": "genre_track", "catalog": "track_genre"}


@dataclass(frozen=True, slots=True)
class Dataset:
    """Rows of one task with their labels and duplicate groups (row-aligned)."""

    task: str
    frame: pd.DataFrame  # the raw columns, index 0..n-1
    labels: np.ndarray  # str, one per row
    groups: np.ndarray  # int, one per row
    data_hash: str

    @property
    def label_column(self) -> str:
        return LABEL_COLUMNS[self.task]


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def feature_hash(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's audio-feature vector (rounded to 1e-6)."""
    return pd.util.hash_pandas_object(frame[list(AUDIO_FEATURES)].round(6), index=False).to_numpy()


_NO_KEY = np.array(None, dtype=object)  # np.where's value for a row without that key


def duplicate_groups(frame: pd.DataFrame) -> np.ndarray:
    """Group id per row: the one folding rule of Encore (training, evaluation and the product catalogue).

    Two rows are one recording when they share a track_id, an identical audio-feature vector (rounded
    to 1e-6; incomplete vectors link nothing), or the same `fold_key` of artists and title (rows
    with both). Groups are the connected components of that relation; ids are numbered in the
    order of each group's first row.
    """
    n = len(frame)
    keys: list[np.ndarray] = []
    if "track_id" in frame:
        ids = frame["track_id"]
        keys.append(np.where(ids.notna(), "i:" + ids.astype(str).str.strip(), _NO_KEY))
    complete = frame[list(AUDIO_FEATURES)].notna().all(axis=1).to_numpy()
    keys.append(np.where(complete, feature_hash(frame).astype(object), _NO_KEY))
    if "artists" in frame and "track_name" in frame:
        songs = [fold_key(a, t) for a, t in zip(frame["artists"], frame["track_name"], strict=True)]
        keys.append(np.asarray(songs, dtype=object))
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for key in keys:
        present = np.flatnonzero(pd.notna(key))
        if present.size == 0:
            continue
        # Codes in order of first appearance (hashing, not sorting strings): link each row to the
        # first row holding the same key value.
        codes, _ = pd.factorize(pd.Series(key[present]).astype(str))
        _, first = np.unique(codes, return_index=True)
        rows.append(present)
        cols.append(present[first[codes]])
    if not rows:
        return np.arange(n, dtype=np.int64)
    edges = sparse.coo_matrix(
        (np.ones(sum(r.size for r in rows)), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    _, labels = connected_components(edges, directed=False)
    return labels.astype(np.int64)


def load_task(data_dir: Path, task: str) -> Dataset:
    """Read `<data_dir>/raw/<file>` for task `seed6` or `catalog` and attach duplicate groups."""
    path = Path(data_dir) / "raw" / TASK_FILES[task]
    if not path.exists():
        raise FileNotFoundError(f"dataset for task {task!r} not found at {path}")
    frame = read_dataset(path)
    label_column = LABEL_COLUMNS[task]
    frame = frame.dropna(subset=[*AUDIO_FEATURES, label_column]).reset_index(drop=True)
    if "explicit" in frame:
        frame["explicit"] = [parse_bool(v) is True for v in frame["explicit"]]
    groups = duplicate_groups(frame)
    log.info("%s: %d rows, %d duplicate groups", task, len(frame), groups.max() + 1)
    return Dataset(
        task=task,
        frame=frame,
        labels=frame[label_column].astype(str).to_numpy(),
        groups=groups,
        data_hash=file_hash(path),
    )


def group_label(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """One label per row: the most common label of its group (for stratifying a grouped split)."""
    counts = pd.DataFrame({"g": groups, "y": labels}).value_counts().reset_index(name="n")
    counts = counts.sort_values(["g", "n", "y"], ascending=[True, False, True]).drop_duplicates("g")
    top = counts.set_index("g")["y"]
    return top.loc[groups].to_numpy()


def grouped_split(labels: np.ndarray, groups: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test), stratified by genre, no group on both sides."""
    n_splits = max(2, round(1 / test_size))
    train_idx, test_idx = grouped_folds(labels, groups, n_splits, seed)[0]
    return np.sort(train_idx), np.sort(test_idx)


def task_split(labels: np.ndarray, groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (fit, validation, test): test = 20% of groups, validation = 15% of the rest.

    The one protocol of `ml.training` (and of `ml.experiments`, which must score on the same groups).
    """
    train_idx, test_idx = grouped_split(labels, groups, 0.2, seed)
    fit_rel, val_rel = grouped_split(labels[train_idx], groups[train_idx], 0.15, seed + 1)
    return train_idx[fit_rel], train_idx[val_rel], test_idx


def grouped_folds(
    labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """StratifiedGroupKFold folds, stratified by each group's main genre."""
    from sklearn.model_selection import StratifiedGroupKFold  # here: `serve` never splits (0.7 s of import)

    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    strat = group_label(labels, groups)
    with warnings.catch_warnings():
        # a genre with fewer groups than folds cannot be spread over every fold; that is fine
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return list(splitter.split(np.zeros(len(labels)), strat, groups))


@dataclass(frozen=True, slots=True)
class EvalUnits:
    """Test tracks: one row index per (group, feature vector) and that group's label set."""

    rows: np.ndarray
    label_sets: tuple[frozenset[str], ...]


def eval_units(
    frame: pd.DataFrame, labels: np.ndarray, groups: np.ndarray, rows: Sequence[int] | np.ndarray
) -> EvalUnits:
    idx = np.asarray(rows)
    sub = pd.DataFrame({"g": groups[idx], "y": labels[idx], "row": idx})
    sets = sub.groupby("g")["y"].agg(frozenset)
    sub["v"] = feature_hash(frame.iloc[idx])
    firsts = sub.drop_duplicates(["g", "v"])
    return EvalUnits(
        rows=firsts["row"].to_numpy(),
        label_sets=tuple(sets.loc[firsts["g"]].tolist()),
    )
