"""GenrePredictor: loads a trained artefact once and predicts with pure functions.

Artefact folder (written by `ml.training.artefacts.save_artefact`):
  <head>.lean                               a head as plain arrays (`ml.lean`: numpy only, mapped
                                            read-only), the only file of a head that has a lean form
  <head>.cbm | <head>.txt | <head>.joblib   other fitted models (CatBoost, LightGBM booster, sklearn);
                                            an artefact trained before lean files were the model
                                            has these, and `<head>.lean` written beside them
  meta.json                                 heads (format, file, feature spec + names, temperature,
                                            metrics), classes, families, data hash, versions …

The heads share the classes:
  "full"        reads RAW_INPUTS: the 12 AUDIO_FEATURES, then duration_ms and explicit (0/1);
  "audio_only"  reads the 12 AUDIO_FEATURES — for tracks whose duration or explicit flag is unknown;
  "analysis"    reads ANALYSIS_INPUTS: the nine values an audio analysis of a 30-second excerpt gives
                (no key, mode or time signature), then duration_ms and explicit, each of which may be
                unknown (NaN / None). Artefacts trained before it existed lack it (`NoHead`).
`predict_proba(matrix)` picks the head by the number of columns (14 → full, 12 → audio_only,
11 → analysis).

Routing (`head_for`, the one rule): all 12 audio features → full (duration and explicit known) or
audio_only; the nine analysis values without the other three → analysis. The analysis head answers as
"analysis", and with the metadata heads on top as "analysis+artist" / "analysis+artist+title": the
blend takes any head's calibrated probabilities as its audio input (its weights were fitted on the
production model's; `docs/model-report.md` scores the blend over the analysis head as served).

Metadata (catalog artefacts with `blend.json`, see `ml.meta`): `predict_one(features, artists=...,
title=...)` and `predict_matrix(matrix, artists=[...], titles=[...])` blend the audio probabilities with
what the catalogue knows about the song's artists and title. Each Prediction says which head answered
("audio", "audio+artist", "audio+artist+title") and from what evidence; `audio_only=True` forces the
original audio setting. Without artists and title (or without a blend in the artefact) the answer is
the audio model's, exactly as before.
A mapping uses the full head when it carries both duration_ms and explicit (not None), else the
audio-only head. Any value that is present must be valid: missing audio features, NaN/inf or
out-of-range values raise `FeatureError`; nothing is imputed (the analysis head's unknown duration /
explicit are read as unknown, a value of their own, not filled in).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ml.blend import HEAD_AUDIO
from ml.features import (
    ANALYSIS_VALUES,
    AUDIO_FEATURES,
    FEATURE_RANGES,
    FeatureError,
    FeatureSpec,
    build_features,
    rows_to_matrix,
    validate_features,
    validate_matrix,
)
from ml.meta import MetadataBlend, SongEvidence

log = logging.getLogger(__name__)

META_FILE = "meta.json"
ANALYSIS_HEAD = "analysis"


class NoHead(LookupError):
    """The artefact has no head for the inputs given (an artefact trained before the analysis head)."""


@dataclass(frozen=True, slots=True)
class Prediction:
    genre: str
    probability: float
    top: tuple[tuple[str, float], ...]  # best first, up to 3
    family: str
    family_probability: float
    family_top: tuple[tuple[str, float], ...]
    # which head answered: "audio", "audio+artist" or "audio+artist+title"; for a song known by an
    # excerpt's analysis "analysis", "analysis+artist" or "analysis+artist+title"
    head: str = "audio"
    evidence: str = "audio"  # what it knew, e.g. "audio + artist (1/2 known, 14 catalogue songs) + title"
    artists_known: int = 0  # the song's artists with songs in the catalogue


class _ProbaModel(Protocol):
    def __call__(self, features: np.ndarray) -> np.ndarray: ...


def _load_model(path: Path, fmt: str, file: str) -> tuple[_ProbaModel, Any]:
    """(predict-proba callable, the loaded estimator) from the head's own model file."""
    if fmt == "catboost":
        from catboost import CatBoostClassifier

        model = CatBoostClassifier()
        model.load_model(str(path / file))
        return (lambda x: np.asarray(model.predict_proba(x, thread_count=1))), model
    if fmt == "lightgbm":
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(path / file))
        return (lambda x: np.asarray(booster.predict(x, num_threads=1))), booster
    if fmt == "lean":  # ml.lean.FORMAT (ml.lean is imported only when a head needs it)
        from ml import lean

        model = lean.load_lean(path / file)
        return model.predict_proba, model
    if fmt == "sklearn":
        import joblib

        estimator = joblib.load(path / file)
        return estimator.predict_proba, estimator
    raise ValueError(f"unknown model format {fmt!r}")


def _load_lean(path: Path, head: Mapping[str, Any], version: str) -> tuple[_ProbaModel, Any] | None:
    """The head's lean form, when its file was made from this artefact's model file (None: use that)."""
    from ml import lean

    if head["format"] == lean.FORMAT:  # the head's own file
        return _load_model(path, lean.FORMAT, str(head["file"]))
    file = lean.lean_path(path, str(head["file"]))
    found = lean.read_source(file) if file.exists() else None
    if found is None or found != lean.source_of(path, head, version):
        log.warning(
            "head %s: %s; serving it from %s, catboost / scikit-learn in memory (`main.py setup` writes it)",
            head["name"],
            "no lean model file" if found is None else "the lean model file is of another artefact",
            head["file"],
        )
        return None
    model = lean.load_lean(file)
    return model.predict_proba, model


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrate probabilities: softmax(log p / T). T = 1 leaves them unchanged."""
    if temperature == 1.0:
        return proba
    logits = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    out /= out.sum(axis=1, keepdims=True)
    return out


@dataclass(frozen=True, slots=True)
class Head:
    name: str
    model: _ProbaModel
    spec: FeatureSpec
    temperature: float
    estimator: Any = None

    @property
    def raw_inputs(self) -> tuple[str, ...]:
        return self.spec.raw_names()

    @property
    def optional(self) -> tuple[str, ...]:
        """Inputs that may be unknown (NaN): duration and explicit for the analysis head."""
        return self.spec.optional_names()

    def answer(self, blend_head: str = HEAD_AUDIO) -> str:
        """The name a prediction gives: the blend's head, "analysis…" when this is the analysis head."""
        if self.name == ANALYSIS_HEAD:
            return ANALYSIS_HEAD + blend_head.removeprefix(HEAD_AUDIO)
        return blend_head

    def proba(self, raw: np.ndarray) -> np.ndarray:
        out = np.asarray(self.model(build_features(raw, self.spec)), dtype=np.float64)
        return apply_temperature(out.reshape(len(raw), -1), self.temperature)


class GenrePredictor:
    """A loaded genre model. Build with `GenrePredictor.load(dir)`; all predict methods are pure."""

    def __init__(self, heads: Sequence[Head], meta: Mapping[str, Any], blend: MetadataBlend | None = None) -> None:
        self.meta: dict[str, Any] = dict(meta)
        self._blend: MetadataBlend | None = None
        self._source: tuple[Any, float] | None = None
        self._heads = {len(h.raw_inputs): h for h in heads}
        self.analysis: Head | None = next((h for h in heads if h.name == ANALYSIS_HEAD), None)
        self.full = next(h for h in heads if h.name == "full") if any(h.name == "full" for h in heads) else heads[0]
        self.classes: tuple[str, ...] = tuple(meta["classes"])
        self.raw_inputs: tuple[str, ...] = self.full.raw_inputs
        self.feature_names: tuple[str, ...] = self.full.spec.names()
        self.version: str = str(meta.get("version", "unknown"))
        self.task: str = str(meta.get("task", ""))
        family_map: Mapping[str, str] = meta.get("family_of") or {c: c for c in self.classes}
        self._family_of = {c: family_map.get(c, c) for c in self.classes}
        self.families: tuple[str, ...] = tuple(sorted(set(self._family_of.values())))
        fam_index = {f: i for i, f in enumerate(self.families)}
        self._family_matrix = np.zeros((len(self.classes), len(self.families)))
        for i, c in enumerate(self.classes):
            self._family_matrix[i, fam_index[self._family_of[c]]] = 1.0
        if blend is not None:
            self.blend = blend

    @classmethod
    def load(cls, path: Path, *, lean: bool = True) -> GenrePredictor:
        """`lean`: serve each head from its `<head>.lean` file when it has a current one (`ml.lean`:
        numpy only, mapped from the file); else, or with lean=False, from its model file."""
        path = Path(path)
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        heads = []
        for h in meta["heads"]:
            loaded = _load_lean(path, h, str(meta.get("version", "unknown"))) if lean else None
            model, estimator = loaded or _load_model(path, h["format"], h["file"])
            heads.append(
                Head(
                    h["name"],
                    model,
                    FeatureSpec.from_dict(h["feature_spec"]),
                    float(h.get("temperature", 1.0)),
                    estimator,
                )
            )
        predictor = cls(heads, meta)
        predictor.blend = MetadataBlend.load(path, predictor.classes, predictor._family_matrix)
        log.info(
            "loaded genre model %s (%s, %d classes, heads %s) from %s",
            predictor.version,
            predictor.task,
            len(predictor.classes),
            [h.name for h in heads],
            path,
        )
        return predictor

    @property
    def heads(self) -> tuple[str, ...]:
        return tuple(h.name for h in self._heads.values())

    @property
    def blend(self) -> MetadataBlend | None:
        return self._blend

    @blend.setter
    def blend(self, blend: MetadataBlend | None) -> None:
        """Attach the metadata blend, and the production vote's member it was fitted on (if any)."""
        self._blend, self._source = blend, None
        source = (blend.config.get("audio_source") or {}) if blend is not None else {}
        member = source.get("member")
        vote = self.full.estimator
        if member and vote is not None and member in getattr(vote, "names", []):
            self._source = (vote.members[vote.names.index(member)], float(source.get("temperature", 1.0)))
        elif member:
            raise ValueError(f"the blend was fitted on the vote member {member!r}, which this artefact lacks")

    @property
    def metadata_heads(self) -> tuple[str, ...]:
        """The blend heads this artefact carries (empty when it has no metadata tables)."""
        return tuple(self.blend.heads) if self.blend is not None else ()

    def family_of(self, genre: str) -> str:
        try:
            return self._family_of[genre]
        except KeyError:
            raise KeyError(f"unknown genre {genre!r}") from None

    # --- pure predictions ---------------------------------------------------------------------

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """(n, 14) RAW_INPUTS or (n, 12) AUDIO_FEATURES matrix → (n, classes) calibrated probabilities."""
        array = np.asarray(matrix, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] not in self._heads:
            raise FeatureError({"matrix": f"expected shape (n, k) with k in {sorted(self._heads)}, got {array.shape}"})
        head = self._heads[array.shape[1]]
        raw = validate_matrix(array, head.raw_inputs, head.optional)
        if raw.shape[0] == 0:
            return np.zeros((0, len(self.classes)))
        return head.proba(raw)

    def family_proba(self, proba: np.ndarray) -> np.ndarray:
        """Fine-genre probabilities → family probabilities (sum over each family's genres)."""
        return np.asarray(proba) @ self._family_matrix

    def head_for(self, features: Mapping[str, Any]) -> Head:
        """The one routing rule: every audio feature present → the full head when duration and explicit
        are present (not None) too, else the audio-only head; the nine analysis values without all of
        key, mode and time signature → the analysis head (`NoHead` when the artefact lacks it)."""
        if all(features.get(n) is not None for n in AUDIO_FEATURES):
            if all(features.get(n) is not None for n in self.full.raw_inputs):
                return self.full
            return self._heads.get(len(AUDIO_FEATURES), self.full)
        if all(features.get(n) is not None for n in ANALYSIS_VALUES):
            if self.analysis is None:
                raise NoHead(f"model {self.version} has no analysis head (trained before it existed)")
            return self.analysis
        return self._heads.get(len(AUDIO_FEATURES), self.full)  # FeatureError names what is missing

    def predict_one(
        self,
        features: Mapping[str, Any],
        *,
        artists: str | Sequence[str] | None = None,
        title: str | None = None,
        spotify_genres: Sequence[str] = (),
        deezer_genres: Sequence[str] = (),
        audio_only: bool = False,
    ) -> Prediction:
        """One song. `artists`: 'A;B' or a sequence of names; `title`: the track name; `spotify_genres`:
        the artists' Spotify genres; `deezer_genres`: the album's Deezer genres (all optional)."""
        head = self.head_for(features)
        clean = validate_features(features, head.raw_inputs, head.optional)
        row = np.array([[clean[n] for n in head.raw_inputs]])
        if audio_only or (artists is None and title is None and not spotify_genres and not deezer_genres):
            return self._predictions(head.proba(row), head=head)[0]
        return self._with_metadata(head, row, [artists], [title], [spotify_genres], [deezer_genres])[0]

    def predict_batch(self, rows: Iterable[Mapping[str, Any]]) -> list[Prediction]:
        rows = list(rows)
        by_head: dict[int, list[int]] = {}
        names = np.full(len(rows), HEAD_AUDIO, dtype=object)
        for i, row in enumerate(rows):
            by_head.setdefault(len(self.head_for(row).raw_inputs), []).append(i)
        proba = np.zeros((len(rows), len(self.classes)))
        for width, index in by_head.items():
            head = self._heads[width]
            names[index] = head.answer()
            try:
                matrix = rows_to_matrix([rows[i] for i in index], head.raw_inputs, head.optional)
            except FeatureError as exc:
                # report the caller's row numbers, not the position within the head's subset
                raise FeatureError({_renumber(k, index): v for k, v in exc.problems.items()}) from None
            proba[index] = head.proba(matrix)
        return self._predictions(proba, names=list(names))

    def predict_matrix(
        self,
        matrix: np.ndarray,
        *,
        artists: Sequence[str | Sequence[str] | None] | None = None,
        titles: Sequence[str | None] | None = None,
        audio_only: bool = False,
    ) -> list[Prediction]:
        """Like predict_proba, but returns a Prediction per row (with artists / titles aligned to the rows,
        None where unknown, the metadata heads answer)."""
        array = np.asarray(matrix, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] not in self._heads:
            raise FeatureError({"matrix": f"expected shape (n, k) with k in {sorted(self._heads)}, got {array.shape}"})
        head = self._heads[array.shape[1]]
        if audio_only or (artists is None and titles is None):
            return self._predictions(self.predict_proba(array), head=head)
        raw = validate_matrix(array, head.raw_inputs, head.optional)
        n = len(raw)
        return self._with_metadata(
            head,
            raw,
            list(artists) if artists is not None else [None] * n,
            list(titles) if titles is not None else [None] * n,
            None,
            None,
        )

    def _with_metadata(
        self,
        head: Head,
        raw: np.ndarray,
        artists: Sequence[Any],
        titles: Sequence[str | None],
        spotify: Sequence[Sequence[str]] | None,
        deezer: Sequence[Sequence[str]] | None,
    ) -> list[Prediction]:
        if self.blend is None or len(raw) == 0:
            return self._predictions(head.proba(raw) if len(raw) else np.zeros((0, len(self.classes))), head=head)
        proba, infos = self._distribution(self.blend, head, raw, artists, titles, spotify, deezer)
        return self._predictions(proba, infos, head=head)

    def predict_distribution(
        self,
        matrix: np.ndarray,
        *,
        artists: Sequence[str | Sequence[str] | None] | None = None,
        titles: Sequence[str | None] | None = None,
        spotify_genres: Sequence[Sequence[str]] | None = None,
        deezer_genres: Sequence[Sequence[str]] | None = None,
        audio_only: bool = False,
        blend: MetadataBlend | None = None,
    ) -> tuple[np.ndarray, list[str]]:
        """(n, classes) probabilities with metadata, and the head that answered each row.

        The recommender's seed distribution. `blend` replaces the artefact's evidence tables (an offline
        evaluation whose catalogue leaves its seeds out passes one built from that catalogue).
        """
        array = np.asarray(matrix, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] not in self._heads:
            raise FeatureError({"matrix": f"expected shape (n, k) with k in {sorted(self._heads)}, got {array.shape}"})
        head = self._heads[array.shape[1]]
        raw = validate_matrix(array, head.raw_inputs, head.optional)
        blend = blend or self.blend
        if (
            audio_only
            or blend is None
            or (artists is None and titles is None and spotify_genres is None and deezer_genres is None)
            or len(raw) == 0
        ):
            return (head.proba(raw) if len(raw) else np.zeros((0, len(self.classes)))), [head.answer()] * len(raw)
        n = len(raw)
        proba, infos = self._distribution(
            blend,
            head,
            raw,
            list(artists) if artists is not None else [None] * n,
            list(titles) if titles is not None else [None] * n,
            spotify_genres,
            deezer_genres,
        )
        return proba, [head.answer(i.head) for i in infos]

    def _distribution(
        self,
        blend: MetadataBlend,
        head: Head,
        raw: np.ndarray,
        artists: Sequence[Any],
        titles: Sequence[str | None],
        spotify: Sequence[Sequence[str]] | None,
        deezer: Sequence[Sequence[str]] | None,
    ) -> tuple[np.ndarray, list[SongEvidence]]:
        """Rows with evidence: the blend over the audio source it was fitted on; rows without: the head."""
        evidence, infos = blend.evidence_for(artists, titles, spotify, deezer)
        heads = [i.head for i in infos]
        blended = np.flatnonzero(np.asarray(heads) != HEAD_AUDIO)
        plain = np.flatnonzero(np.asarray(heads) == HEAD_AUDIO)
        proba = np.zeros((len(raw), len(self.classes)))
        if plain.size:
            proba[plain] = head.proba(raw[plain])
        if blended.size:
            proba[blended] = self._source_proba(head, raw[blended])
        return blend.apply(proba, evidence, heads), infos

    def _source_proba(self, head: Head, raw: np.ndarray) -> np.ndarray:
        """The audio probabilities the blend was fitted on: the named vote member with its own temperature
        (full head only), else the head's own calibrated probabilities."""
        if self._source is None or head is not self.full:
            return head.proba(raw)
        from ml.ensemble import member_proba

        model, temperature = self._source
        return apply_temperature(member_proba(model, build_features(raw, head.spec), len(self.classes)), temperature)

    def _predictions(
        self,
        proba: np.ndarray,
        infos: Sequence[SongEvidence] | None = None,
        *,
        head: Head | None = None,
        names: Sequence[str] | None = None,
    ) -> list[Prediction]:
        """`head`: the audio head that answered every row (its name prefixes the blend's head names);
        `names`: per row instead (a batch routed to several heads)."""
        fam = self.family_proba(proba)
        out = []
        for i, (p, f) in enumerate(zip(proba, fam, strict=True)):
            top = _top(p, self.classes)
            ftop = _top(f, self.families)
            if infos is None:
                name = names[i] if names is not None else head.answer() if head is not None else HEAD_AUDIO
                out.append(Prediction(top[0][0], top[0][1], top, ftop[0][0], ftop[0][1], ftop, name, _evidence(name)))
            else:
                info = infos[i]
                name = head.answer(info.head) if head is not None else info.head
                out.append(
                    Prediction(
                        top[0][0],
                        top[0][1],
                        top,
                        ftop[0][0],
                        ftop[0][1],
                        ftop,
                        name,
                        _evidence(name, info.describe()),
                        info.artists_known,
                    )
                )
        return out


def _evidence(head: str, described: str = HEAD_AUDIO) -> str:
    """What a prediction knew, in words ("audio + artist …"; an analysis head's audio is an excerpt's)."""
    if head.startswith(ANALYSIS_HEAD) and described.startswith(HEAD_AUDIO):
        return "30-s excerpt analysis" + described.removeprefix(HEAD_AUDIO)
    return described


def _renumber(key: str, index: Sequence[int]) -> str:
    parts = key.split(" ", 2)
    if len(parts) == 3 and parts[0] == "row" and parts[1].isdigit():
        return f"row {index[int(parts[1])]} {parts[2]}"
    return key


def _top(p: np.ndarray, names: Sequence[str], k: int = 3) -> tuple[tuple[str, float], ...]:
    order = np.argsort(-p, kind="stable")[:k]
    return tuple((names[i], float(p[i])) for i in order)


# -- head routing for many rows at once (the recommender, batch jobs) ---------------------------


class ProbaModel(Protocol):
    """What the recommender needs from the genre model (`ml.predictor.GenrePredictor` fits)."""

    classes: tuple[str, ...]
    raw_inputs: tuple[str, ...]

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray: ...


def proba_inputs(model: ProbaModel, rows: Sequence[Any]) -> np.ndarray:
    """The model's raw input matrix from objects/mappings with attributes or keys of those names."""

    def value(row: Any, name: str) -> float:
        v = row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)
        return math.nan if v is None else float(v)

    return np.asarray([[value(r, c) for c in model.raw_inputs] for r in rows], dtype=np.float64).reshape(
        len(rows), len(model.raw_inputs)
    )


def routed_proba(model: ProbaModel, matrix: np.ndarray) -> np.ndarray:
    """Genre probabilities for many rows at once, never refused wholesale for one odd row.

    The model's full head also reads duration and explicit; rows where those are missing or out of
    range (a 0 ms track, a 3-hour mix) go to its audio-only head instead. Rows whose audio features
    themselves are invalid still raise `FeatureError`.
    """
    n_audio = len(AUDIO_FEATURES)
    extra_names = tuple(model.raw_inputs[n_audio:])
    if tuple(model.raw_inputs[:n_audio]) != AUDIO_FEATURES or not extra_names or matrix.shape[1] == n_audio:
        return np.asarray(model.predict_proba(matrix))  # no audio-only head to fall back to
    ok = np.ones(matrix.shape[0], dtype=bool)
    for j, name in enumerate(extra_names, start=n_audio):
        low, high = FEATURE_RANGES.get(name, (-math.inf, math.inf))
        column = matrix[:, j]
        ok &= np.isfinite(column) & (column >= low) & (column <= high)
    out = np.empty((matrix.shape[0], len(model.classes)), dtype=np.float64)
    if ok.any():
        out[ok] = model.predict_proba(matrix[ok])
    if not ok.all():
        out[~ok] = model.predict_proba(matrix[~ok, :n_audio])
    return out
