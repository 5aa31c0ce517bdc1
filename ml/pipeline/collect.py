"""Data collection by genre: Spotify search pages, then features through the provider chain, to CSV.

The CSV has the 114-genre dataset's columns (`CSV_COLUMNS`), so the training pipeline reads it
like the dataset. Spotify caps search at 10 results per page and 1000 results per query, so
the collector walks `genre:"<g>"` and then `genre:"<g>" year:<y>` for each year, newest first.

Resumable: rows are appended and flushed page by page, and a sidecar `<output>.state.json`
records the query and offset reached. A rerun with the same output continues where it stopped
and never writes a track twice (the ids already in the CSV are skipped). Provider failures pause
and retry; if they persist the run stops with the state saved, so a later rerun resumes.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ml.features import AUDIO_FEATURES
from ml.pipeline.datasets import CATALOG_COLUMNS

log = logging.getLogger(__name__)

# A collected CSV has the 114-genre dataset's columns, so training and import accept it as it is.
CSV_COLUMNS = CATALOG_COLUMNS


class FoundTrack(Protocol):
    """A search result (services.spotify.SpotifyTrack fits). Read-only: frozen dataclasses fit."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def album(self) -> str | None: ...

    @property
    def popularity(self) -> int | None: ...

    @property
    def duration_ms(self) -> int | None: ...

    @property
    def explicit(self) -> bool | None: ...

    @property
    def artists_joined(self) -> str: ...


class FoundFeatures(Protocol):
    @property
    def features(self) -> Mapping[str, float] | None: ...

    @property
    def imputed(self) -> tuple[str, ...]: ...

    @property
    def providers_failed(self) -> tuple[str, ...]: ...


class TrackSearch(Protocol):
    async def search_tracks(self, query: str, *, limit: int, offset: int) -> Sequence[FoundTrack]: ...


class FeatureLookup(Protocol):
    async def for_spotify_ids(self, spotify_ids: Iterable[str]) -> Mapping[str, FoundFeatures]: ...


class ProviderDown(Exception):
    """Raised by the collector's own check; the providers' errors are given as `retry_on`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


INT_FEATURES = frozenset({"key", "mode", "time_signature"})
MAX_OFFSET = 1000  # Spotify search returns nothing past offset 1000
FIRST_YEAR = 1950


@dataclass
class CollectStats:
    written: int = 0  # rows in the CSV for this run's genre (including earlier runs)
    new_rows: int = 0  # rows written by this run
    no_features: int = 0  # tracks found but without features anywhere (not written)
    pages: int = 0
    api_failures: int = 0
    finished: bool = False  # limit reached or every query exhausted
    stopped_reason: str | None = None
    imputed: dict[str, int] = field(default_factory=dict)


def genre_queries(genre: str, *, this_year: int | None = None) -> list[str]:
    year = this_year or datetime.now(UTC).year
    base = f'genre:"{genre}"'
    return [base, *(f"{base} year:{y}" for y in range(year, FIRST_YEAR - 1, -1))]


class GenreCollector:
    def __init__(
        self,
        spotify: TrackSearch,
        features: FeatureLookup,
        *,
        page_size: int,
        retry_on: tuple[type[Exception], ...] = (),
        page_pause: float = 0.2,
        retry_pause: float = 5.0,
        max_failures: int = 5,
        progress: Callable[[int, int], None] | None = None,
        this_year: int | None = None,
    ) -> None:
        self._spotify = spotify
        self._features = features
        self._retry_on: tuple[type[Exception], ...] = (ProviderDown, *retry_on)
        self._page_size = page_size
        self._page_pause = page_pause
        self._retry_pause = retry_pause
        self._max_failures = max_failures
        self._progress = progress
        self._this_year = this_year

    async def run(self, genre: str, limit: int, output: Path) -> CollectStats:
        genre = genre.strip().lower()
        if not genre:
            raise ValueError("genre must not be empty")
        state_path = output.with_name(output.name + ".state.json")
        state, seen, new_file = await asyncio.to_thread(_prepare, output, state_path, genre)
        stats = CollectStats(written=len(seen))
        queries = genre_queries(genre, this_year=self._this_year)
        if stats.written:
            log.info(
                "resuming %s: %d rows already in %s, query %d offset %d",
                genre,
                stats.written,
                output,
                state["query_index"],
                state["offset"],
            )
        self._report(stats.written, limit)

        with open(output, "a", newline="", encoding="utf-8") as fh:  # noqa: ASYNC230 (small local appends)
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            if new_file:
                writer.writeheader()
                fh.flush()
            failures = 0
            while stats.written < limit:
                qi, offset = state["query_index"], state["offset"]
                if qi >= len(queries):
                    stats.finished = True
                    stats.stopped_reason = "every search query is exhausted"
                    break
                try:
                    page = await self._spotify.search_tracks(queries[qi], limit=self._page_size, offset=offset)
                    fresh = [t for t in dict((t.id, t) for t in page).values() if t.id not in seen]
                    feats = await self._features.for_spotify_ids(t.id for t in fresh) if fresh else {}
                    if any(r.providers_failed for r in feats.values()):
                        raise ProviderDown("audio feature providers failed")
                except self._retry_on as exc:
                    reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                    failures += 1
                    stats.api_failures += 1
                    if failures > self._max_failures:
                        stats.stopped_reason = f"providers keep failing ({reason}); rerun to resume"
                        break
                    log.warning(
                        "collect: %s; retry %d/%d in %.0fs",
                        reason,
                        failures,
                        self._max_failures,
                        self._retry_pause * failures,
                    )
                    await asyncio.sleep(self._retry_pause * failures)
                    continue
                failures = 0
                stats.pages += 1
                for track in fresh:
                    if stats.written >= limit:
                        break
                    result = feats.get(track.id)
                    if result is None or result.features is None:
                        stats.no_features += 1
                        continue
                    writer.writerow(_row(track, dict(result.features), genre))
                    for name in result.imputed:
                        stats.imputed[name] = stats.imputed.get(name, 0) + 1
                    seen.add(track.id)
                    stats.written += 1
                    stats.new_rows += 1
                fh.flush()
                os.fsync(fh.fileno())
                if len(page) < self._page_size or offset + self._page_size >= MAX_OFFSET:
                    state = {"genre": genre, "query_index": qi + 1, "offset": 0}
                else:
                    state = {"genre": genre, "query_index": qi, "offset": offset + self._page_size}
                _write_state(state_path, state)
                self._report(stats.written, limit)
                if self._page_pause:
                    await asyncio.sleep(self._page_pause)
        if stats.written >= limit:
            stats.finished = True
            stats.stopped_reason = stats.stopped_reason or "limit reached"
        log.info(
            "collect %s: %d rows (%d new), %d without features, %d pages, %s",
            genre,
            stats.written,
            stats.new_rows,
            stats.no_features,
            stats.pages,
            stats.stopped_reason,
        )
        return stats

    def _report(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(min(done, total), total)


def _row(track: FoundTrack, features: dict[str, float], genre: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "track_id": track.id,
        "artists": track.artists_joined,
        "album_name": track.album or "",
        "track_name": track.name,
        "popularity": track.popularity if track.popularity is not None else "",
        "duration_ms": track.duration_ms if track.duration_ms is not None else "",
        "explicit": "True" if track.explicit else "False",
        "track_genre": genre,
    }
    for column in AUDIO_FEATURES:
        value = features[column]
        row[column] = round(value) if column in INT_FEATURES else value
    return row


def _prepare(output: Path, state_path: Path, genre: str) -> tuple[dict[str, Any], set[str], bool]:
    output.parent.mkdir(parents=True, exist_ok=True)
    state = _read_state(state_path, genre)
    _repair_tail(output)
    seen = _read_existing(output)
    new_file = not output.exists() or output.stat().st_size == 0
    return state, seen, new_file


def _repair_tail(output: Path) -> None:
    """Cut a half-written last line (the run was killed mid-write) so appends stay valid CSV."""
    if not output.exists() or output.stat().st_size == 0:
        return
    with output.open("rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 65536))
        tail = fh.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        fh.truncate(size - len(tail) + cut + 1 if cut >= 0 else 0)
        log.warning("cut a half-written line at the end of %s", output)


def _read_existing(output: Path) -> set[str]:
    if not output.exists():
        return set()
    with output.open(newline="", encoding="utf-8") as fh:
        return {r["track_id"] for r in csv.DictReader(fh) if r.get("track_id")}


def _read_state(path: Path, genre: str) -> dict[str, Any]:
    fresh = {"genre": genre, "query_index": 0, "offset": 0}
    if not path.exists():
        return fresh
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("unreadable state file %s: starting the queries over (rows are not duplicated)", path)
        return fresh
    if state.get("genre") != genre:
        raise ValueError(f"{path} belongs to genre {state.get('genre')!r}, not {genre!r}: use another --output")
    return {"genre": genre, "query_index": int(state.get("query_index", 0)), "offset": int(state.get("offset", 0))}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, path)
