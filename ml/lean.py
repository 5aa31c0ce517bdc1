"""The production model's heads as plain arrays: predicted with numpy alone, mapped from one file.

Serving a head from its pickle (`<head>.joblib`: a `SoftVote` of CatBoost and a `CompactForest`)
costs every process the imports of catboost (+ pandas) and scikit-learn (+ scipy's optimisers),
~150 MiB, and scikit-learn's tree objects, 72 bytes a node, ~85 MiB per 60-tree forest. A *lean*
file (`<head>.lean`) holds the same model as arrays. Training saves a head that has a lean form as
that file alone (`ml.training.artefacts.save_model`); for an artefact of pickles trained before,
`write_lean` puts one beside each pickle. The parts:

* CatBoost (oblivious trees on float features): each tree's split features and float32 borders,
  the leaf values (2^depth × classes), scale and bias. A row's leaf is the bits `x > border`; the
  raw score is the bias plus the scaled sum of its leaves, then softmax (CatBoost's MultiClass).
* CompactForest: one int64 per node (right child | feature | float32 threshold; a leaf's threshold
  is a NaN carrying the leaf's number) and each leaf's non-zero top classes; every (row, tree) pair
  walks down in bulk, a level at a time (the walk visits exactly the leaves scikit-learn's
  `Tree.apply` does: `x <= threshold` goes left, the thresholds are the forest's own float32 ones),
  then the same vote as `CompactForest`. 8 bytes a node and 3 a leaf's class: a 60-tree forest of
  600,000 leaves is 15 MB, half of the dense layout, and the file is the model's only copy on disk.
* SoftVote / ByKnownInputs: the same arithmetic over lean members.

Probabilities equal the fitted model's to ~1e-15 (the save checks 1e-9; tests/ml/test_lean.py too).

The file is a header (JSON: the model's structure, its arrays' offsets, and what it was made from:
itself, or the pickle beside it) followed by the arrays; `load_lean` maps it read-only (`mmap`), so
the pages are the file's: shared by every process that serves the model and counted only once
touched. A lean file is replaced, never rewritten in place (`os.replace`), so a process still mapping
the old one keeps reading it. A model part this module does not know (LightGBM, a plain
scikit-learn estimator, CatBoost with categorical features) makes `to_lean` raise `NotLean`; the
head is then saved and served in its library's format.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"ENCORE-LEAN-2\n"  # 2: leaves numbered in NaN thresholds, sparse leaf entries
SUFFIX = ".lean"
FORMAT = "lean"  # a head's "format" in meta.json when its lean file is its only model file
_ALIGN = 64
_WALK_STEPS = 6  # levels walked between two removals of the pairs that reached a leaf
_LEAF_MARK = 0x7FC00000  # a quiet NaN's bits: a leaf's threshold
_LEAF_BITS = (1 << 22) - 1  # the leaf's number, in the NaN's payload


class NotLean(ValueError):
    """A model part with no lean form (it is served from its pickle)."""


def lean_path(path: Path, file: str) -> Path:
    """`<dir>/<head>.lean` for the head stored in `file`."""
    return Path(path) / (Path(file).stem + SUFFIX)


# --- the lean model parts -------------------------------------------------------------------------


class LeanTrees:
    """CatBoost's oblivious trees on float features (MultiClass): `predict_proba` as CatBoost's."""

    def __init__(
        self, feature: np.ndarray, border: np.ndarray, leaves: np.ndarray, scale: float, bias: np.ndarray
    ) -> None:
        self.feature = np.asarray(feature)  # (trees, depth) column of each split
        self.border = np.asarray(border)  # (trees, depth) float32: bit = x > border
        self.leaves = np.asarray(leaves)  # (trees * 2**depth, classes) float64
        self.scale = float(scale)
        self.bias = np.asarray(bias)
        self.n_trees, self.depth = self.feature.shape
        self.n_classes = self.leaves.shape[1]
        self._powers = (1 << np.arange(self.depth)).astype(np.int64)
        self._offsets = np.arange(self.n_trees, dtype=np.int64) * (1 << self.depth)

    def raw(self, x: np.ndarray) -> np.ndarray:
        x32 = np.asarray(x, dtype=np.float32)
        bits = x32[:, self.feature] > self.border  # (n, trees, depth)
        leaf = bits.astype(np.int64) @ self._powers + self._offsets  # (n, trees)
        if len(x32) <= 8:  # few rows: one gather
            total = self.leaves[leaf].sum(axis=1)
        else:  # many: tree by tree (no (n, trees, classes) temporary)
            total = np.zeros((len(x32), self.n_classes))
            for t in range(self.n_trees):
                total += self.leaves[leaf[:, t]]
        return total * self.scale + self.bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        raw = self.raw(x)
        raw -= raw.max(axis=1, keepdims=True)
        out = np.exp(raw)
        out /= out.sum(axis=1, keepdims=True)
        return out


class LeanForest:
    """`ml.ensemble.CompactForest` walked with numpy (no scikit-learn)."""

    def __init__(
        self,
        nodes: np.ndarray,
        roots: np.ndarray,
        leaf_start: np.ndarray,
        leaf_cls: np.ndarray,
        leaf_p: np.ndarray,
        n_classes: int,
    ) -> None:
        # (nodes, 2) int32: [right child << 8 | feature, float32 threshold bits]. A leaf points at
        # itself and its threshold is a NaN (`x <= NaN` is false: a pair that reached its leaf stays
        # there) whose low bits are the leaf's number; leaf i's classes and shares are the entries
        # leaf_start[i]:leaf_start[i + 1] of leaf_cls / leaf_p (its non-zero top classes only).
        self.nodes = np.asarray(nodes)
        self._packed = self.nodes.view(np.int64).reshape(-1)
        self.roots = np.asarray(roots).astype(np.int64)
        self.leaf_start = np.asarray(leaf_start)
        self.leaf_cls = np.asarray(leaf_cls)
        self.leaf_p = np.asarray(leaf_p)
        self.n_classes = int(n_classes)
        self.classes_ = np.arange(self.n_classes)

    def apply(self, x32: np.ndarray) -> np.ndarray:
        """(n, trees) number of each row's leaf in each tree."""
        n, n_features = x32.shape
        n_trees = len(self.roots)
        flat = np.ascontiguousarray(x32, dtype=np.float32).reshape(-1)
        node = np.tile(self.roots, n)  # pair i = (row i // trees, tree i % trees)
        where = np.arange(n * n_trees, dtype=np.int64)
        row = where // n_trees * n_features
        out = np.empty(n * n_trees, dtype=np.int64)
        while node.size:
            for _ in range(_WALK_STEPS):
                both = self._packed.take(node).view(np.int32)  # [code, threshold] per pair
                code = both[0::2]
                value = flat.take(row + (code & 0xFF))
                node = np.where(value <= both[1::2].view(np.float32), node + 1, code >> 8)
            bits = self._packed.take(node).view(np.int32)[1::2]
            done = (bits & _LEAF_MARK) == _LEAF_MARK
            if done.any():
                out[where[done]] = bits[done] & _LEAF_BITS
                keep = ~done
                node, where, row = node[keep], where[keep], row[keep]
        return out.reshape(n, n_trees)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        n = len(x32)
        leaf = self.apply(x32).reshape(-1)  # pairs (row, tree), row-major
        lo = self.leaf_start.take(leaf).astype(np.int64)
        length = self.leaf_start.take(leaf + 1) - lo
        total = int(length.sum())
        # every entry of every pair's leaf, in pair order: the same sums, in the same order, as
        # CompactForest's vote over its dense (rows, trees, top-k) table (whose other cells are 0)
        first = np.cumsum(length) - length
        entry = np.arange(total, dtype=np.int64) + np.repeat(lo - first, length)
        row = np.repeat(np.arange(leaf.size, dtype=np.int64) // len(self.roots), length)
        flat = row * self.n_classes + self.leaf_cls.take(entry)
        p = self.leaf_p.take(entry).astype(np.float64)
        out = np.bincount(flat, weights=p, minlength=n * self.n_classes).reshape(n, self.n_classes)
        return out / out.sum(axis=1, keepdims=True)


class LeanVote:
    """`ml.ensemble.SoftVote` over lean members (same weights, same order of the sum)."""

    def __init__(self, members: Sequence[Any], weights: Sequence[float], n_classes: int, names: Sequence[str]) -> None:
        self.members = list(members)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.n_classes = int(n_classes)
        self.names = list(names)
        self.classes_ = np.arange(self.n_classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.n_classes))
        for model, w in zip(self.members, self.weights, strict=True):
            out += w * _full_width(model.predict_proba(x), model, self.n_classes)
        return out


class LeanByKnown:
    """`ml.ensemble.ByKnownInputs` over lean members."""

    def __init__(self, complete: Any, partial: Any, optional_cols: Sequence[int], n_classes: int, missing: float):
        self.complete = complete
        self.partial = partial
        self.optional_cols = [int(c) for c in optional_cols]
        self.n_classes = int(n_classes)
        self.missing = float(missing)
        self.classes_ = np.arange(self.n_classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        known = (x[:, self.optional_cols] != self.missing).all(axis=1)
        out = np.zeros((len(x), self.n_classes))
        if known.any():
            out[known] = _full_width(self.complete.predict_proba(x[known]), self.complete, self.n_classes)
        if not known.all():
            rest = x[~known].copy()
            rest[:, self.optional_cols] = self.missing
            out[~known] = _full_width(self.partial.predict_proba(rest), self.partial, self.n_classes)
        return out


def _full_width(proba: np.ndarray, model: Any, n_classes: int) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape[1] == n_classes:
        return proba
    full = np.zeros((len(proba), n_classes))
    full[:, np.asarray(model.classes_, dtype=int)] = proba
    return full


# --- from the fitted models (training side: catboost / scikit-learn objects) ---------------------


def to_lean(model: Any) -> Any:
    """The lean form of a fitted head (`NotLean` when a part has none)."""
    kind = type(model).__name__
    if kind == "SoftVote":
        members = [_all_classes(to_lean(m), model.n_classes) for m in model.members]
        return LeanVote(members, model.weights, model.n_classes, model.names)
    if kind == "ByKnownInputs":
        complete, partial = (_all_classes(to_lean(m), model.n_classes) for m in (model.complete, model.partial))
        return LeanByKnown(complete, partial, model.optional_cols, model.n_classes, model.missing)
    if kind == "CompactForest":
        return _forest(model)
    if kind == "CatBoostClassifier":
        return _catboost(model)
    raise NotLean(f"no lean form for {kind}")


def _all_classes(part: Any, n_classes: int) -> Any:
    """A member must score every class of its vote (a lean part keeps no map of the ones it saw)."""
    if part.n_classes != n_classes:
        raise NotLean(f"a member scores {part.n_classes} of the {n_classes} classes")
    return part


def _forest(forest: Any) -> LeanForest:
    state = forest.__getstate__()
    counts = np.asarray(state["node_count"], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    right = state["right"].astype(np.int64)
    total = len(right)
    leaf = right == -1
    n_leaves = int(leaf.sum())
    if total >= 1 << 23 or n_leaves > _LEAF_BITS or int(np.max(state["n_features"])) > 0xFF:
        raise NotLean("forest too large to pack (2^23 nodes, 2^22 leaves, 255 features)")
    node_tree = np.repeat(np.arange(len(counts)), counts)
    child = np.where(leaf, np.arange(total), right + starts[node_tree])
    feature = np.where(leaf, 0, state["feature"].astype(np.int64))
    nodes = np.empty((total, 2), dtype=np.int32)
    nodes[:, 0] = (child << 8) | feature
    nodes[:, 1] = np.asarray(state["threshold"], dtype=np.float32).view(np.int32)
    nodes[leaf, 1] = _LEAF_MARK | np.arange(n_leaves, dtype=np.int32)
    # the leaves' dense top-k tables, less their empty cells (most leaves hold two or three classes)
    cls, p = np.asarray(state["leaf_cls"]), np.asarray(state["leaf_p"])
    kept = p != 0
    leaf_start = np.concatenate([[0], np.cumsum(kept.sum(axis=1))]).astype(np.int32)
    return LeanForest(nodes, starts.astype(np.int32), leaf_start, cls[kept], p[kept], state["n_classes"])


def _catboost(model: Any) -> LeanTrees:
    with tempfile.TemporaryDirectory() as tmp:
        model.save_model(os.path.join(tmp, "model.json"), format="json")
        data = json.loads(Path(tmp, "model.json").read_text(encoding="utf-8"))
    loss = str(data.get("model_info", {}).get("params", {}).get("loss_function", {}).get("type", ""))
    info = data.get("features_info", {})
    if loss != "MultiClass" or set(info) - {"float_features"} or "oblivious_trees" not in data:
        raise NotLean(f"CatBoost model without a lean form (loss {loss!r}, features {sorted(info)})")
    floats = info.get("float_features", [])
    if any(f.get("has_nans") for f in floats):
        raise NotLean("CatBoost model trained with NaN values")
    column = {int(f["feature_index"]): int(f["flat_feature_index"]) for f in floats}
    trees = data["oblivious_trees"]
    depths = {len(t["splits"]) for t in trees}
    if len(depths) != 1 or any(s.get("split_type") != "FloatFeature" for t in trees for s in t["splits"]):
        raise NotLean("CatBoost trees of several depths or with non-float splits")
    (depth,) = depths
    scale, bias = data["scale_and_bias"]
    bias = np.asarray(bias, dtype=np.float64)
    n_classes = len(bias)
    feature = np.array([[column[int(s["float_feature_index"])] for s in t["splits"]] for t in trees], dtype=np.int32)
    border = np.array([[s["border"] for s in t["splits"]] for t in trees], dtype=np.float32)
    leaves = np.array([t["leaf_values"] for t in trees], dtype=np.float64).reshape(len(trees) << depth, n_classes)
    return LeanTrees(feature.reshape(len(trees), depth), border.reshape(len(trees), depth), leaves, scale, bias)


# --- the file ----------------------------------------------------------------------------------


def _describe(model: Any, arrays: dict[str, np.ndarray], prefix: str) -> dict[str, Any]:
    def put(name: str, array: np.ndarray) -> str:
        key = f"{prefix}{name}"
        arrays[key] = np.ascontiguousarray(array)
        return key

    if isinstance(model, LeanVote):
        return {
            "kind": "vote",
            "weights": [float(w) for w in model.weights],
            "n_classes": model.n_classes,
            "names": model.names,
            "members": [_describe(m, arrays, f"{prefix}m{i}.") for i, m in enumerate(model.members)],
        }
    if isinstance(model, LeanByKnown):
        return {
            "kind": "by_known",
            "optional_cols": model.optional_cols,
            "n_classes": model.n_classes,
            "missing": model.missing,
            "complete": _describe(model.complete, arrays, f"{prefix}c."),
            "partial": _describe(model.partial, arrays, f"{prefix}p."),
        }
    if isinstance(model, LeanForest):
        return {
            "kind": "forest",
            "n_classes": model.n_classes,
            **{
                name: put(name, getattr(model, name)) for name in ("nodes", "roots", "leaf_start", "leaf_cls", "leaf_p")
            },
        }
    if isinstance(model, LeanTrees):
        return {
            "kind": "oblivious",
            "scale": model.scale,
            **{name: put(name, getattr(model, name)) for name in ("feature", "border", "leaves", "bias")},
        }
    raise NotLean(f"no lean form for {type(model).__name__}")


def _build(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
    kind = spec["kind"]
    if kind == "vote":
        members = [_build(m, arrays) for m in spec["members"]]
        return LeanVote(members, spec["weights"], spec["n_classes"], spec["names"])
    if kind == "by_known":
        return LeanByKnown(
            _build(spec["complete"], arrays),
            _build(spec["partial"], arrays),
            spec["optional_cols"],
            spec["n_classes"],
            spec["missing"],
        )
    if kind == "forest":
        nodes, roots, start, cls, p = (arrays[spec[k]] for k in ("nodes", "roots", "leaf_start", "leaf_cls", "leaf_p"))
        return LeanForest(nodes, roots, start, cls, p, spec["n_classes"])
    if kind == "oblivious":
        return LeanTrees(
            arrays[spec["feature"]], arrays[spec["border"]], arrays[spec["leaves"]], spec["scale"], arrays[spec["bias"]]
        )
    raise ValueError(f"unknown lean part {kind!r}")


def save_lean(model: Any, path: Path, source: Mapping[str, Any]) -> Path:
    """Write `model` (a lean form) to `path`, replacing any older file atomically."""
    arrays: dict[str, np.ndarray] = {}
    structure = _describe(model, arrays, "")
    layout: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, array in arrays.items():
        layout[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        offset += -(-array.nbytes // _ALIGN) * _ALIGN
    header = json.dumps({"source": dict(source), "model": structure, "arrays": layout}).encode()
    start = -(-(len(MAGIC) + 8 + len(header)) // _ALIGN) * _ALIGN
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + struct.pack("<Q", len(header)) + header)
            for name, array in arrays.items():
                f.seek(start + layout[name]["offset"])
                f.write(array.tobytes())
            f.truncate(start + offset)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the model from a server run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_source(path: Path) -> dict[str, Any] | None:
    """The `source` a lean file was made from (None when it is missing or unreadable)."""
    try:
        with open(path, "rb") as f:
            header = _header(f.read(len(MAGIC) + 8), f)
    except (OSError, ValueError):
        return None
    return dict(header.get("source") or {})


def _header(start: bytes, f: Any) -> dict[str, Any]:
    if len(start) != len(MAGIC) + 8 or not start.startswith(MAGIC):
        raise ValueError("not a lean model file")
    (size,) = struct.unpack("<Q", start[len(MAGIC) :])
    data = json.loads(f.read(size))
    if not isinstance(data, dict):
        raise ValueError("bad lean header")
    return data


def load_lean(path: Path) -> Any:
    """The lean model in `path`, its arrays mapped read-only from the file."""
    with open(path, "rb") as f:
        header = _header(f.read(len(MAGIC) + 8), f)
        buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    start = _data_start(buffer)
    arrays = {}
    for name, spec in header["arrays"].items():
        dtype = np.dtype(spec["dtype"])
        shape = tuple(int(s) for s in spec["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        arrays[name] = np.frombuffer(buffer, dtype=dtype, count=count, offset=start + int(spec["offset"])).reshape(
            shape
        )
    return _build(header["model"], arrays)


def _data_start(buffer: mmap.mmap) -> int:
    (size,) = struct.unpack("<Q", buffer[len(MAGIC) : len(MAGIC) + 8])
    return -(-(len(MAGIC) + 8 + size) // _ALIGN) * _ALIGN


# --- an artefact's lean files ----------------------------------------------------------------------


def source_of(path: Path, head: Mapping[str, Any], version: str) -> dict[str, Any]:
    """What a lean file must have been made from: the head's model file (name and size) and the
    artefact's version (a retrained artefact has another)."""
    file = str(head["file"])
    return {"file": file, "bytes": (Path(path) / file).stat().st_size, "version": version}


def write_lean(path: Path, heads: Sequence[tuple[Mapping[str, Any], Any]], version: str) -> list[str]:
    """Write `<head>.lean` for each (head meta, fitted model) that has a lean form; the heads written."""
    written = []
    for head, model in heads:
        target = lean_path(path, str(head["file"]))
        try:
            lean = to_lean(model)
        except NotLean:
            target.unlink(missing_ok=True)  # a stale one must not be served
            continue
        save_lean(lean, target, source_of(path, head, version))
        written.append(str(head["name"]))
    return written
