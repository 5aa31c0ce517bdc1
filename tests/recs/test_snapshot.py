"""Indices saved as arrays (`ml.recsys.snapshot`): loaded, they answer exactly as the built ones; a
snapshot that no longer fits the catalogue, or is damaged, is rebuilt and never trusted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete

from db.models import Track
from db.repositories import TrackRepository
from ml.features import AUDIO_FEATURES
from ml.recsys import snapshot
from ml.recsys.index import CatalogIndex
from services.recommender import SNAPSHOT, RecommendationService
from services.search import SNAPSHOT as SEARCH_SNAPSHOT
from services.search import SearchIndex
from tests.recs.conftest import Catalog


def _replace(path: Path, data: bytes) -> None:
    """Damage a file as a crash or another writer would, by a new file under its name: a file that is
    mapped (by this process's first index) must never be changed in place (SIGBUS), and the writer
    never does that either."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _similar(recs: list) -> list[tuple[int, float, str]]:
    return [(r.track.id, r.score, r.reason) for r in recs]


async def _rows(sessions) -> tuple[list, dict]:
    async with sessions() as s:
        repo = TrackRepository(s)
        return list(await repo.feature_rows()), await repo.genre_map()


def _hits(index: CatalogIndex, seed: int) -> list:
    return index.search(
        index.query_for(seed),
        10,
        exclude={seed, 3, 4},
        exclude_keys=index.keys_for(index.artists[seed], index.names[seed]),
        recent=[5, 6, 7],
        avoid=[8],
        diversity=0.6,
        seed_artists=index.artists[seed],
    )


@pytest.mark.parametrize("with_proba", [False, True])
async def test_engine_round_trip_is_identical(sessions, catalog: Catalog, tmp_path: Path, with_proba: bool) -> None:
    rows, genre_map = await _rows(sessions)
    proba = classes = None
    if with_proba:
        classes = ["jazz", "rock", "techno", "pop"]
        proba = np.random.default_rng(3).dirichlet(np.ones(4), size=len(rows))
    built = CatalogIndex.from_rows(rows, genre_map, proba=proba, proba_classes=classes)
    arrays, meta = built.to_arrays()
    snapshot.save(tmp_path, "idx", arrays, {**meta, "key": "k1"})
    loaded_arrays, loaded_meta = snapshot.load(tmp_path, "idx", "k1")
    assert isinstance(loaded_arrays["audio"].base, np.memmap)  # mapped, not copied
    loaded = CatalogIndex.from_arrays(loaded_arrays, loaded_meta)

    assert loaded.signature() == built.signature() and len(loaded) == len(built)
    for seed in range(0, len(built), 17):
        assert _hits(loaded, seed) == _hits(built, seed)
        assert loaded.entry(seed) == built.entry(seed)
        q1, q2 = built.query_for(seed), loaded.query_for(seed)
        assert np.array_equal(q1.audio, q2.audio)
        if q1.genre is None or q2.genre is None:
            assert q1.genre is None and q2.genre is None
        else:
            assert np.array_equal(q1.genre, q2.genre)
    # Growing a loaded index gives what growing the built one gives.
    extra = [r for r in rows[:3]]
    fresh = [type("Row", (), {**r._asdict(), "id": 10_000 + i, "spotify_id": None}) for i, r in enumerate(extra)]
    more_proba = np.full((3, 4), 0.25) if with_proba else None
    grown_built = built.extended(fresh, {}, proba=more_proba)
    grown_loaded = loaded.extended(fresh, {}, proba=more_proba)
    assert [grown_loaded.entry(p) for p in range(len(built), len(grown_built))] == [
        grown_built.entry(p) for p in range(len(built), len(grown_built))
    ]
    assert _hits(grown_loaded, len(built)) == _hits(grown_built, len(built))


async def test_the_service_loads_its_snapshot_instead_of_building(
    sessions, catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = RecommendationService(sessions, snapshot_dir=tmp_path)
    seeds = [catalog.by_genre[g][2] for g in ("rock", "jazz", "techno")]
    expected = [_similar(await first.similar(s, 10)) for s in seeds]
    assert (tmp_path / SNAPSHOT / "meta.json").exists()

    def no_build(*args: object, **kwargs: object) -> CatalogIndex:
        raise AssertionError("built from the database although a current snapshot exists")

    monkeypatch.setattr(CatalogIndex, "from_rows", no_build)
    second = RecommendationService(sessions, snapshot_dir=tmp_path)
    assert [_similar(await second.similar(s, 10)) for s in seeds] == expected


async def test_tracks_stored_after_the_snapshot_are_added_not_rebuilt(
    sessions, catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await RecommendationService(sessions, snapshot_dir=tmp_path).index()
    jazz = catalog.tracks[catalog.by_genre["jazz"][0] - 1]
    async with sessions.begin() as s:
        new = Track(name="After", artists="Later Band", source="deezer", deezer_id=77)
        for c in AUDIO_FEATURES:
            setattr(new, c, getattr(jazz, c))
        s.add(new)
    monkeypatch.setattr(CatalogIndex, "from_rows", lambda *a, **k: pytest.fail("rebuilt"))
    index = await RecommendationService(sessions, snapshot_dir=tmp_path).index()
    assert index.position(new.id) == len(catalog.tracks)


async def test_a_stale_snapshot_is_rebuilt(sessions, catalog: Catalog, tmp_path: Path) -> None:
    first = RecommendationService(sessions, snapshot_dir=tmp_path)
    await first.index()
    folder = (tmp_path / SNAPSHOT).resolve()
    gone = catalog.by_genre["rock"][5]
    async with sessions.begin() as s:  # a track under the snapshot's highest id disappears
        await s.execute(delete(Track).where(Track.id == gone))
    index = await RecommendationService(sessions, snapshot_dir=tmp_path).index()
    assert index.position(gone) is None and len(index) == len(catalog.tracks) - 1
    assert (tmp_path / SNAPSHOT).resolve() != folder  # … and saved afresh
    assert not folder.exists()
    # A new model version makes it stale too.
    versioned = RecommendationService(sessions, snapshot_dir=tmp_path, model_version=lambda: "v2")
    assert (await versioned.index()).signature() == index.signature()
    meta = snapshot.peek(tmp_path, SNAPSHOT)
    assert meta is not None and "model=none" in meta["key"]  # built without a model: says so


@pytest.mark.parametrize("damage", ["truncate", "meta", "shape", "missing"])
async def test_a_damaged_snapshot_is_rebuilt(sessions, catalog: Catalog, tmp_path: Path, damage: str) -> None:
    seed = catalog.by_genre["jazz"][1]
    expected = _similar(await RecommendationService(sessions, snapshot_dir=tmp_path).similar(seed, 10))
    folder = (tmp_path / SNAPSHOT).resolve()
    audio = folder / "audio.npy"
    if damage == "truncate":
        _replace(audio, audio.read_bytes()[:200])
    elif damage == "meta":
        _replace(folder / "meta.json", b"{not json")
    elif damage == "shape":
        np.save(folder / "other.npy", np.zeros((3, 14), dtype=np.float32))
        (folder / "other.npy").replace(audio)
    else:
        (folder / "names.blob.npy").unlink()
    again = RecommendationService(sessions, snapshot_dir=tmp_path)
    assert _similar(await again.similar(seed, 10)) == expected
    assert (tmp_path / SNAPSHOT).resolve() != folder  # rebuilt and saved again


async def test_search_snapshot_round_trip_and_damage(sessions, catalog: Catalog, tmp_path: Path) -> None:
    built = await SearchIndex.load(sessions, tmp_path)
    queries = ["rock song 3", "jazz artist", "tecno song 1-2", "Remastered", "jaz sng"]
    expected = [built.search(q, 10) for q in queries]
    loaded = await SearchIndex.load(sessions, tmp_path)
    assert loaded._texts.__class__.__name__ == "StrColumn"  # from the snapshot, not rebuilt
    assert [loaded.search(q, 10) for q in queries] == expected
    first = catalog.tracks[0].id
    assert loaded.versions(first) == built.versions(first)
    # It still grows: a track stored since the snapshot is found after a refresh.
    async with sessions.begin() as s:
        s.add(Track(name="Zebra Crossing Anthem", artists="Brand New Act", source="spotify"))
    assert await loaded.refresh(sessions) == 1
    assert [h.track_id for h in loaded.search("zebra crossing", 3)]
    # Damaged: rebuilt (and the new track is in it).
    _replace(tmp_path / SEARCH_SNAPSHOT / "postings.data.npy", b"garbage")
    rebuilt = await SearchIndex.load(sessions, tmp_path)
    assert isinstance(rebuilt._texts, list)
    assert [rebuilt.search(q, 10) for q in queries[:3]] == [loaded.search(q, 10) for q in queries[:3]]
