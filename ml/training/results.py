"""What a training run returns: one ModelRun per fitted model, the calibrated heads, the task result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.features import FeatureSpec

if TYPE_CHECKING:
    from ml.meta_train import MetaResult
    from ml.seed_cross import CrossResult


@dataclass
class ModelRun:
    name: str
    params: dict[str, Any]
    val: dict[str, float]
    test: dict[str, float]
    fit_seconds: float
    predict_ms_1000: float  # batch of 1,000 rows
    predict_ms_one: float  # median one-row call
    train_rows: int
    model: Any = field(repr=False, default=None)
    spec: FeatureSpec = field(default_factory=FeatureSpec)


@dataclass
class TaskResult:
    task: str
    data_hash: str
    classes: tuple[str, ...]
    runs: list[ModelRun]
    production: str
    temperature: float
    production_test: dict[str, float]
    family_test: dict[str, float]
    options: list[dict[str, Any]]
    searches: list[dict[str, Any]]
    confusion: np.ndarray
    importance: dict[str, float]
    holdout_ids: list[str]
    family_of: dict[str, str]
    n_rows: dict[str, int]
    seconds: float
    heads: list[HeadResult] = field(default_factory=list)
    seed: int = 0
    meta: MetaResult | None = None  # the artist / title heads (catalog only)
    cross: CrossResult | None = None  # the six-genre benchmark across datasets (seed6 only)
    analysis: AnalysisOutcome | None = None  # the analysis head's choice and per-pattern scores (catalog)


@dataclass
class HeadResult:
    name: str
    run: ModelRun
    temperature: float
    test: dict[str, float]
    family_test: dict[str, float]
    confusion: np.ndarray


@dataclass
class AnalysisOutcome:
    """The analysis head (`ml.training.analysis`): the head, the strategy kept and what was tried."""

    head: HeadResult
    strategy: str
    tried: list[dict[str, Any]]  # per strategy: validation accuracy per pattern and the mean
    test_patterns: dict[str, dict[str, dict[str, float]]]  # pattern → {"test": …, "family_test": …}
    val_proba: np.ndarray  # calibrated, validation tracks, "both known" (the metadata blend's check)
    test_proba: np.ndarray  # calibrated, test tracks, "both known"
