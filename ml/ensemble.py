"""Small, picklable model wrappers the production artefact can hold (saved with joblib).

* `CompactForest` — a fitted scikit-learn random forest / extra-trees turned into flat numpy arrays
  (each leaf keeps its `top_k` classes; the trees keep only their split structure). scikit-learn's
  forest `predict_proba` validates input and dispatches per tree through joblib, ~10 ms for one row
  with 100 trees; calling each slim tree's Cython `apply` directly costs a few microseconds per tree,
  and dropping the node × 114-class value table makes the artefact a fraction of the pickled forest.
* `SoftVote` — weighted mean of members' probabilities over a fixed class index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class CompactForest:
    """Flat, vectorised copy of a fitted sklearn forest classifier (`predict_proba` only)."""

    def __init__(self, forest: Any, n_classes: int, top_k: int = 8) -> None:
        slots = []
        leaf_cls, leaf_p = [], []
        offset = n_leaves = 0
        depth = 0
        classes = np.asarray(forest.classes_, dtype=int)
        for est in forest.estimators_:
            t = est.tree_
            n = t.node_count
            leaf = t.children_left == -1
            slot = np.full(n, -1, dtype=np.int64)
            slot[leaf] = np.arange(leaf.sum()) + n_leaves
            slots.append(slot)
            values = t.value[leaf][:, 0, :].astype(np.float64)
            values /= np.clip(values.sum(axis=1, keepdims=True), 1e-12, None)
            k = min(top_k, values.shape[1])
            top = np.argsort(-values, axis=1)[:, :k]
            p = np.take_along_axis(values, top, axis=1)
            p /= np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
            leaf_cls.append(classes[top].astype(np.uint8 if n_classes <= 255 else np.int16))
            leaf_p.append(p.astype(np.float16))  # ample for a vote; a third of float64 on disk
            offset += n
            n_leaves += int(leaf.sum())
            depth = max(depth, int(est.get_depth()))
        self.leaf_slot = np.concatenate(slots).astype(np.int32)
        self.leaf_cls = np.concatenate(leaf_cls)
        self.leaf_p = np.concatenate(leaf_p)
        self.roots = np.cumsum([0] + [e.tree_.node_count for e in forest.estimators_[:-1]]).astype(np.int32)
        self.depth = depth
        self.trees = [_slim_tree(e.tree_) for e in forest.estimators_]
        self.n_classes = n_classes
        self.classes_ = np.arange(n_classes)

    # --- compact pickling: the artefact keeps 9 bytes per node instead of sklearn's 72 ------------

    def __getstate__(self) -> dict[str, Any]:
        right, feature, threshold, depths, counts, n_features = [], [], [], [], [], []
        for tree in self.trees:
            state = tree.__getstate__()
            nodes = state["nodes"]
            n = int(state["node_count"])
            internal = np.flatnonzero(nodes["left_child"] != -1)
            # depth-first trees: a split's left child is the next node, so only the right one is kept
            if not np.array_equal(nodes["left_child"][internal], internal + 1):
                raise ValueError("CompactForest expects depth-first trees (left child = next node)")
            t64 = nodes["threshold"]
            t32 = t64.astype(np.float32)
            # x32 <= t64  ⟺  x32 <= the largest float32 not above t64 (exact for float32 inputs)
            above = t32.astype(np.float64) > t64
            t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
            right.append(nodes["right_child"].astype(np.int32))
            feature.append(nodes["feature"].astype(np.int8 if tree.n_features < 127 else np.int32))
            threshold.append(t32)
            depths.append(int(state["max_depth"]))
            counts.append(n)
            n_features.append(int(tree.n_features))
        return {
            "version": 1,
            "n_classes": self.n_classes,
            "depth": self.depth,
            "right": np.concatenate(right),
            "feature": np.concatenate(feature),
            "threshold": np.concatenate(threshold),
            "tree_depth": np.asarray(depths, dtype=np.int32),
            "node_count": np.asarray(counts, dtype=np.int64),
            "n_features": np.asarray(n_features, dtype=np.int32),
            "leaf_cls": self.leaf_cls,
            "leaf_p": self.leaf_p,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        from sklearn.tree._tree import NODE_DTYPE, Tree

        if "version" not in state:  # an artefact pickled before the compact format: plain attributes
            self.__dict__.update(state)
            return
        counts = np.asarray(state["node_count"], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        right_all = state["right"].astype(np.int64)
        leaf_all = right_all == -1
        self.trees = []
        for j, (start, n) in enumerate(zip(starts, counts, strict=True)):
            sl = slice(int(start), int(start + n))
            right = right_all[sl]
            leaf = leaf_all[sl]
            nodes = np.zeros(int(n), dtype=NODE_DTYPE)
            nodes["left_child"] = np.where(leaf, -1, np.arange(n) + 1)
            nodes["right_child"] = right
            nodes["feature"] = np.where(leaf, -2, state["feature"][sl].astype(np.int64))
            nodes["threshold"] = np.where(leaf, -2.0, state["threshold"][sl].astype(np.float64))
            tree = Tree(int(state["n_features"][j]), np.array([1], dtype=np.intp), 1)
            tree.__setstate__(
                {
                    "max_depth": int(state["tree_depth"][j]),
                    "node_count": int(n),
                    "nodes": nodes,
                    "values": np.zeros((int(n), 1, 1)),
                }
            )
            self.trees.append(tree)
        slot = np.full(len(leaf_all), -1, dtype=np.int64)
        slot[leaf_all] = np.arange(int(leaf_all.sum()))
        self.leaf_slot = slot.astype(np.int32)
        self.leaf_cls = state["leaf_cls"]
        self.leaf_p = state["leaf_p"]
        self.roots = starts.astype(np.int32)
        self.depth = int(state["depth"])
        self.n_classes = int(state["n_classes"])
        self.classes_ = np.arange(self.n_classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        n, n_trees = len(x32), len(self.trees)
        node = np.empty((n, n_trees), dtype=np.int64)
        for j, tree in enumerate(self.trees):  # Cython tree walk, no input validation
            node[:, j] = tree.apply(x32)
        node += self.roots
        slot = self.leaf_slot[node]  # (n, trees)
        cls = self.leaf_cls[slot].astype(np.int64)  # (n, trees, k)
        p = self.leaf_p[slot].astype(np.float64)
        flat = (np.arange(n)[:, None, None] * self.n_classes + cls).ravel()
        out = np.bincount(flat, weights=p.ravel(), minlength=n * self.n_classes).reshape(n, self.n_classes)
        return out / out.sum(axis=1, keepdims=True)  # float16 leaves: renormalise exactly


class SoftVote:
    """Weighted mean of members' class probabilities (members see the same feature matrix)."""

    def __init__(
        self, members: Sequence[Any], weights: Sequence[float], n_classes: int, names: Sequence[str] = ()
    ) -> None:
        self.members = list(members)
        w = np.asarray(weights, dtype=np.float64)
        self.weights = w / w.sum()
        self.n_classes = n_classes
        self.names = list(names)
        self.classes_ = np.arange(n_classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.n_classes))
        for model, w in zip(self.members, self.weights, strict=True):
            out += w * member_proba(model, x, self.n_classes)
        return out


def member_proba(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """predict_proba over all `n_classes` columns, one thread for CatBoost."""
    if type(model).__name__ == "CatBoostClassifier":
        proba = np.asarray(model.predict_proba(x, thread_count=1), dtype=np.float64)
    else:
        proba = np.asarray(model.predict_proba(x), dtype=np.float64)
    if proba.shape[1] == n_classes:
        return proba
    est = model.steps[-1][1] if hasattr(model, "steps") else model
    full = np.zeros((len(x), n_classes))
    full[:, np.asarray(est.classes_, dtype=int)] = proba
    return full


def _slim_tree(tree: Any) -> Any:
    """The same split structure with a one-value-per-node payload (keeps `apply`, drops the
    node × class probability table that makes a pickled 114-class forest huge)."""
    from sklearn.tree._tree import Tree

    state = tree.__getstate__()
    slim = Tree(tree.n_features, np.array([1], dtype=np.intp), 1)
    slim.__setstate__({**state, "values": np.zeros((tree.node_count, 1, 1))})
    return slim


class ByKnownInputs:
    """Two models behind one head: `complete` for rows whose optional inputs are all known, `partial`
    (fitted with them unknown) for the rest. Unknown columns hold `missing` (ml.features.MISSING);
    `optional_cols` are the feature columns derived from the optional inputs."""

    def __init__(
        self, complete: Any, partial: Any, optional_cols: Sequence[int], n_classes: int, missing: float
    ) -> None:
        self.complete = complete
        self.partial = partial
        self.optional_cols = [int(c) for c in optional_cols]
        self.n_classes = n_classes
        self.missing = float(missing)
        self.classes_ = np.arange(n_classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        known = (x[:, self.optional_cols] != self.missing).all(axis=1)
        out = np.zeros((len(x), self.n_classes))
        if known.any():
            out[known] = member_proba(self.complete, x[known], self.n_classes)
        if not known.all():
            rest = x[~known].copy()
            rest[:, self.optional_cols] = self.missing
            out[~known] = member_proba(self.partial, rest, self.n_classes)
        return out
