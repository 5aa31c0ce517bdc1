"""Songs with nine features (audio analysis: no key, mode or time signature) and tracks added to the
index after it was built."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.features import AUDIO_FEATURES
from ml.recsys.index import CatalogIndex, Query
from ml.recsys.scaling import PARTIAL_SCALED, SCALED_COLUMNS, UNANALYSED
from tests.recs.conftest import make_tracks


@dataclass
class Row:
    """Shaped like `TrackRepository.feature_rows()`."""

    id: int
    spotify_id: str | None
    name: str
    artists: str
    album: str | None
    popularity: int | None
    duration_ms: int | None
    explicit: bool | None
    features: dict[str, float | None]

    def __getattr__(self, name: str) -> float | None:
        if name in AUDIO_FEATURES:
            return self.features.get(name)
        raise AttributeError(name)


def rows() -> list[Row]:
    return [
        Row(
            i + 1,
            t.spotify_id,
            t.name,
            t.artists,
            None,
            t.popularity,
            t.duration_ms,
            False,
            {c: getattr(t, c) for c in AUDIO_FEATURES},
        )
        for i, t in enumerate(make_tracks())
    ]


def genre_map() -> dict[int, list[str]]:
    return {i + 1: [g.genre for g in t.genres] for i, t in enumerate(make_tracks())}


def nine(features: dict[str, float | None]) -> dict[str, float | None]:
    return {c: (None if c in UNANALYSED else v) for c, v in features.items()}


def test_a_partial_query_ignores_key_mode_and_time_signature() -> None:
    index = CatalogIndex.from_rows(rows(), genre_map())
    seed = rows()[3].features
    query = index.query_for_partial(nine(seed), duration_ms=200_000)
    assert query.partial
    kept = [i for i, c in enumerate(SCALED_COLUMNS) if c not in PARTIAL_SCALED]
    expected = ((index.audio[:, kept] - query.audio[kept]) ** 2).sum(axis=1)
    assert query.audio_d2 is not None and np.allclose(query.audio_d2, expected, atol=1e-3)
    # Changing the seed's key, mode or time signature does not move it: they are not read at all.
    other = dict(seed, key=(seed["key"] or 0) + 5, mode=1 - (seed["mode"] or 0), time_signature=3.0)
    again = index.query_for_partial(nine(other), duration_ms=200_000)
    assert np.allclose(again.audio, query.audio)
    # Its nearest tracks are those of its genre (rock: the first 120), and the genre comes from its
    # audio neighbours since the model cannot place it.
    hits = index.search(query, 10, exclude={3})
    assert all(h.position < 120 for h in hits)
    assert query.genre is not None


def test_partial_queries_survive_a_round_trip_and_stop_being_partial_when_moved_towards_a_full_track() -> None:
    index = CatalogIndex.from_rows(rows(), genre_map())
    query = index.query_for_partial(nine(rows()[0].features))
    restored = Query.from_json(query.to_json())
    assert restored.partial and np.allclose(index.distances2(restored), index.distances2(query), atol=1e-3)
    assert not query.moved(index.query_for(5), 0.5).partial
    assert query.moved(index.query_for(5), -0.2).partial
    assert "partial" not in index.query_for(5).to_json()


def test_extended_appends_without_moving_anything() -> None:
    all_rows = rows()
    base_rows, new_rows = all_rows[:-20], all_rows[-20:]
    gmap = genre_map()
    base = CatalogIndex.from_rows(base_rows, gmap)
    new_rows[0].features = nine(new_rows[0].features)  # one song analysed from audio
    grown = base.extended(new_rows, {r.id: gmap[r.id] for r in new_rows[1:]})
    assert len(grown) == len(base) + 20 and len(base) == len(all_rows) - 20  # the old index is unchanged
    assert grown.signature() == base.signature()
    assert np.array_equal(grown.audio[: len(base)], base.audio)
    assert [grown.position(r.id) for r in base_rows] == [base.position(r.id) for r in base_rows]
    first = grown.position(new_rows[0].id)
    assert first == len(base) and bool(grown.partial[first]) and not grown.partial[: len(base)].any()
    assert set(grown.entry(first).features) == set(AUDIO_FEATURES) - set(UNANALYSED)
    assert grown.entry(first + 1).genres == tuple(gmap[new_rows[1].id])
    # The new tracks are candidates: a seed among them finds its own genre (techno, the last 120).
    hits = grown.search(grown.query_for(first + 1), 10, exclude={first + 1})
    assert hits and all(h.position >= 240 for h in hits)
    assert grown.extended(new_rows, {}) is grown  # nothing new: the same index
    # Same vectors for the new full tracks as embedding them as queries would give.
    vec = grown.query_for_features(new_rows[2].features, duration_ms=new_rows[2].duration_ms).audio
    assert np.allclose(grown.audio[first + 2], vec)


def test_extended_keeps_probabilities_aligned() -> None:
    all_rows = rows()
    gmap = genre_map()
    classes = ["jazz", "rock", "techno"]
    proba = np.tile([0.1, 0.8, 0.1], (len(all_rows) - 2, 1))
    base = CatalogIndex.from_rows(all_rows[:-2], gmap, proba=proba, proba_classes=classes)
    extra = all_rows[-2:]
    grown = base.extended(extra, {}, proba=np.asarray([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    assert grown.genre.shape == (len(all_rows), 3)
    # A zero row (the model could not place that track): its audio neighbours' labels instead.
    assert grown.has_genre[-1]
    neighbours = grown.genre_dist[len(all_rows) - 1].toarray().ravel()
    assert classes[int(np.argmax(neighbours))] == gmap[extra[-1].id][0]  # (a rock remaster: its own kind)


def test_stored_keys_are_the_keys_of_the_entry_built_and_added() -> None:
    """/similar leaves a seed's own versions out by the keys the index stored (`keys_at`), no
    longer by hashing its entry's artists and title again (`keys_for`): the two must agree, for the
    tracks the index was built with and for tracks added later, whatever their artist line looks like."""
    all_rows = rows()
    base_rows, new_rows = all_rows[:-4], all_rows[-4:]
    odd = [" Beyoncé ;JAY-Z", "AC/DC;;", "Sigur Rós", ""]
    for row, artists in zip(new_rows, odd, strict=True):
        row.artists, row.name = artists, f"{row.name} (Remastered 2011) - Live"
    base_rows[0].artists, base_rows[0].name = "  Queen ; David Bowie", "Under Pressure - Remastered"
    gmap = genre_map()
    grown = CatalogIndex.from_rows(base_rows, gmap).extended(new_rows, {})
    for p in range(len(grown)):
        entry = grown.entry(p)
        assert grown.keys_at(p) == grown.keys_for(";".join(entry.artists), entry.name), (p, entry.artists)
