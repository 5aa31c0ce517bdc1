"""A user's taste as a query: a recency-weighted mean of likes, pushed away from skips (Rocchio)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.recsys.index import CatalogIndex, Query


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
