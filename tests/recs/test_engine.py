"""The in-memory engine without a database."""

from __future__ import annotations

import numpy as np
import pytest

from ml.features import AUDIO_FEATURES
from ml.recsys.colikes import CoLikeModel
from ml.recsys.index import ARTIST_CAP, ARTIST_WINDOW, CatalogIndex, EngineWeights
from tests.recs.conftest import make_tracks


def build(weights: EngineWeights | None = None) -> CatalogIndex:
    tracks = make_tracks()
    raw = np.asarray([[*(getattr(t, c) for c in AUDIO_FEATURES), t.duration_ms] for t in tracks], dtype=float)
    return CatalogIndex(
        ids=list(range(1, len(tracks) + 1)),
        spotify_ids=[t.spotify_id for t in tracks],
        names=[t.name for t in tracks],
        artists=[t.artists for t in tracks],
        raw=raw,
        popularity=[t.popularity for t in tracks],
        genres=[[g.genre for g in t.genres] for t in tracks],
        weights=weights,
    )


def assert_artist_cap(index: CatalogIndex, positions: list[int]) -> None:
    for start in range(max(1, len(positions) - ARTIST_WINDOW + 1)):
        window = positions[start : start + ARTIST_WINDOW]
        counts: dict[int, int] = {}
        for p in window:
            for a in index.track_artists[p]:
                counts[a] = counts.get(a, 0) + 1
        assert max(counts.values()) <= ARTIST_CAP, window


def test_artist_cap_holds_in_every_window_of_ten() -> None:
    index = build()
    for seed in range(0, len(index), 37):
        for diversity in (0.0, 0.5, 1.0):
            hits = index.search(index.query_for(seed), 30, exclude={seed}, diversity=diversity)
            assert len(hits) == 30
            assert_artist_cap(index, [h.position for h in hits])


def test_artist_cap_counts_recently_shown_tracks() -> None:
    index = build()
    same_artist = [p for p in range(len(index)) if index.artists[p] == index.artists[1]]
    hits = index.search(index.query_for(1), 10, exclude=set(same_artist[:2]), recent=same_artist[:2])
    assert not {h.position for h in hits} & set(same_artist)


def test_results_stay_in_genre_and_skip_duplicate_recordings() -> None:
    index = build()
    seed = 0  # the first rock song; the last row is its "- Remastered 2011" release
    remaster = len(index) - 1
    hits = index.search(
        index.query_for(seed), 10, exclude={seed}, exclude_keys=index.keys_for(index.artists[0], index.names[0])
    )
    positions = [h.position for h in hits]
    assert remaster not in positions
    assert all(index.genres[p] == ("rock",) for p in positions)
    # Without the seed excluded, the remaster and the seed never come together.
    hits = index.search(index.query_for(seed), 10)
    assert not {seed, remaster} <= {h.position for h in hits}


def test_search_is_deterministic() -> None:
    a, b = build(), build()
    for seed in (3, 100, 250):
        first = [h.position for h in a.search(a.query_for(seed), 10, exclude={seed}, diversity=0.4)]
        second = [h.position for h in b.search(b.query_for(seed), 10, exclude={seed}, diversity=0.4)]
        assert first == second


def test_unknown_track_from_features_only() -> None:
    index = build()
    features = {c: float(index.raw[130, i]) for i, c in enumerate(AUDIO_FEATURES)}
    query = index.query_for_features(features)  # genre from neighbours' labels
    assert query.genre is not None
    hits = index.search(query, 10)
    assert all(index.genres[h.position] == index.genres[130] for h in hits)


def test_diversity_dial_spreads_the_list() -> None:
    index = build()

    def spread(diversity: float) -> float:
        total = 0.0
        for seed in range(0, len(index), 29):
            v = index.audio[
                [h.position for h in index.search(index.query_for(seed), 10, exclude={seed}, diversity=diversity)]
            ]
            total += float(np.linalg.norm(v[:, None] - v[None], axis=2).mean())
        return total

    assert spread(1.0) > spread(0.0)


def test_moving_the_query_towards_a_track() -> None:
    index = build()
    q = index.query_for(0)
    target = index.query_for(200)  # another genre
    moved = q.moved(target, 0.35)
    assert np.linalg.norm(moved.audio - target.audio) < np.linalg.norm(q.audio - target.audio)
    pushed = q.moved(target, -0.15)
    assert np.linalg.norm(pushed.audio - target.audio) > np.linalg.norm(q.audio - target.audio)


def test_colike_scores_need_support() -> None:
    index = build()
    pairs = [(u, 1) for u in range(10)] + [(u, 300) for u in range(10)] + [(99, 1), (99, 200)]
    model = CoLikeModel(pairs, index)
    scores = model.scores([0])  # position 0 is track id 1
    assert 299 in scores and scores[299][1] == 10
    assert 199 not in scores  # one common user is below the support threshold


def test_smallest_is_exact() -> None:
    from ml.recsys.index import smallest

    rng = np.random.default_rng(3)
    for n, k in ((10, 3), (5000, 50), (70_000, 300), (70_000, 20_000)):
        values = rng.normal(size=n).astype(np.float32)
        values[rng.choice(n, size=n // 10, replace=False)] = np.inf
        got = np.sort(values[smallest(values, k)])
        assert np.array_equal(got, np.sort(values)[:k])


def test_routed_proba_sends_rows_with_odd_duration_to_the_audio_only_head() -> None:
    import numpy as np

    from ml.features import AUDIO_FEATURES
    from ml.predictor import routed_proba

    class TwoHeads:
        classes = ("a", "b")
        raw_inputs = (*AUDIO_FEATURES, "duration_ms", "explicit")

        def __init__(self) -> None:
            self.calls: list[int] = []

        def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
            self.calls.append(matrix.shape[1])
            full = matrix.shape[1] == len(self.raw_inputs)
            return np.tile([1.0, 0.0] if full else [0.0, 1.0], (matrix.shape[0], 1))

    audio = np.full((3, len(AUDIO_FEATURES)), 0.5)
    extra = np.array([[200_000.0, 0.0], [0.0, 0.0], [180_000.0, np.nan]])  # fine, 0 ms, no explicit flag
    model = TwoHeads()
    out = routed_proba(model, np.hstack([audio, extra]))
    assert out.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    assert sorted(model.calls) == [len(AUDIO_FEATURES), len(AUDIO_FEATURES) + 2]


def _genre_index(genres: list[list[str]], weights: EngineWeights) -> CatalogIndex:
    """Identical sound for every track, so only the genre block orders them."""
    n = len(genres)
    row = [0.5, 0.5, 5, -8.0, 1, 0.1, 0.2, 0.0, 0.1, 0.5, 120.0, 4, 200_000.0]
    return CatalogIndex(
        ids=list(range(1, n + 1)),
        spotify_ids=[f"id{i:020d}" for i in range(n)],
        names=[f"song {i}" for i in range(n)],
        artists=[f"artist {i}" for i in range(n)],
        raw=np.asarray([row] * n, dtype=float),
        genres=genres,
        weights=weights,
    )


def test_match_score_is_the_chance_of_a_shared_genre() -> None:
    index = _genre_index([["b"], ["a"], ["a", "b"], ["c"]], EngineWeights(genre=4.0, label_damping=0.0))
    q = np.zeros(len(index.classes))
    q[index.classes.index("a")], q[index.classes.index("b")] = 0.6, 0.4
    query = index.query_for_features({c: float(index.raw[0, i]) for i, c in enumerate(AUDIO_FEATURES)}, proba=q)
    ranked = [index.genres[h.position] for h in index.search(query, 4, diversity=0.0)]
    # a+b covers the whole query (1.0), then a (0.6), b (0.4), c (0).
    assert ranked == [("a", "b"), ("a",), ("b",), ("c",)]


def test_label_damping_pulls_many_genre_tracks_back() -> None:
    genres = [["a"], ["a", "b", "c", "d"]]
    q = np.asarray([0.7, 0.1, 0.1, 0.1])  # classes a, b, c, d
    features = {c: 0.5 for c in AUDIO_FEATURES} | {"key": 5, "loudness": -8.0, "tempo": 120.0, "time_signature": 4}

    def first(damping: float) -> tuple[str, ...]:
        index = _genre_index(genres, EngineWeights(genre=4.0, label_damping=damping))
        return index.genres[index.search(index.query_for_features(features, proba=q), 1)[0].position]

    assert first(0.0) == ("a", "b", "c", "d")  # 1.0 against 0.7
    assert first(1.0) == ("a",)  # each of four labels counts 1/4: 0.25 against 0.7


def test_hellinger_metric_stays_available_and_bad_metrics_are_refused() -> None:
    index = build(EngineWeights(genre_metric="hellinger"))
    hits = index.search(index.query_for(0), 10, exclude={0})
    assert all(index.genres[h.position] == ("rock",) for h in hits)
    with pytest.raises(ValueError, match="genre_metric"):
        EngineWeights(genre_metric="cosine")  # type: ignore[arg-type]


def test_a_long_radio_taste_keeps_only_the_genres_it_still_carries() -> None:
    """Each like halves the taste's other genre weights and never zeroes them: after 600 answers a
    radio carried every genre it had ever liked (at 1e-30) and re-scored all their tracks at each
    step. Below 1e-6 a weight is dropped; what is left still counts as before."""
    index = build()
    rock = index.genres.index(("rock",))
    jazz = next(p for p, g in enumerate(index.genres) if g == ("jazz",))
    taste = index.query_for(rock)
    for _ in range(25):  # 25 likes of jazz songs: rock's weight 0.5^25 ≈ 3e-8
        taste = index.steer(taste, jazz, 0.5)
    assert taste.genre is not None
    assert taste.genre[index.classes.index("rock")] == 0.0
    assert taste.genre[index.classes.index("jazz")] == pytest.approx(1.0, abs=1e-6)
    fading = index.query_for(rock)
    for _ in range(10):  # 0.5^10 ≈ 1e-3: still there
        fading = index.steer(fading, jazz, 0.5)
    assert fading.genre is not None and 0 < fading.genre[index.classes.index("rock")] < 2e-3
