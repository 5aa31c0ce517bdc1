"""The model zoo: names, default hyper-parameters and grids, how each model is built and fitted.

Everything else in training (the per-task protocol in `ml.training.pipeline`, the metadata heads in
`ml.meta_train`, the cross-dataset comparison in `ml.seed_cross`, `ml.experiments`) builds models here.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ml.features import DISCRETE_INPUTS, FeatureSpec

FAMILIES_FILE = Path(__file__).resolve().parent.parent / "genre_families.json"
SCALED = frozenset({"svm_rbf", "mlp", "knn", "logreg"})
ZOO: tuple[str, ...] = ("catboost", "xgboost", "lightgbm", "random_forest", "svm_rbf", "mlp", "knn", "logreg")
# Rows the slow-to-fit models see in the catalog task (SVC is quadratic in rows). CatBoost, the
# production model, fits on every fit row.
ROW_CAPS: dict[str, dict[str, int]] = {
    "catalog": {"svm_rbf": 8_000, "xgboost": 20_000, "logreg": 20_000},
}
# The production soft vote: CatBoost + a compact random forest, the CatBoost weight chosen on
# validation from VOTE_WEIGHTS. Both read the tree feature spec, so one feature matrix feeds both.
VOTE_MEMBERS: tuple[str, str] = ("catboost", "random_forest")
VOTE_NAME = "soft_vote(" + "+".join(VOTE_MEMBERS) + ")"
VOTE_WEIGHTS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
# The issue names CatBoost as the production model; a soft vote containing it may replace it when it
# wins on validation and fits the latency budget.
PRODUCTION_CANDIDATES: dict[str, tuple[str, ...]] = {
    "seed6": ("catboost", VOTE_NAME),
    "catalog": ("catboost", VOTE_NAME),
}
# Model used to probe the feature options (engineered features, IQR) on validation.
OPTION_PROBE: dict[str, str] = {"seed6": "catboost", "catalog": "lightgbm"}
# Per-model processes/threads (everything else fits single-threaded; see train()).
THREADS: dict[str, int] = {"catboost": 2, "random_forest": 2}
# `train(threads=1)` / `main.py train --threads 1` caps every fit at that many threads (a machine shared
# with other work); None keeps THREADS. Set through set_thread_cap (the report reads it back).
_thread_cap: int | None = None

# Defaults; the seed6 grids and the catalog grid refine some of them.
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "seed6": {
        "catboost": {"iterations": 1500, "learning_rate": 0.08, "depth": 6, "l2_leaf_reg": 3.0},
        "xgboost": {
            "n_estimators": 1500,
            "learning_rate": 0.05,
            "max_depth": 6,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
        },
        "lightgbm": {
            "n_estimators": 1500,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_child_samples": 20,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
        },
        "svm_rbf": {"C": 3.0, "gamma": "scale"},
        "mlp": {"hidden_layer_sizes": (128, 64), "alpha": 1e-3, "learning_rate_init": 1e-3, "batch_size": 256},
        "knn": {"n_neighbors": 25, "weights": "distance"},
        "logreg": {"C": 1.0},
        "random_forest": {"n_estimators": 100, "min_samples_leaf": 2, "max_features": 0.5},
    },
    "catalog": {
        # ~1.2 s per round on all 62k fit rows with 2 threads (114-class gradients): the round budget is
        # what the 3-minute product-model limit allows; validation accuracy still rises at the end.
        "catboost": {"iterations": 100, "learning_rate": 0.4, "depth": 6, "l2_leaf_reg": 3.0, "border_count": 64},
        "xgboost": {
            "n_estimators": 100,
            "learning_rate": 0.2,
            "max_depth": 6,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "max_bin": 64,
        },
        "lightgbm": {
            "n_estimators": 150,
            "learning_rate": 0.12,
            "num_leaves": 31,
            "min_child_samples": 40,
            "subsample": 0.7,
            "colsample_bytree": 0.8,
            "max_bin": 63,
        },
        "svm_rbf": {"C": 3.0, "gamma": "scale"},
        "mlp": {"hidden_layer_sizes": (256, 128), "alpha": 1e-3, "learning_rate_init": 1e-3, "batch_size": 256},
        "knn": {"n_neighbors": 50, "weights": "distance"},
        "logreg": {"C": 1.0},
        "random_forest": {"n_estimators": 60, "min_samples_leaf": 3, "max_features": 0.5},
    },
}
SEED6_GRIDS: dict[str, dict[str, list[Any]]] = {
    "catboost": {"depth": [5, 7], "l2_leaf_reg": [3.0, 10.0]},
    "lightgbm": {"num_leaves": [15, 63], "min_child_samples": [20, 60]},
    "mlp": {"alpha": [1e-4, 1e-2]},
}
# GridSearchCV fits boosters with a fixed, smaller budget (the final fit early-stops).
SEARCH_ROUNDS: dict[str, dict[str, Any]] = {
    "catboost": {"iterations": 100, "learning_rate": 0.25},
    "lightgbm": {"n_estimators": 100, "learning_rate": 0.15},
}
# Catalog search: scored on the validation groups with the probe budget below.
CATALOG_GRID: dict[str, list[dict[str, Any]]] = {
    "lightgbm": [{"num_leaves": 15, "min_child_samples": 40}, {"num_leaves": 63, "min_child_samples": 20}],
}
# Option checks and the catalog search use a smaller budget (rows, boosting rounds) than final fits.
PROBE_ROWS: dict[str, int] = {"catalog": 25_000}
PROBE_ROUNDS: dict[str, int] = {"catalog": 60}
# The production model and feature options the quick (production-only) run uses: what the last full
# zoo run chose (docs/model-report.md), so `make run` rebuilds the same kind of model in minutes.
QUICK_MODEL: dict[str, str] = {"seed6": VOTE_NAME, "catalog": VOTE_NAME}
QUICK_SPEC: dict[str, FeatureSpec] = {"seed6": FeatureSpec(extra=True), "catalog": FeatureSpec(log=True)}
# A soft-vote production model's audio-only head (rare fallback) is its fast member alone, which keeps
# the product-model training inside its 3-minute budget.
VOTE_AUDIO_HEAD = "random_forest"
# Tasks whose artefact gets the analysis head (`ml.training.analysis`): the product model only.
ANALYSIS_TASKS: tuple[str, ...] = ("catalog",)


def set_thread_cap(threads: int | None) -> None:
    """Cap every fit at `threads` threads from now on (None: each model's THREADS)."""
    global _thread_cap
    _thread_cap = threads


def thread_cap() -> int | None:
    return _thread_cap


def load_families(classes: Sequence[str]) -> dict[str, str]:
    """Each fine genre's coarse family (`ml/genre_families.json`; unknown genres → "other")."""
    data = json.loads(FAMILIES_FILE.read_text(encoding="utf-8"))
    aliases: dict[str, str] = data.get("aliases", {})
    lookup = {g: fam for fam, genres in data["families"].items() for g in genres}
    return {c: lookup.get(aliases.get(c, c), "other") for c in classes}


# --- models -----------------------------------------------------------------------------------


def make_model(name: str, params: Mapping[str, Any], seed: int, threads: int = 1) -> Any:
    """A fresh estimator (scaled models wrapped in a StandardScaler pipeline)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    p = dict(params)
    threads = THREADS.get(name, threads)
    if _thread_cap is not None:
        threads = min(threads, _thread_cap)
    if name == "catboost":
        from catboost import CatBoostClassifier

        return CatBoostClassifier(
            loss_function="MultiClass",
            random_seed=seed,
            thread_count=threads,
            verbose=False,
            od_type="Iter",
            od_wait=40,
            allow_writing_files=False,
            **p,
        )
    if name == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            tree_method="hist", n_jobs=threads, random_state=seed, early_stopping_rounds=30, eval_metric="mlogloss", **p
        )
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_jobs=threads, random_state=seed, subsample_freq=1, verbose=-1, **p)
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(random_state=seed, n_jobs=threads, **p)
    if name == "svm_rbf":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        # Platt-scaled probabilities (SVC(probability=True) is deprecated in scikit-learn 1.9)
        svc = SVC(kernel="rbf", random_state=seed, **p)
        return make_pipeline(StandardScaler(), CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False))
    if name == "mlp":
        from sklearn.neural_network import MLPClassifier

        return make_pipeline(
            StandardScaler(),
            MLPClassifier(
                early_stopping=True, validation_fraction=0.1, n_iter_no_change=6, max_iter=200, random_state=seed, **p
            ),
        )
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return make_pipeline(StandardScaler(), KNeighborsClassifier(n_jobs=threads, **p))
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, **p))
    raise ValueError(f"unknown model {name!r}")


def fit_model(
    name: str,
    params: Mapping[str, Any],
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    """Fit; boosters early-stop on the validation part. Returns (model, params actually used)."""
    model = make_model(name, params, seed)
    used = dict(params)
    if name == "catboost":
        model.fit(x_fit, y_fit, eval_set=(x_val, y_val), use_best_model=True)
        used["best_iteration"] = int(model.get_best_iteration())
    elif name == "xgboost":
        model.fit(x_fit, y_fit, eval_set=[(x_val, y_val)], verbose=False)
        used["best_iteration"] = int(model.best_iteration)
    elif name == "lightgbm":
        import lightgbm as lgb

        model.fit(x_fit, y_fit, eval_X=(x_val,), eval_y=(y_val,), callbacks=[lgb.early_stopping(30, verbose=False)])
        used["best_iteration"] = int(model.best_iteration_)
    elif name == "random_forest":
        from ml.ensemble import CompactForest

        model.fit(x_fit, y_fit)
        model = CompactForest(model, int(max(y_fit.max(), y_val.max())) + 1)
    else:
        with warnings.catch_warnings():
            # MLP / logistic regression stop at their iteration budget by design
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_fit, y_fit)
    return model, used


def iqr_mask(x: np.ndarray, names: Sequence[str], k: float = 1.5) -> np.ndarray:
    """Rows whose continuous features all lie within [Q1 - k·IQR, Q3 + k·IQR]."""
    keep = np.ones(len(x), dtype=bool)
    for j, name in enumerate(names):
        if name in DISCRETE_INPUTS:
            continue
        q1, q3 = np.percentile(x[:, j], [25, 75])
        iqr = q3 - q1
        if iqr <= 0:
            continue
        keep &= (x[:, j] >= q1 - k * iqr) & (x[:, j] <= q3 + k * iqr)
    return keep


def full_proba(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """predict_proba with columns for every class (a model fitted on a subset may miss some)."""
    from ml.ensemble import member_proba

    return member_proba(model, x, n_classes)


def plain_catboost(params: Mapping[str, Any], seed: int) -> Any:
    """CatBoost without early stopping (GridSearchCV fits it with a fixed round budget)."""
    from catboost import CatBoostClassifier

    return CatBoostClassifier(
        loss_function="MultiClass",
        random_seed=seed,
        thread_count=1,
        verbose=False,
        allow_writing_files=False,
        **{k: v for k, v in params.items() if k != "od_type"},
    )


def probe_params(name: str, params: Mapping[str, Any], rounds: int | None) -> dict[str, Any]:
    """`params` with the boosting rounds capped at `rounds` (option probes, the catalog search)."""
    out = dict(params)
    for key in ("n_estimators", "iterations"):
        if key in out and rounds is not None:
            out[key] = min(int(out[key]), rounds)
    return out
