"""The analysis head: genre from what an audio analysis of a 30-second excerpt gives.

ReccoBeats' analysis answers nine values (`ml.features.ANALYSIS_VALUES`: no key, mode or time
signature); duration and the explicit flag come with the song when it was found on Deezer, duration
alone with a recording someone sent, sometimes neither. The head reads `ANALYSIS_INPUTS` with those
two allowed to be unknown, on the production model's splits (same fit / validation / test groups).

Ways of handling the unknown inputs, compared on validation by the zoo run (the quick run uses
`ANALYSIS_STRATEGY`, what the last zoo run chose), at the same artefact budget (the same number of
trees in all):
  * "masked (p=…)": one forest fitted on the fit rows with duration and explicit each hidden at
    random with that probability (seeded), so it learns every pattern;
  * "two variants": a forest on the complete rows and one with both hidden (`ml.ensemble.ByKnownInputs`
    routes each row), each with half the trees.
The choice is the best mean validation accuracy over the two patterns the product sends
(`CHOICE_PATTERNS`: "both known" — a song found on Deezer — and "duration only" — a recording sent to
the bot); all four patterns are reported. The temperature is fitted on validation (grid up to `T_MAX`) over the four
patterns stacked; the test groups are scored once per pattern. The head's headline test figures are
for "both known".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ml.data import EvalUnits
from ml.ensemble import ByKnownInputs
from ml.features import ANALYSIS_INPUTS, MISSING, OPTIONAL_INPUTS, RAW_INPUTS, FeatureSpec, build_features
from ml.metrics import confusion, fit_temperature, scores
from ml.predictor import apply_temperature
from ml.training.results import AnalysisOutcome, HeadResult, ModelRun
from ml.training.zoo import fit_model, full_proba

HEAD_NAME = "analysis"
MODEL = "random_forest"  # the audio-only head's model: fits in the product-model budget, compact on disk
# name → chance that each of duration / explicit is hidden in a fit row (None: two variants)
STRATEGIES: dict[str, float | None] = {"masked (p=0.2)": 0.2, "masked (p=0.5)": 0.5, "two variants": None}
ANALYSIS_STRATEGY = "masked (p=0.2)"  # what the last zoo run chose on validation (docs/model-report.md)
# Which optional inputs are unknown, per pattern (duration, explicit).
PATTERNS: dict[str, tuple[bool, bool]] = {
    "both known": (False, False),
    "duration only": (False, True),
    "explicit only": (True, False),
    "neither": (True, True),
}
# The forest's leaves keep 8 classes each, so its probabilities are far too sharp: the validation optimum
# of the temperature lies beyond the other heads' grid (0.4 … 3.0, refined to 3.45; the audio-only
# forest head sits at that edge), so this head's grid reaches further.
T_MAX = 20.0
HEADLINE_PATTERN = "both known"
CHOICE_PATTERNS: tuple[str, ...] = ("both known", "duration only")
_COLS = [RAW_INPUTS.index(n) for n in ANALYSIS_INPUTS]
_OPTIONAL = [ANALYSIS_INPUTS.index(n) for n in OPTIONAL_INPUTS]


def hide(x: np.ndarray, duration: bool, explicit: bool) -> np.ndarray:
    """ANALYSIS_INPUTS rows with duration and/or explicit made unknown (NaN)."""
    out = x.copy()
    if duration:
        out[:, _OPTIONAL[0]] = np.nan
    if explicit:
        out[:, _OPTIONAL[1]] = np.nan
    return out


def optional_feature_cols(spec: FeatureSpec) -> list[int]:
    names = spec.names()
    return [i for i, n in enumerate(names) if n.removeprefix("log_") in OPTIONAL_INPUTS or n == "speech_x_explicit"]


def _halve(params: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(params)
    out["n_estimators"] = max(1, int(out.get("n_estimators", 100)) // 2)
    return out


def fit_strategy(
    strategy: str,
    params: Mapping[str, Any],
    spec: FeatureSpec,
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    seed: int,
) -> Any:
    """A fitted model of the analysis head (x_*: ANALYSIS_INPUTS rows, all known)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    mask_p = STRATEGIES[strategy]
    if mask_p is not None:
        rng = np.random.default_rng(seed)
        masked = hide(x_fit, False, False)
        masked[rng.random(len(x_fit)) < mask_p, _OPTIONAL[0]] = np.nan
        masked[rng.random(len(x_fit)) < mask_p, _OPTIONAL[1]] = np.nan
        model, _ = fit_model(
            MODEL, params, build_features(masked, spec), y_fit, build_features(x_val, spec), y_val, seed
        )
        return model
    half = _halve(params)
    complete, _ = fit_model(MODEL, half, build_features(x_fit, spec), y_fit, build_features(x_val, spec), y_val, seed)
    partial, _ = fit_model(
        MODEL,
        half,
        build_features(hide(x_fit, True, True), spec),
        y_fit,
        build_features(hide(x_val, True, True), spec),
        y_val,
        seed,
    )
    return ByKnownInputs(complete, partial, optional_feature_cols(spec), n_classes, MISSING)


def fit_analysis_head(
    raw: np.ndarray,
    y_all: np.ndarray,
    fit_idx: np.ndarray,
    val_idx: np.ndarray,
    val_units: EvalUnits,
    test_units: EvalUnits,
    classes: Sequence[str],
    family_scores: Callable[[np.ndarray, Sequence[frozenset[str]]], dict[str, float]],
    *,
    params: Mapping[str, Any],
    base_spec: FeatureSpec,
    seed: int,
    compare: bool,
    progress: Callable[[str], None] = print,
) -> AnalysisOutcome:
    """Fit, choose (with `compare`), calibrate and score the analysis head (see the module docstring).

    `raw`: RAW_INPUTS rows of the whole task; `family_scores(proba, label_sets)`: the task's family metrics."""
    import time

    spec = FeatureSpec(log=base_spec.log, extra=base_spec.extra, analysis=True)
    n = len(classes)
    x = raw[:, _COLS]
    x_fit, x_val = x[fit_idx], x[val_idx]
    x_vu, x_tu = x[val_units.rows], x[test_units.rows]

    def proba(model: Any, rows: np.ndarray, pattern: tuple[bool, bool]) -> np.ndarray:
        return full_proba(model, build_features(hide(rows, *pattern), spec), n)

    tried: list[dict[str, Any]] = []
    fitted: dict[str, tuple[Any, float]] = {}
    for strategy in STRATEGIES if compare else (ANALYSIS_STRATEGY,):
        started = time.perf_counter()
        model = fit_strategy(strategy, params, spec, x_fit, y_all[fit_idx], x_val, y_all[val_idx], n, seed)
        fit_s = time.perf_counter() - started
        per = {k: scores(proba(model, x_vu, p), classes, val_units.label_sets)["accuracy"] for k, p in PATTERNS.items()}
        mean = float(np.mean([per[k] for k in CHOICE_PATTERNS]))
        tried.append({"strategy": strategy, "val_accuracy": per, "mean": mean, "fit_seconds": round(fit_s, 1)})
        fitted[strategy] = (model, fit_s)
        progress(f"[analysis] {strategy}: val acc {per} mean {mean:.4f} (fit {fit_s:.0f} s)")
    strategy = max(tried, key=lambda t: t["mean"])["strategy"]
    model, fit_s = fitted[strategy]

    # temperature on validation, the four patterns stacked
    stacked = np.vstack([proba(model, x_vu, p) for p in PATTERNS.values()])
    temperature = fit_temperature(stacked, classes, tuple(val_units.label_sets) * len(PATTERNS), upper=T_MAX)
    test_patterns: dict[str, dict[str, dict[str, float]]] = {}
    test_proba = np.zeros((0, n))
    for key, pattern in PATTERNS.items():
        p = apply_temperature(proba(model, x_tu, pattern), temperature)
        test_patterns[key] = {
            "test": scores(p, classes, test_units.label_sets),
            "family_test": family_scores(p, test_units.label_sets),
        }
        if key == HEADLINE_PATTERN:
            test_proba = p
    val_proba = apply_temperature(proba(model, x_vu, PATTERNS[HEADLINE_PATTERN]), temperature)
    used = {**dict(params), "strategy": strategy}
    if STRATEGIES[strategy] is None:
        used["n_estimators"] = f"{_halve(params)['n_estimators']} + {_halve(params)['n_estimators']}"
    val = scores(val_proba, classes, val_units.label_sets)
    run = ModelRun(MODEL, used, val, {}, fit_s, 0.0, 0.0, len(fit_idx), model, spec)
    headline = test_patterns[HEADLINE_PATTERN]
    head = HeadResult(
        HEAD_NAME,
        run,
        temperature,
        headline["test"],
        headline["family_test"],
        confusion(test_proba, classes, test_units.label_sets),
    )
    return AnalysisOutcome(head, strategy, tried, test_patterns, val_proba, test_proba)
