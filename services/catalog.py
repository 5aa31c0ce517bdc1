"""Catalog import: the 114-genre dataset becomes the `tracks` table, one row per recording.

Folding. Rows are grouped (union-find) when they share a track_id, an identical 12-value audio
feature vector, or the same `song_key(artists, name)`. Each group becomes one `tracks` row:

- canonical Spotify id: the most popular row of the group, ties broken by the smallest id; its
  name, artists, album, features … fill the row, and `search_key` is its song key;
- every other id of the group goes to `track_aliases` (so a link to any of them resolves);
- every genre label of every row of the group goes to `track_genres`.

Rows without artists or a track name (the 114-genre file has one) cannot be shown to a user: they
still join a group through their id or feature vector (their labels are kept), but a group with
no named row is skipped and counted in `ImportStats.skipped_rows`.

Existing rows. A group whose ids (track or alias) or song key are already in the database maps
onto that track — its internal id and Spotify id stay, so likes and history keep pointing at it;
changed values are updated. When a group touches two existing tracks they are not merged (that
would move likes and history); the group goes to the first and the rest is counted in
`conflicts`. Nothing is ever deleted, so a second run of the same file changes nothing.

The whole import is one transaction: it lands completely or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import AUDIO_FEATURE_COLUMNS, Track, TrackAlias, TrackGenre
from db.repositories import CatalogRepository, column_lengths
from ml.features import parse_bool
from ml.pipeline.datasets import CATALOG_COLUMNS, DatasetError, read_dataset
from ml.progress import Bars, no_bars
from ml.text import fold_key

if TYPE_CHECKING:  # pandas and ml.data load with the first import: `serve` never needs them
    import pandas as pd

log = logging.getLogger(__name__)

SOURCE = "catalog"
REQUIRED_COLUMNS = CATALOG_COLUMNS
# Columns compared to decide whether an existing track needs an update.
VALUE_COLUMNS = (
    "name",
    "artists",
    "album",
    "duration_ms",
    "explicit",
    "popularity",
    "source",
    "search_key",
    *AUDIO_FEATURE_COLUMNS,
)
CHUNK_ROWS = 2_000


@dataclass(frozen=True, slots=True)
class ImportStats:
    rows_read: int
    tracks_inserted: int
    tracks_updated: int
    aliases: int  # aliases added by this run
    genres_added: int
    folded: int  # distinct ids in the file that became an alias of another id's track
    seconds: float
    skipped_rows: int = 0  # rows of groups without artists/name
    conflicts: int = 0  # existing tracks a group touched but could not be merged into

    @property
    def changed(self) -> bool:
        return bool(self.tracks_inserted or self.tracks_updated or self.aliases or self.genres_added)


@dataclass(slots=True)
class TrackGroup:
    """One recording: the canonical row's values, every id and every genre label of the group."""

    spotify_id: str
    values: dict[str, Any]
    ids: list[str] = field(default_factory=list)  # sorted, canonical included
    genres: list[str] = field(default_factory=list)  # sorted

    @property
    def search_key(self) -> str:
        return str(self.values["search_key"])


@dataclass(frozen=True, slots=True)
class FoldResult:
    groups: list[TrackGroup]
    rows_read: int
    skipped_rows: int
    distinct_ids: int
    skipped_ids: int  # ids seen only in skipped groups

    @property
    def folded_ids(self) -> int:
        """Distinct ids that are not their group's canonical id (they become aliases)."""
        return self.distinct_ids - len(self.groups) - self.skipped_ids


_LIMITS = column_lengths(Track, ("name", "artists", "album", "search_key"))


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _clip(column: str, value: str | None) -> str | None:
    limit = _LIMITS[column]
    return value[:limit] if value is not None and limit else value


def _int(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def read_catalog_frame(path: Path) -> pd.DataFrame:
    """The 114-genre file (plain or gzip CSV), text kept verbatim ("NA" is a band, not a null)."""
    import pandas as pd

    try:
        frame = read_dataset(path)
    except (OSError, EOFError, ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{path.name}: cannot be read ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path.name}: not the 114-genre catalog file, missing columns {', '.join(missing)}")
    return frame


def fold_rows(frame: pd.DataFrame) -> FoldResult:
    """Group the rows into recordings (pure; see the module docstring for the rules)."""
    import pandas as pd

    from ml.data import duplicate_groups

    n = len(frame)
    ids = [str(v).strip() for v in frame["track_id"]]
    artists = [_text(v) for v in frame["artists"]]
    names = [_text(v) for v in frame["track_name"]]
    albums = [_text(v) for v in frame["album_name"]]
    genres = [_text(v) for v in frame["track_genre"]]
    popularity = [_int(v) for v in pd.to_numeric(frame["popularity"], errors="coerce")]
    duration = [_int(v) for v in pd.to_numeric(frame["duration_ms"], errors="coerce")]
    explicit = [parse_bool(v) for v in frame["explicit"]]
    matrix = np.column_stack(
        [pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float) for c in AUDIO_FEATURE_COLUMNS]
    ).reshape(n, len(AUDIO_FEATURE_COLUMNS))
    features: list[tuple[float | None, ...]] = [tuple(_float(v) for v in values) for values in matrix.tolist()]
    keys = [fold_key(a, t) for a, t in zip(artists, names, strict=True)]
    # One folding rule for the catalogue, training and evaluation (ml.data.duplicate_groups).
    group_of = duplicate_groups(frame)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group_of.tolist()):
        members.setdefault(g, []).append(i)

    groups: list[TrackGroup] = []
    skipped = 0
    skipped_ids: set[str] = set()
    for rows in members.values():
        named = [i for i in rows if keys[i] is not None]
        if not named:
            skipped += len(rows)
            skipped_ids.update(ids[i] for i in rows)
            continue
        best = min(named, key=lambda i: (-_or(popularity[i], -1), ids[i]))
        values: dict[str, Any] = {
            "name": _clip("name", names[best]),
            "artists": _clip("artists", artists[best]),
            "album": _clip("album", albums[best]),
            "duration_ms": duration[best],
            "explicit": explicit[best],
            "popularity": popularity[best],
            "source": SOURCE,
            "search_key": _clip("search_key", keys[best]),
        }
        values.update(zip(AUDIO_FEATURE_COLUMNS, features[best], strict=True))
        groups.append(
            TrackGroup(
                spotify_id=ids[best],
                values=values,
                ids=sorted({ids[i] for i in rows}),
                genres=sorted({g for i in rows if (g := genres[i])}),
            )
        )
    groups.sort(key=lambda g: g.spotify_id)
    return FoldResult(
        groups=groups,
        rows_read=n,
        skipped_rows=skipped,
        distinct_ids=len(set(ids)),
        skipped_ids=len(skipped_ids),
    )


def _chunks(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


@dataclass(slots=True)
class _Plan:
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    # (group, existing track id or None when the track is inserted by this run)
    targets: list[tuple[TrackGroup, int | None]] = field(default_factory=list)
    conflicts: int = 0


class CatalogImporter:
    """Imports the 114-genre dataset into the catalog; idempotent, folds duplicates."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, chunk_rows: int = CHUNK_ROWS) -> None:
        self._sessions = sessions
        self._chunk = chunk_rows

    async def import_file(self, path: Path, progress: Bars = no_bars) -> ImportStats:
        started = time.perf_counter()
        frame = await asyncio.to_thread(read_catalog_frame, path)
        folded = await asyncio.to_thread(fold_rows, frame)
        del frame
        stats = await self._write(folded, progress=progress, started=started)
        log.info(
            "catalog import of %s: %d rows → %d groups; inserted %d, updated %d tracks, %d aliases, "
            "%d genre labels; %d ids folded, %d rows skipped, %d conflicts, %.1f s",
            path.name,
            stats.rows_read,
            len(folded.groups),
            stats.tracks_inserted,
            stats.tracks_updated,
            stats.aliases,
            stats.genres_added,
            stats.folded,
            stats.skipped_rows,
            stats.conflicts,
            stats.seconds,
        )
        return stats

    async def _write(self, folded: FoldResult, *, progress: Bars, started: float) -> ImportStats:
        groups = folded.groups
        async with self._sessions.begin() as session:
            repo = CatalogRepository(session)
            existing = await repo.tracks(VALUE_COLUMNS)
            aliases = await repo.aliases()
            plan = self._plan(groups, existing, aliases)

            with progress(total=len(plan.inserts) + len(plan.updates), desc="catalog: tracks", unit="row") as bar:
                for chunk in _chunks(plan.inserts, self._chunk):
                    await repo.insert_ignoring_conflicts(Track, chunk)
                    bar.update(len(chunk))
                for chunk in _chunks(plan.updates, self._chunk):
                    await repo.update_tracks(chunk, VALUE_COLUMNS)
                    bar.update(len(chunk))

            id_by_spotify = (
                await repo.ids_of(g.spotify_id for g, tid in plan.targets if tid is None) if plan.inserts else {}
            )
            spotify_of_track = {t: spid for spid, t in id_by_spotify.items()}
            spotify_of_track.update({row["id"]: spid for spid, row in existing.items()})
            alias_rows: list[dict[str, Any]] = []
            genre_pairs: list[tuple[int, str]] = []
            for group, track_id in plan.targets:
                tid = track_id if track_id is not None else id_by_spotify.get(group.spotify_id)
                if tid is None:  # lost to a concurrent writer's conflicting row; rerun picks it up
                    continue
                own = spotify_of_track.get(tid, group.spotify_id)
                for spid in group.ids:
                    if spid != own and spid not in existing and spid not in aliases:
                        alias_rows.append({"spotify_id": spid, "track_id": tid})
                        aliases[spid] = tid
                genre_pairs.extend((tid, g) for g in group.genres)
            have_genres = await repo.genres()
            genre_rows = [{"track_id": t, "genre": g} for t, g in genre_pairs if (t, g) not in have_genres]

            with progress(total=len(alias_rows) + len(genre_rows), desc="catalog: aliases+genres", unit="row") as bar:
                for model, rows in ((TrackAlias, alias_rows), (TrackGenre, genre_rows)):
                    for chunk in _chunks(rows, self._chunk * 2):
                        await repo.insert_ignoring_conflicts(model, chunk)
                        bar.update(len(chunk))

        return ImportStats(
            rows_read=folded.rows_read,
            tracks_inserted=len(plan.inserts),
            tracks_updated=len(plan.updates),
            aliases=len(alias_rows),
            genres_added=len(genre_rows),
            folded=folded.folded_ids,
            seconds=round(time.perf_counter() - started, 3),
            skipped_rows=folded.skipped_rows,
            conflicts=plan.conflicts,
        )

    def _plan(
        self, groups: Iterable[TrackGroup], existing: dict[str, dict[str, Any]], aliases: dict[str, int]
    ) -> _Plan:
        plan = _Plan()
        by_key: dict[str, int] = {}
        spotify_of: dict[int, str] = {}
        for spid, row in existing.items():
            spotify_of[row["id"]] = spid
            key = row["search_key"]
            if key and _meaningful_key(key):
                by_key.setdefault(key, row["id"])
        rows_by_id = {row["id"]: row for row in existing.values()}
        claimed: set[int] = set()
        for group in groups:
            hits: set[int] = set()
            for spid in group.ids:
                if spid in existing:
                    hits.add(existing[spid]["id"])
                elif spid in aliases:
                    hits.add(aliases[spid])
            if group.search_key in by_key:
                hits.add(by_key[group.search_key])
            if not hits:
                plan.inserts.append({"spotify_id": group.spotify_id, **group.values})
                plan.targets.append((group, None))
                continue
            # Prefer the track that already carries the canonical id, then the oldest.
            target = min(hits, key=lambda t: (spotify_of.get(t) != group.spotify_id, t))
            if len(hits) > 1:
                plan.conflicts += len(hits) - 1
                log.warning(
                    "catalog group %s touches %d existing tracks %s; kept %d, not merged",
                    group.spotify_id,
                    len(hits),
                    sorted(hits),
                    target,
                )
            if target in claimed:
                # Two groups of this file lead to one existing track (the file disagrees with an
                # earlier import): the first group (by canonical id) sets its values, the others
                # only add their ids and labels, so reruns stay no-ops.
                plan.conflicts += 1
            else:
                claimed.add(target)
                current = rows_by_id[target]
                if any(current[c] != group.values[c] for c in VALUE_COLUMNS):
                    plan.updates.append({"_id": target, **group.values})
            plan.targets.append((group, target))
        return plan


def _meaningful_key(key: str) -> bool:
    artist_part, _, name_part = key.partition(" - ")
    return bool(artist_part.strip() and name_part.strip())


async def catalog_size(sessions: async_sessionmaker[AsyncSession]) -> int:
    """How many catalog tracks the database holds (0: the import has not run)."""
    async with sessions() as session:
        return await CatalogRepository(session).count(SOURCE)
