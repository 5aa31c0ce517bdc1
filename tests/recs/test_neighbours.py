"""Each seed's "similar" list worked out once (`ml.recsys.neighbours`): the table answers exactly what
the search answers, or nothing — after tracks are added near a seed, at another diversity, for a
longer list, for a seed liked by several people (co-likes), and for anyone with skips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InteractionKind, Track
from db.repositories import InteractionRepository, LikeRepository
from ml.features import AUDIO_FEATURES
from ml.recsys.index import CatalogIndex, EngineWeights, Hit
from ml.recsys.neighbours import Neighbours, build
from services.recommender import RecommendationService
from tests.recs.conftest import Catalog
from tests.recs.test_engine_partial import genre_map, rows
from tests.recs.test_services import FakePredictor


def live(index: CatalogIndex, pos: int, n: int, diversity: float = 0.3) -> list[Hit]:
    """What `RecommendationService.similar` asks the index for an anonymous seed."""
    return index.search(
        index.query_for(pos),
        n,
        exclude={pos},
        exclude_keys=index.keys_at(pos),
        diversity=diversity,
        seed_artists=index.artists[pos],
    )


def test_the_table_answers_exactly_what_the_search_answers_for_every_seed_and_length() -> None:
    index = CatalogIndex.from_rows(rows(), genre_map())
    table = build(index, k=10)
    assert table.size == len(index) and (table.radius2 >= 0).all()
    for pos in range(len(index)):
        for n in (1, 4, 10):
            assert table.lookup(index, pos, index.query_for(pos), n, 0.3) == live(index, pos, n), (pos, n)


def test_what_the_table_cannot_say_it_leaves_to_the_search() -> None:
    index = CatalogIndex.from_rows(rows(), genre_map())
    table = build(index, k=10)
    query = index.query_for(0)
    assert table.lookup(index, 0, query, 10, 0.3) is not None
    assert table.lookup(index, 0, query, 11, 0.3) is None  # longer than the table's lists
    assert table.lookup(index, 0, query, 10, 0.6) is None  # another diversity
    assert table.lookup(index, len(index), query, 10, 0.3) is None  # a seed it does not hold
    with pytest.raises(ValueError):
        build(index, k=30)  # 8 × 30 > the pool of 200: a shorter list would gather a smaller pool


def test_after_tracks_are_added_a_seed_near_them_is_searched_and_the_rest_still_read() -> None:
    all_rows, gmap = rows(), genre_map()
    # A pool of 80 of a genre's 120 songs (the default 200 spans genres in so small a catalogue).
    base = CatalogIndex.from_rows(all_rows[:-20], gmap, weights=EngineWeights(pool=80))
    table = build(base, k=10)
    grown = base.extended(all_rows[-20:], gmap)  # 19 more techno songs and a rock remaster
    searched = []
    for pos in range(len(base)):
        listed = table.lookup(grown, pos, grown.query_for(pos), 10, 0.3)
        if listed is None:
            searched.append(pos)
        else:
            assert listed == live(grown, pos, 10), pos  # still exactly the grown index's answer
    # Seeds whose pools the new songs fall into are searched; no jazz seed's pool reaches them.
    jazz = range(120, 240)  # the catalogue is rock, jazz, techno, 120 songs each
    assert len(searched) >= 100 and not set(searched) & set(jazz)
    # At another diversity popularity counts, whose percentiles moved with the new songs: no reads.
    tilted = build(base, k=10, diversity=0.8)
    assert all(tilted.lookup(grown, p, grown.query_for(p), 10, 0.8) is None for p in range(len(base)))


def test_arrays_round_trip_and_a_table_larger_than_the_index_is_refused() -> None:
    index = CatalogIndex.from_rows(rows(), genre_map())
    table = build(index, k=5)
    arrays, meta = table.to_arrays()
    again = Neighbours.from_arrays(arrays, meta, len(index))
    assert all(
        again.lookup(index, p, index.query_for(p), 5, 0.3) == table.lookup(index, p, index.query_for(p), 5, 0.3)
        for p in range(0, len(index), 7)
    )
    with pytest.raises(ValueError):
        Neighbours.from_arrays(arrays, meta, len(index) - 1)
    with pytest.raises(ValueError):  # worked out by other ranking code (an older release's setup)
        Neighbours.from_arrays(arrays, meta | {"engine": "0" * 16}, len(index))


async def test_a_table_from_other_ranking_code_is_not_used(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot's key says nothing of the ranking code: a release that ranks differently must
    not answer from the lists an older one worked out (its index still loads)."""
    await RecommendationService(sessions, snapshot_dir=tmp_path).prepare_neighbours()
    import ml.recsys.neighbours as neighbours

    monkeypatch.setattr(neighbours, "engine", lambda: "another release")
    served = RecommendationService(sessions, snapshot_dir=tmp_path)
    await served.index()
    assert served._loaded_model is not None  # loaded from the snapshot, not rebuilt
    assert served._neighbours is None


def _similar(recs: list) -> list[tuple[int, float, str]]:
    return [(r.track.id, r.score, r.reason) for r in recs]


async def test_setup_saves_the_table_with_the_snapshot_and_similar_answers_as_without_it(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog, tmp_path: Path
) -> None:
    plain = RecommendationService(sessions)  # no table: every answer is searched
    first = RecommendationService(sessions, snapshot_dir=tmp_path)
    table = await first.prepare_neighbours()
    assert table is not None and await first.prepare_neighbours() is table  # current: kept
    served = RecommendationService(sessions, snapshot_dir=tmp_path)  # the next start loads it
    await served.index()
    assert served._neighbours is not None and served._neighbours.size == table.size

    searched: list[int] = []
    original = served.searching

    async def counting(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        searched.append(1)
        return await original(fn, *args, **kwargs)

    served.searching = counting  # type: ignore[method-assign]
    seeds = [t.id for t in catalog.tracks[::9]]
    for seed in seeds:
        assert _similar(await served.similar(seed, 10)) == _similar(await plain.similar(seed, 10)), seed
    assert not searched  # every one read from the table

    # Two people like the first seed and the last song of its list: co-likes move that song up, so
    # the list is searched (the table's would be the old one).
    liked = seeds[0]
    other = (await plain.similar(liked, 10))[-1].track.id
    async with sessions.begin() as s:
        for user in catalog.users[:2]:
            await LikeRepository(s).add(user, liked)
            await LikeRepository(s).add(user, other)
    for service in (served, plain):
        await service.refresh_colikes()
    boosted = await served.similar(liked, 10)
    assert searched and ("liked by people who liked this", other) in [(r.reason, r.track.id) for r in boosted]
    assert _similar(boosted) == _similar(await plain.similar(liked, 10))

    # A person with skips: their skips stay out, so their list is searched too.
    searched.clear()
    skipper, seed = catalog.users[2], seeds[3]
    first_hit = (await plain.similar(seed, 10))[0].track.id
    async with sessions.begin() as s:
        await InteractionRepository(s).add_many([first_hit], InteractionKind.SKIPPED, user_id=skipper)
    mine = await served.similar(seed, 10, user_id=skipper)
    assert searched and first_hit not in [r.track.id for r in mine]


async def test_a_table_added_to_a_loaded_snapshot_keeps_its_model_version(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog, tmp_path: Path
) -> None:
    """Setup loads the index saved by an earlier run (its process never loads the genre model) and
    saves it again with the table: under the key of the model it was built with, or the next start
    would find it stale and rebuild without the table."""

    class Versioned(FakePredictor):
        version = "v7"

    def service() -> RecommendationService:
        return RecommendationService(
            sessions, proba_source=Versioned, model_version=lambda: "v7", snapshot_dir=tmp_path
        )

    built = service()
    assert (await built.index()).has_proba  # built with the model, saved under "v7"
    setup = service()
    assert await setup.prepare_neighbours() is not None and setup._proba is None  # loaded, not built
    served = service()
    await served.index()
    assert served._proba is None and served._neighbours is not None


async def test_a_snapshot_too_far_behind_is_rebuilt_without_its_table(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog, tmp_path: Path
) -> None:
    """The rebuilt index numbers its tracks afresh: the old snapshot's table must not come with it."""
    first = RecommendationService(sessions, snapshot_dir=tmp_path)
    assert await first.prepare_neighbours() is not None
    template = catalog.tracks[5]
    async with sessions.begin() as s:  # more than 1,000 (+5 %) tracks stored since the snapshot
        s.add_all(
            Track(
                spotify_id=f"later{i:017d}",
                name=f"later song {i}",
                artists=f"Later Artist {i % 50}",
                duration_ms=template.duration_ms,
                **{c: getattr(template, c) for c in AUDIO_FEATURES},
            )
            for i in range(1_100)
        )
    rebuilt = RecommendationService(sessions, snapshot_dir=tmp_path)
    assert len(await rebuilt.index()) == len(catalog.tracks) + 1_100
    assert rebuilt._neighbours is None


def test_the_engine_hash_follows_the_ranking_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    import ml.recsys.index as ranking
    import ml.recsys.neighbours as neighbours

    before = neighbours.engine()
    monkeypatch.setattr(ranking, "ARTIST_CAP", ranking.ARTIST_CAP + 1)
    neighbours.engine.cache_clear()
    try:
        assert neighbours.engine() != before  # another artist cap ranks differently
    finally:
        monkeypatch.undo()
        neighbours.engine.cache_clear()
    assert neighbours.engine() == before


def _first() -> Any:
    def ranked(x: int) -> int:
        """Doc."""
        # a comment
        return x + 1

    return ranked


def _reworded() -> Any:
    def ranked(x: int) -> int:
        """Other words for it."""
        return x + 1  # another comment

    return ranked


def _changed() -> Any:
    def ranked(x: int) -> int:
        """Doc."""
        return x + 2

    return ranked


def test_the_engine_hash_ignores_comments_and_docstrings_but_not_code() -> None:
    """A release that only rewords the ranking's comments keeps setup's table; one that changes
    a line of it does not."""
    from ml.recsys.neighbours import _code

    assert _code(_first()) == _code(_reworded())
    assert _code(_first()) != _code(_changed())
