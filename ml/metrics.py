"""Metrics for multi-label "right when any" evaluation (see ml/data.py for the evaluation unit).

- accuracy: top-1 prediction is in the track's label set
- top3: any of the three most probable genres is in the label set
- macro_f1: per-class F1 where each track's true label is the prediction when that is in its
  set, otherwise its set's first label (alphabetical) — the usual single-label reduction
- log_loss: mean of -log(sum of the probabilities of the track's labels), clipped at 1e-15
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score


def reduce_labels(pred: np.ndarray, label_sets: Sequence[frozenset[str]]) -> np.ndarray:
    return np.array([p if p in s else min(s) for p, s in zip(pred, label_sets, strict=True)], dtype=object)


def scores(proba: np.ndarray, classes: Sequence[str], label_sets: Sequence[frozenset[str]]) -> dict[str, float]:
    classes_arr = np.asarray(classes, dtype=object)
    order = np.argsort(-proba, axis=1)[:, :3]
    pred = classes_arr[order[:, 0]]
    top1 = np.array([p in s for p, s in zip(pred, label_sets, strict=True)])
    top3 = np.array([any(classes_arr[k] in s for k in row) for row, s in zip(order, label_sets, strict=True)])
    index = {c: i for i, c in enumerate(classes)}
    true_mass = np.array([sum(proba[i, index[c]] for c in s if c in index) for i, s in enumerate(label_sets)])
    truth = reduce_labels(pred, label_sets)
    return {
        "accuracy": float(top1.mean()),
        "top3": float(top3.mean()),
        "macro_f1": float(f1_score(truth, pred, average="macro", labels=list(classes), zero_division=0)),
        "log_loss": float(-np.log(np.clip(true_mass, 1e-15, 1.0)).mean()),
    }


def confusion(proba: np.ndarray, classes: Sequence[str], label_sets: Sequence[frozenset[str]]) -> np.ndarray:
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    truth = reduce_labels(pred, label_sets)
    return confusion_matrix(truth, pred, labels=list(classes), normalize="true")


def fit_temperature(
    proba: np.ndarray, classes: Sequence[str], label_sets: Sequence[frozenset[str]], upper: float = 3.0
) -> float:
    """The temperature T (softmax(log p / T)) that minimises validation log-loss, by grid + refine
    (grid 0.4 … `upper`, log-spaced; the refinement reaches 15 % beyond it)."""
    from ml.predictor import apply_temperature

    def loss(t: float) -> float:
        return scores(apply_temperature(proba, t), classes, label_sets)["log_loss"]

    grid = np.exp(np.linspace(np.log(0.4), np.log(upper), 15))
    best = min(grid, key=loss)
    fine = np.linspace(best * 0.85, best * 1.15, 7)
    return float(min(fine, key=loss))
