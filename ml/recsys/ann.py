"""Big catalogues: an HNSW graph (usearch) over the audio block, and the engine's space made euclidean.

The exact scan (`CatalogIndex.distances2`) is linear in the catalogue: ~8 ms p99 at a million songs
(bench/bench_scale.py). Above `EngineWeights.ann_min_songs` `CatalogIndex.search` takes its pool
from a smaller set, re-scored exactly, and runs the same re-ranking and filters on it:

1. A query with a genre: only the tracks filed under one of its genres (the genre block's columns,
   which the exact scan reads already), plus those without any genre. Every other track shares no
   genre with the query, so its squared distance is at least c = 2·genre_weight² (288): when the
   pool's farthest member is nearer than that, the pool is exactly the exact scan's. That holds for
   all but rare genres; otherwise, and for queries spread over a large share of the catalogue (a
   dense genre distribution), step 2's candidates are added.
2. A query without a genre (genre off, no labels and no neighbours' vote): its distance is the audio
   block's, and this graph over the audio vectors gives `ann_fetch` × pool candidates.

Why not one graph over the whole distance: the engine's d² = |a − q_a|² + c·(1 − g·q_g) is a
euclidean distance on augmented vectors up to a per-query constant (`Space`: x = [a, √(c/2)·gE, h],
y = [q_a, √(c/2)·q_gE, 0], E a genre code, h = √(K − ½c·|gE|²)), but with c = 288 against audio
distances of ~1–5 each genre combination is an island the HNSW graph does not link: measured at
250,000 songs (exact code, 129 dims, f16/f32, M 16), 1–2 % of the exact top ten were unreachable
whatever the search depth, and a whole island now and then (recall@10 0.93 at 1M); a weaker genre
weight in the graph joins the islands but fills the candidates with other genres (0.89–0.92). The
genre lists are exact and cheaper. `Space` is what `bench/bench_pgvector.py --space full` stores.

The graph is kept as bytes in a uint8 array, so it is saved in the recommender's snapshot like every
other array, and a process maps it (`Index.view` over the memory-mapped array) instead of loading
or rebuilding it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from usearch.index import Index

FORMAT = 2
# usearch is imported only where a graph is built or viewed (catalogues above
# EngineWeights.ann_min_songs), never by importing this module: loaded before LightGBM's library,
# usearch 2.26's extension makes LightGBM fail ("Feature (Column_) appears more than one time";
# loaded after it, both work). tests/recs/test_ann.py checks the import stays lazy.
CODE_SEED = 15


@dataclass(frozen=True, slots=True)
class AnnSettings:
    """How the graph is built and searched (bench/bench_scale.py measured these)."""

    connectivity: int = 16  # HNSW M
    expansion_add: int = 64  # efConstruction
    expansion_search: int = 256  # ef (at least the candidates asked for)
    dtype: str = "f16"  # stored vectors: f32, f16 or i8


def genre_code(classes: int, dims: int, seed: int = CODE_SEED) -> np.ndarray:
    """(classes, dims) unit rows: the identity when dims ≥ classes, else spread random directions
    (a few steps pushing the closest pairs apart)."""
    if classes <= dims:
        return np.eye(classes, dtype=np.float32)
    rng = np.random.default_rng(seed)
    code = rng.normal(size=(classes, dims))
    code /= np.linalg.norm(code, axis=1, keepdims=True)
    for _ in range(200):
        gram = code @ code.T
        np.fill_diagonal(gram, 0.0)
        code -= 0.05 * (gram**3) @ code  # pushes apart mostly the pairs with a large overlap
        code /= np.linalg.norm(code, axis=1, keepdims=True)
    return code.astype(np.float32)


@dataclass(frozen=True, slots=True)
class Space:
    """The engine's distance made euclidean (see the module doc): code E, √(c/2) and K."""

    code: np.ndarray  # (classes, dims); (0, 0): audio only
    genre_scale: float  # √(c/2) = the genre weight
    pad: float  # K: the largest ½c·|gE|² of the tracks

    @classmethod
    def fit(cls, genre: sparse.csr_matrix | None, genre_weight: float, dims: int, step: int = 65_536) -> Space:
        """The space for tracks with these scored genre rows (None or weight 0: audio only)."""
        if genre is None or genre.shape[1] == 0 or genre_weight <= 0:
            return cls(np.zeros((0, 0), dtype=np.float32), 0.0, 0.0)
        code = genre_code(genre.shape[1], dims)
        scale = float(genre_weight)
        pad = 0.0
        for lo in range(0, genre.shape[0], step):
            coded = np.asarray(genre[lo : lo + step] @ code, dtype=np.float32) * np.float32(scale)
            pad = max(pad, float(np.einsum("ij,ij->i", coded, coded).max(initial=0.0)))
        return cls(code, scale, pad)

    def ndim(self, audio_dims: int) -> int:
        return audio_dims + (self.code.shape[1] + 1 if self.code.size else 0)

    def points(self, audio: np.ndarray, genre: sparse.csr_matrix | None) -> np.ndarray:
        """Tracks' vectors [a, √(c/2)·gE, h]."""
        audio = np.asarray(audio, dtype=np.float32)
        if genre is None or not self.code.size:
            return np.ascontiguousarray(audio)
        coded = np.asarray(genre @ self.code, dtype=np.float32) * np.float32(self.genre_scale)
        sq = np.einsum("ij,ij->i", coded, coded)
        pad = np.sqrt(np.maximum(np.float32(self.pad) - sq, 0.0))[:, None]
        return np.ascontiguousarray(np.hstack([audio, coded, pad]), dtype=np.float32)

    def query_point(self, audio: np.ndarray, genre: np.ndarray | None) -> np.ndarray:
        """The query's vector [q_a, √(c/2)·q_gE, 0] (`genre`: as `CatalogIndex.distances2` uses it)."""
        qa = np.asarray(audio, dtype=np.float32)
        if not self.code.size:
            return qa
        coded = np.zeros(self.code.shape[1], dtype=np.float32)
        if genre is not None:
            coded = (np.asarray(genre, dtype=np.float32) @ self.code) * np.float32(self.genre_scale)
        return np.concatenate([qa, coded, np.zeros(1, dtype=np.float32)])


class AnnIndex:
    """An HNSW graph over the audio vectors of the first `size` tracks; keys are positions."""

    def __init__(self, graph: Index, settings: AnnSettings, size: int) -> None:
        self.graph = graph
        self.settings = settings
        self.size = size
        self.build_seconds = 0.0
        self._buffer: np.ndarray | None = None  # the mapped bytes a viewed graph reads
        # One search at a time: the scans run in worker threads, and a graph's per-thread search
        # contexts are numbered by usearch's own pool (a search takes well under a millisecond).
        self._lock = threading.Lock()

    @classmethod
    def build(cls, audio: np.ndarray, settings: AnnSettings | None = None, threads: int = 0) -> AnnIndex:
        """The graph over `audio` (n, d), added in blocks (a mapped block is read once)."""
        settings = settings or AnnSettings()
        started = time.perf_counter()
        n = len(audio)
        from usearch.index import Index  # only here: see the note under FORMAT

        graph = Index(
            ndim=audio.shape[1],
            metric="l2sq",
            dtype=settings.dtype,
            connectivity=settings.connectivity,
            expansion_add=settings.expansion_add,
            expansion_search=settings.expansion_search,
        )
        step = 65_536
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            block = np.ascontiguousarray(audio[lo:hi], dtype=np.float32)
            graph.add(np.arange(lo, hi, dtype=np.uint64), block, threads=threads)
        self = cls(graph, settings, n)
        self.build_seconds = time.perf_counter() - started
        return self

    def candidates(self, audio: np.ndarray, count: int) -> np.ndarray:
        """Positions of about `count` tracks nearest to the audio vector `audio`."""
        count = min(count, self.size)
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        point = np.ascontiguousarray(audio, dtype=np.float32)
        with self._lock:
            matches = self.graph.search(point, count, threads=1)
        return np.asarray(matches.keys, dtype=np.int64)

    # -- snapshot ----------------------------------------------------------------------------------

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        buffer = self._buffer
        if buffer is None:
            saved = self.graph.save()
            if saved is None:
                raise RuntimeError("usearch returned no bytes for the graph")
            buffer = np.frombuffer(saved, dtype=np.uint8)
        arrays = {"ann.graph": buffer}
        s = self.settings
        meta = {
            "format": FORMAT,
            "size": self.size,
            "settings": [s.connectivity, s.expansion_add, s.expansion_search, s.dtype],
        }
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> AnnIndex:
        """The graph of `to_arrays()`, viewed in place (a memory-mapped array stays mapped). Raises
        ValueError when the arrays are not a graph of the size meta says."""
        if meta.get("format") != FORMAT:
            raise ValueError(f"ann format {meta.get('format')} != {FORMAT}")
        connectivity, expansion_add, expansion_search, dtype = meta["settings"]
        settings = AnnSettings(int(connectivity), int(expansion_add), int(expansion_search), str(dtype))
        buffer = arrays["ann.graph"]
        from usearch.index import Index  # only here: see the note under FORMAT

        graph = Index.restore(memoryview(np.ascontiguousarray(buffer).data), view=True)
        if graph is None or len(graph) != int(meta["size"]):
            raise ValueError("ann graph does not match its meta")
        graph.expansion_search = settings.expansion_search  # type: ignore[misc]  # usearch's setter confuses mypy
        self = cls(graph, settings, int(meta["size"]))
        self._buffer = buffer
        return self
