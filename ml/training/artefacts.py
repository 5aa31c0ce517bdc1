"""The production artefact: each head's model file plus meta.json (read by `ml.predictor`).

A head with a lean form (`ml.lean`: CatBoost's oblivious trees, the compact forest and votes of them)
is saved as its `<head>.lean` file alone, once its probabilities on a sample over every input's range
are found equal to the fitted model's: that file is what `serve` maps, and a pickle beside it would
only double the artefact on disk. Any other head is saved in its library's own format.
"""

from __future__ import annotations

import json
import logging
import platform
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ml.features import DISCRETE_INPUTS, FEATURE_RANGES, RAW_INPUTS, FeatureSpec, build_features
from ml.lean import FORMAT, SUFFIX, NotLean, lean_path, read_source, save_lean, source_of, to_lean, write_lean
from ml.predictor import META_FILE
from ml.training.results import ModelRun, TaskResult

log = logging.getLogger(__name__)

_MODEL_SUFFIXES = (".cbm", ".txt", ".joblib", SUFFIX)


def library_versions() -> dict[str, str]:
    import catboost
    import lightgbm
    import pandas
    import sklearn
    import xgboost

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
        "catboost": catboost.__version__,
        "lightgbm": lightgbm.__version__,
        "xgboost": xgboost.__version__,
    }


def save_artefact(result: TaskResult, out_dir: Path) -> Path:
    """Write each head's model + meta.json (+ holdout.json for the catalog); returns meta path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    heads_meta = []
    for head in result.heads:
        run = head.run
        fmt, file = save_model(run, head.name, out_dir)
        for suffix in _MODEL_SUFFIXES:  # an older training's file of this head in another format
            if head.name + suffix != file:
                (out_dir / (head.name + suffix)).unlink(missing_ok=True)
        heads_meta.append(
            {
                "name": head.name,
                "model": run.name,
                "format": fmt,
                "file": file,
                "raw_inputs": list(run.spec.raw_names()),
                "optional_inputs": list(run.spec.optional_names()),
                "feature_spec": run.spec.to_dict(),
                "feature_names": list(run.spec.names()),
                "params": run.params,
                "temperature": head.temperature,
                "metrics": {"test": head.test, "family_test": head.family_test, "validation": run.val},
                "fit_seconds": round(run.fit_seconds, 1),
                "rows_fitted": run.train_rows,
            }
        )
    created = datetime.now(UTC)
    full = result.heads[0]
    meta = {
        "task": result.task,
        "version": f"{result.task}-{_slug(result.production)}-{created:%Y%m%d%H%M%S}",
        "created_at": created.isoformat(timespec="seconds"),
        "model": result.production,
        "raw_inputs": list(RAW_INPUTS),
        "feature_names": list(full.run.spec.names()),
        "heads": heads_meta,
        "classes": list(result.classes),
        "family_of": result.family_of,
        "metrics": {"test": full.test, "family_test": full.family_test, "validation": full.run.val},
        "rows": result.n_rows,
        "data_hash": result.data_hash,
        "seed": result.seed,
        "libraries": library_versions(),
    }
    if result.analysis is not None:
        meta["analysis"] = {
            "strategy": result.analysis.strategy,
            "tried": result.analysis.tried,
            "test_patterns": result.analysis.test_patterns,
        }
    for stale in ("blend.json", "artists.npz", "tokens.npz"):
        (out_dir / stale).unlink(missing_ok=True)
    if result.meta is not None:
        result.meta.blend.save(out_dir)
        meta["metadata"] = {
            "heads": {
                h.name: {"test": h.test, "family_test": h.family_test, "validation": h.val} for h in result.meta.heads
            },
            "known_share": result.meta.known_share,
        }
    path = out_dir / META_FILE
    path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    if result.task == "catalog":
        (out_dir / "holdout.json").write_text(json.dumps(result.holdout_ids), encoding="utf-8")
    return path


def save_model(run: ModelRun, name: str, out_dir: Path) -> tuple[str, str]:
    """Write one head's fitted model; (format, file name)."""
    lean = checked_lean(run)
    if lean is not None:
        file = name + SUFFIX
        save_lean(lean, out_dir / file, {"file": file})
        return FORMAT, file
    if run.name == "catboost":
        file = f"{name}.cbm"
        run.model.save_model(str(out_dir / file))
        return "catboost", file
    if run.name == "lightgbm":
        file = f"{name}.txt"
        run.model.booster_.save_model(str(out_dir / file), num_iteration=run.model.best_iteration_ or None)
        return "lightgbm", file
    import joblib

    file = f"{name}.joblib"
    joblib.dump(run.model, out_dir / file, compress=6)  # level 6: 5 % under 3, same load time
    return "sklearn", file


def checked_lean(run: ModelRun, rows: int = 400, tolerance: float = 1e-9) -> Any | None:
    """The model's lean form when it has one and gives the model's probabilities (None otherwise)."""
    try:
        lean = to_lean(run.model)
    except NotLean:
        return None
    x = build_features(check_rows(run.spec, rows), run.spec)
    gap = float(np.abs(np.asarray(lean.predict_proba(x)) - np.asarray(run.model.predict_proba(x))).max())
    if not gap <= tolerance:
        log.warning("%s: the lean form is %.2g off the fitted model; saved in its own format", run.name, gap)
        return None
    return lean


def check_rows(spec: FeatureSpec, n: int, seed: int = 7) -> np.ndarray:
    """A fixed sample of raw input rows over each input's whole range (whole numbers where the
    input is one; the optional inputs unknown in some rows)."""
    rng = np.random.default_rng(seed)
    names = spec.raw_names()
    out = np.empty((n, len(names)))
    for j, name in enumerate(names):
        low, high = FEATURE_RANGES[name]
        out[:, j] = rng.uniform(60_000, 400_000, n) if name == "duration_ms" else rng.uniform(low, high, n)
        if name in DISCRETE_INPUTS:
            out[:, j] = np.round(out[:, j])
    for k, name in enumerate(spec.optional_names()):
        out[k :: 3 + k, names.index(name)] = np.nan
    return out


def ensure_lean(path: Path) -> list[str]:
    """Write the lean file of each head of the artefact in `path` that lacks a current one (an artefact
    trained before lean files existed); the heads written. Loads the heads' model files to do so."""
    from ml.predictor import _load_model

    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    version = str(meta.get("version", "unknown"))
    todo = [
        h
        for h in meta["heads"]
        if h["format"] != FORMAT and read_source(lean_path(path, h["file"])) != source_of(path, h, version)
    ]
    return write_lean(path, [(h, _load_model(path, h["format"], h["file"])[1]) for h in todo], version)


def _slug(name: str) -> str:
    return re.sub(r"[^\w+]+", "-", name).strip("-")
