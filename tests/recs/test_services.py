"""RecommendationService (similar, for you, co-likes) and FeedbackService over a real database."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from db.models import InteractionKind, Track, User
from ml.features import AUDIO_FEATURES
from services.dto import GenreGuess
from services.errors import InvalidInput, NoFeatures, TrackNotFound
from services.feedback import FeedbackService
from services.recommender import RecommendationService
from tests.recs.conftest import Catalog


async def test_similar_stays_in_genre_and_is_deterministic(sessions, catalog: Catalog) -> None:
    recs = RecommendationService(sessions)
    seed = catalog.by_genre["jazz"][7]
    first = await recs.similar(seed, 10)
    assert len(first) == 10
    assert all(r.track.genres == ("jazz",) for r in first)
    assert seed not in {r.track.id for r in first}
    assert [r.track.id for r in first] == [r.track.id for r in await RecommendationService(sessions).similar(seed, 10)]


async def test_similar_for_a_track_added_after_the_index(sessions, catalog: Catalog) -> None:
    recs = RecommendationService(sessions)
    await recs.index()
    template = catalog.tracks[catalog.by_genre["techno"][0] - 1]
    async with sessions.begin() as s:
        new = Track(spotify_id="newtrack0000000000000x", name="Fresh", artists="Someone New", source="spotify")
        for c in AUDIO_FEATURES:
            setattr(new, c, getattr(template, c))
        bare = Track(spotify_id="nofeatures000000000000", name="Bare", artists="Nobody")
        s.add_all([new, bare])
        await s.flush()
    result = await recs.similar(new.id, 5)
    assert all(r.track.genres == ("techno",) for r in result)
    with pytest.raises(NoFeatures):
        await recs.similar(bare.id, 5)
    with pytest.raises(TrackNotFound):
        await recs.similar(10**9, 5)


async def test_colikes_pull_in_what_people_like_together(sessions, catalog: Catalog) -> None:
    recs = RecommendationService(sessions)
    seed, far = catalog.by_genre["rock"][0], catalog.by_genre["jazz"][50]
    before = [r.track.id for r in await recs.similar(seed, 10)]
    assert far not in before
    async with sessions.begin() as s:
        users = [User(telegram_id=5000 + i) for i in range(12)]
        s.add_all(users)
        await s.flush()
    feedback = FeedbackService(sessions)
    # One user liking both is noise: no change.
    await feedback.like(users[0].id, seed)
    await feedback.like(users[0].id, far)
    await recs.refresh_colikes()
    assert far not in [r.track.id for r in await recs.similar(seed, 10)]
    # More users liking both: the far track enters, with its reason, and rises as support grows.
    ranks = []
    for count in (3, 6, 12):
        for u in users[1:count]:
            await feedback.like(u.id, seed)
            await feedback.like(u.id, far)
        await recs.refresh_colikes()
        after = await recs.similar(seed, 10)
        ids = [r.track.id for r in after]
        ranks.append(ids.index(far) if far in ids else 99)
    assert ranks == sorted(ranks, reverse=True) and ranks[-1] < 3, ranks
    assert after[ids.index(far)].reason.startswith("liked by people")
    # The rest of the list is still the content neighbours.
    assert len(set(ids) & set(before)) >= 8


async def test_for_you_follows_likes_and_excludes_them(sessions, catalog: Catalog) -> None:
    recs = RecommendationService(sessions)
    feedback = FeedbackService(sessions)
    user = catalog.users[0]
    liked = catalog.by_genre["techno"][:6]
    for t in liked:
        await feedback.like(user, t)
    skipped = catalog.by_genre["techno"][6:9]
    for t in skipped:
        await feedback.record(user, t, InteractionKind.SKIPPED)
    result = await recs.for_you(user, 10)
    assert len(result) == 10
    ids = {r.track.id for r in result}
    assert not ids & (set(liked) | set(skipped))
    assert sum(r.track.genres == ("techno",) for r in result) >= 9


async def test_cold_start_uses_searched_genres_then_popularity(sessions, catalog: Catalog) -> None:
    recs = RecommendationService(sessions)
    feedback = FeedbackService(sessions)
    user, fresh = catalog.users[1], catalog.users[2]
    for t in catalog.by_genre["jazz"][:2]:
        await feedback.record(user, t, InteractionKind.SEARCHED)
    result = await recs.for_you(user, 8)
    assert len(result) == 8
    assert all(r.track.genres == ("jazz",) for r in result)
    assert all(r.reason == "popular in genres you searched" for r in result)
    pops = [r.track.popularity for r in result]
    assert pops == sorted(pops, reverse=True) or len(set(pops)) < len(pops)
    overall = await recs.for_you(fresh, 5)
    top = max(t.popularity for t in catalog.tracks)
    assert overall[0].track.popularity == top
    assert {r.reason for r in overall} == {"popular on Encore"}


class FakeGuesser:
    async def guess(self, features: Mapping[str, float], **context: object) -> GenreGuess:
        return GenreGuess("ambient", 0.9, (("ambient", 0.9),), "electronic", 0.9)


async def test_feedback_likes_pages_and_genre_history(sessions, catalog: Catalog) -> None:
    feedback = FeedbackService(sessions, genres=FakeGuesser())
    user = catalog.users[0]
    rock, jazz = catalog.by_genre["rock"], catalog.by_genre["jazz"]
    assert await feedback.like(user, rock[0]) is True
    assert await feedback.like(user, rock[0]) is False
    assert await feedback.is_liked(user, rock[0])
    for t in (rock[1], rock[2], jazz[0]):
        await feedback.like(user, t)
    await feedback.record(user, jazz[1], InteractionKind.SEARCHED)
    await feedback.record(user, rock[3], InteractionKind.SEARCHED)
    async with sessions.begin() as s:
        unlabeled = Track(spotify_id="unlabeled0000000000000", name="Drift", artists="Ambienteer")
        for c, v in catalog.tracks[0].__dict__.items():
            if c in AUDIO_FEATURES:
                setattr(unlabeled, c, v)
        s.add(unlabeled)
        await s.flush()
    await feedback.record(user, unlabeled.id, InteractionKind.SEARCHED)

    page = await feedback.likes(user, 0, size=3)
    assert (page.total, page.pages, len(page.items), page.has_next) == (4, 2, 3, True)
    assert (await feedback.likes(user, 1, size=3)).items[0].id == rock[0]  # oldest like last
    assert (await feedback.likes(user, 9, size=3)).page == 1  # clamped

    history = await feedback.genre_history(user, 0, size=5)
    by_genre = {e.genre: e for e in history.items}
    assert by_genre["rock"].count == 4 and by_genre["rock"].liked == 3 and by_genre["rock"].searched == 1
    assert by_genre["jazz"].count == 2
    assert by_genre["ambient"].predicted and by_genre["ambient"].tracks[0].id == unlabeled.id
    assert history.items[0].genre == "rock"
    assert len(by_genre["rock"].tracks) == 3

    assert await feedback.unlike(user, rock[0]) is True
    assert await feedback.unlike(user, rock[0]) is False
    assert not await feedback.is_liked(user, rock[0])
    with pytest.raises(TrackNotFound):
        await feedback.like(user, 10**9)
    with pytest.raises(InvalidInput):
        await feedback.record(user, rock[0], InteractionKind.LIKED)


class FakePredictor:
    """Stands in for ml.predictor.GenrePredictor: probabilities from energy and acousticness."""

    classes = ("jazz", "rock", "techno", "ambient")
    raw_inputs = ("energy", "acousticness", "danceability", "duration_ms")

    def predict_proba(self, matrix):
        import numpy as np

        energy, acoustic, dance = matrix[:, 0], matrix[:, 1], matrix[:, 2]
        logits = np.stack([3 * acoustic, 3 * energy - 3 * dance + 1.5, 3 * dance, np.zeros(len(matrix))], axis=1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


async def test_model_probabilities_enter_the_index(sqlite_sessions, sqlite_catalog: Catalog) -> None:
    recs = RecommendationService(sqlite_sessions, proba=FakePredictor())
    index = await recs.index()
    assert index.has_proba and index.classes == list(FakePredictor.classes)
    seed = sqlite_catalog.by_genre["techno"][3]
    result = await recs.similar(seed, 10)
    assert sum(r.track.genres == ("techno",) for r in result) >= 9
    async with sqlite_sessions.begin() as s:
        fresh = Track(spotify_id="probaonly0000000000000", name="Nu", artists="Nobody Yet", duration_ms=None)
        for c in AUDIO_FEATURES:
            setattr(fresh, c, getattr(sqlite_catalog.tracks[seed - 1], c))
        s.add(fresh)
        await s.flush()
    assert sum(r.track.genres == ("techno",) for r in await recs.similar(fresh.id, 10)) >= 9


async def test_an_empty_catalogue_starts_and_recommends_nothing(sqlite_sessions) -> None:
    recs = RecommendationService(sqlite_sessions)
    index = await recs.index()
    assert len(index) == 0
    with pytest.raises(TrackNotFound):
        await recs.similar(1, 5)
