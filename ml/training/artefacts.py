"""The production artefact: each head's model file plus meta.json (read by `ml.predictor`)."""

from __future__ import annotations

import json
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ml.features import RAW_INPUTS
from ml.lean import lean_path, read_source, source_of, write_lean
from ml.predictor import META_FILE
from ml.training.results import TaskResult


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
        if run.name == "catboost":
            fmt, file = "catboost", f"{head.name}.cbm"
            run.model.save_model(str(out_dir / file))
        elif run.name == "lightgbm":
            fmt, file = "lightgbm", f"{head.name}.txt"
            run.model.booster_.save_model(str(out_dir / file), num_iteration=run.model.best_iteration_ or None)
        else:
            import joblib

            fmt, file = "sklearn", f"{head.name}.joblib"
            joblib.dump(run.model, out_dir / file, compress=6)  # level 6: 5 % under 3, same load time
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
    # The heads as plain arrays (what `serve` maps: no catboost / scikit-learn in the serving process).
    write_lean(
        out_dir, [(h, head.run.model) for h, head in zip(heads_meta, result.heads, strict=True)], str(meta["version"])
    )
    if result.task == "catalog":
        (out_dir / "holdout.json").write_text(json.dumps(result.holdout_ids), encoding="utf-8")
    return path


def ensure_lean(path: Path) -> list[str]:
    """Write the lean file of each head of the artefact in `path` that lacks a current one (an artefact
    trained before lean files existed); the heads written. Loads the heads' model files to do so."""
    from ml.predictor import _load_model

    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    version = str(meta.get("version", "unknown"))
    todo = [h for h in meta["heads"] if read_source(lean_path(path, h["file"])) != source_of(path, h, version)]
    return write_lean(path, [(h, _load_model(path, h["format"], h["file"])[1]) for h in todo], version)


def _slug(name: str) -> str:
    return re.sub(r"[^\w+]+", "-", name).strip("-")
