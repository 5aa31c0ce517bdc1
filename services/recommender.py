"""The recommender: an in-memory catalogue index and the RecommendationService built on it.

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

Co-likes (`CoLikeModel`) add item-item cosine similarity from the likes matrix to the content
score, shrunk by support (common likers / (common likers + 5)), so it grows with evidence.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal, Protocol

import numpy as np
from scipy import sparse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InteractionKind
from db.repositories import InteractionRepository, LikeRepository, TrackRepository, UserRepository
from ml.features import AUDIO_FEATURES, FEATURE_RANGES, FeatureError
from services.dto import Recommendation, TrackInfo, split_artists
from services.errors import NoFeatures, TrackNotFound
from services.textnorm import normalize, song_key

log = logging.getLogger(__name__)

# Raw columns the scaler reads: the 12 audio features, then duration.
RAW_COLUMNS: tuple[str, ...] = (*AUDIO_FEATURES, "duration_ms")
_Z = ("danceability", "energy", "valence", "loudness", "tempo", "mode", "time_signature")
_RANK = ("speechiness", "acousticness", "instrumentalness", "liveness")
# Scaled columns, in matrix order.
SCALED_COLUMNS: tuple[str, ...] = (*_Z, *_RANK, "key_sin", "key_cos", "log_duration")

NEUTRAL_DIVERSITY = 0.3
ARTIST_CAP = 2
ARTIST_WINDOW = 10
_BRACKETS = re.compile(r"[\(\[].*?[\)\]]")
_DASH_SUFFIX = re.compile(r"\s+-\s+.*$")


def recording_key(artists: str | None, name: str | None) -> str:
    """A looser key than `song_key`: main artist + title without "(Remastered)", "- Live" …

    Two rows with the same key are treated as the same song in one list.
    """
    main = normalize((artists or "").split(";")[0])
    title = _DASH_SUFFIX.sub("", _BRACKETS.sub("", name or ""))
    return f"{main} - {normalize(title) or normalize(name)}"


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

    def __post_init__(self) -> None:
        if self.genre_metric not in ("match", "hellinger"):
            raise ValueError(f"genre_metric must be 'match' or 'hellinger', not {self.genre_metric!r}")

    def with_(self, **changes: Any) -> EngineWeights:
        return replace(self, **changes)


class FeatureScaler:
    """Robust per-feature scaling fitted on the catalogue (applied to any row, known or new)."""

    def __init__(self, raw: np.ndarray) -> None:
        raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(RAW_COLUMNS))
        if raw.shape[0] == 0:
            # An empty catalogue (before the import): a neutral scaler, so the service still starts.
            raw = np.zeros((1, len(RAW_COLUMNS)))
        self._col = {c: i for i, c in enumerate(RAW_COLUMNS)}
        self._mean: dict[str, float] = {}
        self._std: dict[str, float] = {}
        for name in _Z:
            col = raw[:, self._col[name]]
            self._mean[name] = float(np.mean(col))
            self._std[name] = float(np.std(col)) or 1.0
        dur = np.log(np.clip(self._duration(raw), 1_000.0, None))
        self._mean["log_duration"] = float(np.mean(dur))
        self._std["log_duration"] = float(np.std(dur)) or 1.0
        self._quantiles: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        levels = np.linspace(0.0, 1.0, 401)
        for name in _RANK:
            q = np.quantile(raw[:, self._col[name]], levels)
            values, inverse = np.unique(q, return_inverse=True)
            ranks = np.bincount(inverse, weights=levels) / np.bincount(inverse)
            if len(values) == 1:
                values, ranks = np.array([values[0], values[0] + 1.0]), np.array([0.5, 0.5])
            self._quantiles[name] = (values, ranks)

    def _duration(self, raw: np.ndarray) -> np.ndarray:
        dur = raw[:, self._col["duration_ms"]]
        fill = np.nanmedian(dur) if np.isfinite(dur).any() else 210_000.0
        return np.where(np.isfinite(dur), dur, fill)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        raw = np.atleast_2d(np.asarray(raw, dtype=np.float64))
        out = np.empty((raw.shape[0], len(SCALED_COLUMNS)), dtype=np.float64)
        for j, name in enumerate(_Z):
            out[:, j] = np.clip((raw[:, self._col[name]] - self._mean[name]) / self._std[name], -4.0, 4.0)
        for j, name in enumerate(_RANK, start=len(_Z)):
            values, ranks = self._quantiles[name]
            out[:, j] = (np.interp(raw[:, self._col[name]], values, ranks) - 0.5) * math.sqrt(12.0)
        angle = raw[:, self._col["key"]] * (2.0 * math.pi / 12.0)
        j = len(_Z) + len(_RANK)
        # key = -1 (no key detected) lands on its own point; sqrt(2) makes sin/cos unit-variance.
        out[:, j] = np.sin(angle) * math.sqrt(2.0)
        out[:, j + 1] = np.cos(angle) * math.sqrt(2.0)
        dur = np.log(np.clip(self._duration(raw), 1_000.0, None))
        out[:, j + 2] = np.clip((dur - self._mean["log_duration"]) / self._std["log_duration"], -4.0, 4.0)
        return out


def raw_row(features: Mapping[str, Any], duration_ms: float | None = None) -> np.ndarray:
    """One raw row (RAW_COLUMNS order) from a feature mapping; raises NoFeatures if incomplete."""
    try:
        values = [float(features[c]) for c in AUDIO_FEATURES]
    except (KeyError, TypeError, ValueError) as exc:
        raise NoFeatures("audio features are incomplete") from exc
    if not all(math.isfinite(v) for v in values):
        raise NoFeatures("audio features are not finite numbers")
    dur = duration_ms if duration_ms is not None else features.get("duration_ms")
    values.append(float(dur) if dur is not None else math.nan)
    return np.asarray(values, dtype=np.float64)


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

    def to_json(self) -> dict[str, Any]:
        return {
            "audio": [round(float(x), 6) for x in self.audio],
            "genre": None if self.genre is None else [round(float(x), 6) for x in self.genre],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Query:
        genre = data.get("genre")
        return cls(
            np.asarray(data["audio"], dtype=np.float32),
            None if genre is None else np.asarray(genre, dtype=np.float32),
        )

    def moved(self, target: Query, rate: float) -> Query:
        """`self + rate · (target − self)` (rate < 0 pushes away)."""
        audio = self.audio + rate * (target.audio - self.audio)
        if self.genre is not None and target.genre is not None:
            genre: np.ndarray | None = self.genre + rate * (target.genre - self.genre)
        else:
            genre = self.genre if self.genre is not None else target.genre
        return Query(audio.astype(np.float32), None if genre is None else genre.astype(np.float32))


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
    ) -> None:
        n = len(ids)
        if raw.shape != (n, len(RAW_COLUMNS)):
            raise ValueError(f"raw must be (n, {len(RAW_COLUMNS)}), got {raw.shape}")
        self.weights = weights or EngineWeights()
        self.ids = np.asarray(ids, dtype=np.int64)
        self.spotify_ids = list(spotify_ids)
        self.names = list(names)
        self.artists = list(artists)
        # Kept so that a recommendation is built from memory, with no database round trip.
        self.albums: list[str | None] = list(albums) if albums is not None else [None] * n
        self.explicit: list[bool | None] = list(explicit) if explicit is not None else [None] * n
        self.raw = np.asarray(raw, dtype=np.float64)
        self.genres: list[tuple[str, ...]] = [tuple(g) for g in (genres or [()] * n)]
        pop = np.asarray([np.nan if p is None else float(p) for p in (popularity or [None] * n)], dtype=np.float64)
        self.popularity = np.where(np.isfinite(pop), pop, 0.0)
        order = np.argsort(self.popularity, kind="stable")
        pct = np.empty(n, dtype=np.float64)
        pct[order] = (np.arange(n) + 0.5) / max(n, 1)
        self.popularity_pct = pct.astype(np.float32)
        self._pos = {int(t): i for i, t in enumerate(self.ids)}
        self._spotify_pos = {s: i for i, s in enumerate(self.spotify_ids) if s}

        # Keys: song (exact fold key), recording (looser) and artists, as small ints.
        self._key_ids: dict[str, int] = {}
        self.song_keys = np.asarray([self._key(song_key(a, t)) for a, t in zip(artists, names, strict=True)])
        self.recording_keys = np.asarray(
            [self._key("r:" + recording_key(a, t)) for a, t in zip(artists, names, strict=True)]
        )
        self._artist_ids: dict[str, int] = {}
        self.track_artists: list[tuple[int, ...]] = [
            tuple(dict.fromkeys(self._artist(a) for a in split_artists(line))) or (-1 - i,)
            for i, line in enumerate(artists)
        ]

        self.main_artist = np.asarray([a[0] for a in self.track_artists], dtype=np.int64)

        # Audio block.
        self.scaler = FeatureScaler(self.raw)
        self._audio_w = np.asarray([self.weights.features.get(c, 1.0) for c in SCALED_COLUMNS], dtype=np.float64)
        self.audio = np.ascontiguousarray(self.scaler.transform(self.raw) * self._audio_w, dtype=np.float32)
        self.audio_norm = np.einsum("ij,ij->i", self.audio, self.audio).astype(np.float32)

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
        else:
            dist = labels
        self.has_genre = has_label | (proba is not None)
        self.has_proba = proba is not None
        self._setup_genre_block(dist, labels > 0, proba)

    # -- construction helpers -------------------------------------------------------------------

    def _key(self, key: str) -> int:
        return self._key_ids.setdefault(key, len(self._key_ids))

    def _artist(self, name: str) -> int:
        return self._artist_ids.setdefault(normalize(name) or name, len(self._artist_ids))

    def _setup_genre_block(self, dist: np.ndarray, member: np.ndarray, proba: np.ndarray | None) -> None:
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
        top = self.weights.genre_top
        dist = _top_normalized(dist, top)
        if self.weights.genre_metric == "match":
            self.genre_dist = sparse.csr_matrix(dist, dtype=np.float32)
            labelled = member.any(axis=1, keepdims=True)
            score = member / np.maximum(member.sum(axis=1, keepdims=True), 1.0) ** self.weights.label_damping
            if proba is not None:
                p, mix = _top_normalized(proba, top), self.weights.label_mix
                score = np.where(labelled, mix * score + (1 - mix) * p, p)
            self.genre = sparse.csr_matrix(score, dtype=np.float32)
        else:
            self.genre = self.genre_dist = sparse.csr_matrix(np.sqrt(dist), dtype=np.float32)

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
        """From `TrackRepository.feature_rows()` and `genre_map()`."""
        rows = list(rows)
        raw = np.asarray(
            [[*(getattr(r, c) for c in AUDIO_FEATURES), r.duration_ms if r.duration_ms else math.nan] for r in rows],
            dtype=np.float64,
        ).reshape(len(rows), len(RAW_COLUMNS))
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

    # -- lookups ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def position(self, track_id: int) -> int | None:
        return self._pos.get(int(track_id))

    def position_of_spotify(self, spotify_id: str) -> int | None:
        return self._spotify_pos.get(spotify_id)

    def positions(self, track_ids: Iterable[int]) -> list[int]:
        return [p for p in (self._pos.get(int(t)) for t in track_ids) if p is not None]

    def find(self, text: str, limit: int = 5) -> list[int]:
        """Positions matching words of "artists title": exact title first, whole words, then substrings."""
        wanted = normalize(text)
        words = wanted.split()
        if not words:
            return []
        ranked: list[tuple[int, float, int, int]] = []
        for i, (a, t) in enumerate(zip(self.artists, self.names, strict=True)):
            title, artists = normalize(t), normalize(a.replace(";", " "))
            both = f"{artists} {title}"
            if not all(w in both for w in words):
                continue
            tokens = set(both.split())
            tier = 0 if wanted in (title, both, f"{title} {artists}") else 1 if set(words) <= tokens else 2
            ranked.append((tier, -float(self.popularity[i]), int(self.ids[i]), i))
        ranked.sort()
        return [i for *_, i in ranked[:limit]]

    def keys_for(self, artists: str, name: str) -> set[int]:
        """The song and recording keys of a track (to keep its other versions out of results)."""
        keys = {
            self._key_ids.get(song_key(artists, name), -1),
            self._key_ids.get("r:" + recording_key(artists, name), -1),
        }
        return keys - {-1}

    def signature(self) -> str:
        """Changes when vectors from an older index would not fit this one."""
        w = self.weights
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
        return f"{len(self)}:{hashlib.blake2b(text.encode(), digest_size=6).hexdigest()}"

    def track_info(self, position: int) -> TrackInfo:
        raw = self.raw[position]
        features = MappingProxyType({c: float(raw[i]) for i, c in enumerate(AUDIO_FEATURES)})
        duration = raw[len(AUDIO_FEATURES)]
        return TrackInfo(
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
        genre = self.genre_dist[position].toarray().ravel() if self.genre_on and self.has_genre[position] else None
        if genre is None:
            genre = self._knn_genre(self.audio[position])
        return Query(self.audio[position].copy(), genre)

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

    def audio_distances2(self, audio: np.ndarray) -> np.ndarray:
        """Squared distances in the audio block only (float32)."""
        qa = audio.astype(np.float32, copy=False)
        # einsum, not BLAS gemv: no thread start-up, steadier latency on a busy host.
        return self.audio_norm - 2.0 * np.einsum("ij,j->i", self.audio, qa) + float(qa @ qa)

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
        d2 = self.audio_distances2(query.audio) if query.audio_d2 is None else query.audio_d2.copy()
        if query.genre is not None and self.genre_on:
            q = query.genre.astype(np.float32, copy=False)
            if self.weights.genre_metric == "match":
                q = np.clip(q, 0.0, None)
                q = q / q.sum() if q.sum() > 0 else q
                unknown = 0.5 * float(q.max(initial=0.0))
            else:
                unknown = 0.5
            s = self.genre @ q
            s = np.where(self.has_genre, s, unknown)
            d2 += (2.0 * self.weights.genre**2) * (1.0 - s)
        return d2

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
        d2 = self.distances2(query)
        excluded = np.fromiter((int(p) for p in exclude), dtype=np.int64)
        if excluded.size:
            d2[excluded] = np.inf
        pool = smallest(d2, min(len(self), max(self.weights.pool, 8 * n)))
        if boost:
            extra = np.fromiter((p for p in boost if np.isfinite(d2[p])), dtype=np.int64)
            pool = np.union1d(pool, extra)
        pool = pool[np.isfinite(d2[pool])]
        if pool.size == 0:
            return []
        dist = np.sqrt(np.maximum(d2[pool], 0.0)).astype(np.float64)
        # Similarity in (0, 1]: the scale is the distance of the pool's 10th nearest.
        scale = float(np.partition(dist, min(9, dist.size - 1))[min(9, dist.size - 1)]) or 1.0
        rel = np.exp(-0.5 * (dist / scale) ** 2)
        diversity = min(max(float(diversity), 0.0), 1.0)
        # Neutral on popularity at the default dial (0.3); familiar leans popular, new leans obscure.
        tilt = self.weights.popularity_tilt * (NEUTRAL_DIVERSITY - diversity)
        rel = rel + tilt * (self.popularity_pct[pool] - 0.5)
        reasons = ["similar sound"] * pool.size
        if boost:
            for j, p in enumerate(pool.tolist()):
                if p in boost:
                    extra_score, why = boost[p]
                    rel[j] += extra_score
                    if extra_score > 0.05:
                        reasons[j] = why
        if len(avoid):
            diff = self.audio[pool][:, None, :] - self.audio[list(avoid)][None, :, :]
            rel -= 0.3 * np.exp(-0.5 * np.einsum("ijk,ijk->ij", diff, diff) / (scale**2)).sum(axis=1)
        # Candidates best first, deterministic on ties (track id).
        order = np.lexsort((self.ids[pool], -rel))
        pool, rel, dist = pool[order], rel[order], dist[order]
        reasons = [reasons[j] for j in order]

        blocked_keys = set(exclude_keys)
        window: list[tuple[int, ...]] = []
        if seed_artists:
            known = (self._artist_ids.get(normalize(a) or a) for a in split_artists(seed_artists))
            window.append(tuple(a for a in known if a is not None))
        window += [self.track_artists[p] for p in recent[-(ARTIST_WINDOW - 1) :]]
        for p in recent:
            blocked_keys.add(int(self.recording_keys[p]))
            blocked_keys.add(int(self.song_keys[p]))
        lam = self.weights.max_mmr * diversity
        vectors = self.audio[pool]
        # Novelty: distance to the nearest already chosen / recent track (in scale units).
        novelty = np.full(pool.size, 2.0)
        if len(recent):
            diff = vectors[:, None, :] - self.audio[list(recent[-ARTIST_WINDOW:])][None, :, :]
            near = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff).min(axis=1)) / scale
            novelty = np.minimum(novelty, near)
        main_artist = self.main_artist[pool]  # the soft penalty looks at main artists; the cap at all
        alive = np.ones(pool.size, dtype=bool)
        hits: list[Hit] = []
        while len(hits) < n and alive.any():
            counts: dict[int, int] = {}
            for artists in window[-(ARTIST_WINDOW - 1) :]:
                for a in artists:
                    counts[a] = counts.get(a, 0) + 1
            score = (1.0 - lam) * rel + lam * np.minimum(novelty, 2.0) / 2.0
            if counts and self.weights.artist_repeat:
                repeat = np.zeros(pool.size)
                for a, c in counts.items():
                    repeat[main_artist == a] += c
                score = score - self.weights.artist_repeat * repeat
            score = np.where(alive, score, -np.inf)
            j = int(np.argmax(score))
            alive[j] = False
            p = int(pool[j])
            if int(self.recording_keys[p]) in blocked_keys or int(self.song_keys[p]) in blocked_keys:
                continue
            if any(counts.get(a, 0) >= ARTIST_CAP for a in self.track_artists[p]):
                continue
            hits.append(Hit(p, float(score[j]), float(dist[j]), reasons[j]))
            if alternatives:
                continue
            window.append(self.track_artists[p])
            blocked_keys.add(int(self.recording_keys[p]))
            blocked_keys.add(int(self.song_keys[p]))
            if lam > 0:
                diff = vectors - vectors[j]
                novelty = np.minimum(novelty, np.sqrt(np.einsum("ij,ij->i", diff, diff)) / scale)
        return hits


def _top_normalized(dist: np.ndarray, top: int) -> np.ndarray:
    """Each row keeps its `top` largest entries, renormalised to sum 1 (all-zero rows stay zero)."""
    if dist.shape[1] > top:
        cut = -np.partition(-dist, top - 1, axis=1)[:, top - 1 : top]
        dist = np.where(dist >= cut, dist, 0.0)
    total = dist.sum(axis=1, keepdims=True)
    return np.divide(dist, total, out=np.zeros_like(dist, dtype=np.float64), where=total > 0)


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


class RecommendationService:
    """Similar tracks, "for you" and the shared in-memory index (built lazily from the DB)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        proba: ProbaModel | None = None,
        weights: EngineWeights | None = None,
        default_diversity: float = 0.3,
        colike_weight: float = 1.0,
        colike_ttl: float = 600.0,
        index: CatalogIndex | None = None,
    ) -> None:
        self._sessions = sessions
        self._proba = proba
        self._weights = weights
        self.default_diversity = default_diversity
        self.colike_weight = colike_weight
        self.colike_ttl = colike_ttl
        self._index = index
        self._colikes: CoLikeModel | None = None
        self._colikes_at = -math.inf
        self._lock = asyncio.Lock()

    # -- index -----------------------------------------------------------------------------------

    async def index(self) -> CatalogIndex:
        if self._index is None:
            async with self._lock:
                if self._index is None:
                    self._index = await self._build_index()
        return self._index

    async def reload(self) -> CatalogIndex:
        """Rebuild the index from the DB (after an import)."""
        index = await self._build_index()
        self._index = index
        self._colikes = None
        self._colikes_at = -math.inf
        return index

    async def _build_index(self) -> CatalogIndex:
        started = time.perf_counter()
        async with self._sessions() as s:
            repo = TrackRepository(s)
            rows = list(await repo.feature_rows())
            genre_map = await repo.genre_map()
        proba = None
        if self._proba is not None and rows:
            proba = await asyncio.to_thread(routed_proba, self._proba, proba_inputs(self._proba, rows))
        index = await asyncio.to_thread(
            CatalogIndex.from_rows,
            rows,
            genre_map,
            proba=proba,
            proba_classes=self._proba.classes if proba is not None and self._proba is not None else None,
            weights=self._weights,
        )
        log.info("recommender index: %d tracks in %.2fs", len(index), time.perf_counter() - started)
        return index

    async def refresh_colikes(self) -> CoLikeModel:
        index = await self.index()
        async with self._sessions() as s:
            pairs = [(int(u), int(t)) for u, t in await LikeRepository(s).all_pairs()]
        model = CoLikeModel(pairs, index)
        self._colikes = model
        self._colikes_at = time.monotonic()
        log.info("co-likes: %d users, %d likes", model.users, model.pairs)
        return model

    async def colikes(self) -> CoLikeModel:
        if self._colikes is None or time.monotonic() - self._colikes_at > self.colike_ttl:
            return await self.refresh_colikes()
        return self._colikes

    async def colike_boost(self, positions: Sequence[int]) -> dict[int, tuple[float, str]]:
        if self.colike_weight <= 0 or not positions:
            return {}
        model = await self.colikes()
        return {
            p: (self.colike_weight * s, "liked by people who liked this")
            for p, (s, _) in model.scores(positions).items()
        }

    # -- queries ---------------------------------------------------------------------------------

    async def seed_query(self, track_id: int) -> tuple[Query, int | None, TrackInfo]:
        """The query of a track: from the index, or from its DB features (tracks added later)."""
        index = await self.index()
        pos = index.position(track_id)
        if pos is not None:
            return index.query_for(pos), pos, index.track_info(pos)
        async with self._sessions() as s:
            row = await TrackRepository(s).get(track_id)
            if row is None:
                raise TrackNotFound(f"track {track_id} not found")
            info = TrackInfo.from_row(row)
        if info.features is None:
            raise NoFeatures("no audio features are known for this track")
        proba = None
        if self._proba is not None and index.has_proba:
            inputs = proba_inputs(
                self._proba,
                [
                    {
                        **info.features,
                        "duration_ms": info.duration_ms,
                        "explicit": info.explicit,
                        "popularity": info.popularity,
                    }
                ],
            )
            try:
                proba = (await asyncio.to_thread(routed_proba, self._proba, inputs))[0]
            except FeatureError as exc:
                raise NoFeatures(f"the audio features of this track are not usable: {exc}") from exc
        query = index.query_for_features(info.features, duration_ms=info.duration_ms, proba=proba, genres=info.genres)
        return query, None, info

    async def _user_skips(self, user_id: int | None) -> list[int]:
        if user_id is None:
            return []
        async with self._sessions() as s:
            return await InteractionRepository(s).user_track_ids(user_id, [InteractionKind.SKIPPED], limit=5000)

    async def similar(
        self, track_id: int, n: int = 5, *, user_id: int | None = None, diversity: float | None = None
    ) -> list[Recommendation]:
        index = await self.index()
        query, pos, seed = await self.seed_query(track_id)
        exclude = set(index.positions(await self._user_skips(user_id)))
        keys = index.keys_for(";".join(seed.artists), seed.name)
        if pos is not None:
            exclude.add(pos)
        boost = await self.colike_boost([pos]) if pos is not None else {}
        if diversity is None:  # the user's own setting, else the service default
            diversity = await self.user_diversity(user_id) if user_id is not None else self.default_diversity
        # CPU-bound (numpy releases the GIL for the heavy part): keep the event loop free.
        hits = await asyncio.to_thread(
            index.search,
            query,
            n,
            exclude=exclude,
            exclude_keys=keys,
            diversity=diversity,
            boost=boost,
            seed_artists=";".join(seed.artists),
        )
        return self._to_recommendations(index, hits)

    async def for_you(self, user_id: int, n: int = 10) -> list[Recommendation]:
        """From the user's likes and skips; popular tracks of searched genres, then overall, when cold."""
        index = await self.index()
        async with self._sessions() as s:
            liked = await LikeRepository(s).track_ids(user_id)
            inter = InteractionRepository(s)
            skipped = await inter.user_track_ids(user_id, [InteractionKind.SKIPPED], limit=5000)
            shown = await inter.user_track_ids(user_id, [InteractionKind.SHOWN], limit=200)
            searched = await inter.user_track_ids(user_id, [InteractionKind.SEARCHED], limit=200)
        liked_pos = index.positions(liked)
        skipped_pos = index.positions(skipped)
        if not liked_pos:
            return await self._cold_start(index, user_id, n, searched, set(skipped) | set(liked))
        query = taste_from_history(index, liked_pos[:50], skipped_pos[:50])
        exclude = set(liked_pos) | set(skipped_pos) | set(index.positions(shown[:50]))
        boost = await self.colike_boost(liked_pos[:50])
        diversity = await self.user_diversity(user_id)
        hits = await asyncio.to_thread(index.search, query, n, exclude=exclude, diversity=diversity, boost=boost)
        return self._to_recommendations(index, hits, default_reason="from your likes")

    async def user_diversity(self, user_id: int) -> float:
        async with self._sessions() as s:
            user = await UserRepository(s).get(user_id)
        return float(user.diversity) if user is not None else self.default_diversity

    async def _cold_start(
        self, index: CatalogIndex, user_id: int, n: int, searched: Sequence[int], exclude: set[int]
    ) -> list[Recommendation]:
        async with self._sessions() as s:
            repo = TrackRepository(s)
            genres: dict[str, int] = {}
            for track in (await repo.get_many(searched)).values():
                for g in track.genres:
                    genres[g.genre] = genres.get(g.genre, 0) + 1
            picked: list[Recommendation] = []
            seen_artists: dict[str, int] = {}
            stages: list[tuple[list[str] | None, str]] = []
            if genres:
                stages.append((sorted(genres, key=lambda g: (-genres[g], g))[:5], "popular in genres you searched"))
            stages.append((None, "popular on Encore"))
            for genre_list, reason in stages:
                for row in await repo.popular(genre_list, limit=n * 6 + len(exclude)):
                    if len(picked) >= n:
                        break
                    if row.id in exclude:
                        continue
                    info = TrackInfo.from_row(row)
                    if any(seen_artists.get(a, 0) >= ARTIST_CAP for a in info.artists):
                        continue
                    for a in info.artists:
                        seen_artists[a] = seen_artists.get(a, 0) + 1
                    exclude.add(row.id)
                    picked.append(Recommendation(info, float(row.popularity or 0) / 100.0, reason))
        return picked

    @staticmethod
    def _to_recommendations(
        index: CatalogIndex, hits: Sequence[Hit], default_reason: str | None = None
    ) -> list[Recommendation]:
        """Built from the in-memory index: no database read on the hot path."""
        out = []
        for h in hits:
            info = index.track_info(h.position)
            reason = h.reason if h.reason != "similar sound" or default_reason is None else default_reason
            out.append(Recommendation(info, round(h.score, 4), reason))
        return out


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
