"""Data use cases: the datasets fetched into the data folder, the catalogue imported, genres collected.

The pipeline itself (specs, schema checks, mirror copy and resumable download, the collector) is
`ml.pipeline`; this service runs it with the deployment's folders and providers, and imports the
catalogue into the database through `CatalogImporter`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ml.pipeline.datasets import CATALOG, DATASETS, DEFAULT_URLS, DatasetError, DatasetSpec
from ml.progress import Bars, no_bars
from services.datasets import ensure_datasets
from services.errors import EncoreError, ProviderUnavailable

if TYPE_CHECKING:  # the importer (pandas) and the collector load when used, not in the server
    from ml.pipeline.collect import CollectStats, FeatureLookup, TrackSearch
    from services.catalog import ImportStats

log = logging.getLogger(__name__)


class DataError(EncoreError):
    """A dataset is missing, corrupt or cannot be fetched; or collecting cannot run."""

    code = "data_error"


class DataService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        raw_dir: Path,
        *,
        mirror: Path | None = None,
        urls: Mapping[str, str] = DEFAULT_URLS,
        specs: Mapping[str, DatasetSpec] = DATASETS,
        search: TrackSearch | None = None,
        features: FeatureLookup | None = None,
        search_page: int = 10,
        on_import: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """`on_import()` is awaited after every catalogue import (e.g. to drop the indices' snapshots,
        which no longer match the tracks)."""
        self._sessions = sessions
        self._on_import = on_import
        self.raw_dir = raw_dir
        self.mirror = mirror
        self._urls = urls
        self._specs = specs
        self._search = search
        self._features = features
        self._search_page = search_page

    def path_of(self, name: str = CATALOG) -> Path:
        return self.raw_dir / self._specs[name].filename

    async def fetch(
        self, *, mirror: Path | None = None, use_mirror: bool = True, progress: Bars = no_bars
    ) -> dict[str, Path]:
        """Every dataset in the raw folder and schema-checked: kept, copied from the mirror, or downloaded."""
        source = (mirror or self.mirror) if use_mirror else None
        try:
            return await ensure_datasets(
                self.raw_dir, mirror=source, urls=self._urls, progress=progress, specs=self._specs
            )
        except DatasetError as exc:
            raise DataError(exc.message) from exc

    async def import_catalog(self, path: Path | None = None, *, progress: Bars = no_bars) -> ImportStats:
        """Import the 114-genre file (default: the one in the raw folder, fetched when missing)."""
        try:
            if path is None:
                path = (await ensure_datasets(
                    self.raw_dir, mirror=self.mirror, urls=self._urls, progress=progress, specs=self._specs,
                    only=(CATALOG,),
                ))[CATALOG]  # fmt: skip
            from services.catalog import CatalogImporter

            stats = await CatalogImporter(self._sessions).import_file(path, progress=progress)
        except DatasetError as exc:
            raise DataError(exc.message) from exc
        if self._on_import is not None:
            await self._on_import()
        return stats

    async def setup(self, *, progress: Bars = no_bars) -> ImportStats | None:
        """Missing datasets fetched; the catalogue imported when the database has none (None: it had)."""
        paths = await self.fetch(progress=progress)
        if await self.catalog_size() > 0:
            return None
        return await self.import_catalog(paths[CATALOG], progress=progress)

    async def catalog_size(self) -> int:
        from services.catalog import catalog_size

        return await catalog_size(self._sessions)

    async def collect(
        self,
        genre: str,
        limit: int,
        output: Path | None = None,
        *,
        page_pause: float = 0.2,
        progress: Bars = no_bars,
    ) -> tuple[Path, CollectStats]:
        """Tracks of one genre from Spotify with their audio features, appended to a training CSV."""
        if self._search is None or self._features is None:
            raise DataError("collect needs Spotify keys: set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET.")
        if limit <= 0:
            raise DataError("the limit must be positive")
        from ml.pipeline.collect import GenreCollector

        genre = genre.strip().lower()
        path = output or self.raw_dir / f"collected_{genre.replace(' ', '-')}.csv"
        with progress(total=limit, unit="track", desc=f"collect {genre}") as bar:
            done = 0

            def report(written: int, _total: int) -> None:
                nonlocal done
                bar.update(written - done)
                done = written

            collector = GenreCollector(
                self._search,
                self._features,
                page_size=self._search_page,
                retry_on=(ProviderUnavailable,),
                page_pause=page_pause,
                progress=report,
            )
            try:
                stats = await collector.run(genre, limit, path)
            except ValueError as exc:
                raise DataError(str(exc)) from exc
        return path, stats
