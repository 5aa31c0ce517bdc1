"""The six-genre benchmark across the two datasets (issue 14 §3). Audio only, as in the original work.

Data: the seed file, and the catalogue's rows of the same six genres (hip-hop, k-pop, metal, indian,
classical, blues; renamed to the seed's labels). The two are folded first so no song is counted twice:
rows are grouped jointly (`ml.data.duplicate_groups` over both: same track_id or identical audio-feature
vector; the seed file has no artists or titles), and a catalogue row whose group holds a seed row is
dropped (the seed copy stays).

Splits: the seed rows keep the seed task's own split (`task_split` on the seed file), the catalogue rows
the catalogue task's (`task_split` on the whole catalogue, restricted to the six genres), so each side's
test groups are the ones its own model never sees.

Candidates (each the production recipe: CatBoost + compact random forest, equal soft vote, on the seed
task's feature spec): trained on the seed fit part, on the catalogue-six fit part, or on both. Every
candidate is scored on both validation parts and both test parts; the kept version is the one with the
best mean validation accuracy over the two datasets (how well it generalises), and `ml.training` then
trains the seed6 artefact on that version's data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.data import Dataset, EvalUnits, duplicate_groups, eval_units, load_task, task_split
from ml.ensemble import SoftVote
from ml.features import AUDIO_FEATURES, RAW_INPUTS, build_features
from ml.metrics import scores
from ml.training.zoo import fit_model

SIX: dict[str, str] = {
    "hip-hop": "hip_hop",
    "k-pop": "kpop",
    "metal": "metal",
    "indian": "indian",
    "classical": "classical",
    "blues": "blues",
}
SEED_ONLY, CATALOG_ONLY, BOTH = "seed", "catalogue six", "seed + catalogue six"


@dataclass
class CrossData:
    seed: Dataset
    seed_split: tuple[np.ndarray, np.ndarray, np.ndarray]
    cat_frame: pd.DataFrame  # the catalogue's six-genre rows not folded into a seed song
    cat_labels: np.ndarray  # seed label names
    cat_groups: np.ndarray
    cat_split: tuple[np.ndarray, np.ndarray, np.ndarray]  # row positions in cat_frame
    folded: int  # catalogue six-genre rows dropped as copies of seed songs

    def raw(self, which: str, rows: np.ndarray) -> np.ndarray:
        frame = self.seed.frame if which == "seed" else self.cat_frame
        return frame[list(RAW_INPUTS)].astype(float).to_numpy()[rows]


def load_cross(seed_ds: Dataset, catalog_ds: Dataset, seed: int) -> CrossData:
    cat_split_full = task_split(catalog_ds.labels, catalog_ds.groups, seed)
    six = np.flatnonzero(np.isin(catalog_ds.labels, list(SIX)))
    cat = catalog_ds.frame.iloc[six].reset_index(drop=True)
    joint = pd.concat(
        [
            seed_ds.frame[["track_id", *AUDIO_FEATURES]].assign(_src="seed"),
            cat[["track_id", *AUDIO_FEATURES]].assign(_src="cat"),
        ],
        ignore_index=True,
    )
    groups = duplicate_groups(joint)
    seed_groups = set(groups[: len(seed_ds.frame)].tolist())
    keep = np.array([g not in seed_groups for g in groups[len(seed_ds.frame) :]])
    position = -np.ones(len(catalog_ds.frame), dtype=np.int64)
    kept_rows = six[keep]
    position[kept_rows] = np.arange(len(kept_rows))
    split = tuple(position[np.intersect1d(part, kept_rows)] for part in cat_split_full)
    cat_kept = cat[keep].reset_index(drop=True)
    return CrossData(
        seed=seed_ds,
        seed_split=task_split(seed_ds.labels, seed_ds.groups, seed),
        cat_frame=cat_kept,
        cat_labels=np.asarray([SIX[g] for g in catalog_ds.labels[kept_rows]]),
        cat_groups=catalog_ds.groups[kept_rows],
        cat_split=(split[0], split[1], split[2]),
        folded=int((~keep).sum()),
    )


@dataclass
class Candidate:
    name: str
    rows: dict[str, int]
    val: dict[str, float] = field(default_factory=dict)  # "seed" / "catalogue six" → accuracy
    test: dict[str, dict[str, float]] = field(default_factory=dict)
    fit_seconds: float = 0.0

    @property
    def val_mean(self) -> float:
        values = [v for v in self.val.values() if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")


@dataclass
class CrossResult:
    candidates: list[Candidate]
    kept: str
    folded: int
    rows: dict[str, int]
    seconds: float
    extra_rows: tuple[np.ndarray, np.ndarray] | None  # (raw, labels) to add to the seed fit part, or None


def compare(
    data: CrossData,
    params: Mapping[str, Mapping[str, Any]],
    spec: Any,
    seed: int,
    progress: Callable[[str], None] = print,
) -> CrossResult:
    """Fit the three candidates, score each on both datasets, keep the best on mean validation."""
    started = time.perf_counter()
    classes = tuple(sorted(set(data.seed.labels)))
    s_fit, s_val, s_test = data.seed_split
    c_fit, c_val, c_test = data.cat_split
    units: dict[str, dict[str, EvalUnits]] = {
        "seed": {
            "val": eval_units(data.seed.frame, data.seed.labels, data.seed.groups, s_val),
            "test": eval_units(data.seed.frame, data.seed.labels, data.seed.groups, s_test),
        },
        CATALOG_ONLY: {
            "val": eval_units(data.cat_frame, data.cat_labels, data.cat_groups, c_val),
            "test": eval_units(data.cat_frame, data.cat_labels, data.cat_groups, c_test),
        },
    }
    x_of = {"seed": lambda r: data.raw("seed", r), CATALOG_ONLY: lambda r: data.raw("cat", r)}
    y_seed = np.searchsorted(classes, data.seed.labels)
    y_cat = np.searchsorted(classes, data.cat_labels)

    def feats(raw: np.ndarray) -> np.ndarray:
        return build_features(raw, spec)

    plans = {
        SEED_ONLY: ([data.raw("seed", s_fit)], [y_seed[s_fit]], (data.raw("seed", s_val), y_seed[s_val])),
        CATALOG_ONLY: ([data.raw("cat", c_fit)], [y_cat[c_fit]], (data.raw("cat", c_val), y_cat[c_val])),
        BOTH: (
            [data.raw("seed", s_fit), data.raw("cat", c_fit)],
            [y_seed[s_fit], y_cat[c_fit]],
            (data.raw("seed", s_val), y_seed[s_val]),
        ),
    }
    out = []
    for name, (xs, ys, (x_stop, y_stop)) in plans.items():
        x_fit, y_fit = feats(np.vstack(xs)), np.concatenate(ys)
        if len(np.unique(y_fit)) < 2 or len(y_stop) == 0:
            progress(f"[seed6/cross] {name}: skipped (too little data: {len(np.unique(y_fit))} genres to fit)")
            continue
        t0 = time.perf_counter()
        members = [
            fit_model(m, params[m], x_fit, y_fit, feats(x_stop), y_stop, seed)[0] for m in ("catboost", "random_forest")
        ]
        vote = SoftVote(members, [0.5, 0.5], len(classes))
        cand = Candidate(name, {"fit": len(y_fit)}, fit_seconds=time.perf_counter() - t0)
        for dataset in ("seed", CATALOG_ONLY):
            for part in ("val", "test"):
                u = units[dataset][part]
                if len(u.rows) == 0:
                    s = {
                        "accuracy": float("nan"),
                        "top3": float("nan"),
                        "macro_f1": float("nan"),
                        "log_loss": float("nan"),
                    }
                else:
                    s = scores(vote.predict_proba(feats(x_of[dataset](u.rows))), classes, u.label_sets)
                if part == "val":
                    cand.val[dataset] = s["accuracy"]
                else:
                    cand.test[dataset] = s
        out.append(cand)
        progress(
            f"[seed6/cross] {name}: val seed {cand.val['seed']:.4f} catalogue six "
            f"{cand.val[CATALOG_ONLY]:.4f}; test seed {cand.test['seed']['accuracy']:.4f} catalogue six "
            f"{cand.test[CATALOG_ONLY]['accuracy']:.4f} ({cand.fit_seconds:.0f} s)"
        )
    kept = max(out, key=lambda c: -1.0 if np.isnan(c.val_mean) else c.val_mean)
    extra = None
    if kept.name == BOTH:
        extra = (data.raw("cat", c_fit), data.cat_labels[c_fit])
    rows = {
        "seed fit": len(s_fit),
        "seed val": len(s_val),
        "seed test": len(s_test),
        "catalogue six fit": len(c_fit),
        "catalogue six val": len(c_val),
        "catalogue six test": len(c_test),
        "seed val tracks": len(units["seed"]["val"].rows),
        "seed test tracks": len(units["seed"]["test"].rows),
        "catalogue six test tracks": len(units[CATALOG_ONLY]["test"].rows),
    }
    return CrossResult(out, kept.name, data.folded, rows, time.perf_counter() - started, extra)


def run(
    data_dir: Any,
    seed: int,
    params: Mapping[str, Mapping[str, Any]],
    spec: Any,
    progress: Callable[[str], None] = print,
) -> CrossResult:
    seed_ds = load_task(data_dir, "seed6")
    catalog_ds = load_task(data_dir, "catalog")
    return compare(load_cross(seed_ds, catalog_ds, seed), params, spec, seed, progress)
