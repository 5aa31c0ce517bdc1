"""Attempts at the accuracy targets that the production pipeline does not adopt, re-runnable.

`python -m ml.experiments [--data data] [--out docs/model-experiments.md]` fits each variant on the
same fit part as `ml.training` (seed 42, groups kept together), scores it on the validation groups with
the same any-label rule, and writes a markdown table. Nothing here touches the test groups.

Variants:
- seed6: a larger CatBoost (depth 8, slower learning rate) against the production CatBoost settings;
  label-noise cleaning (confident learning: drop fit rows whose out-of-fold forest probability of
  their own label is below a threshold — the seed labels come from a search query, SOURCES.md);
- catalog: more CatBoost rounds at a lower learning rate than the product model's 3-minute budget
  allows, alone and in the production soft vote with the production forest; larger / deeper random
  forests and extra-trees against the production forest, with the size and the one-row latency of
  their `CompactForest` (what the artefact would carry).
"""

from __future__ import annotations

import argparse
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

from ml.data import Dataset, eval_units, load_task, task_split
from ml.ensemble import CompactForest
from ml.features import RAW_INPUTS, build_features
from ml.metrics import scores
from ml.training.zoo import DEFAULTS, QUICK_SPEC, fit_model

SEED = 42


@dataclass(frozen=True)
class Row:
    task: str
    variant: str
    accuracy: float
    top3: float
    log_loss: float
    fit_s: float
    note: str = ""


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray
    fit: np.ndarray
    val: np.ndarray
    val_rows: np.ndarray
    label_sets: Sequence[frozenset[str]]
    classes: tuple[str, ...]
    groups: np.ndarray


def split_task(ds: Dataset) -> Split:
    """The same fit / validation groups as `ml.training.pipeline.run_task` (test groups left untouched)."""
    classes = tuple(sorted(set(ds.labels)))
    y = np.searchsorted(np.asarray(classes), ds.labels)
    raw = ds.frame[list(RAW_INPUTS)].astype(float).to_numpy()
    fit, val, _test = task_split(ds.labels, ds.groups, SEED)
    units = eval_units(ds.frame, ds.labels, ds.groups, val)
    x = build_features(raw, QUICK_SPEC[ds.task])
    return Split(x, y, fit, val, units.rows, units.label_sets, classes, ds.groups)


def _full(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    proba = model.predict_proba(x)
    out = np.zeros((len(x), n_classes))
    out[:, np.asarray(model.classes_, dtype=int)] = proba
    return out


def score(
    task: str,
    variant: str,
    s: Split,
    fit: Callable[[np.ndarray], Any],
    idx: np.ndarray | None = None,
    note: Callable[[Any], str] | None = None,
) -> Row:
    started = time.perf_counter()
    model = fit(s.fit if idx is None else idx)
    fit_s = time.perf_counter() - started
    m = scores(_full(model, s.x[s.val_rows], len(s.classes)), s.classes, s.label_sets)
    row = Row(task, variant, m["accuracy"], m["top3"], m["log_loss"], fit_s, note(model) if note else "")
    print(f"{task} {variant}: {row}", flush=True)
    return row


def seed6_rows(s: Split, rounds: int | None = None) -> list[Row]:
    from catboost import CatBoostClassifier

    base = {**DEFAULTS["seed6"]["catboost"], "depth": 7}  # the grid's choice in docs/model-report.md
    if rounds is not None:
        base["iterations"] = min(base["iterations"], rounds)

    def catboost(**changes: Any) -> Callable[[np.ndarray], Any]:
        def fit(idx: np.ndarray) -> Any:
            model = CatBoostClassifier(**{**base, **changes}, thread_count=2, verbose=0, random_seed=0)
            model.fit(s.x[idx], s.y[idx], eval_set=(s.x[s.val], s.y[s.val]), early_stopping_rounds=100)
            return model

        return fit

    rows = [
        score("seed6", "CatBoost, production settings (depth 7, lr 0.08)", s, catboost()),
        score("seed6", "CatBoost, depth 8, lr 0.05, l2 5", s, catboost(depth=8, learning_rate=0.05, l2_leaf_reg=5.0)),
    ]
    forest = RandomForestClassifier(300, min_samples_leaf=2, n_jobs=2, random_state=0)
    oof = cross_val_predict(
        forest, s.x[s.fit], s.y[s.fit], groups=s.groups[s.fit], cv=StratifiedGroupKFold(5), method="predict_proba"
    )
    own = oof[np.arange(len(s.fit)), s.y[s.fit]]
    for threshold in (0.1, 0.2):
        keep = s.fit[own >= threshold]

        def dropped(_model: Any, kept: np.ndarray = keep) -> str:
            return f"{len(s.fit) - len(kept)} fit rows dropped"

        rows.append(
            score(
                "seed6",
                f"CatBoost, fit rows cleaned (out-of-fold p(own label) ≥ {threshold})",
                s,
                catboost(),
                idx=keep,
                note=dropped,
            )
        )
    return rows


def catalog_boosting_rows(s: Split, rounds: int | None = None) -> list[Row]:
    """CatBoost fitted exactly as `ml.training` fits it (early stop on validation), alone and in the vote."""
    n = len(s.classes)
    forest, _ = fit_model(
        "random_forest", DEFAULTS["catalog"]["random_forest"], s.x[s.fit], s.y[s.fit], s.x[s.val], s.y[s.val], SEED
    )
    forest_p = _full(forest, s.x[s.val_rows], n)
    weight = 0.4  # the production vote's CatBoost weight (docs/model-report.md)
    rows = []
    base = DEFAULTS["catalog"]["catboost"]
    for changes in ({}, {"iterations": 300, "learning_rate": 0.2}):
        params = {**base, **changes}
        if rounds is not None:
            params["iterations"] = min(params["iterations"], rounds)
        label = f"CatBoost, {params['iterations']} rounds, lr {params['learning_rate']:g}"
        if not changes:
            label += " (production)"
        started = time.perf_counter()
        model, used = fit_model("catboost", params, s.x[s.fit], s.y[s.fit], s.x[s.val], s.y[s.val], SEED)
        fit_s = time.perf_counter() - started
        proba = _full(model, s.x[s.val_rows], n)
        for name, p in ((label, proba), (f"vote {weight:g}·[{label}] + {1 - weight:g}·forest", None)):
            p = p if p is not None else weight * proba + (1 - weight) * forest_p
            m = scores(p, s.classes, s.label_sets)
            rows.append(
                Row(
                    "catalog",
                    name,
                    m["accuracy"],
                    m["top3"],
                    m["log_loss"],
                    fit_s,
                    f"best iteration {used['best_iteration']}",
                )
            )
            print(f"catalog {name}: {rows[-1]}", flush=True)
    return rows


def catalog_rows(s: Split) -> list[Row]:
    def forest(cls: type, **params: Any) -> Callable[[np.ndarray], Any]:
        def fit(idx: np.ndarray) -> Any:
            return cls(n_jobs=2, random_state=0, **params).fit(s.x[idx], s.y[idx])

        return fit

    def compact(model: Any) -> str:
        slim = CompactForest(model, len(s.classes))
        size = len(pickle.dumps(slim, protocol=pickle.HIGHEST_PROTOCOL)) / 2**20
        row = s.x[s.val_rows[:1]]
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            slim.predict_proba(row)
            times.append(time.perf_counter() - t0)
        return f"compact artefact {size:.0f} MiB, one row {np.median(times) * 1000:.2f} ms"

    prod = DEFAULTS["catalog"]["random_forest"]
    return [
        score(
            "catalog",
            f"random forest, production ({prod['n_estimators']} trees, leaf 3, max_features 0.5)",
            s,
            forest(RandomForestClassifier, **prod),
            note=compact,
        ),
        score(
            "catalog",
            "random forest, 200 trees, leaf 1, max_features sqrt",
            s,
            forest(RandomForestClassifier, n_estimators=200, min_samples_leaf=1, max_features="sqrt"),
            note=compact,
        ),
        score(
            "catalog",
            "random forest, 200 trees, leaf 2, max_features 0.33",
            s,
            forest(RandomForestClassifier, n_estimators=200, min_samples_leaf=2, max_features=0.33),
            note=compact,
        ),
        score(
            "catalog",
            "extra trees, 300 trees, leaf 1, max_features 0.5",
            s,
            forest(ExtraTreesClassifier, n_estimators=300, min_samples_leaf=1, max_features=0.5),
        ),
        score(
            "catalog",
            "extra trees, 300 trees, leaf 2, max_features sqrt",
            s,
            forest(ExtraTreesClassifier, n_estimators=300, min_samples_leaf=2, max_features="sqrt"),
        ),
    ]


def markdown(rows: Sequence[Row], seconds: float) -> str:
    lines = [
        "# Genre model: attempts not adopted",
        "",
        "Generated by `python -m ml.experiments` (ml/experiments.py): the fit / validation groups of "
        f"`ml.training` (seed {SEED}), scored on validation with the any-label rule; test groups untouched. "
        f"Run time {seconds:.0f} s on this machine.",
        "",
        "| task | variant | val accuracy | val top-3 | val log-loss | fit s | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.task} | {r.variant} | {r.accuracy:.4f} | {r.top3:.4f} | {r.log_loss:.3f} | "
            f"{r.fit_s:.0f} | {r.note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=Path("docs/model-experiments.md"))
    parser.add_argument("--task", choices=("seed6", "catalog", "all"), default="all")
    parser.add_argument(
        "--rounds", type=int, default=None, help="cap CatBoost's boosting rounds (a rougher, quicker run)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows: list[Row] = []
    if args.task in ("seed6", "all"):
        rows += seed6_rows(split_task(load_task(args.data, "seed6")), args.rounds)
    if args.task in ("catalog", "all"):
        split = split_task(load_task(args.data, "catalog"))
        rows += catalog_boosting_rows(split, args.rounds) + catalog_rows(split)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(rows, time.perf_counter() - started), encoding="utf-8")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
