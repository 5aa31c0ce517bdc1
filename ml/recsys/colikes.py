"""Co-likes: item-item cosine similarity from the likes matrix, shrunk by support
(common likers / (common likers + shrink)), so that it grows with evidence."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import sparse

from ml.recsys.index import CatalogIndex


class CoLikeModel:
    """Item-item cosine similarity from the likes matrix, over the index's positions."""

    def __init__(self, pairs: Iterable[tuple[int, int]], index: CatalogIndex, *, shrink: float = 5.0) -> None:
        users: dict[int, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for user_id, track_id in pairs:
            pos = index.position(track_id)
            if pos is None:
                continue
            rows.append(users.setdefault(int(user_id), len(users)))
            cols.append(pos)
        n = len(index)
        likes = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(users), n))
        likes.data[:] = 1.0  # duplicates count once
        self.users = len(users)
        self.pairs = len(rows)
        self.shrink = shrink
        self._item_users = likes.T.tocsr()  # n × users
        self._item_count = np.asarray(self._item_users.getnnz(axis=1), dtype=np.float64)

    def may_boost(self, position: int, *, min_support: int = 2) -> bool:
        """False when `scores([position])` is surely empty: fewer than `min_support` people liked it
        (cheap, no matrix product: callers skip the boost's search then)."""
        return 0 <= position < self._item_count.shape[0] and self._item_count[position] >= min_support

    def scores(self, positions: Sequence[int], *, min_support: int = 2) -> dict[int, tuple[float, int]]:
        """position → (shrunk cosine, support) summed over `positions`; support = common likers."""
        if not positions or self.users == 0:
            return {}
        out: dict[int, tuple[float, int]] = {}
        for p in positions:
            row = self._item_users[p]
            if row.nnz == 0:
                continue
            common = (self._item_users @ row.T).tocoo()  # n × 1: users shared with p
            for q, c in zip(common.row.tolist(), common.data.tolist(), strict=True):
                if q == p or c < min_support:
                    continue
                cos = c / math.sqrt(self._item_count[p] * self._item_count[q])
                shrunk = cos * c / (c + self.shrink)
                prev = out.get(q, (0.0, 0))
                out[q] = (prev[0] + shrunk, prev[1] + int(c))
        if len(positions) > 1:
            out = {q: (s / len(positions), c) for q, (s, c) in out.items()}
        return out
