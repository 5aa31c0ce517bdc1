"""Radio sessions over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import Base
from db.engine import create_engine, create_session_factory
from ml.recsys.index import ARTIST_CAP, ARTIST_WINDOW
from services.errors import InvalidInput, RadioForbidden, RadioNotFound
from services.radio import RadioService
from services.recommender import RecommendationService
from tests.recs.conftest import Catalog, fill_catalog


def services(sessions: async_sessionmaker[AsyncSession]) -> tuple[RecommendationService, RadioService]:
    recs = RecommendationService(sessions)
    return recs, RadioService(sessions, recs)


async def test_200_steps_never_repeat_and_keep_the_artist_cap(sessions, catalog: Catalog) -> None:
    _recs, radio = services(sessions)
    user = catalog.users[0]
    seed = catalog.by_genre["rock"][0]
    step = await radio.start(seed, user_id=user)
    played = [step.track.id]
    artists = [step.track.artists]
    for i in range(199):
        action = ("next", "like", "next", "skip")[i % 4]
        step = await radio.feedback(step.radio_id, step.track.id, action, user_id=user)
        assert step.track is not None
        played.append(step.track.id)
        artists.append(step.track.artists)
    assert step.position == 200
    assert len(set(played)) == 200
    assert seed not in played
    for start in range(len(artists) - ARTIST_WINDOW + 1):
        window = artists[start : start + ARTIST_WINDOW]
        assert max(window.count(a) for a in set(window)) <= ARTIST_CAP


async def test_skipped_tracks_never_return(sessions, catalog: Catalog) -> None:
    recs, radio = services(sessions)
    user = catalog.users[0]
    seed = catalog.by_genre["jazz"][3]
    step = await radio.start(seed, user_id=user)
    skipped = []
    for _ in range(15):
        skipped.append(step.track.id)
        step = await radio.feedback(step.radio_id, step.track.id, "skip", user_id=user)
        assert step.track.id not in skipped
    # Not in a new radio of the same user, not in "similar", not in "for you".
    step = await radio.start(seed, user_id=user)
    for _ in range(40):
        assert step.track.id not in skipped
        step = await radio.feedback(step.radio_id, step.track.id, "next", user_id=user)
    similar = await recs.similar(seed, 30, user_id=user)
    assert not {r.track.id for r in similar} & set(skipped)


async def test_a_like_moves_the_next_tracks_towards_it(sessions, catalog: Catalog) -> None:
    recs, radio = services(sessions)
    index = await recs.index()
    seed = catalog.by_genre["rock"][10]
    # Start two radios from one seed and show a few tracks; then one likes a far track and one does not.
    base = await radio.start(seed, user_id=None)
    liked = catalog.by_genre["techno"][40]

    async def next_tracks(radio_id: int, current: int, first: str, n: int = 6) -> list[int]:
        out, step = [], await radio.feedback(radio_id, current, first, user_id=None)  # type: ignore[arg-type]
        for _ in range(n):
            out.append(step.track.id)
            step = await radio.feedback(radio_id, step.track.id, "next", user_id=None)
        return out

    # Make the liked track the current one of the second radio by starting it there.
    other = await radio.start(seed, user_id=None)
    async with sessions.begin() as s:
        from db.models import RadioSession

        row = await s.get(RadioSession, other.radio_id)
        row.current_track_id = liked
    control = await next_tracks(base.radio_id, base.track.id, "next")
    treated = await next_tracks(other.radio_id, liked, "like")
    target = index.audio[index.position(liked)]

    def mean_dist(ids: list[int]) -> float:
        return float(np.mean([np.linalg.norm(index.audio[index.position(t)] - target) for t in ids]))

    assert mean_dist(treated) < mean_dist(control) * 0.8
    assert await radio.current(other.radio_id, user_id=None) is not None


async def test_state_survives_a_restart_and_replays_deterministically(tmp_path) -> None:
    async def run(restart_at: int | None, name: str) -> list[int]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / name}.db")
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = create_session_factory(engine)
        catalog = await fill_catalog(sessions)
        _recs, radio = services(sessions)
        step = await radio.start(catalog.by_genre["techno"][5], user_id=catalog.users[1], diversity=0.5)
        played = [step.track.id]
        for i in range(30):
            if i == restart_at:
                _recs, radio = services(sessions)  # a fresh process: empty caches, index rebuilt
            action = ("like", "skip", "next")[i % 3]
            step = await radio.feedback(step.radio_id, step.track.id, action, user_id=catalog.users[1])
            played.append(step.track.id)
        assert (step.likes, step.skips, step.position) == (10, 10, 31)
        await engine.dispose()
        return played

    straight = await run(None, "a")
    assert straight == await run(None, "b")  # deterministic
    assert straight == await run(12, "c")  # a restart loses nothing


async def test_errors(sessions, catalog: Catalog) -> None:
    _recs, radio = services(sessions)
    owner, stranger = catalog.users[0], catalog.users[1]
    step = await radio.start(catalog.by_genre["rock"][0], user_id=owner)
    with pytest.raises(RadioForbidden):
        await radio.feedback(step.radio_id, step.track.id, "like", user_id=stranger)
    with pytest.raises(RadioNotFound):
        await radio.feedback(999_999, step.track.id, "like", user_id=owner)
    nxt = await radio.feedback(step.radio_id, step.track.id, "next", user_id=owner)
    with pytest.raises(InvalidInput):  # an older message's button
        await radio.feedback(step.radio_id, step.track.id, "like", user_id=owner)
    stopped = await radio.stop(nxt.radio_id, user_id=owner)
    assert stopped.stopped and stopped.track is None
    after = await radio.feedback(nxt.radio_id, nxt.track.id, "next", user_id=owner)
    assert after.stopped
    await radio.attach_message(step.radio_id, 42, 7)


async def test_a_radio_after_similar_leaves_out_what_was_just_shown_and_liked(sessions, catalog: Catalog) -> None:
    """🔎 Similar, then ▶ radio from the same song: the radio's first picks are neither the tracks the
    similar list just showed nor a track the person already likes."""
    from sqlalchemy import select

    from db.models import Interaction, InteractionKind
    from services.feedback import FeedbackService
    from services.recommender import SHOWN_SIMILAR

    recs, radio = services(sessions)
    seed = catalog.by_genre["rock"][5]

    async def first_picks(user_id: int | None, n: int = 12) -> list[int]:
        step = await radio.start(seed, user_id=user_id)
        picks = []
        for _ in range(n):
            picks.append(step.track.id)
            step = await radio.feedback(step.radio_id, step.track.id, "next", user_id=user_id)
        return picks

    # Control: without that history, the radio's first picks include the similar list's tracks.
    similar = [r.track.id for r in await recs.similar(seed, 5)]
    control = await first_picks(None)
    assert set(control) & set(similar), "the control radio should start among the nearest tracks"
    liked = next(t for t in control if t not in similar)

    user = catalog.users[1]
    shown = [r.track.id for r in await recs.similar(seed, 5, user_id=user)]
    assert shown == similar
    async with sessions() as s:
        recorded = (
            await s.scalars(
                select(Interaction.track_id).where(
                    Interaction.user_id == user,
                    Interaction.kind == InteractionKind.SHOWN,
                    Interaction.context == SHOWN_SIMILAR,
                )
            )
        ).all()
    assert sorted(recorded) == sorted(shown)
    await FeedbackService(sessions).like(user, liked)

    picks = await first_picks(user)
    assert not set(picks) & set(shown)
    assert liked not in picks
    assert len(set(picks)) == len(picks)


async def test_radio_from_latest_like(sessions, catalog: Catalog) -> None:
    from services.feedback import FeedbackService

    _recs, radio = services(sessions)
    user = catalog.users[2]
    assert await radio.start_from_latest_like(user) is None
    feedback = FeedbackService(sessions)
    await feedback.like(user, catalog.by_genre["jazz"][0])
    await feedback.like(user, catalog.by_genre["techno"][0])
    step = await radio.start_from_latest_like(user, chat_id=5)
    assert step is not None and step.track is not None
    assert catalog.genre_of(step.track.id) == "techno"
