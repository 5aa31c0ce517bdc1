"""Every track's "similar" list, worked out once: a table of the default answer per seed.

`GET /tracks/{id}/similar` without a person asks the same search of the same index for the same seed
every time: the seed's `query_for`, the seed itself left out, its song's keys blocked and its artists
in the window, at one diversity. That search is most of an answer's CPU (the pool and the re-ranking,
~0.3–0.5 ms at 64,600 songs), so `build` runs it once per labelled track (setup does, after the
index) and keeps the first `k` hits, their scores and distances, and the squared distance of the
farthest candidate the search looked at (its pool's `radius2`). `lookup` answers from the table
exactly what the search answers, or None where it may not:

- another diversity than the table's, more than `k` results, a seed outside the table (added since,
  or without labels: its query comes from the genre model), or a seed with co-like boosts (the caller
  checks those: they change with every like);
- tracks appended to the index since (`CatalogIndex.extended`): a seed is answered from the table
  only when none of them is nearer than its pool's farthest (else one would have entered the pool),
  and only at the neutral diversity, where popularity (whose percentiles move when tracks are added)
  does not count.

A shorter list is the table's prefix: the search picks one at a time and gathers the same pool for
any n up to `k` (`build` checks that `pool_size` is the same).

The arrays are saved in the recommender's snapshot (`to_arrays` / `from_arrays`) and memory-mapped
like the rest: ~13 MB at 64,600 songs and ten hits. The snapshot's key vouches for the catalogue,
the model and the weights, not for the code that ranks: the table also carries `engine()`, a hash of
the ranking code's source, and a table built by other code is not used (setup builds it again).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.recsys import index as ranking
from ml.recsys.index import NEUTRAL_DIVERSITY, Hit, Query
from ml.text import normalize, split_artists

if TYPE_CHECKING:
    from ml.recsys.index import CatalogIndex

PREFIX = "neighbours."


@functools.cache
def engine() -> str:
    """A hash of what decides a list: the source of the pool, the re-ranking and their helpers, and
    the engine's module constants they read (the weights are the snapshot key's)."""
    parts = (
        ranking.CatalogIndex.search,
        ranking.CatalogIndex.pool,
        ranking.CatalogIndex._pool_from,
        ranking.CatalogIndex._genre_listed,
        ranking.CatalogIndex._genre_union_scores,
        ranking.GenreUnions.get,
        ranking.CatalogIndex._audio_at,
        ranking.CatalogIndex.distances2_at,
        ranking.CatalogIndex.rank,
        ranking.CatalogIndex._pair_distances2,
        ranking.CatalogIndex.query_for,
        ranking.CatalogIndex.keys_at,
        ranking.smallest,
        ranking._member,
        ranking._artist_id,
        split_artists,
        normalize,
    )
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(_code(part).encode())
    constants = (ranking.ARTIST_CAP, ranking.ARTIST_WINDOW, ranking.NEUTRAL_DIVERSITY, ranking._GENRE_MARGIN)
    digest.update(repr(constants).encode())
    return digest.hexdigest()


def _code(function: Any) -> str:
    """A function's code without its comments and docstrings (its syntax tree, unparsed): a release
    that only rewords them keeps the table."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


@dataclass(frozen=True)
class Neighbours:
    """The table: row `p` is the seed at index position `p` (positions below `size`)."""

    hits: np.ndarray  # (size, k) int32 positions, -1 past a seed's last hit
    scores: np.ndarray  # (size, k) float64, as the search computes them
    distances: np.ndarray  # (size, k) float64
    radius2: np.ndarray  # (size,) float32: the pool's farthest squared distance; -1 not in the table
    diversity: float
    pool_size: int  # the index's pool_size(k) when built

    @property
    def size(self) -> int:
        return int(self.radius2.shape[0])

    @property
    def k(self) -> int:
        return int(self.hits.shape[1])

    def lookup(self, index: CatalogIndex, position: int, query: Query, n: int, diversity: float) -> list[Hit] | None:
        """The first `n` hits of the seed at `position` (whose query is `query`), as
        `index.search(query, n, exclude={position}, exclude_keys=index.keys_at(position),
        diversity=diversity, seed_artists=index.artists[position])` gives them; None when the table
        cannot say (see the module's text)."""
        if not 0 < n <= self.k or diversity != self.diversity or index.pool_size(n) != self.pool_size:
            return None
        if not 0 <= position < self.size or self.radius2[position] < 0:
            return None
        if len(index) != self.size:
            if diversity != NEUTRAL_DIVERSITY:
                return None
            tail = np.arange(self.size, len(index), dtype=np.int64)
            if bool((index.distances2_at(query, tail) <= self.radius2[position]).any()):
                return None
        row = self.hits[position].tolist()
        found = row.index(-1) if -1 in row else len(row)
        m = min(n, found)
        scores, distances = self.scores[position, :m].tolist(), self.distances[position, :m].tolist()
        return [Hit(row[i], scores[i], distances[i]) for i in range(m)]

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {
            PREFIX + "hits": self.hits,
            PREFIX + "scores": self.scores,
            PREFIX + "distances": self.distances,
            PREFIX + "radius2": self.radius2,
        }
        return arrays, {"diversity": self.diversity, "pool_size": self.pool_size, "engine": engine()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], n: int) -> Neighbours:
        """Raises ValueError when the arrays do not fit together, hold more seeds than `n` tracks, or
        were worked out by other ranking code."""
        if meta.get("engine") != engine():
            raise ValueError("neighbour table worked out by other ranking code")
        table = cls(
            hits=arrays[PREFIX + "hits"],
            scores=arrays[PREFIX + "scores"],
            distances=arrays[PREFIX + "distances"],
            radius2=arrays[PREFIX + "radius2"],
            diversity=float(meta["diversity"]),
            pool_size=int(meta["pool_size"]),
        )
        shape = (table.size, table.k)
        if table.scores.shape != shape or table.distances.shape != shape or table.hits.ndim != 2:
            raise ValueError("neighbour table arrays of different shapes")
        if table.size > n:
            raise ValueError("neighbour table holds more seeds than the index has tracks")
        return table


def build(index: CatalogIndex, k: int = 10, diversity: float = NEUTRAL_DIVERSITY) -> Neighbours:
    """The table for every labelled track of `index` (the others are left out: radius2 −1).
    Raises ValueError when a list of fewer than `k` would gather a smaller pool than `k` does."""
    if k <= 0:
        raise ValueError("k must be positive")
    pool_size = index.pool_size(k)
    if index.pool_size(1) != pool_size:
        raise ValueError(f"the pool of a list of {k} is larger than a shorter list's: prefixes would differ")
    n = len(index)
    hits = np.full((n, k), -1, dtype=np.int32)
    scores = np.zeros((n, k), dtype=np.float64)
    distances = np.zeros((n, k), dtype=np.float64)
    radius2 = np.full(n, -1.0, dtype=np.float32)
    seeds = np.flatnonzero(np.asarray(index.has_label, dtype=bool)).tolist()
    for position in seeds:
        pool, pool_d2 = index.pool(index.query_for(position), k, (position,), None)
        found = index.rank(
            pool,
            pool_d2,
            k,
            exclude_keys=index.keys_at(position),
            diversity=diversity,
            seed_artists=index.artists[position],
        )
        # A pool short of its size took every track it could: any track added later would join it.
        full = pool.size == pool_size
        radius2[position] = float(pool_d2.max()) if full and pool.size else np.inf
        for i, hit in enumerate(found):
            hits[position, i], scores[position, i], distances[position, i] = hit.position, hit.score, hit.distance
    return Neighbours(hits, scores, distances, radius2, float(diversity), pool_size)
