"""The genre models as a use case: train them (`main.py train`, `main.py setup`) and predict a table
of songs (`main.py predict`). The CLI parses and prints; this decides, reads and writes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ml.features import FeatureError
from ml.pipeline.datasets import read_dataset
from ml.predictor import META_FILE, GenrePredictor
from services.errors import EncoreError

TASKS = ("seed6", "catalog")


class ModelMissing(EncoreError):
    code = "model_missing"


class DatasetMissing(EncoreError):
    code = "dataset_missing"


class TableRefused(EncoreError):
    """The table to predict could not be read, or its values are not usable (the message says which)."""

    code = "table_refused"


@dataclass(frozen=True)
class Trained:
    task: str
    production: str
    accuracy: float
    top3: float
    path: Path


@dataclass(frozen=True)
class TrainingRun:
    trained: list[Trained] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already trained (if_missing)
    seconds: float = 0.0


@dataclass(frozen=True)
class Predicted:
    rows: int
    output: Path
    model_version: str
    heads: dict[str, int]


class ModelService:
    """`data_dir`: the datasets (<data_dir>/raw); `models_path`: one folder per task; `docs_dir`:
    where `publish` writes the report (docs/)."""

    def __init__(self, data_dir: Path, models_path: Path, *, docs_dir: Path) -> None:
        self._data_dir = data_dir
        self._models_path = models_path
        self._docs_dir = docs_dir

    def path(self, task: str) -> Path:
        return self._models_path / task

    def exists(self, task: str) -> bool:
        return (self.path(task) / META_FILE).exists()

    def train(
        self,
        tasks: Sequence[str] = TASKS,
        *,
        zoo: bool = True,
        seed: int = 42,
        reports_dir: Path | None = None,
        publish: bool = False,
        threads: int | None = None,
        cross_dataset: bool = True,
        if_missing: bool = False,
    ) -> TrainingRun:
        """Train (blocking: minutes; run it in a worker thread from async code)."""
        from ml.training.pipeline import train

        skipped = [t for t in tasks if if_missing and self.exists(t)]
        todo = tuple(t for t in tasks if t not in skipped)
        if not todo:
            return TrainingRun(skipped=skipped)
        started = time.perf_counter()
        try:
            results = train(
                self._data_dir,
                self._models_path,
                tasks=todo,
                zoo=zoo,
                seed=seed,
                reports_dir=reports_dir,
                docs_dir=self._docs_dir if publish else None,
                threads=threads,
                cross_dataset=cross_dataset,
            )
        except FileNotFoundError as exc:
            raise DatasetMissing(f"{exc} (run `python main.py data` first)") from exc
        trained = [
            Trained(
                task=r.task,
                production=r.production,
                accuracy=float(r.production_test["accuracy"]),
                top3=float(r.production_test["top3"]),
                path=self.path(r.task),
            )
            for r in results
        ]
        return TrainingRun(trained=trained, skipped=skipped, seconds=time.perf_counter() - started)

    def predict_table(
        self, source: Path, output: Path, *, task: str = "catalog", audio_only: bool = False
    ) -> Predicted:
        """Predict every row of the CSV `source` into the CSV `output` (see `ml.batch.predict_frame`)."""
        import pandas as pd  # here: `serve` imports this module (the CLI's parser) but never pandas

        from ml.batch import predict_frame
        from ml.data import LABEL_COLUMNS

        if not self.exists(task):
            raise ModelMissing(f"no {task} model at {self.path(task)} (run `python main.py train --task {task}`)")
        try:
            frame = read_dataset(source)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise TableRefused(f"cannot read {source}: {exc}") from exc
        predictor = GenrePredictor.load(self.path(task))
        try:
            out = predict_frame(predictor, frame, LABEL_COLUMNS[task], audio_only=audio_only)
        except FeatureError as exc:
            raise TableRefused(f"refused {source}: {exc} (row numbers count data rows from 0)") from exc
        output.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(output, index=False)
        heads = {str(k): int(v) for k, v in out["head"].value_counts().items()}
        return Predicted(rows=len(out), output=output, model_version=predictor.version, heads=heads)
