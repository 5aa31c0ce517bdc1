from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from ml.pipeline.collect import CSV_COLUMNS, GenreCollector, genre_queries
from services.audio_features import AudioFeatureChain, ReccoBeatsClient
from services.cache import CacheService
from services.errors import ProviderUnavailable
from services.spotify import SpotifyClient
from tests.fakes.reccobeats import Failure, FakeReccoBeats
from tests.fakes.spotify import FakeSpotify, FakeTrack
from tests.providers.conftest import features, sid

# The 114-genre dataset's header, in its order (shared/data/SOURCES.md).
DATASET_HEADER = [
    "track_id",
    "artists",
    "album_name",
    "track_name",
    "popularity",
    "duration_ms",
    "explicit",
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "time_signature",
    "track_genre",
]


def metal_tracks(n: int) -> list[FakeTrack]:
    # 3 years, so the collector has to walk past the first query's results.
    return [
        FakeTrack(
            sid(2000 + i),
            f"Riff {i}",
            (f"Band {i % 7}", "Guest"),
            album=f"LP {i % 5}",
            popularity=i % 100,
            genre="metal",
            year=2026 - (i % 3),
            explicit=i % 2 == 0,
        )
        for i in range(n)
    ]


@pytest.fixture
def stocked(fake_spotify: FakeSpotify, fake_reccobeats: FakeReccoBeats) -> list[FakeTrack]:
    tracks = metal_tracks(45)
    for t in tracks:
        fake_spotify.tracks[t.id] = t
        if int(t.id[-4:]) % 9 != 0:  # every 9th track has no features anywhere
            fake_reccobeats.features[t.id] = features((int(t.id[-4:]) % 10) / 10)
    return tracks


def _collector(
    sessions: async_sessionmaker[AsyncSession], spotify: SpotifyClient, rb: ReccoBeatsClient
) -> GenreCollector:
    chain = AudioFeatureChain(sessions, CacheService(sessions), spotify=spotify, reccobeats=rb)
    return GenreCollector(
        spotify, chain, page_size=10, retry_on=(ProviderUnavailable,), page_pause=0, retry_pause=0, this_year=2026
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_queries_walk_the_years() -> None:
    queries = genre_queries("metal", this_year=2026)
    assert queries[0] == 'genre:"metal"' and queries[1] == 'genre:"metal" year:2026'
    assert queries[-1] == 'genre:"metal" year:1950'


async def test_collect_writes_the_dataset_columns_and_resumes(
    sqlite_sessions: async_sessionmaker[AsyncSession],
    spotify: SpotifyClient,
    reccobeats: ReccoBeatsClient,
    stocked: list[FakeTrack],
    tmp_path: Path,
) -> None:
    out = tmp_path / "metal.csv"
    first = await _collector(sqlite_sessions, spotify, reccobeats).run("Metal", 7, out)
    assert first.finished and first.written == 7
    assert list(CSV_COLUMNS) == DATASET_HEADER
    with out.open(encoding="utf-8") as fh:
        assert fh.readline().strip().split(",") == DATASET_HEADER
    rows = _rows(out)
    assert len(rows) == 7 and all(r["track_genre"] == "metal" for r in rows)
    assert rows[0]["time_signature"] == "4" and rows[0]["explicit"] in ("True", "False")
    by_id = {r["track_id"]: r for r in rows}
    assert by_id[sid(2000)]["artists"] == "Band 0;Guest" and by_id[sid(2000)]["album_name"] == "LP 0"
    assert by_id[sid(101)]["track_name"] == "Paranoid"  # the shared fake's Black Sabbath tracks are metal too

    # Interrupted mid-row: the half line is cut, then the run continues without duplicates.
    with out.open("a", encoding="utf-8") as fh:
        fh.write("Sp0000000000000000half,Band")
    second = await _collector(sqlite_sessions, spotify, reccobeats).run("metal", 100, out)
    rows = _rows(out)
    ids = [r["track_id"] for r in rows]
    assert len(ids) == len(set(ids)) == second.written
    with_features = [t for t in stocked if int(t.id[-4:]) % 9 != 0]
    expected = {t.id for t in with_features} | {sid(101), sid(102)}
    assert set(ids) == expected  # every track with features, none without
    assert second.finished and second.stopped_reason == "every search query is exhausted"
    assert second.no_features >= 1 and second.imputed.get("time_signature") == second.new_rows


async def test_collect_stops_on_persistent_failures_and_resumes(
    sqlite_sessions: async_sessionmaker[AsyncSession],
    spotify: SpotifyClient,
    reccobeats: ReccoBeatsClient,
    fake_reccobeats: FakeReccoBeats,
    stocked: list[FakeTrack],
    tmp_path: Path,
) -> None:
    out = tmp_path / "metal.csv"
    fake_reccobeats.fail("audio-features", *[Failure(503)] * 100)
    stats = await _collector(sqlite_sessions, spotify, reccobeats).run("metal", 20, out)
    assert not stats.finished and stats.written == 0 and "rerun" in (stats.stopped_reason or "")
    fake_reccobeats._failures.clear()
    stats = await _collector(sqlite_sessions, spotify, reccobeats).run("metal", 20, out)
    assert stats.finished and len(_rows(out)) == 20


async def test_cli_collect(
    monkeypatch: pytest.MonkeyPatch,
    provider_env: None,
    stocked: list[FakeTrack],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))  # the command migrates the SQLite file there first
    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    import main

    argv = ["collect", "--genre", "metal", "--limit", "5", "--no-progress", "--page-pause", "0"]
    assert await main.run_command(main.build_parser().parse_args(argv), settings) == 0
    out = tmp_path / "raw" / "collected_metal.csv"
    assert len(_rows(out)) == 5
    assert "5 rows" in capsys.readouterr().out

    monkeypatch.delenv("SPOTIFY_CLIENT_ID")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert await main.run_command(main.build_parser().parse_args(argv), settings) == 2
