"""The recommender's offline evaluation as a use case: the dataset file, the product genre model and
its held-out groups, run through `ml.recsys.evaluation` (`main.py evaluate-recs`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml.predictor import GenrePredictor, ProbaModel, routed_proba
from services.errors import EncoreError

if TYPE_CHECKING:  # pandas and the evaluation load only when an evaluation runs (not in the server)
    import pandas as pd

    from ml.recsys.evaluation import Report


class EvaluationUnavailable(EncoreError):
    code = "evaluation_unavailable"


class RecommenderEvaluation:
    """`dataset`: the 114-genre file; `model`: loads the product model (None: evaluate without one);
    `holdout`: the model's held-out track ids (seeds come from them)."""

    def __init__(self, dataset: Path, *, model: Callable[[], ProbaModel | None], holdout: Path | None) -> None:
        self._dataset = dataset
        self._model = model
        self._holdout = holdout

    async def run(
        self,
        *,
        seeds: int = 1000,
        validation: int = 500,
        use_model: bool = True,
        with_artists: bool = True,
        progress: Callable[[str], None] = lambda _m: None,
    ) -> Report:
        """`with_artists`: also score the seeds given with their artists and title (the model's metadata
        heads), next to features only."""
        if not self._dataset.exists():
            raise EvaluationUnavailable(f"{self._dataset} is missing: run `python main.py data`")
        return await asyncio.to_thread(self._run, seeds, validation, use_model, with_artists, progress)

    def _run(
        self, seeds: int, validation: int, use_model: bool, with_artists: bool, progress: Callable[[str], None]
    ) -> Report:
        from ml.recsys.evaluation import SeedSetting, run_evaluation
        from ml.recsys.meta_eval import artist_settings

        model = self._model() if use_model else None
        proba_fn: Callable[[pd.DataFrame], np.ndarray] | None = None
        if model is not None:
            names = model.raw_inputs

            def proba_fn(frame: pd.DataFrame) -> np.ndarray:
                matrix = np.column_stack(
                    [frame[c].to_numpy(dtype=np.float64) if c in frame else np.full(len(frame), np.nan) for c in names]
                )
                return routed_proba(model, matrix)

        # Seeds given with their artists and title too (the product's seed path), when the model has
        # metadata heads; genre families for the family-agreement column.
        settings: dict[str, SeedSetting] = {}
        family_of: dict[str, str] | None = None
        if isinstance(model, GenrePredictor):
            settings = artist_settings(model) if with_artists else {}
            family_of = {c: model.family_of(c) for c in model.classes}
        return run_evaluation(
            self._dataset,
            holdout=self._holdout if model is not None else None,
            proba_fn=proba_fn,
            proba_classes=model.classes if model is not None else None,
            n_test=seeds,
            n_validation=validation,
            progress=progress,
            seed_settings=settings,
            family_of=family_of,
        )
