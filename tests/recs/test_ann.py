"""The approximate index (ml/recsys/ann.py) behind `CatalogIndex.search` on a big catalogue.

A generated catalogue of 3,000 songs with the threshold lowered to 1,000: the graph's candidates,
re-scored exactly, must give the exact scan's ten results (with every filter on), keep the
exclusions and the artist cap, survive a snapshot round trip, and find tracks added after it was
built. The graphs are built with one thread, so that they are the same on every run.
"""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml.features import AUDIO_FEATURES
from ml.recsys import snapshot
from ml.recsys.index import CatalogIndex, EngineWeights
from tests.recs.test_engine import assert_artist_cap
from tests.recs.test_engine_partial import Row

N_SONGS = 3000
GENRES = [f"genre {g}" for g in range(12)]
WEIGHTS = EngineWeights(ann_min_songs=1000)


def _features(rng: np.random.Generator, centre: np.ndarray) -> dict[str, float | None]:
    unit = np.clip(centre + rng.normal(0, 0.12, size=6), 0.0, 1.0)
    return {
        "danceability": float(unit[0]),
        "energy": float(unit[1]),
        "key": float(rng.integers(0, 12)),
        "loudness": float(-20 + 18 * unit[2]),
        "mode": float(rng.integers(0, 2)),
        "speechiness": float(abs(rng.normal(0.06, 0.04))),
        "acousticness": float(unit[3]),
        "instrumentalness": float(unit[4] ** 3),
        "liveness": float(rng.uniform(0.05, 0.4)),
        "valence": float(unit[5]),
        "tempo": float(rng.uniform(70, 180)),
        "time_signature": 4.0,
    }


def catalogue(n: int = N_SONGS, seed: int = 3) -> tuple[list[Row], dict[int, list[str]]]:
    """Songs of 12 genres (some filed under two), 4 songs per artist, a few covers of one title."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, size=(len(GENRES), 6))
    rows, genres = [], {}
    for i in range(n):
        g = int(rng.integers(0, len(GENRES)))
        name = f"song {i % (n - 50)}"  # the last 50 share a title with an earlier song
        rows.append(
            Row(
                i + 1,
                f"sp{i:020d}",
                name,
                f"artist {i // 4}",
                None,
                int(rng.integers(0, 100)),
                int(rng.integers(120_000, 360_000)),
                False,
                _features(rng, centres[g]),
            )
        )
        genres[i + 1] = [GENRES[g]] + ([GENRES[(g + 1) % len(GENRES)]] if i % 7 == 0 else [])
    return rows, genres


def build(weights: EngineWeights = WEIGHTS) -> CatalogIndex:
    rows, genres = catalogue()
    index = CatalogIndex.from_rows(rows, genres, weights=weights)
    if index.ann is not None:
        index.ann = index.build_ann(threads=1)  # the same graph on every run
    return index


def exact_twin(index: CatalogIndex) -> CatalogIndex:
    """The same index scanning every track for each pool (no graph, no genre lists)."""
    twin = copy.copy(index)
    twin.ann = None
    twin.weights = dataclasses.replace(index.weights, genre_lists_min=len(index))
    return twin


def recommend(index: CatalogIndex, seed: int, seeds: list[int]) -> list[int]:
    """10 results with every filter, as bench/bench_scale.py asks for them."""
    recent, avoid, shown = seeds[:9], seeds[9:19], seeds[:60]
    keys = index.keys_for(index.artists[seed], index.names[seed])
    hits = index.search(
        index.query_for(seed), 10, exclude={seed, *shown}, exclude_keys=keys, recent=recent, avoid=avoid
    )
    return [h.position for h in hits]


def seeds_of(index: CatalogIndex, count: int = 80) -> list[int]:
    return np.random.default_rng(11).choice(len(index), count, replace=False).tolist()


def test_below_the_threshold_there_is_no_graph() -> None:
    assert build(EngineWeights()).ann is None


def agreement(index: CatalogIndex) -> tuple[float, float]:
    """(mean recall@10, share of identical lists) of `index` against its exact scan, every filter on."""
    exact = exact_twin(index)
    seeds = seeds_of(index)
    same, overlap = 0, []
    for seed in seeds:
        got, want = recommend(index, seed, seeds), recommend(exact, seed, seeds)
        assert len(got) == len(want) == 10
        same += got == want
        overlap.append(len(set(got) & set(want)) / 10)
    return float(np.mean(overlap)), same / len(seeds)


def test_genre_lists_give_the_exact_scans_results() -> None:
    index = build()
    assert index.ann is not None and index.ann.size == len(index)
    recall, same = agreement(index)
    assert recall >= 0.99 and same >= 0.95


def test_without_a_graph_the_genre_lists_give_the_scans_very_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below the graph's threshold but above `genre_lists_min`, a pool comes from the query's genre
    lists when they hold it (exact), else from the scan: the same ten results for every seed."""
    index = build(EngineWeights(genre_lists_min=1000))
    assert index.ann is None
    from_lists = 0
    pool_from = CatalogIndex._pool_from

    def counted(self: CatalogIndex, *args: Any) -> Any:
        nonlocal from_lists
        picked = pool_from(self, *args)
        from_lists += picked is not None
        return picked

    monkeypatch.setattr(CatalogIndex, "_pool_from", counted)
    exact = exact_twin(index)
    seeds = seeds_of(index)
    for seed in seeds:
        assert recommend(index, seed, seeds) == recommend(exact, seed, seeds)
    assert from_lists >= len(seeds) // 2  # most pools did come from the lists


def test_queries_without_a_genre_take_the_graphs_candidates() -> None:
    index = build(EngineWeights(ann_min_songs=1000, genre=0.0))  # no genre block: the audio graph
    assert index.ann is not None and not index.genre_on
    graph, asked = index.ann, []

    def counted(audio: np.ndarray, count: int) -> np.ndarray:
        asked.append(count)
        return type(graph).candidates(graph, audio, count)

    graph.candidates = counted  # type: ignore[method-assign]
    recall, same = agreement(index)
    assert asked and min(asked) >= index.weights.pool  # the graph was asked, with room to spare
    assert recall >= 0.95 and same >= 0.8


def test_exclusions_and_artist_cap_hold_with_the_graph() -> None:
    index = build()
    seeds = seeds_of(index)
    shown = set(seeds[:60])
    for seed in seeds:
        got = recommend(index, seed, seeds)
        assert seed not in got and not shown & set(got)
        keys = index.keys_for(index.artists[seed], index.names[seed])
        assert not any({int(index.song_keys[p]), int(index.recording_keys[p])} & keys for p in got)
        assert_artist_cap(index, [*seeds[:9], *got])
        hits = index.search(index.query_for(seed), 30, exclude={seed})
        assert_artist_cap(index, [h.position for h in hits])


def test_the_graph_survives_a_snapshot_round_trip(tmp_path: Path) -> None:
    index = build()
    arrays, meta = index.to_arrays()
    assert "ann.graph" in arrays and "ann" in meta
    snapshot.save(tmp_path, "recommender", arrays, {**meta, "key": "k"})
    loaded_arrays, loaded_meta = snapshot.load(tmp_path, "recommender", "k")
    loaded = CatalogIndex.from_arrays(loaded_arrays, loaded_meta, WEIGHTS)
    assert loaded.ann is not None and loaded.ann.size == len(index)
    assert isinstance(loaded_arrays["ann.graph"].base, np.memmap)  # viewed in place, not loaded or rebuilt
    seeds = seeds_of(index, 20)
    for seed in seeds:
        assert recommend(loaded, seed, seeds) == recommend(index, seed, seeds)
    # With the threshold above the catalogue the saved graph is not used.
    assert CatalogIndex.from_arrays(loaded_arrays, loaded_meta, EngineWeights()).ann is None


def test_tracks_added_after_the_graph_are_found() -> None:
    index = build()
    rows, _ = catalogue()
    seed = 123
    twin = Row(
        N_SONGS + 1,
        "sp_new_twin",
        "a new song",
        "a new artist",
        None,
        50,
        rows[seed].duration_ms,
        False,
        {c: rows[seed].features[c] for c in AUDIO_FEATURES},
    )
    grown = index.extended([twin], {N_SONGS + 1: list(index.genres[seed])})
    assert index.ann is not None and grown.ann is index.ann  # not rebuilt: the new track is scanned apart
    assert len(grown) == index.ann.size + 1
    new = grown.position(N_SONGS + 1)
    hits = grown.search(grown.query_for(seed), 10, exclude={seed})
    assert new is not None and new in [h.position for h in hits]
    seeds = seeds_of(index, 20)
    exact = exact_twin(grown)
    overlap = [len(set(recommend(grown, s, seeds)) & set(recommend(exact, s, seeds))) / 10 for s in seeds]
    assert float(np.mean(overlap)) >= 0.95


def test_importing_the_engine_does_not_load_usearch() -> None:
    """usearch loaded before LightGBM breaks LightGBM's training (ml/recsys/ann.py): the engine
    imports it only when a graph is built or viewed."""
    code = "import sys, ml.recsys.index, ml.recsys.ann; sys.exit('usearch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0


def test_tastes_over_several_genres_get_the_scans_results_before_and_after_growth() -> None:
    """A radio's taste spans the genres it liked: its pool is read from the union of their lists,
    kept per class set (`GenreUnions`). The same ten as the scan, and, once a song is added, the
    grown index's own lists (not the cached union of the smaller one)."""
    index = build(EngineWeights(genre_lists_min=1000))  # no graph: the lists, or the scan
    assert index.ann is None
    seeds = [s for s in seeds_of(index, 400) if len(index.genres[s]) == 2][:12]
    tastes = [index.steer(index.query_for(s), seeds[i - 1], 0.5) for i, s in enumerate(seeds)]
    classes = [np.count_nonzero(t.genre) for t in tastes if t.genre is not None]
    assert len(classes) == len(tastes) and min(classes) >= 2 and max(classes) >= 3

    def ten(ix: CatalogIndex, taste: Any) -> list[int]:
        return [h.position for h in ix.search(taste, 10, exclude=set(seeds))]

    for taste in tastes:
        assert ten(index, taste) == ten(exact_twin(index), taste)
    assert index._unions is not None and len(index._unions) >= 1
    rows, _ = catalogue()
    twin = dataclasses.replace(rows[seeds[0]], id=N_SONGS + 1, spotify_id="sp_new", name="new", artists="new artist")
    grown = index.extended([twin], {N_SONGS + 1: list(index.genres[seeds[0]])})
    new = grown.position(N_SONGS + 1)
    assert new is not None
    for taste in tastes:
        assert ten(grown, taste) == ten(exact_twin(grown), taste)
    assert ten(grown, grown.query_for(seeds[0]))[0] == new  # its twin, under its two genres


def test_genre_unions_are_kept_least_recently_used_within_their_budget() -> None:
    from scipy import sparse

    from ml.recsys.index import GenreUnions

    columns = sparse.csc_matrix(
        np.asarray([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [0, 0, 0]], dtype=np.float32)
    )
    unions = GenreUnions(columns, budget=20, largest=10)
    rows, where = unions.get((0, 1))
    assert rows.tolist() == [0, 1, 2, 4]
    assert [rows[w].tolist() for w in where] == [[0, 1], [1, 2, 4]]
    assert unions.get((0, 1))[0] is rows  # kept: 4 rows + 5 places = 9 of 20
    unions.get((1, 2))  # 4 + 5 = 9: 18 held
    unions.get((0, 1))  # (0, 1) used last
    unions.get((0, 2))  # 4 + 4 = 8: over budget, the least recently used (1, 2) goes
    assert len(unions) == 2 and unions.get((0, 1))[0] is rows
    assert unions.get((0, 1, 2))[0].tolist() == [0, 1, 2, 3, 4]  # 5 + 7 = 12 > 10: answered, not kept
    assert len(unions) == 2
