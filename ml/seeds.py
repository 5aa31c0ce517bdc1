"""The genre distribution of a song the catalogue holds no labels for, with what is known of it.

Every recommender seed outside the catalogue goes through here — a provider track (found on Spotify
or Deezer, no catalogue labels), a song sent as audio, a row of audio features given with its artists
and title (`main.py recommend --input`, the API): the genre model's probabilities blended with the
evidence of the song's artists and title (`GenrePredictor.predict_distribution`, the "audio+artist"
and "audio+artist+title" heads), or the audio model alone when nothing else is known about it.

The offline evaluation (`ml.recsys.meta_eval`, `main.py evaluate-recs`) calls the same functions with
evidence tables counted over its own catalogue (`blend=`), so a seed's labels never reach it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ml.blend import HEAD_AUDIO
from ml.features import AUDIO_FEATURES, FEATURE_RANGES
from ml.meta import MetadataBlend
from ml.predictor import ProbaModel, routed_proba

Names = Sequence[str | None]
# A neighbours' label vote standing in for the audio model is mixed with this share of the class prior:
# a vote of 30 neighbours puts exact zeros on genres the audio model would give a small chance.
VOTE_SMOOTHING = 0.2


def _blend_of(model: ProbaModel, blend: MetadataBlend | None) -> MetadataBlend | None:
    return blend if blend is not None else getattr(model, "blend", None)


def _given(artists: Names | None, n: int) -> list[str | None]:
    """Artists per row, None where none were given (an empty string is none)."""
    if artists is None:
        return [None] * n
    return [a if isinstance(a, str) and a.strip() else None for a in artists]


def _titles(names: list[str | None], titles: Names | None) -> list[str | None]:
    """Titles per row, kept only where the row has artists (see `seed_distribution`)."""
    given = list(titles) if titles is not None else [None] * len(names)
    return [t if a and isinstance(t, str) and t.strip() else None for a, t in zip(names, given, strict=True)]


def seed_distribution(
    model: ProbaModel,
    matrix: np.ndarray,
    *,
    artists: Names | None = None,
    titles: Names | None = None,
    blend: MetadataBlend | None = None,
) -> tuple[np.ndarray, list[str]]:
    """(n, classes) genre distribution per row of the model's raw inputs, and the head that answered.

    `artists` / `titles` are aligned with the rows (None where unknown). A title counts only with
    artists: a song is named by its artists first, and a title alone (a file name, "Your recording")
    is too weak a sign. Rows whose duration or explicit flag is missing or out of range use the
    audio-only head, as `routed_proba` does. A model without metadata heads answers from audio alone.
    """
    n = len(matrix)
    names = _given(artists, n)
    blend = _blend_of(model, blend)
    predict = getattr(model, "predict_distribution", None)
    if blend is None or predict is None or not any(names):
        return routed_proba(model, matrix), [HEAD_AUDIO] * n
    songs = _titles(names, titles)
    n_audio = len(AUDIO_FEATURES)
    ok = np.ones(n, dtype=bool)
    for j, name in enumerate(model.raw_inputs[n_audio:], start=n_audio):
        low, high = FEATURE_RANGES[name]
        ok &= np.isfinite(matrix[:, j]) & (matrix[:, j] >= low) & (matrix[:, j] <= high)
    out = np.zeros((n, len(model.classes)))
    heads = [HEAD_AUDIO] * n
    for rows, width in ((np.flatnonzero(ok), matrix.shape[1]), (np.flatnonzero(~ok), n_audio)):
        if rows.size == 0:
            continue
        proba, part = predict(
            matrix[rows, :width],
            blend=blend,
            artists=[names[i] for i in rows],
            titles=[songs[i] for i in rows],
        )
        out[rows] = proba
        for i, h in zip(rows.tolist(), part, strict=True):
            heads[i] = h
    return out, heads


def blend_prior(
    model: Any, prior: np.ndarray, *, artists: Names | None, titles: Names | None = None
) -> tuple[np.ndarray, list[str]]:
    """`prior` (n, classes) — a distribution that stands in for the audio model's (a song known by the
    nine values of an audio analysis has no audio head: its audio neighbours' labels) — blended with
    the artists' and title's evidence like `seed_distribution` (smoothed first: `VOTE_SMOOTHING`); rows
    with no evidence keep `prior`."""
    n = len(prior)
    names = _given(artists, n)
    blend = _blend_of(model, None)
    if blend is None or not any(names):
        return np.asarray(prior, dtype=np.float64), [HEAD_AUDIO] * n
    songs = _titles(names, titles)
    evidence, infos = blend.evidence_for(names, songs)
    heads = [i.head for i in infos]
    smoothed = (1 - VOTE_SMOOTHING) * np.asarray(prior, dtype=np.float64) + VOTE_SMOOTHING * blend.prior[None, :]
    out = blend.apply(smoothed, evidence, heads)
    audio = np.asarray(heads) == HEAD_AUDIO
    out[audio] = np.asarray(prior, dtype=np.float64)[audio]
    return out, heads
