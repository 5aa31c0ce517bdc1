"""Catalog import: folds duplicates, keeps every genre label, skips nameless rows, is idempotent.

The `sessions` fixture runs each test on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import progress_bars
from db.models import Like, Track, TrackAlias, TrackGenre, User
from db.repositories import TrackRepository
from ml.pipeline.datasets import DatasetError
from ml.text import song_key
from services.catalog import CatalogImporter, ImportStats, catalog_size, fold_rows, read_catalog_frame
from tests.catalog.conftest import CATALOG_HEADER, catalog_rows, csv_bytes, gz

Sessions = async_sessionmaker[AsyncSession]


def feat(seed: int) -> list[Any]:
    rng = random.Random(seed)
    return [round(rng.random(), 3), round(rng.random(), 3), rng.randrange(12), -5.5, 1, 0.05, 0.2, 0.0, 0.1, 0.5]


def row(tid: str, artists: str, album: str, name: str, pop: int, genre: str, fseed: int) -> list[Any]:
    f = feat(fseed)
    return [tid, artists, album, name, pop, 200_000, False, *f, round(100 + fseed, 3), 4, genre]


ROWS = [
    row("id_a", "Queen", "A Night at the Opera", "Bohemian Rhapsody", 80, "rock", 1),
    row("id_a", "Queen", "A Night at the Opera", "Bohemian Rhapsody", 80, "hard-rock", 1),  # same id
    row("id_b", "queen", "Greatest Hits", "Bohémian Rhapsody!", 60, "classic", 2),  # same song key
    row("id_c", "Other Artist", "X", "Different Name", 10, "pop", 1),  # same feature vector as id_a
    row("id_d", "Daft Punk;Pharrell Williams", "RAM", "Get Lucky", 50, "disco", 3),
    row("id_e", "Pharrell Williams;Daft Punk", "RAM (deluxe)", "Get Lucky", 50, "funk", 4),  # tie → id_d
    row("id_f", "NA", "None", "Null", 5, "jazz", 5),  # text that pandas would read as missing
    row("id_g", "", "", "", 0, "k-pop", 6),  # no artists/album/name, alone: skipped
    row("id_h", "", "", "", 0, "emo", 7),  # no name, but id_h is named below: label kept
    row("id_h", "Solo", "S", "Alone", 20, "indie", 7),
    row("id_i", "Solo", "S", "Alone (Live)", 20, "indie", 8),  # another song
    row("id_j", "Chain", "c", "One", 30, "edm", 9),
    row("id_k", "Chain", "c", "Two", 40, "edm", 9),  # features = id_j
    row("id_l", "chain", "c", "two", 40, "house", 10),  # key = id_k → j, k, l one group; tie → id_k
]

EXPECTED_TRACKS = {
    "id_a": ["classic", "hard-rock", "pop", "rock"],
    "id_d": ["disco", "funk"],
    "id_f": ["jazz"],
    "id_h": ["emo", "indie"],
    "id_i": ["indie"],
    "id_k": ["edm", "house"],
}
EXPECTED_ALIASES = {"id_b": "id_a", "id_c": "id_a", "id_e": "id_d", "id_j": "id_k", "id_l": "id_k"}


def write_catalog(path: Path, rows: list[list[Any]]) -> Path:
    path.write_bytes(gz(csv_bytes(CATALOG_HEADER, rows)))
    return path


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog.csv.gz", ROWS)


async def snapshot(sessions: Sessions) -> dict[str, list[tuple[Any, ...]]]:
    async with sessions() as s:
        tracks = (await s.execute(select(Track.__table__).order_by(Track.id))).all()
        aliases = (await s.execute(select(TrackAlias.__table__).order_by(TrackAlias.spotify_id))).all()
        genres = (await s.execute(select(TrackGenre.__table__).order_by(TrackGenre.track_id, TrackGenre.genre))).all()
    return {
        "tracks": [tuple(r) for r in tracks],
        "aliases": [tuple(r) for r in aliases],
        "genres": [tuple(r) for r in genres],
    }


async def catalog_view(sessions: Sessions) -> tuple[dict[str, list[str]], dict[str, str]]:
    """spotify_id → sorted genres, and alias → canonical spotify_id."""
    async with sessions() as s:
        tracks = {t.id: t for t in (await s.scalars(select(Track))).all()}
        aliases = (await s.execute(select(TrackAlias.spotify_id, TrackAlias.track_id))).all()
    genres = {t.spotify_id: [g.genre for g in t.genres] for t in tracks.values()}
    return genres, {a: tracks[tid].spotify_id for a, tid in aliases}


async def test_import_folds_duplicates_and_keeps_all_labels(sessions: Sessions, catalog_file: Path) -> None:
    stats = await CatalogImporter(sessions).import_file(catalog_file)

    genres, aliases = await catalog_view(sessions)
    assert genres == EXPECTED_TRACKS
    assert aliases == EXPECTED_ALIASES
    assert stats == ImportStats(
        rows_read=14,
        tracks_inserted=6,
        tracks_updated=0,
        aliases=5,
        genres_added=12,
        folded=5,
        seconds=stats.seconds,
        skipped_rows=1,
        conflicts=0,
    )
    assert await catalog_size(sessions) == 6


async def test_canonical_row_fills_the_track(sessions: Sessions, catalog_file: Path) -> None:
    await CatalogImporter(sessions).import_file(catalog_file)
    async with sessions() as s:
        repo = TrackRepository(s)
        queen = await repo.by_spotify_id("id_b")  # an alias resolves to the folded track
        assert queen is not None
        assert (queen.spotify_id, queen.name, queen.artists, queen.album, queen.popularity) == (
            "id_a",
            "Bohemian Rhapsody",
            "Queen",
            "A Night at the Opera",
            80,
        )
        assert queen.search_key == song_key("Queen", "Bohemian Rhapsody")
        assert queen.has_features and queen.tempo == 101.0 and queen.explicit is False
        odd = await repo.by_spotify_id("id_f")
        assert odd is not None and (odd.artists, odd.album, odd.name) == ("NA", "None", "Null")
        # The nameless row is neither a track nor an alias.
        assert await repo.by_spotify_id("id_g") is None


async def test_a_second_run_changes_nothing(sessions: Sessions, catalog_file: Path) -> None:
    importer = CatalogImporter(sessions)
    await importer.import_file(catalog_file)
    before = await snapshot(sessions)

    again = await importer.import_file(catalog_file)

    assert (again.tracks_inserted, again.tracks_updated, again.aliases, again.genres_added) == (0, 0, 0, 0)
    assert not again.changed
    assert again.folded == 5 and again.skipped_rows == 1
    assert await snapshot(sessions) == before


async def test_row_order_does_not_change_the_result(sessions: Sessions, tmp_path: Path) -> None:
    shuffled = ROWS[:]
    random.Random(7).shuffle(shuffled)
    await CatalogImporter(sessions).import_file(write_catalog(tmp_path / "s.csv.gz", shuffled))
    assert await catalog_view(sessions) == (EXPECTED_TRACKS, EXPECTED_ALIASES)


async def test_changed_values_update_the_same_track(sessions: Sessions, tmp_path: Path) -> None:
    importer = CatalogImporter(sessions)
    await importer.import_file(write_catalog(tmp_path / "a.csv.gz", ROWS))
    async with sessions() as s:
        old_id = (await TrackRepository(s).by_spotify_id("id_f")).id  # type: ignore[union-attr]

    changed = [r[:] for r in ROWS]
    changed[6][2] = "Remastered"  # id_f's album
    changed[6][4] = 9
    stats = await importer.import_file(write_catalog(tmp_path / "b.csv.gz", changed))

    assert (stats.tracks_inserted, stats.tracks_updated, stats.aliases, stats.genres_added) == (0, 1, 0, 0)
    async with sessions() as s:
        track = await TrackRepository(s).by_spotify_id("id_f")
        assert track is not None and (track.id, track.album, track.popularity) == (old_id, "Remastered", 9)


async def test_existing_track_from_another_source_is_reused(sessions: Sessions, catalog_file: Path) -> None:
    """A track the resolver added (under a non-canonical id) keeps its id and likes."""
    async with sessions.begin() as s:
        user = User(telegram_id=1)
        track = Track(spotify_id="id_b", name="Bohemian Rhapsody", artists="Queen", source="spotify")
        s.add_all([user, track])
        await s.flush()
        s.add(Like(user_id=user.id, track_id=track.id))
    stats = await CatalogImporter(sessions).import_file(catalog_file)

    assert (stats.tracks_inserted, stats.tracks_updated, stats.conflicts) == (5, 1, 0)
    genres, aliases = await catalog_view(sessions)
    assert genres["id_b"] == EXPECTED_TRACKS["id_a"]
    assert "id_a" not in genres and aliases["id_a"] == aliases["id_c"] == "id_b"
    async with sessions() as s:
        reused = await s.get(Track, track.id)
        assert reused is not None and (reused.source, reused.popularity, reused.album) == (
            "catalog",
            80,
            "A Night at the Opera",
        )
        assert len((await s.scalars(select(Like))).all()) == 1
    again = await CatalogImporter(sessions).import_file(catalog_file)
    assert not again.changed


async def test_a_group_spanning_two_existing_tracks_is_not_merged(sessions: Sessions, catalog_file: Path) -> None:
    async with sessions.begin() as s:
        s.add_all(
            [
                Track(spotify_id="id_d", name="Get Lucky", artists="Daft Punk", source="spotify"),
                Track(spotify_id="id_e", name="Get Lucky (edit)", artists="Daft Punk", source="spotify"),
            ]
        )
    stats = await CatalogImporter(sessions).import_file(catalog_file)

    assert stats.conflicts == 1
    assert await catalog_size(sessions) == 6  # id_d joined the catalog; id_e stays a separate track
    genres, aliases = await catalog_view(sessions)
    assert genres["id_d"] == ["disco", "funk"] and genres["id_e"] == []
    assert "id_e" not in aliases
    again = await CatalogImporter(sessions).import_file(catalog_file)
    assert not again.changed and again.conflicts == 1


async def test_a_larger_file_in_small_chunks(sessions: Sessions, tmp_path: Path) -> None:
    rows = catalog_rows(1_500, seed=3)
    rng = random.Random(5)
    for _ in range(300):  # re-releases: a new id with the same artists + name (other features)
        src = rng.choice(rows[:1_500])
        rows.append([f"re{len(rows):020d}", src[1], "Compilation", src[3], 1, *src[5:7], *catalog_rows(1)[0][7:]])
    for _ in range(200):  # the same id under another genre
        rows.append([*rng.choice(rows[:1_500])[:-1], "extra-genre"])
    path = write_catalog(tmp_path / "big.csv.gz", rows)

    importer = CatalogImporter(sessions, chunk_rows=97)
    stats = await importer.import_file(path)

    ids = {r[0] for r in rows}
    async with sessions() as s:
        n_tracks = await TrackRepository(s).count()
        n_aliases = len((await s.scalars(select(TrackAlias.spotify_id))).all())
        n_genres = len((await s.execute(select(TrackGenre.track_id))).all())
    assert n_tracks == stats.tracks_inserted and n_aliases == stats.aliases and n_genres == stats.genres_added
    assert n_tracks + n_aliases == len(ids)
    assert stats.folded == n_aliases >= 300 - 10  # a few re-releases may hit the same source twice
    assert not (await importer.import_file(path)).changed


async def test_a_foreign_file_is_refused(sqlite_sessions: Sessions, tmp_path: Path) -> None:
    path = tmp_path / "seed.csv"
    path.write_text("track_id,genre_track,danceability\nx,metal,0.5\n")
    with pytest.raises(DatasetError, match="not the 114-genre catalog file, missing columns artists"):
        await CatalogImporter(sqlite_sessions).import_file(path)
    assert await catalog_size(sqlite_sessions) == 0


def test_fold_rows_is_pure_and_deterministic(catalog_file: Path) -> None:
    frame = read_catalog_frame(catalog_file)
    first = fold_rows(frame)
    second = fold_rows(frame.sample(frac=1.0, random_state=3).reset_index(drop=True))
    assert [(g.spotify_id, g.ids, g.genres, g.values) for g in first.groups] == [
        (g.spotify_id, g.ids, g.genres, g.values) for g in second.groups
    ]
    assert (first.rows_read, first.skipped_rows, first.distinct_ids, first.folded_ids) == (14, 1, 12, 5)


def test_fold_rows_on_an_empty_frame() -> None:
    result = fold_rows(pd.DataFrame(columns=list(CATALOG_HEADER)))
    assert (result.groups, result.rows_read, result.folded_ids) == ([], 0, 0)


async def test_progress_bar_on_a_terminal(
    sqlite_sessions: Sessions, catalog_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Tty()
    monkeypatch.setattr(sys, "stderr", terminal)
    await CatalogImporter(sqlite_sessions).import_file(catalog_file, progress=progress_bars())
    assert "catalog: tracks" in terminal.getvalue() and "6/6" in terminal.getvalue()


async def test_two_groups_leading_to_one_existing_track(sessions: Sessions, tmp_path: Path) -> None:
    """The file disagrees with the database: one group has the track's id, another its song key."""
    async with sessions.begin() as s:
        s.add(Track(spotify_id="id_x", name="Old Name", artists="Zed", search_key=song_key("Zed", "Old Name")))
    path = write_catalog(
        tmp_path / "c.csv.gz",
        [row("id_y", "Zed", "Z", "Old Name", 10, "pop", 1), row("id_x", "Zed", "Z", "New Name", 20, "rock", 2)],
    )
    importer = CatalogImporter(sessions)
    stats = await importer.import_file(path)

    assert (stats.tracks_inserted, stats.tracks_updated, stats.aliases, stats.conflicts) == (0, 1, 1, 1)
    genres, aliases = await catalog_view(sessions)
    assert genres == {"id_x": ["pop", "rock"]} and aliases == {"id_y": "id_x"}
    before = await snapshot(sessions)
    again = await importer.import_file(path)
    assert not again.changed and await snapshot(sessions) == before
