"""Offline training of the genre models: option checks, tuning, the zoo run, the production heads.

Entry point: `train` (called by `services.models.ModelService.train`, i.e. `main.py train`).

Protocol per task (seed6, catalog), all splits by duplicate group (ml/data.py):
  1. test   = 20% of groups, stratified by genre; nothing below ever looks at it until the end.
  2. train  = the rest, split again into fit (85%) and validation (15%) groups.
  3. options (log transforms, engineered features, IQR outlier removal) are tried on validation
     and kept only when they improve validation accuracy;
  4. hyper-parameters: GridSearchCV with StratifiedGroupKFold on the fit part (seed6), or a small
     grid scored on the validation groups (catalog — one 114-class boosting fit costs minutes on
     two shared cores, so k-fold CV does not fit the 15-minute budget);
  5. every zoo model is fitted on the fit part (boosters early-stop on validation) and scored once
     on test; the production model is the better on validation of CatBoost and the soft vote
     CatBoost + random forest (its weight chosen on validation, `ml.ensemble`); its temperature is
     fitted on validation.
  6. heads for songs with fewer inputs, on the same splits: audio-only (no duration / explicit) and,
     for the catalog, the analysis head (`ml.training.analysis`: the nine values of an excerpt's
     audio analysis, duration and explicit when known).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ml.data import TASK_FILES, Dataset, EvalUnits, eval_units, grouped_folds, load_task, task_split
from ml.ensemble import SoftVote
from ml.features import RAW_INPUTS, FeatureSpec, build_features
from ml.meta_train import fit_metadata
from ml.metrics import confusion, fit_temperature, scores
from ml.predictor import apply_temperature
from ml.report import write_report
from ml.seed_cross import compare, load_cross
from ml.training.analysis import MODEL as ANALYSIS_MODEL
from ml.training.analysis import fit_analysis_head
from ml.training.artefacts import save_artefact
from ml.training.results import HeadResult, ModelRun, TaskResult
from ml.training.zoo import (
    ANALYSIS_TASKS,
    CATALOG_GRID,
    DEFAULTS,
    OPTION_PROBE,
    PROBE_ROUNDS,
    PROBE_ROWS,
    PRODUCTION_CANDIDATES,
    QUICK_MODEL,
    QUICK_SPEC,
    ROW_CAPS,
    SCALED,
    SEARCH_ROUNDS,
    SEED6_GRIDS,
    VOTE_AUDIO_HEAD,
    VOTE_MEMBERS,
    VOTE_NAME,
    VOTE_WEIGHTS,
    ZOO,
    fit_model,
    full_proba,
    iqr_mask,
    load_families,
    make_model,
    plain_catboost,
    probe_params,
    set_thread_cap,
)

log = logging.getLogger(__name__)


def _latency(model: Any, x: np.ndarray) -> tuple[float, float]:
    batch = x[:1000]
    start = time.perf_counter()
    model.predict_proba(batch)
    batch_ms = (time.perf_counter() - start) * 1000 * 1000 / len(batch)
    times = []
    for i in range(15):
        row = x[i : i + 1]
        start = time.perf_counter()
        model.predict_proba(row)
        times.append(time.perf_counter() - start)
    return batch_ms, float(np.median(times) * 1000)


def run_task(
    ds: Dataset,
    *,
    zoo: bool,
    seed: int,
    models: Sequence[str] | None = None,
    fallback: bool = True,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[str], None] = log.info,
    metadata: bool = True,
    extra_fit: tuple[np.ndarray, np.ndarray] | None = None,
) -> TaskResult:
    """One task's zoo / production model. `extra_fit`: (RAW_INPUTS rows, labels) added to every final
    fit (not to probes or searches) — the seed task's catalogue-six rows when `ml.seed_cross` keeps them."""
    started = time.perf_counter()
    task = ds.task
    classes = tuple(sorted(set(ds.labels)))
    y_all = np.searchsorted(np.asarray(classes), ds.labels)
    raw = ds.frame[list(RAW_INPUTS)].astype(float).to_numpy()
    fit_idx, val_idx, test_idx = task_split(ds.labels, ds.groups, seed)
    val_units = eval_units(ds.frame, ds.labels, ds.groups, val_idx)
    test_units = eval_units(ds.frame, ds.labels, ds.groups, test_idx)
    progress(
        f"[{task}] rows fit={len(fit_idx)} val={len(val_idx)} test={len(test_idx)} (test tracks={len(test_units.rows)})"
    )
    rng = np.random.default_rng(seed)
    defaults = {k: {**v, **(overrides or {}).get(k, {})} for k, v in DEFAULTS[task].items()}
    quick = QUICK_MODEL[task]
    names = list(models or (ZOO if zoo else (VOTE_MEMBERS if quick == VOTE_NAME else (quick,))))
    options: list[dict[str, Any]] = []
    searches: list[dict[str, Any]] = []

    def subset(name: str, idx: np.ndarray) -> np.ndarray:
        cap = ROW_CAPS.get(task, {}).get(name)
        if cap and len(idx) > cap:
            return np.sort(rng.choice(idx, cap, replace=False))
        return idx

    def trial(
        name: str, params: Mapping[str, Any], spec: FeatureSpec, iqr: bool = False, probe: bool = False
    ) -> tuple[Any, dict[str, Any], dict[str, float], float, int]:
        idx = subset(name, fit_idx)
        if probe:
            cap = PROBE_ROWS.get(task)
            if cap and len(idx) > cap:
                idx = np.sort(rng.choice(idx, cap, replace=False))
            params = probe_params(name, params, PROBE_ROUNDS.get(task))
        x_fit = build_features(raw[idx][:, _cols(spec)], spec)
        y_fit = y_all[idx]
        if iqr:
            keep = iqr_mask(x_fit, spec.names())
            x_fit, y_fit = x_fit[keep], y_fit[keep]
        if extra_fit is not None and not probe:
            x_fit = np.vstack([x_fit, build_features(extra_fit[0][:, _cols(spec)], spec)])
            y_fit = np.concatenate([y_fit, np.searchsorted(np.asarray(classes), extra_fit[1])])
        x_val = build_features(raw[val_idx][:, _cols(spec)], spec)
        t0 = time.perf_counter()
        model, used = fit_model(name, params, x_fit, y_fit, x_val, y_all[val_idx], seed)
        fit_s = time.perf_counter() - t0
        proba = full_proba(model, build_features(raw[val_units.rows][:, _cols(spec)], spec), len(classes))
        return model, used, scores(proba, classes, val_units.label_sets), fit_s, len(x_fit)

    # -- options on validation -------------------------------------------------------------
    scaled_spec = tree_spec = QUICK_SPEC[task]
    use_iqr = False
    lead = OPTION_PROBE[task]
    if zoo:
        probe = "knn"
        specs = [FeatureSpec(), FeatureSpec(log=True), FeatureSpec(log=True, extra=True)]
        probed = [trial(probe, defaults[probe], spec, probe=True)[2] for spec in specs]
        best_i = int(np.argmax([p["accuracy"] for p in probed]))
        scaled_spec = specs[best_i]
        options.append(
            {
                "option": "log transforms (scaled models, probe k-NN)",
                "without": probed[0]["accuracy"],
                "with": probed[1]["accuracy"],
                "kept": scaled_spec.log,
            }
        )
        options.append(
            {
                "option": "engineered features (scaled models, probe k-NN, with logs)",
                "without": probed[1]["accuracy"],
                "with": probed[2]["accuracy"],
                "kept": scaled_spec.extra,
            }
        )
        progress(f"[{task}] options (k-NN): {options[-2:]}")
        lead_base = trial(lead, defaults[lead], FeatureSpec(), probe=True)
        lead_extra = trial(lead, defaults[lead], FeatureSpec(extra=True), probe=True)
        tree_spec = FeatureSpec(extra=lead_extra[2]["accuracy"] > lead_base[2]["accuracy"])
        options.append(
            {
                "option": f"engineered features (trees, probe {lead})",
                "without": lead_base[2]["accuracy"],
                "with": lead_extra[2]["accuracy"],
                "kept": tree_spec.extra,
            }
        )
        reference = lead_extra if tree_spec.extra else lead_base
        lead_iqr = trial(lead, defaults[lead], tree_spec, iqr=True, probe=True)
        use_iqr = lead_iqr[2]["accuracy"] > reference[2]["accuracy"]
        options.append(
            {
                "option": f"IQR outlier removal, k=1.5 (probe {lead})",
                "without": reference[2]["accuracy"],
                "with": lead_iqr[2]["accuracy"],
                "kept": use_iqr,
                "rows_kept": lead_iqr[4],
            }
        )
        options.append(
            {
                "option": "log transforms (trees)",
                "without": 0.0,
                "with": 0.0,
                "kept": False,
                "note": "monotone transforms do not change tree splits; not tried",
            }
        )
        progress(f"[{task}] options ({lead}): {options[-3:-1]}")

    # -- hyper-parameter search ------------------------------------------------------------
    chosen = {k: dict(v) for k, v in defaults.items()}  # copies, updated by the searches
    if zoo and task == "seed6":
        for name, grid in SEED6_GRIDS.items():
            if name in names:
                chosen[name], record = _grid_search(
                    name,
                    grid,
                    chosen[name],
                    raw,
                    y_all,
                    ds,
                    fit_idx,
                    scaled_spec if name in SCALED else tree_spec,
                    seed,
                )
                searches.append(record)
                progress(f"[{task}] search {name}: {record['best_params']} ({record['seconds']:.0f}s)")
    elif zoo and task == "catalog":
        for name, candidates in CATALOG_GRID.items():
            if name not in names:
                continue
            spec = scaled_spec if name in SCALED else tree_spec
            tried = []
            for cand in candidates:
                params = {**chosen[name], **cand}
                result = trial(name, params, spec, iqr=use_iqr, probe=True)
                tried.append(
                    {
                        "params": _jsonable(cand),
                        "val_accuracy": result[2]["accuracy"],
                        "val_log_loss": result[2]["log_loss"],
                        "fit_seconds": round(result[3], 1),
                    }
                )
            best_i = int(np.argmax([t["val_accuracy"] for t in tried]))
            chosen[name] = {**chosen[name], **candidates[best_i]}
            searches.append(
                {
                    "model": name,
                    "method": "holdout grid on validation groups",
                    "tried": tried,
                    "best_params": _jsonable(candidates[best_i]),
                }
            )
            progress(f"[{task}] search {name}: {searches[-1]}")

    # -- the zoo ---------------------------------------------------------------------------
    runs: list[ModelRun] = []
    audio_future: Future[Any] | None = None
    # production only: fit the audio-only head alongside (native code releases the GIL) — except for the
    # vote, whose CatBoost member already uses both cores (measured: 1.5 s/round instead of 1.0 with
    # the forest alongside)
    pool = ThreadPoolExecutor(max_workers=1) if (fallback and not zoo and quick != VOTE_NAME) else None
    if pool is not None:
        audio_spec = FeatureSpec(log=tree_spec.log, extra=tree_spec.extra, audio_only=True)
        audio_name = VOTE_AUDIO_HEAD if quick == VOTE_NAME else names[0]
        audio_future = pool.submit(trial, audio_name, chosen[audio_name], audio_spec, False)
    for name in names:
        spec = scaled_spec if name in SCALED else tree_spec
        model, used, val_scores, fit_s, n_fit = trial(name, chosen[name], spec, iqr=use_iqr and name == lead)
        x_test = build_features(raw[test_units.rows][:, _cols(spec)], spec)
        test_scores = scores(full_proba(model, x_test, len(classes)), classes, test_units.label_sets)
        batch_ms, one_ms = _latency(model, x_test)
        runs.append(
            ModelRun(name, _jsonable(used), val_scores, test_scores, fit_s, batch_ms, one_ms, n_fit, model, spec)
        )
        progress(
            f"[{task}] {name}: val acc {val_scores['accuracy']:.4f} test acc "
            f"{test_scores['accuracy']:.4f} top3 {test_scores['top3']:.4f} fit {fit_s:.1f}s"
        )

    # -- soft-voting ensemble of the three best (validation) models ------------------------------
    if zoo and len(runs) >= 3:
        members = sorted(runs, key=lambda r: -r.val["accuracy"])[:3]
        val_p, test_p = [], []
        for r in members:
            val_p.append(
                full_proba(r.model, build_features(raw[val_units.rows][:, _cols(r.spec)], r.spec), len(classes))
            )
            test_p.append(
                full_proba(r.model, build_features(raw[test_units.rows][:, _cols(r.spec)], r.spec), len(classes))
            )
        vote = ModelRun(
            "soft_vote(" + "+".join(r.name for r in members) + ")",
            {"members": [r.name for r in members]},
            scores(np.mean(val_p, axis=0), classes, val_units.label_sets),
            scores(np.mean(test_p, axis=0), classes, test_units.label_sets),
            sum(r.fit_seconds for r in members),
            sum(r.predict_ms_1000 for r in members),
            sum(r.predict_ms_one for r in members),
            max(r.train_rows for r in members),
        )
        runs.append(vote)
        progress(f"[{task}] {vote.name}: val acc {vote.val['accuracy']:.4f} test acc {vote.test['accuracy']:.4f}")

    # -- the production soft vote: CatBoost + random forest, weight chosen on validation ----------
    by_name = {r.name: r for r in runs}
    if all(m in by_name for m in VOTE_MEMBERS):
        vote_run, tried = _vote([by_name[m] for m in VOTE_MEMBERS], raw, val_units, test_units, classes)
        runs.append(vote_run)
        searches.append(
            {
                "model": VOTE_NAME,
                "method": "CatBoost weight chosen on validation groups",
                "tried": tried,
                "best_params": {"weights": vote_run.params["weights"]},
            }
        )
        progress(
            f"[{task}] {vote_run.name}: weights {vote_run.params['weights']} val acc "
            f"{vote_run.val['accuracy']:.4f} test acc {vote_run.test['accuracy']:.4f} "
            f"one-row {vote_run.predict_ms_one:.2f} ms"
        )

    # -- production choice: best validation accuracy among fast candidates -------------------
    eligible = [r for r in runs if r.name in PRODUCTION_CANDIDATES[task] and r.model is not None] or runs
    prod = max(eligible, key=lambda r: (r.val["accuracy"], -r.val["log_loss"]))
    family_of = load_families(classes)
    heads = [_calibrate(prod, "full", raw, val_units, test_units, classes, family_of)]
    if fallback:
        audio_spec = FeatureSpec(log=prod.spec.log, extra=prod.spec.extra, audio_only=True)
        audio_name = VOTE_AUDIO_HEAD if prod.name == VOTE_NAME else prod.name
        if audio_future is not None and audio_name == (VOTE_AUDIO_HEAD if quick == VOTE_NAME else names[0]):
            model, used, val_scores, fit_s, n_fit = audio_future.result()
        else:
            params = {k: v for k, v in by_name[audio_name].params.items() if k != "best_iteration"}
            model, used, val_scores, fit_s, n_fit = trial(
                audio_name, params, audio_spec, iqr=use_iqr and audio_name == lead
            )
        audio_run = ModelRun(audio_name, _jsonable(used), val_scores, {}, fit_s, 0.0, 0.0, n_fit, model, audio_spec)
        heads.append(_calibrate(audio_run, "audio_only", raw, val_units, test_units, classes, family_of))
    analysis = None
    if fallback and task in ANALYSIS_TASKS:
        analysis = fit_analysis_head(
            raw,
            y_all,
            fit_idx,
            val_idx,
            val_units,
            test_units,
            classes,
            lambda p, sets: _family_scores(p, classes, family_of, sets),
            params={k: v for k, v in chosen[ANALYSIS_MODEL].items() if k != "best_iteration"},
            base_spec=prod.spec,
            seed=seed,
            compare=zoo,
            progress=progress,
        )
        heads.append(analysis.head)
    if pool is not None:
        pool.shutdown()
    for head in heads:
        progress(
            f"[{task}] production {prod.name} head {head.name} T={head.temperature:.3f}: "
            f"{head.test} families {head.family_test}"
        )
    full = heads[0]
    meta_result = None
    if metadata and "artists" in ds.frame and "track_name" in ds.frame:
        variants = {}
        if prod.name == VOTE_NAME and "catboost" in by_name:
            cb = by_name["catboost"]
            variants["catboost alone (no forest)"] = (cb.model, _cols(cb.spec), cb.spec)
        meta_result = fit_metadata(
            ds,
            full.run.model,
            _cols(full.run.spec),
            full.run.spec,
            full.temperature,
            classes,
            family_of,
            seed,
            variant_models=variants,
            other_audio=({"analysis": (analysis.val_proba, analysis.test_proba)} if analysis is not None else None),
            progress=progress,
        )
    x_val_prod = build_features(raw[val_units.rows][:, _cols(prod.spec)], prod.spec)
    holdout_ids = sorted(set(ds.frame["track_id"].iloc[test_idx].astype(str)))
    return TaskResult(
        task=task,
        data_hash=ds.data_hash,
        classes=classes,
        runs=runs,
        production=prod.name,
        temperature=full.temperature,
        production_test=full.test,
        family_test=full.family_test,
        options=options,
        searches=searches,
        confusion=full.confusion,
        importance=_importance(prod, x_val_prod, y_all[val_units.rows], classes, seed),
        holdout_ids=holdout_ids,
        family_of=family_of,
        n_rows={
            "fit": len(fit_idx),
            "val": len(val_idx),
            "test": len(test_idx),
            "test_tracks": len(test_units.rows),
            **({"extra_fit": len(extra_fit[1])} if extra_fit is not None else {}),
        },
        seconds=time.perf_counter() - started,
        heads=heads,
        seed=seed,
        meta=meta_result,
        analysis=analysis,
    )


def _vote(
    members: Sequence[ModelRun], raw: np.ndarray, val_units: EvalUnits, test_units: EvalUnits, classes: Sequence[str]
) -> tuple[ModelRun, list[dict[str, Any]]]:
    """Soft vote of `members` (same feature spec); the first member's weight is chosen on validation."""
    spec = members[0].spec
    x_val = build_features(raw[val_units.rows][:, _cols(spec)], spec)
    val_p = [full_proba(r.model, x_val, len(classes)) for r in members]
    tried: list[dict[str, Any]] = []
    measured: list[tuple[float, float, list[float]]] = []
    for w in VOTE_WEIGHTS:
        s = scores(w * val_p[0] + (1 - w) * val_p[1], classes, val_units.label_sets)
        pair = [w, round(1 - w, 2)]
        measured.append((s["accuracy"], -s["log_loss"], pair))
        tried.append({"params": {"weights": pair}, "val_accuracy": s["accuracy"], "val_log_loss": s["log_loss"]})
    weights = max(measured, key=lambda m: (m[0], m[1]))[2]
    model = SoftVote([r.model for r in members], weights, len(classes), [r.name for r in members])
    val_scores = scores(model.predict_proba(x_val), classes, val_units.label_sets)
    x_test = build_features(raw[test_units.rows][:, _cols(spec)], spec)
    test_scores = scores(full_proba(model, x_test, len(classes)), classes, test_units.label_sets)
    batch_ms, one_ms = _latency(model, x_test)
    params = {"members": [r.name for r in members], "weights": weights, **{r.name: r.params for r in members}}
    return ModelRun(
        VOTE_NAME,
        _jsonable(params),
        val_scores,
        test_scores,
        sum(r.fit_seconds for r in members),
        batch_ms,
        one_ms,
        max(r.train_rows for r in members),
        model,
        spec,
    ), tried


def _cols(spec: FeatureSpec) -> list[int]:
    """Columns of the RAW_INPUTS matrix that `spec` reads."""
    return [RAW_INPUTS.index(n) for n in spec.raw_names()]


def _calibrate(
    run: ModelRun,
    name: str,
    raw: np.ndarray,
    val_units: EvalUnits,
    test_units: EvalUnits,
    classes: Sequence[str],
    family_of: Mapping[str, str],
) -> HeadResult:
    """Fit the head's temperature on validation, then score it once on test."""
    x_val = build_features(raw[val_units.rows][:, _cols(run.spec)], run.spec)
    temperature = fit_temperature(full_proba(run.model, x_val, len(classes)), classes, val_units.label_sets)
    x_test = build_features(raw[test_units.rows][:, _cols(run.spec)], run.spec)
    proba = apply_temperature(full_proba(run.model, x_test, len(classes)), temperature)
    return HeadResult(
        name,
        run,
        temperature,
        scores(proba, classes, test_units.label_sets),
        _family_scores(proba, classes, family_of, test_units.label_sets),
        confusion(proba, classes, test_units.label_sets),
    )


def _family_scores(
    proba: np.ndarray, classes: Sequence[str], family_of: Mapping[str, str], label_sets: Sequence[frozenset[str]]
) -> dict[str, float]:
    families = sorted(set(family_of.values()))
    matrix = np.zeros((len(classes), len(families)))
    for i, c in enumerate(classes):
        matrix[i, families.index(family_of[c])] = 1.0
    fam_sets = [frozenset(family_of.get(g, g) for g in s) for s in label_sets]
    return scores(proba @ matrix, families, fam_sets)


def _grid_search(
    name: str,
    grid: Mapping[str, list[Any]],
    base: Mapping[str, Any],
    raw: np.ndarray,
    y_all: np.ndarray,
    ds: Dataset,
    fit_idx: np.ndarray,
    spec: FeatureSpec,
    seed: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """GridSearchCV over grouped 3-fold CV of the fit part (boosters with a capped, fixed budget)."""
    from sklearn.model_selection import GridSearchCV

    params = {**base, **SEARCH_ROUNDS.get(name, {})}
    estimator = make_model(name, params, seed, threads=1) if name != "catboost" else plain_catboost(params, seed)
    prefix = "mlpclassifier__" if name == "mlp" else ""
    folds = grouped_folds(ds.labels[fit_idx], ds.groups[fit_idx], 3, seed)
    search = GridSearchCV(
        estimator, {prefix + k: v for k, v in grid.items()}, cv=folds, scoring="neg_log_loss", n_jobs=2, refit=False
    )
    t0 = time.perf_counter()
    search.fit(build_features(raw[fit_idx], spec), y_all[fit_idx])
    best = {k.removeprefix(prefix): v for k, v in search.best_params_.items()}
    record = {
        "model": name,
        "method": "GridSearchCV, StratifiedGroupKFold(3) on the fit part, neg_log_loss",
        "grid": _jsonable(grid),
        "best_params": _jsonable(best),
        "best_cv_log_loss": float(-search.best_score_),
        "seconds": time.perf_counter() - t0,
    }
    return {**base, **best}, record


def _importance(
    run: ModelRun, x_val: np.ndarray, y_val: np.ndarray, classes: Sequence[str], seed: int
) -> dict[str, float]:
    """Permutation importance (drop in validation accuracy), model-agnostic."""
    rng = np.random.default_rng(seed)
    n = min(3000, len(x_val))
    pick = rng.choice(len(x_val), n, replace=False)
    x, y = x_val[pick], y_val[pick]
    base = float((full_proba(run.model, x, len(classes)).argmax(axis=1) == y).mean())
    out = {}
    for j, name in enumerate(run.spec.names()):
        shuffled = x.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        out[name] = base - float((full_proba(run.model, shuffled, len(classes)).argmax(axis=1) == y).mean())
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def train(
    data_dir: Path,
    models_path: Path,
    *,
    tasks: Sequence[str] = ("seed6", "catalog"),
    zoo: bool = True,
    seed: int = 42,
    reports_dir: Path | None = None,
    docs_dir: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    cross_dataset: bool = True,
    threads: int | None = None,
) -> list[TaskResult]:
    """Train each task, write artefacts and (with a reports dir) the report. Returns the results.

    For seed6, `cross_dataset` first compares training on the seed file, the catalogue's six genres or
    both (`ml.seed_cross`) and trains the artefact on the data that generalised best on validation."""
    set_thread_cap(threads)
    results = []
    started = time.perf_counter()
    for task in tasks:
        ds = load_task(data_dir, task)
        cross = None
        with threadpool_limits(1):  # two shared cores: one thread per fit beats oversubscription
            if task == "seed6" and cross_dataset and (Path(data_dir) / "raw" / TASK_FILES["catalog"]).exists():
                params = {k: {**v, **(overrides or {}).get(k, {})} for k, v in DEFAULTS["seed6"].items()}
                cross = compare(
                    load_cross(ds, load_task(data_dir, "catalog"), seed),
                    params,
                    QUICK_SPEC["seed6"],
                    seed,
                    progress=log.info,
                )
            result = run_task(
                ds, zoo=zoo, seed=seed, overrides=overrides, extra_fit=cross.extra_rows if cross is not None else None
            )
            result.cross = cross
        save_artefact(result, models_path / task)
        results.append(result)
    total = time.perf_counter() - started
    if reports_dir is not None:
        run_dir = reports_dir / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        write_report(results, run_dir, total_seconds=total, seed=seed, zoo=zoo, threads=threads)
        if docs_dir is not None:
            write_report(
                results, docs_dir, total_seconds=total, seed=seed, zoo=zoo, name="model-report.md", threads=threads
            )
    return results
