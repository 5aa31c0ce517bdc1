"""A user's taste as a query: a recency-weighted mean of likes, pushed away from skips (Rocchio)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.recsys.index import CatalogIndex, Query
from ml.recsys.scaling import PARTIAL_SCALED, SCALED_COLUMNS


def taste_from_history(
    index: CatalogIndex, liked: Sequence[int], skipped: Sequence[int], *, beta: float = 1.0, gamma: float = 0.25
) -> Query:
    """Rocchio over a user's history (newest first): recency-weighted mean of likes, minus skips."""
    weights = np.asarray([0.9**i for i in range(len(liked))])
    weights /= weights.sum()
    audio = sum(w * index.audio[p] for w, p in zip(weights, liked, strict=True))
    queries = [index.query_for(p) for p in liked]
    genres = [q.genre for q in queries if q.genre is not None]
    genre = np.mean(genres, axis=0) if genres else None
    if skipped:
        skip_mean = np.mean([index.audio[p] for p in skipped], axis=0)
        audio = beta * audio - gamma * (skip_mean - audio)
    return Query(np.asarray(audio, dtype=np.float32), None if genre is None else genre.astype(np.float32))


def mean_query(queries: Sequence[Query]) -> Query:
    """The mean of several queries (the taste of a whole playlist): audio averaged; the key, mode and
    time-signature columns averaged over the queries that know them (a song known from an audio
    analysis holds 0 there), and left out of distances only when none does; genre distributions
    averaged over the queries that have one."""
    if not queries:
        raise ValueError("mean_query needs at least one query")
    audio = np.stack([np.asarray(q.audio, dtype=np.float64) for q in queries])
    mean = audio.mean(axis=0)
    complete = [i for i, q in enumerate(queries) if not q.partial]
    cols = np.asarray([SCALED_COLUMNS.index(c) for c in PARTIAL_SCALED])
    mean[cols] = audio[complete][:, cols].mean(axis=0) if complete else 0.0
    genres = [np.asarray(q.genre, dtype=np.float64) for q in queries if q.genre is not None]
    genre = np.mean(genres, axis=0).astype(np.float32) if genres else None
    return Query(mean.astype(np.float32), genre, partial=not complete)
