"""RecommendationService: similar tracks and "for you", on the recommender engine in `ml.recsys`.

The engine (scaling, the in-memory index, ranking, co-likes) is pure numpy; this service loads the
catalogue into it from the database, asks the genre model for the catalogue's probabilities, keeps
co-likes fresh, and runs the CPU-bound searches in a worker thread.

Tracks that get audio features after the index was built (songs found on Deezer or Spotify, songs
sent as audio) are added to it by id (`add_tracks`, `refresh_new`), embedded in the same space:
they can be seeds and candidates at once, without a restart. A song known by the nine values of an
audio analysis (no key, mode or time signature) is placed by those nine (`CatalogIndex.
query_for_partial`: those three are left out of its distances), and its genre part comes from its
audio neighbours' labels: the recommender does not ask the genre model's analysis head (which the
cards use, `services.genre.guess_from_analysis`) yet.

A seed the catalogue holds no labels for (a provider track, a song sent as audio, a row of features
given with its artists and title) gets its genre distribution from `ml.seeds`: the genre model with
the song's artists and title (the artists' catalogue genres as evidence), the same call wherever the
seed comes from (`_features_query`), so the bot, the API and the CLI list the same tracks for it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InteractionKind
from db.repositories import InteractionRepository, LikeRepository, TrackRepository, UserRepository
from ml.blend import HEAD_AUDIO
from ml.features import AUDIO_FEATURES, FeatureError, parse_bool, validate_features
from ml.predictor import ProbaModel, proba_inputs, routed_proba
from ml.recsys import snapshot
from ml.recsys.colikes import CoLikeModel
from ml.recsys.index import ARTIST_CAP, CatalogIndex, EngineWeights, Hit, Query
from ml.recsys.neighbours import Neighbours
from ml.recsys.neighbours import build as build_neighbours
from ml.recsys.scaling import is_partial
from ml.recsys.taste import taste_from_history
from ml.seeds import blend_prior, seed_distribution
from services.dto import Recommendation, TrackInfo
from services.errors import InvalidInput, NoFeatures, TrackNotFound

log = logging.getLogger(__name__)
T = TypeVar("T")
SHOWN_SIMILAR = "similar"  # the context of interactions recorded when a similar list is shown
SNAPSHOT = "recommender"  # the index's snapshot folder name under `snapshot_dir`
# A snapshot older than this many new tracks (beyond 1,000) is rebuilt rather than extended at start.
REBUILD_SHARE = 0.05
# Bumped when the genre rows of tracks without labels are computed differently (snapshots then rebuild):
# "meta1": from the genre model with their artists and title (ml.seeds).
UNLABELLED_GENRE = "meta1"


def release_memory() -> None:
    """Give the heap a build freed back to the system (glibc keeps freed blocks for reuse: after the
    model's probabilities for every track and the build's temporaries, hundreds of MB)."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class RecommendationService:
    """Similar tracks, "for you" and the shared in-memory index (built lazily from the DB)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        proba: ProbaModel | None = None,
        proba_source: Callable[[], ProbaModel | None] | None = None,
        weights: EngineWeights | None = None,
        default_diversity: float = 0.3,
        colike_weight: float = 1.0,
        colike_ttl: float = 600.0,
        index: CatalogIndex | None = None,
        snapshot_dir: Path | None = None,
        model_version: Callable[[], str | None] | None = None,
        cpu: Executor | None = None,
    ) -> None:
        """`snapshot_dir`: where the built index is saved as arrays and loaded from at the next start
        (`ml.recsys.snapshot`), checked against the catalogue and `model_version()` (the genre
        model's version, read without loading the model). `cpu`: where searches run (one thread:
        they hold the GIL most of the time, and several at once cost more CPU each); asyncio's
        default pool when None."""
        self._sessions = sessions
        self._snapshot_dir = snapshot_dir
        self._model_version = model_version
        self._proba = proba
        # Loads the genre model on first use (blocking; run in a worker thread) when `proba` is not given.
        self._proba_source = None if proba is not None else proba_source
        self._weights = weights
        self.default_diversity = default_diversity
        self.colike_weight = colike_weight
        self.colike_ttl = colike_ttl
        self._index = index
        # Each seed's default "similar" list (`ml.recsys.neighbours`), for the index `_index` is or
        # was extended from (positions stay; a rebuilt index drops it). Built by setup, saved with
        # the snapshot.
        self._neighbours: Neighbours | None = None
        self._generation = 0  # counts rebuilds (reload): a table built across one is not installed
        # The genre model version in the key of the snapshot `_index` was loaded from (None: built
        # here): a loaded index saved again keeps it (this process may never load the model).
        self._loaded_model: str | None = None
        self._cpu = cpu
        self._colikes: CoLikeModel | None = None
        self._colikes_at = -math.inf
        self._lock = asyncio.Lock()
        self._grow_lock = asyncio.Lock()
        self._colikes_lock = asyncio.Lock()

    # -- index -----------------------------------------------------------------------------------

    async def index(self) -> CatalogIndex:
        if self._index is None:
            async with self._lock:
                if self._index is None:
                    self._index = await self._build_index()
        return self._index

    async def reload(self) -> CatalogIndex:
        """Rebuild the index from the DB (after an import) and save its snapshot."""
        index = await self._build_from_db()
        if self._snapshot_dir is not None:
            await self.save_snapshot(index)
        release_memory()
        self._index, self._neighbours, self._loaded_model = index, None, None
        self._generation += 1
        self._colikes = None
        self._colikes_at = -math.inf
        return index

    async def _build_index(self) -> CatalogIndex:
        if self._snapshot_dir is not None:
            index = await self._load_snapshot(self._snapshot_dir)
            if index is not None:
                return index
        index = await self._build_from_db()
        if self._snapshot_dir is not None:
            await self.save_snapshot(index)
        release_memory()
        return index

    def _version(self, *, built: bool = False) -> str:
        """The genre model's version: of the one an index was `built` with, else of the one a new
        build would use (read from its metadata without loading it)."""
        if built or self._model_version is None:
            if self._proba is not None:
                return str(getattr(self._proba, "version", "given"))
            return "none" if built or self._proba_source is None else "unknown"
        return str(self._model_version() or "none")

    @staticmethod
    def _key(count: int, top: int, labels: int, model: str) -> str:
        return f"tracks={count};max_id={top};labels={labels};model={model};unlabelled={UNLABELLED_GENRE}"

    async def save_snapshot(
        self, index: CatalogIndex, neighbours: Neighbours | None = None, *, model: str | None = None
    ) -> Path | None:
        """Save `index` (and the `neighbours` table built for it) as arrays under `snapshot_dir` (a
        failure is logged: the next start rebuilds). `model`: the genre model version it was built
        with, when not the one this process loaded (an index loaded from a snapshot)."""
        if self._snapshot_dir is None:
            return None
        top = int(index.ids.max()) if len(index) else 0
        async with self._sessions() as s:
            count, _, labels, _ = await TrackRepository(s).index_counts(top)
        if count != len(index):  # a track changed while the index was built: do not vouch for it
            log.warning("recommender snapshot not saved: %d tracks in the index, %d in the DB", len(index), count)
            return None
        if model is None:
            model = self._version(built=True) if index.has_proba else "none"
        arrays, meta = index.to_arrays()
        meta |= {"key": self._key(count, top, labels, model), "max_id": top}
        if neighbours is not None:
            table_arrays, meta["neighbours"] = neighbours.to_arrays()
            arrays |= table_arrays
        try:
            folder = await asyncio.to_thread(snapshot.save, self._snapshot_dir, SNAPSHOT, arrays, meta)
        except OSError as exc:
            log.warning("recommender snapshot not saved in %s: %s", self._snapshot_dir, exc)
            return None
        log.info("recommender snapshot saved: %d tracks in %s", len(index), folder)
        return folder

    async def _load_snapshot(self, root: Path) -> CatalogIndex | None:
        """The saved index when it still fits the catalogue (the tracks up to its highest id, their
        labels, the model), extended with tracks stored since; None when there is none or it is stale
        or damaged (then the caller builds from the DB)."""
        started = time.perf_counter()
        meta = await asyncio.to_thread(snapshot.peek, root, SNAPSHOT)
        if meta is None:
            log.info("no recommender snapshot in %s: building the index", root)
            return None
        top = meta.get("max_id")
        if not isinstance(top, int):
            log.warning("recommender snapshot without max_id: rebuilding")
            return None
        async with self._sessions() as s:
            count, _, labels, _ = await TrackRepository(s).index_counts(top)
            newer, _, _, _ = await TrackRepository(s).index_counts()
        try:
            arrays, stored = await asyncio.to_thread(
                snapshot.load, root, SNAPSHOT, self._key(count, top, labels, self._version())
            )
            index = CatalogIndex.from_arrays(arrays, stored, self._weights)
        except (snapshot.SnapshotError, ValueError, KeyError, TypeError) as exc:
            log.warning("recommender snapshot not used (%s): rebuilding", exc)
            return None
        newer -= count
        if newer > 1000 + REBUILD_SHARE * len(index):
            log.info("recommender snapshot is %d tracks behind: rebuilding", newer)
            return None
        self._neighbours, self._loaded_model = None, self._version()
        if "neighbours" in stored:
            try:
                self._neighbours = Neighbours.from_arrays(arrays, stored["neighbours"], len(index))
            except (ValueError, KeyError, TypeError) as exc:  # the index is fine: only the table goes
                log.warning("recommender snapshot's neighbour table not used (%s)", exc)
        log.info(
            "recommender index: %d tracks loaded from the snapshot in %.2fs", len(index), time.perf_counter() - started
        )
        if newer > 0:
            index = await self._extend_after(index, top)
        return index

    async def _ensure_proba(self) -> None:
        if self._proba_source is not None:
            self._proba = await asyncio.to_thread(self._proba_source)
            self._proba_source = None

    async def _build_from_db(self) -> CatalogIndex:
        started = time.perf_counter()
        await self._ensure_proba()
        async with self._sessions() as s:
            repo = TrackRepository(s)
            rows = list(await repo.feature_rows())
            genre_map = await repo.genre_map()
        proba = None
        if self._proba is not None and rows:
            proba = await asyncio.to_thread(self._proba_rows, self._proba, rows, genre_map)
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

    @staticmethod
    def _proba_rows(model: ProbaModel, rows: Sequence[Any], genre_map: Mapping[int, Sequence[str]]) -> Any:
        """The model's probabilities for feature rows: from audio for catalogue tracks (their labels
        count), with their artists and title for the others (`ml.seeds`, as when they are seeds); a
        row of zeros for a song with only the nine analysis values (the index places it by its
        neighbours; the analysis head is not asked here yet)."""
        complete = np.asarray([all(getattr(r, c) is not None for c in AUDIO_FEATURES) for r in rows], dtype=bool)
        unlabelled = np.asarray([not genre_map.get(int(r.id)) for r in rows], dtype=bool)
        out = np.zeros((len(rows), len(model.classes)))
        for mask, meta in ((complete & ~unlabelled, False), (complete & unlabelled, True)):
            if not mask.any():
                continue
            chosen = [r for r, ok in zip(rows, mask, strict=True) if ok]
            matrix = proba_inputs(model, chosen)
            if meta:
                out[mask] = seed_distribution(
                    model, matrix, artists=[r.artists for r in chosen], titles=[r.name for r in chosen]
                )[0]
            else:
                out[mask] = routed_proba(model, matrix)
        return out

    async def add_tracks(self, track_ids: Sequence[int]) -> int:
        """Add tracks that got audio features after the index was built (by id; those without
        features or already in it are skipped). Returns how many were added. The index is replaced,
        not changed, so searches running meanwhile finish on the one they started with."""
        wanted = [int(t) for t in dict.fromkeys(track_ids)]
        if not wanted:
            return 0
        async with self._grow_lock:
            index = await self.index()
            missing = [t for t in wanted if index.position(t) is None]
            if not missing:
                return 0
            async with self._sessions() as s:
                repo = TrackRepository(s)
                rows = list(await repo.feature_rows(missing))
                genre_map = await repo.genre_map([r.id for r in rows])
            if not rows:
                return 0
            grown = await self._extended(index, rows, genre_map)
            if self._index is not index:  # rebuilt meanwhile (reload): that build read the DB later
                return 0
            self._index = grown
            added = len(grown) - len(index)
            log.info("recommender index: %d tracks added (%d in all)", added, len(grown))
            return added

    async def _extended(
        self, index: CatalogIndex, rows: Sequence[Any], genre_map: Mapping[int, Sequence[str]]
    ) -> CatalogIndex:
        proba = None
        if index.has_proba:
            await self._ensure_proba()
            if self._proba is not None:
                proba = await asyncio.to_thread(self._proba_rows, self._proba, rows, genre_map)
            else:  # the model is gone: the new rows are placed by their neighbours' labels
                proba = np.zeros((len(rows), len(index.classes)))
        return await asyncio.to_thread(index.extended, rows, genre_map, proba=proba)

    async def _extend_after(self, index: CatalogIndex, after_id: int) -> CatalogIndex:
        async with self._sessions() as s:
            repo = TrackRepository(s)
            rows = list(await repo.feature_rows_after(after_id))
            genre_map = await repo.genre_map([r.id for r in rows]) if rows else {}
        if not rows:
            return index
        grown = await self._extended(index, rows, genre_map)
        log.info("recommender index: %d tracks stored since the snapshot added", len(grown) - len(index))
        return grown

    async def refresh(self) -> int:
        """Make every track stored since the index was built a candidate here, whichever process
        stored it: the tracks with an id above the index's highest, then (`refresh_new`) older
        provider tracks that got their audio features since. Cheap when nothing changed (two
        indexed reads); run it every few seconds (the scheduler does, in every process)."""
        index = await self.index()
        top = int(index.ids.max()) if len(index) else 0
        async with self._sessions() as s:
            ids = [int(r.id) for r in await TrackRepository(s).feature_rows_after(top, limit=5000)]
        added = await self.add_tracks(ids) if ids else 0
        return added + await self.refresh_new()

    async def refresh_new(self) -> int:
        """Add every track found through a provider or sent as audio that has features but is not in
        the index yet (e.g. written by another process). Cheap: only non-catalogue ids are read."""
        index = await self.index()
        async with self._sessions() as s:
            ids = await TrackRepository(s).provider_feature_ids()
        return await self.add_tracks([t for t in ids if index.position(t) is None])

    async def prepare_neighbours(self, k: int = 10) -> Neighbours | None:
        """Work out each seed's default "similar" list (`ml.recsys.neighbours`; 39 s at 64,588
        songs here) and save it with the index's snapshot; the current table is kept when it was built
        for this index at this diversity. Setup runs it after the index. None: the index was
        rebuilt meanwhile (its table is for the next setup)."""
        index = await self.index()
        table = self._neighbours
        if table is not None and (table.size, table.k, table.diversity) == (len(index), k, self.default_diversity):
            return table
        generation = self._generation
        table = await asyncio.to_thread(build_neighbours, index, k, self.default_diversity)
        if generation != self._generation:
            return None
        self._neighbours = table
        await self.save_snapshot(index, table, model=self._loaded_model)
        return table

    def _listed(
        self,
        index: CatalogIndex,
        query: Query,
        pos: int | None,
        n: int,
        diversity: float,
        exclude: set[int],
        model: CoLikeModel | None,
    ) -> list[Hit] | None:
        """The seed's list read from the neighbour table, where the table holds exactly what the
        search would answer: nothing left out but the seed, and no co-likes to boost it with."""
        table = self._neighbours
        if table is None or pos is None or exclude != {pos} or (model is not None and model.may_boost(pos)):
            return None
        return table.lookup(index, pos, query, n, diversity)

    async def refresh_colikes(self) -> CoLikeModel:
        """Rebuild the co-likes model from every like (the matrix is built in a worker thread)."""
        index = await self.index()
        async with self._sessions() as s:
            pairs = [(int(u), int(t)) for u, t in await LikeRepository(s).all_pairs()]
        model = await asyncio.to_thread(CoLikeModel, pairs, index)
        self._colikes = model
        self._colikes_at = time.monotonic()
        log.info("co-likes: %d users, %d likes", model.users, model.pairs)
        return model

    async def colikes(self) -> CoLikeModel:
        """The co-likes model, rebuilt once `colike_ttl` has passed: by one caller, the others wait."""
        if self._colikes is not None and time.monotonic() - self._colikes_at <= self.colike_ttl:
            return self._colikes
        async with self._colikes_lock:
            if self._colikes is not None and time.monotonic() - self._colikes_at <= self.colike_ttl:
                return self._colikes  # built while this caller waited
            return await self.refresh_colikes()

    def colike_boost(self, model: CoLikeModel | None, positions: Sequence[int]) -> dict[int, tuple[float, str]]:
        """Position → (extra relevance, reason) from the co-likes of `positions` (blocking: call it
        where the search runs)."""
        if model is None or not positions:
            return {}
        scores = model.scores(positions)
        return {p: (self.colike_weight * s, "liked by people who liked this") for p, (s, _) in scores.items()}

    def _boosted_search(
        self, index: CatalogIndex, query: Query, n: int, model: CoLikeModel | None, anchors: Sequence[int], **kw: Any
    ) -> list[Hit]:
        """`index.search` boosted by the co-likes of `anchors`: both on one thread, in one hand-over
        (the scores alone cost less than a second trip to the thread and back)."""
        return index.search(query, n, boost=self.colike_boost(model, anchors), **kw)

    async def colike_model(self) -> CoLikeModel | None:
        """The co-likes model, or None when co-likes do not count (`colike_weight` 0)."""
        return await self.colikes() if self.colike_weight > 0 else None

    # -- queries ---------------------------------------------------------------------------------

    async def seed_query(self, track_id: int) -> tuple[Query, int | None, TrackInfo]:
        """The query of a track: from the index, or from its DB features (tracks added later, which
        join the index here so that they are candidates from now on too)."""
        index = await self.index()
        pos = index.position(track_id)
        if pos is not None:
            info = TrackInfo.from_entry(index.entry(pos))
            if index.has_label[pos]:
                return index.query_for(pos), pos, info
            return await self._info_query(index, info), pos, info
        async with self._sessions() as s:
            row = await TrackRepository(s).get(track_id)
            if row is None:
                raise TrackNotFound(f"track {track_id} not found")
            info = TrackInfo.from_row(row)
        if info.features is None:
            raise NoFeatures("no audio features are known for this track")
        if await self.add_tracks([track_id]):
            index = await self.index()
            pos = index.position(track_id)
            if pos is not None and index.has_label[pos]:
                return index.query_for(pos), pos, info
        return await self._info_query(index, info), pos, info

    async def _info_query(self, index: CatalogIndex, info: TrackInfo) -> Query:
        """The query of a stored track without catalogue labels: `_features_query` with its artists
        and title (as a row of features given with them gets)."""
        if info.features is None:
            raise NoFeatures("no audio features are known for this track")
        return await self._features_query(
            index,
            info.features,
            duration_ms=info.duration_ms,
            explicit=info.explicit,
            genres=info.genres,
            artists=";".join(info.artists),
            title=info.name,
        )

    async def _features_query(
        self,
        index: CatalogIndex,
        features: Mapping[str, float],
        *,
        duration_ms: float | None = None,
        explicit: bool | None = None,
        genres: Sequence[str] = (),
        artists: str | None = None,
        title: str | None = None,
    ) -> Query:
        """A song the catalogue holds no labels for: its audio, and its genre from the labels given,
        else from the genre model with its artists and title (`ml.seeds`; the artists' catalogue
        genres as evidence), else from its audio neighbours. With only the nine analysis values, the
        query leaves key, mode and time signature out, and the neighbours' labels stand in for the
        audio model in the blend with the artists' evidence."""
        if index.has_proba:
            await self._ensure_proba()
        if is_partial(features):
            try:
                query = index.query_for_partial(features, duration_ms=duration_ms, genres=genres)
            except FeatureError as exc:
                raise NoFeatures(f"the audio features of this track are not usable: {exc}") from exc
            if genres or not artists or self._proba is None or not index.genre_on:
                return query
            prior = index.genre_distribution(query.audio, audio_d2=query.audio_d2)
            if prior.sum() <= 0:
                return query
            dist, heads = blend_prior(self._proba, prior[None, :], artists=[artists], titles=[title])
            return index.with_genre(query, dist[0]) if heads[0] != HEAD_AUDIO else query
        proba = None
        if self._proba is not None and index.has_proba:
            inputs = proba_inputs(self._proba, [{**features, "duration_ms": duration_ms, "explicit": explicit}])
            try:
                dist, _heads = await asyncio.to_thread(
                    seed_distribution, self._proba, inputs, artists=[artists], titles=[title]
                )
                proba = dist[0]
            except FeatureError as exc:
                raise NoFeatures(f"the audio features of this track are not usable: {exc}") from exc
        try:
            return index.query_for_features(features, duration_ms=duration_ms, proba=proba, genres=genres)
        except FeatureError as exc:
            raise NoFeatures(f"the audio features of this track are not usable: {exc}") from exc

    async def similar_to_features(
        self,
        features: Mapping[str, float],
        n: int = 10,
        *,
        duration_ms: float | None = None,
        explicit: bool | None = None,
        artists: str | None = None,
        title: str | None = None,
        genres: Sequence[str] = (),
        diversity: float | None = None,
    ) -> list[Recommendation]:
        """Similar tracks for a song given by its audio features (and, when known, its artists and title,
        which keep its own versions out and count in the artist cap)."""
        index = await self.index()
        query = await self._features_query(
            index, features, duration_ms=duration_ms, explicit=explicit, genres=genres, artists=artists, title=title
        )
        keys = index.keys_for(artists or "", title) if title else set()
        hits = await self.searching(
            index.search,
            query,
            n,
            exclude_keys=keys,
            diversity=self.default_diversity if diversity is None else diversity,
            seed_artists=artists or None,
        )
        return self._to_recommendations(index, hits)

    async def similar_to_row(
        self, row: Mapping[str, Any], n: int = 10, *, diversity: float | None = None
    ) -> list[Recommendation]:
        """`similar_to_features` for a row shaped like the datasets' (the 12 audio features, and
        optionally duration_ms, explicit, artists, track_name); InvalidInput names every bad field."""
        try:
            features = validate_features(row)
        except FeatureError as exc:
            raise InvalidInput("; ".join(f"{k}: {v}" for k, v in exc.problems.items())) from exc
        duration = row.get("duration_ms")
        try:
            duration_ms = float(duration) if duration not in (None, "") else None
        except (TypeError, ValueError):
            duration_ms = None
        artists, title = str(row.get("artists") or "").strip(), str(row.get("track_name") or "").strip()
        return await self.similar_to_features(
            features,
            n,
            duration_ms=duration_ms if duration_ms is not None and math.isfinite(duration_ms) else None,
            explicit=parse_bool(row.get("explicit")),
            artists=artists or None,
            title=title or None,
            diversity=diversity,
        )

    async def catalogue_size(self) -> int:
        """How many tracks can be recommended (0 before the catalogue import)."""
        return len(await self.index())

    async def _user_skips(self, user_id: int | None) -> list[int]:
        if user_id is None:
            return []
        async with self._sessions() as s:
            return await InteractionRepository(s).user_track_ids(user_id, [InteractionKind.SKIPPED], limit=5000)

    @property
    def cpu(self) -> Executor | None:
        """Where searches run (None: asyncio's default pool)."""
        return self._cpu

    async def searching(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` (a search, blocking) off the event loop, on the service's `cpu`."""
        if self._cpu is None:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._cpu, partial(fn, *args, **kwargs))

    async def similar(
        self, track_id: int, n: int = 5, *, user_id: int | None = None, diversity: float | None = None
    ) -> list[Recommendation]:
        """Tracks that sound like `track_id`. With a `user_id` the list is for that person: their skips
        stay out, and what is returned is recorded as shown to them (context "similar")."""
        query, pos, seed = await self.seed_query(track_id)  # may add the seed to the index: read it after
        index = await self.index()
        exclude = set(index.positions(await self._user_skips(user_id)))
        if pos is not None:  # in the index: its keys as stored, and its co-likes count
            exclude.add(pos)
            keys, artists = index.keys_at(pos), index.artists[pos]
            model, anchors = await self.colike_model(), [pos]
        else:
            artists = ";".join(seed.artists)
            keys, model, anchors = index.keys_for(artists, seed.name), None, []
        if diversity is None:  # the user's own setting, else the service default
            diversity = await self.user_diversity(user_id) if user_id is not None else self.default_diversity
        hits = self._listed(index, query, pos, n, diversity, exclude, model)
        if hits is None:  # CPU-bound: keep the event loop free.
            hits = await self.searching(
                self._boosted_search,
                index,
                query,
                n,
                model,
                anchors,
                exclude=exclude,
                exclude_keys=keys,
                diversity=diversity,
                seed_artists=artists,
            )
        recommendations = self._to_recommendations(index, hits)
        if user_id is not None:
            await self._record_shown(user_id, [r.track.id for r in recommendations], SHOWN_SIMILAR)
        return recommendations

    async def _record_shown(self, user_id: int, track_ids: Sequence[int], context: str) -> None:
        """What a person was shown (a radio started next leaves these out of its first picks)."""
        if not track_ids:
            return
        async with self._sessions.begin() as s:
            await InteractionRepository(s).add_many(track_ids, InteractionKind.SHOWN, user_id=user_id, context=context)

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
        diversity = await self.user_diversity(user_id)
        model = await self.colike_model()
        hits = await self.searching(
            self._boosted_search, index, query, n, model, liked_pos[:50], exclude=exclude, diversity=diversity
        )
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
            info = TrackInfo.from_entry(index.entry(h.position))
            reason = h.reason if h.reason != "similar sound" or default_reason is None else default_reason
            out.append(Recommendation(info, round(h.score, 4), reason))
        return out
