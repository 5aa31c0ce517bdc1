"""The recommender engine: the catalogue embedded once in memory and searched with numpy.

`CatalogIndex` holds every track with audio features in two blocks:

- audio (dense float32): the 12 Spotify features + duration, scaled robustly — z-scores for the
  well-behaved ones, a quantile (rank) transform for the skewed ones (speechiness, acousticness,
  instrumentalness, liveness), log duration, key as a point on the pitch circle (sin, cos) —
  each column multiplied by its weight;
- genre (sparse): per track, how likely it shares a genre with a query — 1 per dataset label
  (damped for tracks filed under many genres), mixed with the genre model's probabilities when
  given (top classes kept); a query carries a genre distribution q (the model's probabilities for
  a new track, the labels of a catalogue track), so `block @ q` is the chance of a shared genre and
  the squared distance grows by 2·w²·(1 − that chance). The earlier Hellinger embedding (√ of
  both distributions, Bhattacharyya similarity) stays selectable (`genre_metric`); the evaluation
  compares both (docs/recs-eval.md).

A query is a point in the same space. For a track the catalogue never saw, its genre part comes
from the model's probabilities, or else from the labels of its audio nearest neighbours.
Search is a brute-force scan (a float32 mat-vec plus a sparse one), `argpartition` for a
candidate pool, then the filters (excluded tracks, duplicate recordings, artist cap: at most 2
tracks per artist in any window of 10, counting what was shown just before) and an MMR
re-ranking whose strength is the familiar ↔ new dial (`diversity` in [0, 1]; away from the
default 0.3 it also tilts towards popular tracks (0) or less-known ones (1)).

Co-likes (`ml.recsys.colikes.CoLikeModel`) add item-item similarity from the likes matrix to the
content score (passed to `search` as `boost`).

Songs analysed from audio have nine features (no key, mode or time signature; see
`ml.recsys.scaling`). In the index they sit at the neutral value (0) of those scaled columns. A
query for such a song (`query_for_partial`, `Query.partial`) leaves those columns out of its
distances altogether — each track's own share of them, `partial_norm`, is subtracted — so the
song is placed by the nine values it has and is not pulled towards major-key or 4/4 tracks.

Tracks added after the index was built (`extended`) are embedded with the same scaler and genre
block, so every existing vector, position and stored radio taste stays valid (`signature()` does
not change).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from scipy import sparse

from ml.features import AUDIO_FEATURES
from ml.recsys.ann import AnnIndex, AnnSettings
from ml.recsys.scaling import PARTIAL_SCALED, RAW_COLUMNS, SCALED_COLUMNS, UNANALYSED, FeatureScaler, raw_row
from ml.recsys.snapshot import IntTuples, StrColumn, concat
from ml.text import normalize, recording_key, song_key, split_artists

NEUTRAL_DIVERSITY = 0.3
_HASH_MASK = (1 << 62) - 1
_SPARSE_QUERY_CLASSES = 24  # a query genre with more non-zero classes uses the full sparse product
ARTIST_CAP = 2
ARTIST_WINDOW = 10
_GENRE_MARGIN = 16.0  # genre-list rows whose genre term is this close to the best are re-scored first
_GENRE_FLOOR = 1e-6  # a steered taste's genre weights below this are dropped (CatalogIndex.steer)


class GenreUnions:
    """The rows filed under any of a set of genre classes, and where each class's column sits among
    them, per class set: least recently used first out, within `budget` stored positions (8 bytes
    each; a set needing more than `largest` is answered but not kept). A radio's classes change
    only when a like brings a new one, and a catalogue seed's are its labels, so a few hundred sets
    serve most searches. Thread-safe: searches run on a pool."""

    def __init__(self, columns: sparse.csc_matrix, budget: int = 1 << 19, largest: int | None = None) -> None:
        self.columns = columns
        self.budget = budget
        self.largest = budget // 4 if largest is None else largest
        self._items: OrderedDict[tuple[int, ...], tuple[np.ndarray, list[np.ndarray]]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, classes: tuple[int, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
        with self._lock:
            found = self._items.get(classes)
            if found is not None:
                self._items.move_to_end(classes)
                return found
        # Marked over the catalogue's length: 4x faster than np.unique of the joined columns (89
        # against 370 µs for 3,100 rows at 64,588 songs), and linear rather than n log n.
        c = self.columns
        parts = [c.indices[c.indptr[k] : c.indptr[k + 1]] for k in classes]
        listed = np.zeros(c.shape[0], dtype=bool)
        for part in parts:
            listed[part] = True
        rows = np.flatnonzero(listed).astype(np.int64, copy=False)
        slot = np.empty(c.shape[0], dtype=np.int64)
        slot[rows] = np.arange(rows.size)
        made = (rows, [slot[part] for part in parts])
        for array in (rows, *made[1]):
            array.flags.writeable = False  # shared by every search that asks for this set
        size = self._size(made)
        with self._lock:
            if classes not in self._items and size <= self.largest:
                self._items[classes] = made
                self._held += size
                while self._held > self.budget:
                    self._held -= self._size(self._items.popitem(last=False)[1])
        return made

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def _size(item: tuple[np.ndarray, list[np.ndarray]]) -> int:
        return item[0].size + sum(part.size for part in item[1])


@dataclass(frozen=True, slots=True)
class EngineWeights:
    """How much each part of the embedding counts (chosen by `services/rec_eval.py`)."""

    features: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType(
            {
                "danceability": 1.0,
                "energy": 1.0,
                "valence": 1.0,
                "loudness": 0.8,
                "tempo": 0.5,
                "mode": 0.3,
                "time_signature": 0.3,
                "speechiness": 1.0,
                "acousticness": 1.0,
                "instrumentalness": 1.0,
                "liveness": 0.4,
                "key_sin": 0.2,
                "key_cos": 0.2,
                "log_duration": 0.4,
            }
        )
    )
    # genre, label_mix, label_damping: chosen on validation seeds by services/rec_eval.py (docs/recs-eval.md)
    genre: float = 12.0  # weight of the genre block (0: audio only)
    label_mix: float = 1.0  # a labelled catalogue track's genre vector: this share labels, the rest model probabilities
    genre_top: int = 5  # model probabilities kept per catalogue track (the genre block is sparse)
    # "match": a track's genre score is the probability that it shares a genre with the query — the
    # query's genre distribution summed over the track's labels (mixed with its model probabilities);
    # "hellinger": Bhattacharyya similarity of the two distributions.
    genre_metric: Literal["match", "hellinger"] = "match"
    # match: each label of a track carrying L labels counts L^-damping — 0 is the exact shared-genre
    # chance, which lets tracks filed under many genres come back for every seed
    label_damping: float = 0.25
    knn_genre: int = 30  # neighbours voting the genre of a track that has neither labels nor probabilities
    pool: int = 200  # candidate pool re-ranked after the distance scan
    popularity_tilt: float = 0.15  # how far the familiar ↔ new dial tilts towards popular / less-known tracks
    max_mmr: float = 0.6  # MMR weight of novelty at diversity = 1
    artist_repeat: float = 0.1  # soft penalty per track of the same artist already in the window of 10
    # From this many songs on, the candidate pool comes from an HNSW graph (ml/recsys/ann.py) instead
    # of the exact scan: ~8 ms p99 at 1M songs exact (bench/bench_scale.py); below it nothing changes.
    ann_min_songs: int = 200_000
    # Above this many songs a pool is first sought in the query's genre lists (with or without the
    # graph): exact when the pool's farthest is nearer than a track outside them can be, else the scan.
    genre_lists_min: int = 20_000
    ann_fetch: float = 2.0  # graph candidates asked for, per pool slot (re-scored exactly)
    ann_genre_share: float = 0.25  # the query's genre lists are re-scored alone when below this share

    def __post_init__(self) -> None:
        if self.genre_metric not in ("match", "hellinger"):
            raise ValueError(f"genre_metric must be 'match' or 'hellinger', not {self.genre_metric!r}")

    def with_(self, **changes: Any) -> EngineWeights:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    id: int
    spotify_id: str | None
    name: str
    artists: tuple[str, ...]
    album: str | None
    explicit: bool | None
    duration_ms: int | None
    popularity: int
    genres: tuple[str, ...]
    features: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Hit:
    position: int  # row in the index
    score: float  # higher is better
    distance: float  # euclidean distance to the query in the embedding space
    reason: str = "similar sound"


@dataclass(slots=True)
class Query:
    """A point in the index's space; `genre` is None when the genre part is unknown."""

    audio: np.ndarray
    genre: np.ndarray | None
    # Squared audio distances to the whole index, when already computed (not persisted).
    audio_d2: np.ndarray | None = field(default=None, repr=False, compare=False)
    # Key, mode and time signature unknown (a song analysed from audio): left out of distances.
    partial: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "audio": [round(float(x), 6) for x in self.audio],
            "genre": None if self.genre is None else [round(float(x), 6) for x in self.genre],
        }
        if self.partial:
            out["partial"] = True
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Query:
        genre = data.get("genre")
        return cls(
            np.asarray(data["audio"], dtype=np.float32),
            None if genre is None else np.asarray(genre, dtype=np.float32),
            partial=bool(data.get("partial", False)),
        )

    def moved(self, target: Query, rate: float) -> Query:
        """`self + rate · (target − self)` (rate < 0 pushes away). Moved towards a track whose key,
        mode and time signature are known, the query takes them up (it is no longer partial)."""
        audio = self.audio + rate * (target.audio - self.audio)
        if self.genre is not None and target.genre is not None:
            genre: np.ndarray | None = self.genre + rate * (target.genre - self.genre)
        else:
            genre = self.genre if self.genre is not None else target.genre
        return Query(
            audio.astype(np.float32),
            None if genre is None else genre.astype(np.float32),
            partial=self.partial and (target.partial or rate < 0),
        )


class CatalogIndex:
    """Every track with audio features, embedded once; searched with numpy."""

    def __init__(
        self,
        *,
        ids: Sequence[int],
        spotify_ids: Sequence[str | None],
        names: Sequence[str],
        artists: Sequence[str],
        raw: np.ndarray,
        popularity: Sequence[float | None] | None = None,
        genres: Sequence[Sequence[str]] | None = None,
        proba: np.ndarray | None = None,
        proba_classes: Sequence[str] | None = None,
        weights: EngineWeights | None = None,
        albums: Sequence[str | None] | None = None,
        explicit: Sequence[bool | None] | None = None,
        scaler: FeatureScaler | None = None,
    ) -> None:
        n = len(ids)
        if raw.shape != (n, len(RAW_COLUMNS)):
            raise ValueError(f"raw must be (n, {len(RAW_COLUMNS)}), got {raw.shape}")
        self.weights = weights or EngineWeights()
        self.ids = np.asarray(ids, dtype=np.int64)
        self.spotify_ids: Sequence[str | None] = list(spotify_ids)
        self.names: Sequence[str] = list(names)
        self.artists: Sequence[str] = list(artists)
        # Kept so that a recommendation is built from memory, with no database round trip.
        self.albums: Sequence[str | None] = list(albums) if albums is not None else [None] * n
        self.explicit: Sequence[bool | None] = list(explicit) if explicit is not None else [None] * n
        self.raw = np.asarray(raw, dtype=np.float64)
        self.genres: Sequence[tuple[str, ...]] = [tuple(g) for g in (genres or [()] * n)]
        pop = np.asarray([np.nan if p is None else float(p) for p in (popularity or [None] * n)], dtype=np.float64)
        self.popularity = np.where(np.isfinite(pop), pop, 0.0)
        order = np.argsort(self.popularity, kind="stable")
        pct = np.empty(n, dtype=np.float64)
        pct[order] = (np.arange(n) + 0.5) / max(n, 1)
        self.popularity_pct = pct.astype(np.float32)
        self._pos = {int(t): i for i, t in enumerate(self.ids)}
        self._spotify_pos: dict[str, int] | None = None  # built on first use

        # Keys: song (exact fold key), recording (looser) and artists, as stable 62-bit hashes (the
        # same in every process and in a saved snapshot, with no dictionary of strings to keep).
        self.song_keys = np.asarray([_key(song_key(a, t)) for a, t in zip(artists, names, strict=True)], dtype=np.int64)
        self.recording_keys = np.asarray(
            [_key("r:" + recording_key(a, t)) for a, t in zip(artists, names, strict=True)], dtype=np.int64
        )
        self.track_artists: Sequence[tuple[int, ...]] = [_artist_ids(line, i) for i, line in enumerate(artists)]

        self.main_artist = np.asarray([a[0] for a in self.track_artists], dtype=np.int64)

        # Audio block.
        self.scaler = scaler if scaler is not None else FeatureScaler(self.raw)
        self._audio_w = np.asarray([self.weights.features.get(c, 1.0) for c in SCALED_COLUMNS], dtype=np.float64)
        self._partial_cols = np.asarray([SCALED_COLUMNS.index(c) for c in PARTIAL_SCALED])
        self.audio = np.ascontiguousarray(self.scaler.transform(self.raw) * self._audio_w, dtype=np.float32)
        # The same block by columns: the scan reads it as 14 contiguous rows (see audio_distances2).
        self.audio_t = np.ascontiguousarray(self.audio.T)
        self.audio_norm = np.einsum("ij,ij->i", self.audio, self.audio).astype(np.float32)
        # Each track's share of the columns a partial query leaves out, and which tracks are partial.
        self.partial_norm = self._partial_share(self.audio)
        self.partial = self._partial_rows(self.raw)

        # Genre block: label distribution mixed with model probabilities, sqrt, PCA.
        classes = list(proba_classes) if proba_classes is not None else sorted({g for gs in self.genres for g in gs})
        self.classes = classes
        self._class_pos = {c: i for i, c in enumerate(classes)}
        labels = np.zeros((n, len(classes)), dtype=np.float64)
        for i, gs in enumerate(self.genres):
            known = [self._class_pos[g] for g in gs if g in self._class_pos]
            if known:
                labels[i, known] = 1.0 / len(known)
        self.labels = sparse.csr_matrix(labels)
        has_label = labels.sum(axis=1) > 0
        self.has_label = has_label
        self._n_labelled = int(has_label.sum())
        if proba is not None:
            proba = np.asarray(proba, dtype=np.float64)
            if proba.shape != (n, len(classes)):
                raise ValueError(f"proba must be (n, {len(classes)}), got {proba.shape}")
            mix = self.weights.label_mix
            dist = np.where(has_label[:, None], mix * labels + (1 - mix) * proba, proba)
            # A row of zeros: the model could not place that track (nine features only).
            self.has_genre = has_label | (proba.sum(axis=1) > 0)
        else:
            dist = labels
            self.has_genre = has_label
        self.has_proba = proba is not None
        guessed = self._guess_genres(dist, self.audio, self.partial, ~self.has_genre)
        self.has_genre = self.has_genre | guessed
        self._setup_genre_block(dist, labels > 0, proba, guessed)
        self._space = f"{n}"  # see signature(): kept by extended()
        self.ann: AnnIndex | None = self.build_ann() if n >= self.weights.ann_min_songs else None

    def build_ann(self, settings: AnnSettings | None = None, threads: int = 0) -> AnnIndex:
        """The HNSW graph over this index's tracks (candidate generation, see ml/recsys/ann.py)."""
        return AnnIndex.build(self.audio, settings, threads)

    # -- construction helpers -------------------------------------------------------------------

    def _guess_genres(
        self, dist: np.ndarray, audio: np.ndarray, partial: np.ndarray, missing: np.ndarray
    ) -> np.ndarray:
        """Tracks with neither labels nor model probabilities (songs found through a provider, the
        nine-value ones the model cannot place) get the label distribution of their audio neighbours
        written into `dist`, so they compete as candidates like everyone else instead of counting as
        genre-less. Returns which rows got one. Only a few such tracks exist: one scan each."""
        guessed = np.zeros(len(dist), dtype=bool)
        if self.weights.genre <= 0 or self._n_labelled == 0 or len(self.classes) == 0:
            return guessed
        for i in np.flatnonzero(missing).tolist():
            d2 = self.audio_distances2(audio[i], partial=bool(partial[i]))
            votes = self.genre_distribution(audio[i], audio_d2=d2)
            if votes.sum() > 0:
                dist[i] = votes
                guessed[i] = True
        return guessed

    def _setup_genre_block(
        self, dist: np.ndarray, member: np.ndarray, proba: np.ndarray | None, guessed: np.ndarray | None = None
    ) -> None:
        """The genre block: per track, its distribution (queries) and what a query is scored against.

        hellinger: both are the square root of the distribution (top classes only);
        match: the scored side is membership — 1 for each label, mixed with the model probabilities
        (top classes) — so that `block @ q` is the chance the track shares a genre with a query whose
        distribution is q.
        """
        n, k = dist.shape
        self.genre_on = k > 0 and self.weights.genre > 0 and bool(self.has_genre.any())
        if not self.genre_on:
            self.genre = self.genre_dist = sparse.csr_matrix((n, k), dtype=np.float32)
            return
        self.genre_dist, self.genre = self._genre_rows(dist, member, proba, guessed)

    def _genre_rows(
        self, dist: np.ndarray, member: np.ndarray, proba: np.ndarray | None, guessed: np.ndarray | None = None
    ) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        """(distribution, scored side) of some tracks' genre rows; row by row, so that tracks added
        later (`extended`) get exactly the rows a full build would give them."""
        top = self.weights.genre_top
        dist = _top_normalized(dist, top)
        if self.weights.genre_metric == "match":
            labelled = member.any(axis=1, keepdims=True)
            score = member / np.maximum(member.sum(axis=1, keepdims=True), 1.0) ** self.weights.label_damping
            if proba is not None:
                p, mix = _top_normalized(proba, top), self.weights.label_mix
                score = np.where(labelled, mix * score + (1 - mix) * p, p)
            if guessed is not None and guessed.any():  # scored by the neighbours' distribution
                score = np.where(guessed[:, None], dist, score)
            return sparse.csr_matrix(dist, dtype=np.float32), sparse.csr_matrix(score, dtype=np.float32)
        root = sparse.csr_matrix(np.sqrt(dist), dtype=np.float32)
        return root, root

    def _partial_share(self, audio: np.ndarray) -> np.ndarray:
        cols = audio[:, self._partial_cols]
        return np.einsum("ij,ij->i", cols, cols).astype(np.float32)

    @staticmethod
    def _partial_rows(raw: np.ndarray) -> np.ndarray:
        cols = [RAW_COLUMNS.index(c) for c in UNANALYSED]
        return ~np.isfinite(raw[:, cols]).all(axis=1)

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Any],
        genre_map: Mapping[int, Sequence[str]],
        *,
        proba: np.ndarray | None = None,
        proba_classes: Sequence[str] | None = None,
        weights: EngineWeights | None = None,
    ) -> CatalogIndex:
        """From `TrackRepository.feature_rows()` and `genre_map()` (key, mode and time signature
        may be None: songs analysed from audio)."""
        rows = list(rows)
        raw = _raw_of(rows)
        return cls(
            ids=[r.id for r in rows],
            spotify_ids=[r.spotify_id for r in rows],
            names=[r.name for r in rows],
            artists=[r.artists for r in rows],
            raw=raw,
            popularity=[r.popularity for r in rows],
            genres=[genre_map.get(r.id, ()) for r in rows],
            albums=[getattr(r, "album", None) for r in rows],
            explicit=[getattr(r, "explicit", None) for r in rows],
            proba=proba,
            proba_classes=proba_classes,
            weights=weights,
        )

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        *,
        proba: np.ndarray | None = None,
        proba_classes: Sequence[str] | None = None,
        weights: EngineWeights | None = None,
    ) -> CatalogIndex:
        """From a pandas frame with the dataset columns (+ `id`, `genres` as tuples; see `fold_frame`)."""
        return cls(
            ids=frame["id"].tolist(),
            spotify_ids=frame["track_id"].tolist(),
            names=frame["track_name"].fillna("").astype(str).tolist(),
            artists=frame["artists"].fillna("").astype(str).tolist(),
            raw=frame[list(RAW_COLUMNS)].to_numpy(dtype=np.float64),
            popularity=frame["popularity"].tolist() if "popularity" in frame else None,
            genres=frame["genres"].tolist(),
            proba=proba,
            proba_classes=proba_classes,
            weights=weights,
        )

    def with_weights(
        self, weights: EngineWeights, proba: np.ndarray | None = None, proba_classes: Sequence[str] | None = None
    ) -> CatalogIndex:
        """The same catalogue re-embedded with other weights (and optionally model probabilities)."""
        return CatalogIndex(
            ids=self.ids.tolist(),
            spotify_ids=self.spotify_ids,
            names=self.names,
            artists=self.artists,
            raw=self.raw,
            popularity=self.popularity.tolist(),
            genres=self.genres,
            proba=proba,
            proba_classes=proba_classes if proba is not None else None,
            weights=weights,
        )

    # -- snapshot ----------------------------------------------------------------------------------

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything this index holds, as plain arrays and a JSON-able meta (`from_arrays` reverses)."""
        arrays: dict[str, np.ndarray] = {
            "ids": self.ids,
            "raw": self.raw,
            "popularity": self.popularity,
            "popularity_pct": self.popularity_pct,
            "song_keys": self.song_keys,
            "recording_keys": self.recording_keys,
            "main_artist": self.main_artist,
            "audio": self.audio,
            "audio_t": self.audio_t,
            "audio_norm": self.audio_norm,
            "partial_norm": self.partial_norm,
            "partial": self.partial,
            "has_label": self.has_label,
            "has_genre": self.has_genre,
            "explicit": np.asarray([-1 if e is None else int(bool(e)) for e in self.explicit], dtype=np.int8),
        }
        arrays["track_artists.indptr"], arrays["track_artists.data"] = IntTuples.pack(self.track_artists)
        for name, sep in (
            ("names", None),
            ("artists", None),
            ("spotify_ids", None),
            ("albums", None),
            ("genres", "\x1f"),
        ):
            arrays[f"{name}.blob"], arrays[f"{name}.off"] = StrColumn.pack(getattr(self, name), sep=sep)
        for name in ("labels", "genre_dist", "genre"):
            matrix = getattr(self, name).tocsr()
            arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"] = (
                matrix.data,
                matrix.indices,
                matrix.indptr,
            )
        meta = {
            "n": len(self),
            "classes": list(self.classes),
            "has_proba": self.has_proba,
            "genre_on": self.genre_on,
            "n_labelled": self._n_labelled,
            "space": self._space,
            "signature": self.signature(),
            "scaler": self.scaler.to_json(),
        }
        if self.ann is not None:
            ann_arrays, meta["ann"] = self.ann.to_arrays()
            arrays |= ann_arrays
        return arrays, meta

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], weights: EngineWeights | None = None
    ) -> CatalogIndex:
        """An index from `to_arrays()`'s output, without re-embedding anything: the arrays are used as
        they are (memory-mapped ones stay mapped). Raises ValueError when they do not fit together or
        were built with other weights."""
        self = cls.__new__(cls)
        self.weights = weights or EngineWeights()
        n = int(meta["n"])
        self.ids = arrays["ids"]
        for name in ("raw", "popularity", "popularity_pct", "song_keys", "recording_keys", "main_artist"):
            setattr(self, name, arrays[name])
        for name in ("audio", "audio_t", "audio_norm", "partial_norm", "partial", "has_label", "has_genre"):
            setattr(self, name, arrays[name])
        self.explicit = [None if e < 0 else bool(e) for e in arrays["explicit"].tolist()]
        self.track_artists = IntTuples(arrays["track_artists.indptr"], arrays["track_artists.data"])
        self.names = StrColumn(arrays["names.blob"], arrays["names.off"])
        self.artists = StrColumn(arrays["artists.blob"], arrays["artists.off"])
        self.spotify_ids = StrColumn(arrays["spotify_ids.blob"], arrays["spotify_ids.off"])
        self.albums = StrColumn(arrays["albums.blob"], arrays["albums.off"])
        self.genres = StrColumn(arrays["genres.blob"], arrays["genres.off"], sep="\x1f")
        self.classes = [str(c) for c in meta["classes"]]
        k = len(self.classes)
        for name in ("labels", "genre_dist", "genre"):
            setattr(
                self,
                name,
                sparse.csr_matrix(
                    (arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"]), shape=(n, k)
                ),
            )
        self._class_pos = {c: i for i, c in enumerate(self.classes)}
        self._pos = {int(t): i for i, t in enumerate(self.ids.tolist())}
        self._spotify_pos = None
        self.scaler = FeatureScaler.from_json(meta["scaler"])
        self._audio_w = np.asarray([self.weights.features.get(c, 1.0) for c in SCALED_COLUMNS], dtype=np.float64)
        self._partial_cols = np.asarray([SCALED_COLUMNS.index(c) for c in PARTIAL_SCALED])
        self.has_proba = bool(meta["has_proba"])
        self.genre_on = bool(meta["genre_on"])
        self._n_labelled = int(meta["n_labelled"])
        self._space = str(meta["space"])
        lengths = {len(self.ids), len(self.raw), len(self.audio), len(self.names), len(self.track_artists)}
        lengths |= {len(self.genres), len(self.has_genre), len(self.explicit), len(self.spotify_ids)}
        shapes_ok = self.audio.shape[1:] == (len(SCALED_COLUMNS),) and self.audio_t.shape == self.audio.shape[::-1]
        if lengths != {n} or not shapes_ok or len(self._pos) != n:
            raise ValueError(f"snapshot arrays do not fit together (lengths {sorted(lengths)}, n={n})")
        if self.signature() != meta["signature"]:
            raise ValueError("snapshot built with other engine weights")
        # The graph saved with the snapshot, viewed where it lies (never rebuilt here: a snapshot
        # without one is searched exactly). Below the threshold it is not used.
        self.ann = None
        if "ann" in meta and "ann.graph" in arrays and n >= self.weights.ann_min_songs:
            self.ann = AnnIndex.from_arrays(dict(arrays), dict(meta["ann"]))
            if self.ann.size > n:
                raise ValueError("snapshot graph holds more tracks than the index")
        return self

    def extended(
        self, rows: Iterable[Any], genre_map: Mapping[int, Sequence[str]], *, proba: np.ndarray | None = None
    ) -> CatalogIndex:
        """A new index with `rows` (shaped like `TrackRepository.feature_rows()`) appended; rows whose
        id is already here are skipped. Embedded with this index's scaler and genre classes, so the
        existing tracks keep their positions and vectors and the signature stays the same. `proba`:
        the genre model's probabilities of the new rows (zeros for a row it cannot place), needed
        when this index has them. This index is not changed (readers in other threads keep using it)."""
        rows = [r for r in dict((int(r.id), r) for r in rows).values() if int(r.id) not in self._pos]
        if proba is not None:
            proba = np.asarray(proba, dtype=np.float64)
        if not rows:
            return self
        m, k = len(rows), len(self.classes)
        if self.has_proba and (proba is None or proba.shape != (m, k)):
            raise ValueError(f"this index has genre probabilities: proba must be ({m}, {k})")
        new = copy.copy(self)
        n = len(self)
        raw = _raw_of(rows)
        new.ids = np.concatenate([self.ids, np.asarray([int(r.id) for r in rows], dtype=np.int64)])
        new.spotify_ids = concat(self.spotify_ids, (r.spotify_id for r in rows))
        new.names = concat(self.names, (r.name for r in rows))
        new.artists = concat(self.artists, (r.artists for r in rows))
        new.albums = concat(self.albums, (getattr(r, "album", None) for r in rows))
        new.explicit = [*self.explicit, *(getattr(r, "explicit", None) for r in rows)]
        new.raw = np.vstack([self.raw, raw])
        genres = [tuple(genre_map.get(int(r.id), ())) for r in rows]
        new.genres = concat(self.genres, genres)
        pop = np.asarray([float(r.popularity) if r.popularity is not None else 0.0 for r in rows], dtype=np.float64)
        new.popularity = np.concatenate([self.popularity, np.where(np.isfinite(pop), pop, 0.0)])
        order = np.argsort(new.popularity, kind="stable")
        pct = np.empty(n + m, dtype=np.float64)
        pct[order] = (np.arange(n + m) + 0.5) / (n + m)
        new.popularity_pct = pct.astype(np.float32)
        new._pos = {**self._pos, **{int(r.id): n + i for i, r in enumerate(rows)}}
        new._spotify_pos = None
        song = [_key(song_key(r.artists, r.name)) for r in rows]
        recording = [_key("r:" + recording_key(r.artists, r.name)) for r in rows]
        new.song_keys = np.concatenate([self.song_keys, np.asarray(song, dtype=np.int64)])
        new.recording_keys = np.concatenate([self.recording_keys, np.asarray(recording, dtype=np.int64)])
        added_artists = [_artist_ids(r.artists, n + i) for i, r in enumerate(rows)]
        new.track_artists = concat(self.track_artists, added_artists)
        new.main_artist = np.concatenate([self.main_artist, np.asarray([a[0] for a in added_artists], dtype=np.int64)])
        audio = np.ascontiguousarray(self.embed_audio(raw), dtype=np.float32)
        new.audio = np.ascontiguousarray(np.vstack([self.audio, audio]), dtype=np.float32)
        new.audio_t = np.ascontiguousarray(new.audio.T)
        new.audio_norm = np.concatenate([self.audio_norm, np.einsum("ij,ij->i", audio, audio).astype(np.float32)])
        new.partial_norm = np.concatenate([self.partial_norm, self._partial_share(audio)])
        new.partial = np.concatenate([self.partial, self._partial_rows(raw)])
        labels = np.zeros((m, k), dtype=np.float64)
        for i, gs in enumerate(genres):
            known = [self._class_pos[g] for g in gs if g in self._class_pos]
            if known:
                labels[i, known] = 1.0 / len(known)
        has_label = labels.sum(axis=1) > 0
        new.labels = sparse.vstack([self.labels, sparse.csr_matrix(labels)], format="csr")
        new.has_label = np.concatenate([self.has_label, has_label])
        new._n_labelled = self._n_labelled + int(has_label.sum())
        if self.has_proba and proba is not None:
            mix = self.weights.label_mix
            dist = np.where(has_label[:, None], mix * labels + (1 - mix) * proba, proba)
            has_genre = has_label | (proba.sum(axis=1) > 0)
        else:
            dist, has_genre, proba = labels.copy(), has_label, None
        guessed = self._guess_genres(dist, audio, self._partial_rows(raw), ~has_genre)
        has_genre = has_genre | guessed
        new.has_genre = np.concatenate([self.has_genre, has_genre])
        if self.genre_on:
            genre_dist, genre = self._genre_rows(dist, labels > 0, proba, guessed)
            new.genre_dist = sparse.vstack([self.genre_dist, genre_dist], format="csr")
            new.genre = sparse.vstack([self.genre, genre], format="csr")
        else:
            empty = sparse.csr_matrix((n + m, k), dtype=np.float32)
            new.genre = new.genre_dist = empty
        return new

    # -- lookups ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def position(self, track_id: int) -> int | None:
        return self._pos.get(int(track_id))

    def position_of_spotify(self, spotify_id: str) -> int | None:
        if self._spotify_pos is None:
            self._spotify_pos = {s: i for i, s in enumerate(self.spotify_ids) if s}
        return self._spotify_pos.get(spotify_id)

    def positions(self, track_ids: Iterable[int]) -> list[int]:
        return [p for p in (self._pos.get(int(t)) for t in track_ids) if p is not None]

    def keys_at(self, position: int) -> set[int]:
        """`keys_for` of an indexed track, read from the index (worked out when it was built)."""
        return {int(self.song_keys[position]), int(self.recording_keys[position])}

    def keys_for(self, artists: str, name: str) -> set[int]:
        """The song and recording keys of a track (to keep its other versions out of results)."""
        return {_key(song_key(artists, name)), _key("r:" + recording_key(artists, name))}

    def signature(self) -> str:
        """Changes when vectors from an older index would not fit this one (not when tracks are
        added with `extended`: they are embedded in the same space). Worked out once per weights:
        every radio answer asks for it."""
        w = self.weights
        cached: tuple[EngineWeights, str] | None = getattr(self, "_signature", None)
        if cached is not None and cached[0] is w:
            return cached[1]
        text = repr(
            (
                sorted(w.features.items()),
                w.genre,
                w.label_mix,
                w.genre_top,
                w.genre_metric,
                self.has_proba,
                self.classes,
            )
        )
        signature = f"{self._space}:{hashlib.blake2b(text.encode(), digest_size=6).hexdigest()}"
        self._signature = (w, signature)
        return signature

    def entry(self, position: int) -> CatalogEntry:
        """What the index holds about one track (a recommendation is built from memory, no DB read)."""
        raw = self.raw[position].tolist()  # Python floats at once (a numpy scalar per value cost 4× as much)
        # A song analysed from audio has nine features: the unknown ones are left out, not NaN.
        features = MappingProxyType({c: v for c, v in zip(AUDIO_FEATURES, raw, strict=False) if math.isfinite(v)})
        duration = raw[len(AUDIO_FEATURES)]
        return CatalogEntry(
            id=int(self.ids[position]),
            spotify_id=self.spotify_ids[position],
            name=self.names[position],
            artists=split_artists(self.artists[position]),
            album=self.albums[position],
            explicit=self.explicit[position],
            duration_ms=int(duration) if math.isfinite(duration) else None,
            popularity=int(self.popularity[position]),
            genres=self.genres[position],
            features=features,
        )

    # -- embedding -------------------------------------------------------------------------------

    def query_for(self, position: int) -> Query:
        partial = bool(self.partial[position])
        genre = self._genre_row(position) if self.genre_on and self.has_genre[position] else None
        if genre is None:
            audio_d2 = self.audio_distances2(self.audio[position], partial=True) if partial else None
            genre = self._knn_genre(self.audio[position], audio_d2)
        return Query(self.audio[position].copy(), genre, partial=partial)

    def steer(self, query: Query, position: int, rate: float) -> Query:
        """`query` moved towards the track at `position` (rate > 0: a like) or away from it (rate < 0:
        a skip), kept within the catalogue's range: each audio value between the smallest and the
        largest any track has (and 0, where a partial query holds its unknown columns), each genre
        weight in [0, 1]. Unbounded, a push away from a song left the catalogue behind after enough
        skips: the nearest song is then far, so every skip moved the taste farther (×1.2 a skip)
        until its squared distances overflowed float32 and nothing was near any more.

        A genre weight that falls below `_GENRE_FLOOR` is dropped: it moves no distance by more than
        2w² · 1e-6 (3e-4 against pool distances of ~100), while each like halves the others and never
        zeroes them, so a long radio kept every genre it ever liked (at 1e-30) and its searches
        re-scored all their tracks: 5 classes at the start, 15 after 600 answers."""
        moved = query.moved(self.query_for(position), rate)
        lo, hi = self._audio_box()
        audio = np.clip(moved.audio, lo, hi)
        genre = None
        if moved.genre is not None:
            genre = np.clip(moved.genre, 0.0, 1.0)
            genre[genre < _GENRE_FLOOR] = 0.0
        return Query(audio, genre, partial=moved.partial)

    def _audio_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Per audio column, the smallest and largest value in the index, widened to hold 0 (cached
        per index size: tracks added later can widen it)."""
        cached: tuple[int, np.ndarray, np.ndarray] | None = getattr(self, "_box", None)
        if cached is None or cached[0] != len(self):
            zero = np.zeros(self.audio.shape[1], dtype=np.float32)
            lo = np.minimum(self.audio.min(axis=0), zero) if len(self) else zero
            hi = np.maximum(self.audio.max(axis=0), zero) if len(self) else zero
            cached = (len(self), lo.astype(np.float32), hi.astype(np.float32))
            self._box = cached
        return cached[1], cached[2]

    def _genre_row(self, position: int) -> np.ndarray:
        """`genre_dist[position]` as a dense vector, read from the CSR arrays (scipy's row slicing
        cost ~40 µs of checks a radio answer)."""
        m = self.genre_dist
        if not sparse.isspmatrix_csr(m) and not isinstance(m, sparse.csr_array):
            return np.asarray(m[position].toarray()).ravel()
        lo, hi = int(m.indptr[position]), int(m.indptr[position + 1])
        out = np.zeros(m.shape[1], dtype=m.dtype)
        np.add.at(out, m.indices[lo:hi], m.data[lo:hi])  # as toarray: repeated columns add up
        return out

    def query_for_partial(
        self, features: Mapping[str, Any], *, duration_ms: float | None = None, genres: Sequence[str] = ()
    ) -> Query:
        """Embed a song known by the nine values audio analysis gives (no key, mode, time signature):
        those columns are 0 in the query and left out of its distances; its genre comes from its
        labels, or else from its audio neighbours (measured the same way)."""
        raw = raw_row(features, duration_ms, partial=True)[None, :]
        audio = self.embed_audio(raw)[0]
        audio_d2 = self.audio_distances2(audio, partial=True)
        return Query(audio, self._genre_vector(audio, None, genres, audio_d2), audio_d2, partial=True)

    def query_for_features(
        self,
        features: Mapping[str, Any],
        *,
        duration_ms: float | None = None,
        proba: np.ndarray | None = None,
        genres: Sequence[str] = (),
    ) -> Query:
        """Embed a track the index has never seen; its genre comes from labels, proba or neighbours."""
        return self.query_for_raw(raw_row(features, duration_ms)[None, :], proba=proba, genres=genres)

    def embed_audio(self, raw: np.ndarray) -> np.ndarray:
        """Audio-block vectors of raw rows (RAW_COLUMNS order)."""
        return (self.scaler.transform(raw) * self._audio_w).astype(np.float32)

    def query_for_raw(self, raw: np.ndarray, *, proba: np.ndarray | None = None, genres: Sequence[str] = ()) -> Query:
        audio = self.embed_audio(raw)[0]
        audio_d2 = self.audio_distances2(audio)
        return Query(audio, self._genre_vector(audio, proba, genres, audio_d2), audio_d2)

    def audio_distances2(self, audio: np.ndarray, *, partial: bool = False) -> np.ndarray:
        """Squared distances in the audio block only (float32). `partial`: without the key, mode and
        time-signature columns (the query must hold 0 there)."""
        qa = audio.astype(np.float32, copy=False)
        if partial:
            qa = qa.copy()
            qa[self._partial_cols] = 0.0
        # einsum, not BLAS gemv: no thread start-up, steadier latency on a busy host; over the
        # column-major copy (14 contiguous rows of n floats), which einsum sums with SIMD: ~4× faster
        # than over the row-major block. In place: audio_norm - 2·(A·q) + q·q without temporaries.
        d2 = np.einsum("j,ji->i", qa, self.audio_t)
        d2 *= -2.0
        d2 += self.audio_norm
        d2 += float(qa @ qa)
        if partial:
            d2 -= self.partial_norm
        return d2

    def _genre_vector(
        self, audio: np.ndarray, proba: np.ndarray | None, genres: Sequence[str], audio_d2: np.ndarray | None = None
    ) -> np.ndarray | None:
        if not self.genre_on:
            return None
        k = len(self.classes)
        dist = np.zeros(k)
        known = [self._class_pos[g] for g in genres if g in self._class_pos]
        if known:
            dist[known] = 1.0 / len(known)
        if proba is not None and len(proba) == k:
            p = np.clip(np.asarray(proba, dtype=np.float64), 0.0, None)
            p = p / p.sum() if p.sum() > 0 else p
            mix = self.weights.label_mix
            dist = mix * dist + (1 - mix) * p if known else p
        if dist.sum() == 0:
            return self._knn_genre(audio, audio_d2)
        return self._embed_dist(dist)

    def with_genre(self, query: Query, dist: np.ndarray) -> Query:
        """`query` with its genre part replaced by the distribution `dist` (over `classes`)."""
        if not self.genre_on or float(np.clip(dist, 0.0, None).sum()) <= 0:
            return query
        return replace(query, genre=self._embed_dist(dist))

    def _embed_dist(self, dist: np.ndarray) -> np.ndarray:
        dist = np.clip(np.asarray(dist, dtype=np.float64), 0.0, None)
        dist = dist / dist.sum()
        return (dist if self.weights.genre_metric == "match" else np.sqrt(dist)).astype(np.float32)

    def genre_distribution(
        self, audio: np.ndarray, k: int | None = None, audio_d2: np.ndarray | None = None
    ) -> np.ndarray:
        """The label distribution of the audio-nearest labelled tracks (weighted by closeness)."""
        k = min(k or self.weights.knn_genre, self._n_labelled)
        if k == 0:
            return np.zeros(len(self.classes))
        d2 = self.audio_distances2(audio) if audio_d2 is None else audio_d2
        if self._n_labelled < len(self):
            d2 = np.where(self.has_label, d2, np.inf)
        near = smallest(d2, k)
        w = 1.0 / (1.0 + np.sqrt(np.maximum(d2[near], 0.0)))
        votes = np.zeros(len(self.classes))
        indptr, indices, data = self.labels.indptr, self.labels.indices, self.labels.data
        for p, wp in zip(near.tolist(), w.tolist(), strict=True):
            lo, hi = indptr[p], indptr[p + 1]
            votes[indices[lo:hi]] += wp * data[lo:hi]
        return votes / votes.sum() if votes.sum() > 0 else votes

    def _knn_genre(self, audio: np.ndarray, audio_d2: np.ndarray | None = None) -> np.ndarray | None:
        if not self.genre_on:
            return None
        dist = self.genre_distribution(audio, audio_d2=audio_d2)
        return self._embed_dist(dist) if dist.sum() > 0 else None

    # -- search ----------------------------------------------------------------------------------

    def distances2(self, query: Query) -> np.ndarray:
        """Squared distances of every track to the query (float32).

        Genre part: 2w² · (1 − s), s the genre similarity in [0, 1] — the chance of a shared genre
        ("match"), or Bhattacharyya: w² · ‖√p − √q‖² = w² · (2 − 2·BC(p, q)) ("hellinger"); tracks
        without any genre count s = ½ · (the query's top genre share) ("match") or BC = ½.
        """
        if query.audio_d2 is not None and query.audio_d2.shape[0] == len(self):
            d2 = query.audio_d2.copy()
        else:  # none yet, or computed on the index before tracks were added to it
            d2 = self.audio_distances2(query.audio, partial=query.partial)
        genre = self._genre_query(query)
        if genre is not None:
            self._add_genre_term(d2, genre[0], genre[1], 2.0 * self.weights.genre**2)
        return d2

    def _genre_query(self, query: Query) -> tuple[np.ndarray, np.float32] | None:
        """The query's genre vector as the distances use it, and the similarity of genre-less tracks."""
        if query.genre is None or not self.genre_on:
            return None
        q = query.genre.astype(np.float32, copy=False)
        if self.weights.genre_metric == "match":
            q = np.clip(q, 0.0, None)
            q = q / q.sum() if q.sum() > 0 else q
            unknown = 0.5 * float(q.max(initial=0.0))
        else:
            unknown = 0.5
        return q, np.float32(unknown)

    def query_parts(self, query: Query) -> tuple[np.ndarray, np.ndarray | None]:
        """(audio, genre) of a query as the distances use them (the genre normalised; None when the
        genre part does not count): what `ml.recsys.ann.Space` embeds."""
        genre = self._genre_query(query)
        return query.audio, None if genre is None else genre[0]

    def distances2_at(self, query: Query, rows: np.ndarray) -> np.ndarray:
        """`distances2(query)[rows]`, computed for those rows only (float32)."""
        if query.audio_d2 is not None and query.audio_d2.shape[0] == len(self):
            d2 = query.audio_d2[rows].astype(np.float32)
        else:
            qa = query.audio.astype(np.float32)
            if query.partial:
                qa = qa.copy()
                qa[self._partial_cols] = 0.0
            d2 = np.asarray(self.audio[rows] @ qa, dtype=np.float32)
            d2 *= -2.0
            d2 += self.audio_norm[rows]
            d2 += np.float32(qa @ qa)
            if query.partial:
                d2 -= self.partial_norm[rows]
        genre = self._genre_query(query)
        if genre is not None:
            q, unknown = genre
            s = np.asarray(self.genre[rows] @ q, dtype=np.float32).ravel()
            s = np.where(np.asarray(self.has_genre)[rows], s, unknown)
            d2 += np.float32(2.0 * self.weights.genre**2) * (np.float32(1.0) - s)
        return d2

    def pool_size(self, n: int) -> int:
        """How many candidates `pool` gathers for a list of `n`."""
        return min(len(self), max(self.weights.pool, 8 * n))

    def pool(
        self, query: Query, n: int, exclude: Iterable[int], boost: Mapping[int, tuple[float, str]] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The candidates re-ranked by `search` (the nearest `pool`, plus boosted tracks, minus the
        excluded) and their squared distances: from the exact scan or, above `ann_min_songs`, from
        a smaller set re-scored exactly (ml/recsys/ann.py): the tracks filed under the query's
        genres (exact, when the pool's farthest is nearer than any other track can be), else the
        audio graph's candidates and the tracks it does not hold (added since it was built)."""
        want = self.pool_size(n)
        excluded = np.fromiter(exclude, dtype=np.int64)
        boosted = np.fromiter((int(p) for p in boost), dtype=np.int64) if boost else np.zeros(0, dtype=np.int64)
        if self.ann is not None or len(self) > self.weights.genre_lists_min:
            picked = self._pool_from(query, want, excluded, boosted)
            if picked is not None:
                return picked
        d2 = self.distances2(query)
        if excluded.size:
            d2[excluded] = np.inf
        pool = smallest(d2, want)
        if boost:
            extra = np.fromiter((p for p in boost if np.isfinite(d2[p])), dtype=np.int64)
            pool = np.union1d(pool, extra)
        pool = pool[np.isfinite(d2[pool])]
        return pool, d2[pool]

    def _pool_from(
        self, query: Query, want: int, excluded: np.ndarray, boosted: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """`_pool` from the genre lists or the graph; None: scan everything (a dense genre query, or
        lists that do not hold the pool and no graph)."""
        genre = self._genre_query(query)
        if genre is None and self.ann is None:
            return None
        bound = np.inf
        if genre is not None:
            listed = self._genre_listed(query, genre[0], genre[1], want, excluded)
            if listed is None:
                return None
            rows, d2 = listed
            # A track under none of the query's genres scores s = 0: d² ≥ 2·w²·(1 − 0).
            bound = 2.0 * self.weights.genre**2
        else:
            rows, d2 = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if boosted.size:
            extra = boosted[~_member(boosted, rows)]
            if extra.size:
                rows, d2 = np.concatenate([rows, extra]), np.concatenate([d2, self.distances2_at(query, extra)])
        if excluded.size:
            d2[_member(rows, excluded)] = np.inf
        chosen = smallest(d2, min(want, rows.size))
        enough = chosen.size == want and np.isfinite(d2[chosen]).all() and float(d2[chosen].max()) <= bound
        if not enough and self.ann is None:  # a rare genre, or one spread wide: the exact scan
            return None
        if not enough:  # a rare genre, or no genre: add the audio graph's candidates and the tail
            assert self.ann is not None
            fetch = int(self.weights.ann_fetch * want) + int(np.count_nonzero(excluded < self.ann.size))
            found = self.ann.candidates(query.audio, fetch)
            tail = np.arange(self.ann.size, len(self), dtype=np.int64)
            extra = np.concatenate([found, tail])
            extra = extra[~_member(extra, rows)]
            if extra.size:
                d2_extra = self.distances2_at(query, extra)
                if excluded.size:
                    d2_extra[_member(extra, excluded)] = np.inf
                rows, d2 = np.concatenate([rows, extra]), np.concatenate([d2, d2_extra])
                chosen = smallest(d2, min(want, rows.size))
        if boosted.size:
            chosen = np.union1d(chosen, np.flatnonzero(_member(rows, boosted)))
        chosen = chosen[np.isfinite(d2[chosen])]
        return rows[chosen], d2[chosen]

    def _genre_listed(
        self, query: Query, q: np.ndarray, unknown: np.float32, want: int, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows, d²) of the tracks filed under one of the query's genres and of those without any
        genre, read from the genre block's columns (no per-row sparse lookups), less those that
        cannot be among the `want` nearest; None when they are more than `ann_genre_share` of the
        catalogue (the exact scan is then as cheap)."""
        columns = self._genre_columns()
        classes = np.flatnonzero(q).tolist()
        spans = [(k, int(columns.indptr[k]), int(columns.indptr[k + 1])) for k in classes]
        if sum(hi - lo for _, lo, hi in spans) > self.weights.ann_genre_share * len(self):
            return None
        if len(spans) == 1:
            k, lo, hi = spans[0]
            rows = np.asarray(columns.indices[lo:hi], dtype=np.int64)
            s = np.asarray(columns.data[lo:hi], dtype=np.float32) * q[k]
        else:
            rows, s = self._genre_union_scores(columns, q, spans)
        missing = self._genre_missing()
        if missing.size:
            rows = np.concatenate([rows, missing])
            s = np.concatenate([s, np.full(missing.size, unknown, dtype=np.float32)])
        term = np.float32(2.0 * self.weights.genre**2) * (np.float32(1.0) - s)
        # The genre term alone bounds a row's d² from below: the rows nearest in genre first (enough
        # of them to fill the pool, within a margin), and the rest only where their genre term is
        # below the distance of the `want`-th of those (a query spread over several genres lists
        # many rows that share only one of them).
        enough = min(want + excluded.size, term.size - 1)
        level = np.partition(term, enough)[enough] if term.size else np.float32(0.0)
        first = term <= level + np.float32(_GENRE_MARGIN)
        near_rows = rows[first]
        d2 = self._audio_at(query, near_rows) + term[first]
        finite = d2[~_member(near_rows, excluded)] if excluded.size else d2
        if finite.size >= want:
            bound = float(np.partition(finite, want - 1)[want - 1])
            rest = ~first & (term <= bound)
        else:
            rest = ~first
        if rest.any():
            far_rows = rows[rest]
            rows = np.concatenate([near_rows, far_rows])
            d2 = np.concatenate([d2, self._audio_at(query, far_rows) + term[rest]])
        else:
            rows = near_rows
        return rows, d2

    def _audio_at(self, query: Query, rows: np.ndarray) -> np.ndarray:
        """Squared audio distances of some rows to the query (float32)."""
        if query.audio_d2 is not None and query.audio_d2.shape[0] == len(self):
            return np.asarray(query.audio_d2)[rows].astype(np.float32)
        diff = np.asarray(self.audio)[rows] - query.audio.astype(np.float32)
        if query.partial:  # without the columns a partial query leaves out
            diff[:, self._partial_cols] = 0.0
        return np.einsum("ij,ij->i", diff, diff)

    def _add_genre_term(self, d2: np.ndarray, q: np.ndarray, unknown: np.float32, weight: float) -> None:
        """d2 += weight · (1 − s), s = genre @ q (and `unknown` for tracks without any genre), in place.

        A query's genre distribution has a few non-zero classes (a catalogue track's labels, a model's
        top classes), and s is 0 for every track outside them: those get `weight` added, and only the
        tracks filed under the query's classes (read from the block's columns) are computed one by
        one — the same float32 operations, in the same order, as the full sparse product, at a
        fraction of the cost. A dense query falls back to that product."""
        classes = np.flatnonzero(q)
        if classes.size > _SPARSE_QUERY_CLASSES:
            s = self.genre @ q
            s = np.where(self.has_genre, s, unknown)
            d2 += weight * (1.0 - s)
            return
        columns = self._genre_columns()
        parts = [(k, columns.indptr[k], columns.indptr[k + 1]) for k in classes.tolist()]
        if len(parts) == 1:
            k, lo, hi = parts[0]
            rows = columns.indices[lo:hi]
            s_rows = columns.data[lo:hi] * q[k]
        else:
            rows, s_rows = self._genre_union_scores(columns, q, parts)
        audio_rows = d2[rows]
        missing = self._genre_missing()
        audio_missing = d2[missing]
        d2 += weight * (np.float32(1.0) - np.float32(0.0))
        d2[rows] = audio_rows + weight * (np.float32(1.0) - s_rows)
        d2[missing] = audio_missing + weight * (np.float32(1.0) - unknown)

    def _genre_union_scores(
        self, columns: sparse.csc_matrix, q: np.ndarray, spans: Sequence[tuple[int, int, int]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, s): the rows filed under any of the classes in `spans` ((class, start, end) in the
        block's columns, classes ascending), ascending, and their genre similarity `Σ_k column_k · q_k`,
        added in class order. The union and each column's place in it come from `GenreUnions`
        (they were sorted afresh at every search: with the faded genres below, half of a long
        radio's pool)."""
        unions: GenreUnions | None = getattr(self, "_unions", None)
        if unions is None or unions.columns is not columns:
            unions = self._unions = GenreUnions(columns)
        rows, where = unions.get(tuple(k for k, _, _ in spans))
        s = np.zeros(rows.size, dtype=np.float32)
        for (k, lo, hi), at in zip(spans, where, strict=True):
            s[at] += columns.data[lo:hi] * q[k]
        return rows, s

    def _genre_columns(self) -> sparse.csc_matrix:
        """The scored genre block by columns (built once per index, on first use)."""
        cached = getattr(self, "_genre_csc", None)
        if cached is None or cached.shape != self.genre.shape:
            cached = self.genre.tocsc()
            cached.sort_indices()
            self._genre_csc = cached
        return cached

    def _genre_missing(self) -> np.ndarray:
        """Positions of the tracks without any genre (cached per index size)."""
        cached: tuple[int, np.ndarray] | None = getattr(self, "_no_genre", None)
        if cached is None or cached[0] != len(self):
            cached = (len(self), np.flatnonzero(~np.asarray(self.has_genre, dtype=bool)))
            self._no_genre = cached
        return cached[1]

    def _pair_distances2(self, rows: np.ndarray, others: Sequence[int]) -> np.ndarray:
        """Squared audio distances between two sets of tracks, (len(rows), len(others)), from the
        stored norms and one small product (no (rows × others × dims) temporary)."""
        cross = np.einsum("ik,jk->ij", self.audio[rows], self.audio[others])
        d2 = self.audio_norm[rows][:, None] + self.audio_norm[others][None, :] - 2.0 * cross
        return np.maximum(d2, 0.0)

    def search(
        self,
        query: Query,
        n: int = 10,
        *,
        exclude: Iterable[int] = (),
        exclude_keys: Iterable[int] = (),
        recent: Sequence[int] = (),
        diversity: float = 0.3,
        boost: Mapping[int, tuple[float, str]] | None = None,
        avoid: Sequence[int] = (),
        alternatives: bool = False,
        seed_artists: str | None = None,
    ) -> list[Hit]:
        """The next `n` tracks for `query`.

        exclude: positions never to return (shown, skipped, the seed …); exclude_keys: recording
        keys never to return (the seed's song); recent: positions shown just before, oldest first
        (the artist window and MMR see them); boost: position → (extra relevance, reason), e.g.
        co-likes; avoid: positions (skipped tracks) whose neighbourhood is pushed down;
        alternatives: the hits are candidates for one next slot (a radio), not a list — each is
        checked against `recent` only; seed_artists: the seed's ';'-separated artists, which count as
        one track already in the artist window (so at most one more of theirs in the first ten).
        """
        if n <= 0 or len(self) == 0:
            return []
        pool, pool_d2 = self.pool(query, n, exclude, boost)
        return self.rank(
            pool,
            pool_d2,
            n,
            exclude_keys=exclude_keys,
            recent=recent,
            diversity=diversity,
            boost=boost,
            avoid=avoid,
            alternatives=alternatives,
            seed_artists=seed_artists,
        )

    def rank(
        self,
        pool: np.ndarray,
        pool_d2: np.ndarray,
        n: int,
        *,
        exclude_keys: Iterable[int] = (),
        recent: Sequence[int] = (),
        diversity: float = 0.3,
        boost: Mapping[int, tuple[float, str]] | None = None,
        avoid: Sequence[int] = (),
        alternatives: bool = False,
        seed_artists: str | None = None,
    ) -> list[Hit]:
        """`search`'s second half: the next `n` of the candidates `pool` (positions) at squared
        distances `pool_d2`, as `pool()` gives them; the other arguments are `search`'s."""
        if n <= 0 or pool.size == 0:
            return []
        dist = np.sqrt(np.maximum(pool_d2, 0.0)).astype(np.float64)
        # Similarity in (0, 1]: the scale is the distance of the pool's 10th nearest.
        scale = float(np.partition(dist, min(9, dist.size - 1))[min(9, dist.size - 1)]) or 1.0
        rel = np.exp(-0.5 * (dist / scale) ** 2)
        diversity = min(max(float(diversity), 0.0), 1.0)
        # Neutral on popularity at the default dial (0.3); familiar leans popular, new leans obscure.
        tilt = self.weights.popularity_tilt * (NEUTRAL_DIVERSITY - diversity)
        rel = rel + tilt * (self.popularity_pct[pool] - 0.5)
        why: dict[int, str] = {}  # position → the reason, where it is not "similar sound"
        if boost:
            for j, p in enumerate(pool.tolist()):
                if p in boost:
                    extra_score, reason = boost[p]
                    rel[j] += extra_score
                    if extra_score > 0.05:
                        why[p] = reason
        # The skipped tracks' and the recent tracks' distances to the pool, in one product.
        recent_window = list(recent[-ARTIST_WINDOW:])
        others = list(avoid) + recent_window
        pair2 = self._pair_distances2(pool, others) if others else None
        if len(avoid):
            assert pair2 is not None
            rel -= 0.3 * np.exp(-0.5 * pair2[:, : len(avoid)] / (scale**2)).sum(axis=1)
        # Candidates best first, deterministic on ties (track id).
        order = np.lexsort((self.ids[pool], -rel))
        pool, rel, dist = pool[order], rel[order], dist[order]

        blocked_keys = set(exclude_keys)
        window: list[tuple[int, ...]] = []
        if seed_artists:
            window.append(tuple(dict.fromkeys(_artist_id(a) for a in split_artists(seed_artists))))
        window += [self.track_artists[p] for p in recent[-(ARTIST_WINDOW - 1) :]]
        for p in recent:
            blocked_keys.add(int(self.recording_keys[p]))
            blocked_keys.add(int(self.song_keys[p]))
        lam = self.weights.max_mmr * diversity
        # For the novelty term's updates after each pick (none when the hits are alternatives).
        vectors = self.audio[pool] if lam > 0 and not alternatives and n > 1 else None
        # Novelty: distance to the nearest already chosen / recent track (in scale units).
        novelty = np.full(pool.size, 2.0)
        if recent_window:
            assert pair2 is not None
            near = np.sqrt(pair2[order, len(avoid) :].min(axis=1)) / scale
            novelty = np.minimum(novelty, near)
        # The soft penalty looks at main artists, the cap at all: each candidate's main artist as an
        # index into the pool's distinct artists, so a window's counts become one gather.
        # (A dict in first-seen order: np.unique's sort and inverse cost ~3× as much for 200 rows.)
        slot: dict[int, int] = {}
        artist_of = np.fromiter(
            (slot.setdefault(a, len(slot)) for a in self.main_artist[pool].tolist()), dtype=np.intp, count=pool.size
        )
        # Per pick only what changed is recomputed: the novelty term and the artist counts when a
        # track is chosen; rejected candidates (blocked key, artist cap) change neither. The
        # arithmetic is the same as recomputing everything each time.
        base = (1.0 - lam) * rel
        # novelty never exceeds 2 (it starts there and only falls), and lam·x/2 == (lam/2)·x exactly
        half = lam / 2.0
        novelty_term = half * novelty
        rec_keys, song_keys = self.recording_keys[pool].tolist(), self.song_keys[pool].tolist()
        pool_ids = pool.tolist()
        # The artist window: its tracks' artists counted, and each distinct main artist's count in
        # per_artist; a pick adds one track's artists and, once the window is full, drops the oldest's.
        start = max(0, len(window) - (ARTIST_WINDOW - 1))
        counts: dict[int, int] = {}
        per_artist = np.zeros(len(slot))
        repeat = self.weights.artist_repeat

        def count(artists: tuple[int, ...], step: int) -> None:
            for a in artists:
                counts[a] = counts.get(a, 0) + step
                i = slot.get(a)
                if i is not None:
                    per_artist[i] += step

        for artists in window[start:]:
            count(artists, 1)
        penalty = repeat * per_artist[artist_of] if counts and repeat else None
        hits: list[Hit] = []
        left = pool.size
        while len(hits) < n and left:
            score = base + novelty_term  # a candidate already taken or refused has base −inf
            if penalty is not None:
                score -= penalty
            j = int(score.argmax())
            base[j] = -np.inf
            left -= 1
            p = pool_ids[j]
            if rec_keys[j] in blocked_keys or song_keys[j] in blocked_keys:
                continue
            track_artists = self.track_artists[p]
            if any(counts.get(a, 0) >= ARTIST_CAP for a in track_artists):
                continue
            hits.append(Hit(p, float(score[j]), float(dist[j]), why.get(p, "similar sound")))
            if alternatives:
                continue
            window.append(track_artists)
            count(track_artists, 1)
            if len(window) - start > ARTIST_WINDOW - 1:
                count(window[start], -1)
                start += 1
            if repeat:
                penalty = repeat * per_artist[artist_of]
            blocked_keys.add(rec_keys[j])
            blocked_keys.add(song_keys[j])
            if vectors is not None:
                diff = vectors - vectors[j]
                novelty = np.minimum(novelty, np.sqrt(np.einsum("ij,ij->i", diff, diff)) / scale)
                novelty_term = half * novelty
        return hits


def _stable_hash(text: str) -> int:
    """A 62-bit hash of a string, the same in every process (Python's hash() is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") & _HASH_MASK


def _key(key: str) -> int:
    return _stable_hash(key)


@functools.lru_cache(maxsize=4096)  # a seed's artists are hashed at every search of its radio or list
def _artist_id(name: str) -> int:
    return _stable_hash("a:" + (normalize(name) or name))


def _artist_ids(line: str, position: int) -> tuple[int, ...]:
    """A track's artists as ids; a track with none gets one of its own (negative, never shared)."""
    return tuple(dict.fromkeys(_artist_id(a) for a in split_artists(line))) or (-1 - position,)


def _raw_of(rows: Sequence[Any]) -> np.ndarray:
    """Raw rows (RAW_COLUMNS order) of feature rows; a missing value (None) becomes NaN."""

    def number(value: Any) -> float:
        return math.nan if value is None else float(value)

    values = [[*(number(getattr(r, c)) for c in AUDIO_FEATURES), r.duration_ms or math.nan] for r in rows]
    return np.asarray(values, dtype=np.float64).reshape(len(rows), len(RAW_COLUMNS))


def _top_normalized(dist: np.ndarray, top: int) -> np.ndarray:
    """Each row keeps its `top` largest entries, renormalised to sum 1 (all-zero rows stay zero)."""
    if dist.shape[1] > top:
        cut = -np.partition(-dist, top - 1, axis=1)[:, top - 1 : top]
        dist = np.where(dist >= cut, dist, 0.0)
    total = dist.sum(axis=1, keepdims=True)
    return np.divide(dist, total, out=np.zeros_like(dist, dtype=np.float64), where=total > 0)


def _member(values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """`np.isin(values, of)` for positions (unique `values` or not) by binary search in sorted `of`:
    no sort or hash of `values`, which is the larger side here."""
    if of.size == 0 or values.size == 0:
        return np.zeros(values.size, dtype=bool)
    keys = np.sort(of)
    at = np.minimum(np.searchsorted(keys, values), keys.size - 1)
    return keys[at] == values


def smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest values (unordered), exactly; faster than a full argpartition.

    A threshold from a strided sample keeps a few times k candidates; when fewer than k pass it,
    fall back to the full partition.
    """
    n = values.size
    if k >= n:
        return np.arange(n)
    if n > 4096 and k * 8 < n:
        sample = values[:: n // 2048]
        rank = min(sample.size - 1, int(np.ceil(3.0 * k / n * sample.size)))
        threshold = np.partition(sample, rank)[rank]
        candidates = np.flatnonzero(values <= threshold)
        if k <= candidates.size:
            return candidates[np.argpartition(values[candidates], k - 1)[:k]]
    return np.argpartition(values, k - 1)[:k]
