"""Training the metadata heads of the catalogue genre model (after `ml.training.pipeline.run_task`).

Protocol (the audio model's own split, `ml.data.task_split`; duplicate groups never cross sides):
  * evidence for every catalogue row is leave-group-out (`CountTable.leave_group_out[_nb]`): the counts
    of the row's artists / tokens over all rows *outside its duplicate group*. That is the evidence a
    new song by those artists gets from the full catalogue at serving time, and a song's own labels
    never reach it;
  * the blend is fitted on the validation tracks only (the audio model's probabilities there are out of
    sample); feature and head choices use 5-fold grouped cross-fitting on those tracks (the "val (oof)"
    columns); the heads are then refitted on all validation tracks and scored once on the test tracks;
  * the artefact's tables count every row of the file (serving sees the whole catalogue).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.blend import (
    HEAD_ARTIST,
    HEAD_AUDIO,
    HEAD_FEATURES,
    HEAD_TITLE,
    ConditionalLogit,
    Evidence,
    blend_features,
    label_mask,
)
from ml.data import Dataset, eval_units, grouped_folds, task_split
from ml.evidence import CountTable, artist_keys, artist_name_tokens, title_tokens
from ml.features import RAW_INPUTS, build_features
from ml.meta import SOURCES_FILE, MetadataBlend
from ml.metrics import fit_temperature, scores
from ml.predictor import apply_temperature
from ml.training.zoo import full_proba

ALPHA_ARTIST = 1.0
ALPHA_TOKENS = 5.0
CV_FOLDS = 5
RELIABILITY_BINS = 10
SOURCE_TOLERANCE = 0.005  # a lighter audio model may feed the blend when it costs at most this much (val)


def _member_name(label: str) -> str:
    """'catboost alone (no forest)' → 'catboost': the production vote member the label names."""
    return label.split(" ", 1)[0]


@dataclass
class HeadScores:
    name: str
    val: dict[str, float]  # cross-fitted on validation tracks (the audio head: its own val scores)
    test: dict[str, float]
    family_val: dict[str, float]
    family_test: dict[str, float]
    reliability: dict[str, list[list[float]]]  # "genres"/"families" → [confidence, accuracy, count] per bin
    weights: dict[str, float] = field(default_factory=dict)


@dataclass
class MetaResult:
    heads: list[HeadScores]
    known_share: dict[str, float]  # share of val / test tracks with at least one artist in the catalogue
    variants: list[dict[str, Any]]
    blend: MetadataBlend
    seconds: float
    n_tracks: dict[str, int]
    audio_source: str = "production"  # the audio model the metadata heads blend with
    other_audio: list[dict[str, Any]] = field(default_factory=list)  # the blend over other audio heads


def family_matrix(classes: Sequence[str], family_of: Mapping[str, str]) -> tuple[np.ndarray, list[str]]:
    families = sorted(set(family_of.values()))
    matrix = np.zeros((len(classes), len(families)))
    for i, c in enumerate(classes):
        matrix[i, families.index(family_of.get(c, c))] = 1.0
    return matrix, families


def reliability(
    proba: np.ndarray, classes: Sequence[str], label_sets: Sequence[frozenset[str]], bins: int = RELIABILITY_BINS
) -> tuple[list[list[float]], float]:
    """Per confidence bin [mean top-1 confidence, top-1 accuracy, tracks], and the expected calibration error."""
    top = proba.argmax(axis=1)
    conf = proba[np.arange(len(proba)), top]
    hit = np.array([classes[j] in s for j, s in zip(top, label_sets, strict=True)], dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            rows.append([float(conf[sel].mean()), float(hit[sel].mean()), float(sel.sum())])
            ece += sel.mean() * abs(conf[sel].mean() - hit[sel].mean())
    return rows, float(ece)


def fit_metadata(
    ds: Dataset,
    audio_model: Any,
    audio_cols: Sequence[int],
    audio_spec: Any,
    temperature: float,
    classes: Sequence[str],
    family_of: Mapping[str, str],
    seed: int,
    *,
    variant_models: Mapping[str, tuple[Any, Sequence[int], Any]] | None = None,
    other_audio: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    progress: Callable[[str], None] = print,
) -> MetaResult:
    """Fit the metadata heads on validation tracks and score them on test tracks (see module docstring).

    `other_audio`: name → (calibrated probabilities on the validation tracks, on the test tracks) of
    another audio head (the analysis head); the fitted blend is scored on them as it is served (the
    same weights, not refitted), in `MetaResult.other_audio`."""
    started = time.perf_counter()
    classes = tuple(classes)
    frame = ds.frame
    fam_matrix, families = family_matrix(classes, family_of)
    fit_idx, val_idx, test_idx = task_split(ds.labels, ds.groups, seed)
    del fit_idx
    val_units = eval_units(frame, ds.labels, ds.groups, val_idx)
    test_units = eval_units(frame, ds.labels, ds.groups, test_idx)
    raw = frame[list(RAW_INPUTS)].astype(float).to_numpy()

    def audio_proba(model: Any, cols: Sequence[int], spec: Any, t: float, rows: np.ndarray) -> np.ndarray:
        return apply_temperature(full_proba(model, build_features(raw[rows][:, list(cols)], spec), len(classes)), t)

    artists_col = frame["artists"] if "artists" in frame else [None] * len(frame)
    titles_col = frame["track_name"] if "track_name" in frame else [None] * len(frame)
    a_keys = [artist_keys(a) for a in artists_col]
    n_tokens = [artist_name_tokens(a) for a in artists_col]
    t_tokens = [title_tokens(t) for t in titles_col]
    artists = CountTable.build(a_keys, ds.labels, classes)
    tokens = CountTable.build([n + t for n, t in zip(n_tokens, t_tokens, strict=True)], ds.labels, classes)
    prior = artists.prior()
    loo_counts = CountTable.leave_group_out(a_keys, ds.labels, ds.groups, classes)
    name_nb, name_known = CountTable.leave_group_out_nb(n_tokens, ds.labels, ds.groups, classes, prior, ALPHA_TOKENS)
    title_nb, title_known = CountTable.leave_group_out_nb(t_tokens, ds.labels, ds.groups, classes, prior, ALPHA_TOKENS)
    evidence = Evidence(loo_counts, name_nb, name_known, title_nb, title_known)
    progress(
        f"[catalog/meta] evidence tables: {len(artists.keys)} artists, {len(tokens.keys)} tokens "
        f"({time.perf_counter() - started:.0f} s)"
    )

    ev_val, ev_test = evidence.take(val_units.rows), evidence.take(test_units.rows)
    mask_val = label_mask(val_units.label_sets, classes)
    folds = grouped_folds(ds.labels[val_units.rows], ds.groups[val_units.rows], CV_FOLDS, seed)
    fam_sets_val = [frozenset(family_of.get(g, g) for g in s) for s in val_units.label_sets]
    fam_sets_test = [frozenset(family_of.get(g, g) for g in s) for s in test_units.label_sets]
    known_share = {
        "val": float((ev_val.artist_counts.sum(axis=1) > 0).mean()),
        "test": float((ev_test.artist_counts.sum(axis=1) > 0).mean()),
    }

    def head_scores(name: str, p_val: np.ndarray, p_test: np.ndarray, weights: Mapping[str, float]) -> HeadScores:
        rel_g, ece_g = reliability(p_test, classes, test_units.label_sets)
        rel_f, ece_f = reliability(p_test @ fam_matrix, families, fam_sets_test)
        test = {**scores(p_test, classes, test_units.label_sets), "ece": ece_g}
        ftest = {**scores(p_test @ fam_matrix, families, fam_sets_test), "ece": ece_f}
        return HeadScores(
            name,
            scores(p_val, classes, val_units.label_sets),
            test,
            scores(p_val @ fam_matrix, families, fam_sets_val),
            ftest,
            {"genres": rel_g, "families": rel_f},
            dict(weights),
        )

    def cross_fit(
        audio_val: np.ndarray, audio_test: np.ndarray, features: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, ConditionalLogit]:
        phi_val = blend_features(audio_val, ev_val, prior, fam_matrix, features, ALPHA_ARTIST)
        oof = np.zeros_like(audio_val)
        for tr, te in folds:
            oof[te] = ConditionalLogit().fit(phi_val[tr], mask_val[tr]).predict_proba(phi_val[te])
        logit = ConditionalLogit().fit(phi_val, mask_val)
        phi_test = blend_features(audio_test, ev_test, prior, fam_matrix, features, ALPHA_ARTIST)
        return oof, logit.predict_proba(phi_test), logit

    p_val = audio_proba(audio_model, audio_cols, audio_spec, temperature, val_units.rows)
    p_test = audio_proba(audio_model, audio_cols, audio_spec, temperature, test_units.rows)
    heads = [head_scores(HEAD_AUDIO, p_val, p_test, {})]

    # Audio sources for the blend: the production model, and each lighter model offered (the vote's
    # CatBoost member). A lighter source is used when its cross-fitted validation accuracy (richest head)
    # is within SOURCE_TOLERANCE of the production model's: once the artist is known the audio side
    # matters little, and one CatBoost call is a fraction of the vote's latency.
    sources: dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]] = {
        "production": (p_val, p_test, {"model": "production", "temperature": temperature})
    }
    for label, (model, cols, spec) in (variant_models or {}).items():
        v_val_raw = full_proba(model, build_features(raw[val_units.rows][:, list(cols)], spec), len(classes))
        t = fit_temperature(v_val_raw, classes, val_units.label_sets)
        sources[label] = (
            apply_temperature(v_val_raw, t),
            audio_proba(model, cols, spec, t, test_units.rows),
            {"model": label, "member": _member_name(label), "temperature": t},
        )
    fitted: dict[str, dict[str, tuple[np.ndarray, np.ndarray, ConditionalLogit]]] = {}
    for label, (s_val, s_test, _info) in sources.items():
        fitted[label] = {name: cross_fit(s_val, s_test, HEAD_FEATURES[name]) for name in (HEAD_ARTIST, HEAD_TITLE)}

    def oof_acc(label: str) -> float:
        return scores(fitted[label][HEAD_TITLE][0], classes, val_units.label_sets)["accuracy"]

    chosen = "production"
    for label in sources:
        if label != "production" and oof_acc(label) >= oof_acc("production") - SOURCE_TOLERANCE:
            chosen = label
            break
    progress(
        f"[catalog/meta] blend audio source: {chosen} (val (oof) "
        + ", ".join(f"{k} {oof_acc(k):.4f}" for k in sources)
        + ")"
    )
    head_config: dict[str, Any] = {}
    for name in (HEAD_ARTIST, HEAD_TITLE):
        features = HEAD_FEATURES[name]
        oof, blended, logit = fitted[chosen][name]
        heads.append(head_scores(name, oof, blended, dict(zip(features, logit.weights.tolist(), strict=True))))
        head_config[name] = {"features": list(features), "logit": logit.to_dict()}
        progress(
            f"[catalog/meta] {name}: val (oof) acc {heads[-1].val['accuracy']:.4f} top-3 "
            f"{heads[-1].val['top3']:.4f}; test acc {heads[-1].test['accuracy']:.4f} top-3 "
            f"{heads[-1].test['top3']:.4f} families {heads[-1].family_test['accuracy']:.4f}"
        )

    # The blend on the audio sources not chosen (how much the audio side still matters).
    variants: list[dict[str, Any]] = []
    for label, (s_val, s_test, info) in sources.items():
        if label == chosen:
            continue
        row: dict[str, Any] = {
            "audio model": label,
            "temperature": info["temperature"],
            HEAD_AUDIO: {
                "val": scores(s_val, classes, val_units.label_sets),
                "test": scores(s_test, classes, test_units.label_sets),
            },
        }
        for name in (HEAD_ARTIST, HEAD_TITLE):
            oof, blended, _ = fitted[label][name]
            row[name] = {
                "val": scores(oof, classes, val_units.label_sets),
                "test": scores(blended, classes, test_units.label_sets),
                "family_test": scores(blended @ fam_matrix, families, fam_sets_test),
            }
        variants.append(row)

    # The fitted blend over other audio heads' probabilities, unchanged (what serving does for them).
    other: list[dict[str, Any]] = []
    for label, (o_val, o_test) in (other_audio or {}).items():
        row = {
            "audio model": label,
            HEAD_AUDIO: {
                "val": scores(o_val, classes, val_units.label_sets),
                "test": scores(o_test, classes, test_units.label_sets),
                "family_test": scores(o_test @ fam_matrix, families, fam_sets_test),
            },
        }
        for name in (HEAD_ARTIST, HEAD_TITLE):
            logit = fitted[chosen][name][2]
            phi = blend_features(o_test, ev_test, prior, fam_matrix, HEAD_FEATURES[name], ALPHA_ARTIST)
            blended = logit.predict_proba(phi)
            row[name] = {
                "test": scores(blended, classes, test_units.label_sets),
                "family_test": scores(blended @ fam_matrix, families, fam_sets_test),
            }
        other.append(row)
        progress(
            f"[catalog/meta] blend over {label}: test acc "
            + ", ".join(f"{k} {row[k]['test']['accuracy']:.4f}" for k in (HEAD_AUDIO, HEAD_ARTIST, HEAD_TITLE))
        )

    import json

    config = {
        "alpha_artist": ALPHA_ARTIST,
        "alpha_tokens": ALPHA_TOKENS,
        "prior": prior.tolist(),
        "heads": head_config,
        "sources": json.loads(SOURCES_FILE.read_text(encoding="utf-8")),
        "audio_source": sources[chosen][2],
        "fitted_on": f"{len(val_units.rows)} validation tracks (leave-group-out evidence)",
    }
    blend = MetadataBlend(classes, artists, tokens, config, fam_matrix)
    return MetaResult(
        heads,
        known_share,
        variants,
        blend,
        time.perf_counter() - started,
        {"val_tracks": len(val_units.rows), "test_tracks": len(test_units.rows)},
        chosen,
        other,
    )
