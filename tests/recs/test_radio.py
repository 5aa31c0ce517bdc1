"""Radio sessions over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import Base
from db.engine import Units, create_engine, create_session_factory
from db.models import Interaction, InteractionKind, Like, RadioSession
from ml.recsys.index import ARTIST_CAP, ARTIST_WINDOW
from services.dto import Listener
from services.errors import RadioConflict, RadioNotFound, RadioStopped
from services.radio import RadioService
from services.recommender import RecommendationService
from tests.recs.conftest import Catalog, fill_catalog

_UNITS: list[Units] = []
_CPU: list[ThreadPoolExecutor] = []


@pytest.fixture(autouse=True)
async def _close_units() -> AsyncIterator[None]:
    yield
    while _UNITS:
        await _UNITS.pop().close()
    while _CPU:
        _CPU.pop().shutdown()


def services(
    sessions: async_sessionmaker[AsyncSession], *, ids: Callable[[], str] | None = None, cache_size: int = 2000
) -> tuple[RecommendationService, RadioService]:
    """The services as `main.py` builds them: on a SQLite file an answer's unit of work runs in the
    writer thread on its own sqlite3 connection, on PostgreSQL through the async engine; searches
    run one at a time on a thread of their own, which hands an answer's unit straight to the writer."""
    units = Units(sessions, sessions.kw["bind"])
    _UNITS.append(units)
    cpu = ThreadPoolExecutor(1, thread_name_prefix="searches")
    _CPU.append(cpu)
    recs = RecommendationService(sessions, cpu=cpu)
    extra = {"new_id": ids} if ids else {}
    return recs, RadioService(sessions, recs, units=units, cache_size=cache_size, **extra)


def listener(user_id: int | None) -> Listener:
    return Listener.telegram(user_id) if user_id is not None else Listener.anonymous()


async def test_200_steps_never_repeat_and_keep_the_artist_cap(sessions, catalog: Catalog) -> None:
    _recs, radio = services(sessions)
    user = catalog.users[0]
    seed = catalog.by_genre["rock"][0]
    step = await radio.start(seed, listener=listener(user))
    played = [step.track.id]
    artists = [step.track.artists]
    for i in range(199):
        action = ("next", "like", "next", "skip")[i % 4]
        step = await radio.feedback(step.radio_id, step.track.id, action, listener=listener(user))
        assert step.track is not None
        played.append(step.track.id)
        artists.append(step.track.artists)
    assert step.position == 200
    assert len(set(played)) == 200
    assert seed not in played
    for start in range(len(artists) - ARTIST_WINDOW + 1):
        window = artists[start : start + ARTIST_WINDOW]
        assert max(window.count(a) for a in set(window)) <= ARTIST_CAP


async def test_a_radio_skipped_again_and_again_keeps_its_taste_among_the_songs(sessions, catalog: Catalog) -> None:
    """Each skip pushes the taste away from the skipped song; once outside the catalogue, every push
    took it farther (1.2× a skip), until its distances overflowed and the radio ran dry (seen after
    ~200 answers in bench_radio). The taste stays within the catalogue's range, and the radio plays."""
    recs, radio = services(sessions)
    step = await radio.start(catalog.by_genre["rock"][3], listener=Listener.anonymous())
    index = await recs.index()
    lo, hi = index.audio.min(axis=0), index.audio.max(axis=0)
    for _ in range(120):
        step = await radio.feedback(step.radio_id, step.track.id, "skip", listener=Listener.anonymous())
        assert step.track is not None and np.isfinite(step.extra["score"])
        taste = radio._cache[step.radio_id].query
        assert np.all(taste.audio >= np.minimum(lo, 0) - 1e-6) and np.all(taste.audio <= np.maximum(hi, 0) + 1e-6)
        assert taste.genre is None or (np.all(taste.genre >= 0) and np.all(taste.genre <= 1))


async def test_radios_beyond_the_memory_cap_are_read_back_from_the_database(sessions, catalog: Catalog) -> None:
    """Two radios kept in memory: a third one pushes the oldest out, which then answers from its row
    and its interactions, as after a restart, and plays on without repeating itself."""
    _recs, radio = services(sessions, cache_size=2)
    people = [listener(u) for u in catalog.users[:3]]  # one playing radio per person
    seeds = [catalog.by_genre[g][0] for g in ("rock", "jazz", "rock")]
    steps = [await radio.start(seed, listener=who) for seed, who in zip(seeds, people, strict=True)]
    assert radio.live_sessions() == 2
    first = steps[0]
    played = [first.track.id]
    for action in ("like", "skip", "next", "like"):
        first = await radio.feedback(first.radio_id, first.track.id, action, listener=people[0])
        played.append(first.track.id)
        assert radio.live_sessions() == 2
    assert (first.position, first.likes, first.skips) == (steps[0].position + 4, 2, 1)
    assert len(set(played)) == len(played)
    second = await radio.feedback(steps[1].radio_id, steps[1].track.id, "next", listener=people[1])  # out too
    assert second.position == steps[1].position + 1 and second.track.id != steps[1].track.id


async def test_skipped_tracks_never_return(sessions, catalog: Catalog) -> None:
    recs, radio = services(sessions)
    user = catalog.users[0]
    seed = catalog.by_genre["jazz"][3]
    step = await radio.start(seed, listener=listener(user))
    skipped = []
    for _ in range(15):
        skipped.append(step.track.id)
        step = await radio.feedback(step.radio_id, step.track.id, "skip", listener=listener(user))
        assert step.track.id not in skipped
    # Not in a new radio of the same user, not in "similar", not in "for you".
    step = await radio.start(seed, listener=listener(user))
    for _ in range(40):
        assert step.track.id not in skipped
        step = await radio.feedback(step.radio_id, step.track.id, "next", listener=listener(user))
    similar = await recs.similar(seed, 30, user_id=user)
    assert not {r.track.id for r in similar} & set(skipped)


async def test_a_like_moves_the_next_tracks_towards_it(sessions, catalog: Catalog) -> None:
    recs, radio = services(sessions)
    index = await recs.index()
    seed = catalog.by_genre["rock"][10]
    # Start two radios from one seed and show a few tracks; then one likes a far track and one does not.
    base = await radio.start(seed, listener=listener(None))
    liked = catalog.by_genre["techno"][40]

    async def next_tracks(radio_id: str, current: int, first: str, n: int = 6) -> list[int]:
        out, step = [], await radio.feedback(radio_id, current, first, listener=listener(None))  # type: ignore[arg-type]
        for _ in range(n):
            out.append(step.track.id)
            step = await radio.feedback(radio_id, step.track.id, "next", listener=listener(None))
        return out

    # Make the liked track the current one of the second radio by starting it there.
    other = await radio.start(seed, listener=listener(None))
    async with sessions.begin() as s:
        row = await s.scalar(select(RadioSession).where(RadioSession.public_id == other.radio_id))
        row.current_track_id = liked
    control = await next_tracks(base.radio_id, base.track.id, "next")
    treated = await next_tracks(other.radio_id, liked, "like")
    target = index.audio[index.position(liked)]

    def mean_dist(ids: list[int]) -> float:
        return float(np.mean([np.linalg.norm(index.audio[index.position(t)] - target) for t in ids]))

    assert mean_dist(treated) < mean_dist(control) * 0.8
    assert await radio.current(other.radio_id, listener=listener(None)) is not None


async def test_state_survives_a_restart_and_replays_deterministically(tmp_path) -> None:
    async def run(restart_at: int | None, name: str) -> list[int]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / name}.db")
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = create_session_factory(engine)
        catalog = await fill_catalog(sessions)
        _recs, radio = services(sessions, ids=lambda: "deterministic-radio-01")
        step = await radio.start(catalog.by_genre["techno"][5], listener=listener(catalog.users[1]), diversity=0.5)
        played = [step.track.id]
        for i in range(30):
            if i == restart_at:
                _recs, radio = services(sessions)  # a fresh process: empty caches, index rebuilt
            action = ("like", "skip", "next")[i % 3]
            step = await radio.feedback(step.radio_id, step.track.id, action, listener=listener(catalog.users[1]))
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
    step = await radio.start(catalog.by_genre["rock"][0], listener=listener(owner))
    assert len(step.radio_id) == 22  # 128 random bits, URL-safe
    with pytest.raises(RadioNotFound):  # someone else's radio does not exist for them
        await radio.feedback(step.radio_id, step.track.id, "like", listener=listener(stranger))
    with pytest.raises(RadioNotFound):
        await radio.current(step.radio_id, listener=Listener.anonymous())
    with pytest.raises(RadioNotFound):
        await radio.feedback("x" * 22, step.track.id, "like", listener=listener(owner))
    nxt = await radio.feedback(step.radio_id, step.track.id, "next", listener=listener(owner))
    with pytest.raises(RadioConflict) as moved:  # an older message's button: not counted
        await radio.feedback(step.radio_id, step.track.id, "like", listener=listener(owner))
    assert moved.value.step.track.id == nxt.track.id and moved.value.step.likes == 0
    stopped = await radio.stop(nxt.radio_id, listener=listener(owner))
    assert stopped.stopped and stopped.track is None
    with pytest.raises(RadioStopped):
        await radio.feedback(nxt.radio_id, nxt.track.id, "next", listener=listener(owner))
    await radio.attach_message(step.radio_id, 42, 7, listener=listener(owner))
    with pytest.raises(RadioNotFound):
        await radio.attach_message(step.radio_id, 42, 7, listener=listener(stranger))


async def test_an_open_radio_is_reachable_by_its_id_only(sessions, catalog: Catalog) -> None:
    _recs, radio = services(sessions)
    step = await radio.start(catalog.by_genre["rock"][0], listener=Listener.anonymous())
    assert (await radio.current(step.radio_id, listener=Listener.anonymous())).track == step.track
    keyed = await radio.start(catalog.by_genre["rock"][1], listener=Listener.api_key("k1"))
    with pytest.raises(RadioNotFound):  # a radio bound to a key is not open to others
        await radio.current(keyed.radio_id, listener=Listener.api_key("k2"))
    with pytest.raises(RadioNotFound):
        await radio.current(keyed.radio_id, listener=Listener.anonymous())


@pytest.mark.parametrize("action", ["like", "skip", "next"])
async def test_fifty_concurrent_answers_count_once(sessions, catalog: Catalog, action: str) -> None:
    """One answer per position: of 50 concurrent answers to the same track exactly one is counted,
    the others are refused with the radio's state, and the counters equal the interaction rows."""
    _recs, radio = services(sessions)
    user = catalog.users[0]
    step = await radio.start(catalog.by_genre["rock"][2], listener=listener(user))
    results = await asyncio.gather(
        *(radio.feedback(step.radio_id, step.track.id, action, listener=listener(user)) for _ in range(50)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and all(isinstance(e, RadioConflict) for e in lost), {type(e) for e in lost}
    assert {e.step.track.id for e in lost} == {won[0].track.id}  # everyone is told the same next track
    now = await radio.current(step.radio_id, listener=listener(user))
    assert now.position == 2 and now.track.id == won[0].track.id
    async with sessions() as s:
        radio_row = await s.scalar(select(RadioSession).where(RadioSession.public_id == step.radio_id))
        rows = (
            await s.execute(
                select(Interaction.kind, func.count())
                .where(Interaction.radio_session_id == radio_row.id)
                .group_by(Interaction.kind)
            )
        ).all()
        likes = await s.scalar(select(func.count()).select_from(Like).where(Like.user_id == user))
    counts = {kind: n for kind, n in rows}
    assert counts.get(InteractionKind.SHOWN) == 2
    assert counts.get(InteractionKind.LIKED, 0) == radio_row.likes == (1 if action == "like" else 0)
    assert counts.get(InteractionKind.SKIPPED, 0) == radio_row.skips == (1 if action == "skip" else 0)
    assert likes == (1 if action == "like" else 0)


async def test_a_double_click_and_a_stop_race(sessions, catalog: Catalog) -> None:
    """Two identical likes (a double click) count once; a stop racing an answer leaves a stopped radio."""
    _recs, radio = services(sessions)
    user = catalog.users[0]
    for _ in range(20):
        step = await radio.start(catalog.by_genre["jazz"][0], listener=listener(user))
        first, second = await asyncio.gather(
            radio.feedback(step.radio_id, step.track.id, "like", listener=listener(user)),
            radio.feedback(step.radio_id, step.track.id, "like", listener=listener(user)),
            return_exceptions=True,
        )
        assert [isinstance(r, RadioConflict) for r in (first, second)].count(True) == 1
        now = await radio.current(step.radio_id, listener=listener(user))
        assert (now.likes, now.position) == (1, 2)
    step = await radio.start(catalog.by_genre["jazz"][1], listener=listener(user))
    _answer, stop = await asyncio.gather(
        radio.feedback(step.radio_id, step.track.id, "skip", listener=listener(user)),
        radio.stop(step.radio_id, listener=listener(user)),
        return_exceptions=True,
    )
    assert stop.stopped
    assert (await radio.current(step.radio_id, listener=listener(user))).stopped


async def test_an_answer_runs_in_the_writer_thread_on_a_sqlite_file(sessions, catalog: Catalog) -> None:
    _recs, radio = services(sessions)
    assert radio._units.threaded == (sessions.kw["bind"].url.get_backend_name() == "sqlite")
    step = await radio.start(catalog.by_genre["rock"][4], listener=listener(catalog.users[0]))
    nxt = await radio.feedback(step.radio_id, step.track.id, "like", listener=listener(catalog.users[0]))
    assert (nxt.likes, nxt.position) == (1, 2) and nxt.track is not None and nxt.track.genres


async def test_two_instances_take_turns_on_one_radio(sessions, catalog: Catalog) -> None:
    """Each instance keeps the radio as it last left it and answers without reading it first; when
    the other instance moved it on or stopped it meanwhile, that view is stale: an answer to the
    new track is read afresh and counted, one to the old track is refused, and a stop holds."""
    _recs_a, a = services(sessions)
    _recs_b, b = services(sessions)
    user = listener(catalog.users[0])
    step = await a.start(catalog.by_genre["rock"][3], listener=user)
    played = [step.track.id]
    for i in range(12):
        here, there = (a, b) if i % 2 else (b, a)  # `here` last saw the radio two answers ago
        stale = step
        step = await here.feedback(step.radio_id, step.track.id, ("like", "skip", "next")[i % 3], listener=user)
        played.append(step.track.id)
        if i % 4 == 3:  # now and then the other one is asked about the track it still holds
            with pytest.raises(RadioConflict) as moved:
                await there.feedback(stale.radio_id, stale.track.id, "like", listener=user)
            assert moved.value.step.track.id == step.track.id and moved.value.step.position == step.position
    assert len(set(played)) == len(played)
    assert (step.likes, step.skips, step.position) == (4, 4, 13)
    async with sessions() as s:
        row = await s.scalar(select(RadioSession).where(RadioSession.public_id == step.radio_id))
        kinds = dict(
            (
                await s.execute(
                    select(Interaction.kind, func.count())
                    .where(Interaction.radio_session_id == row.id)
                    .group_by(Interaction.kind)
                )
            ).all()
        )
    assert (row.likes, row.skips, row.position) == (4, 4, 13)
    assert (kinds[InteractionKind.LIKED], kinds[InteractionKind.SKIPPED], kinds[InteractionKind.SHOWN]) == (4, 4, 13)
    await b.stop(step.radio_id, listener=user)
    with pytest.raises(RadioStopped):  # a's view still says "playing": the database says otherwise
        await a.feedback(step.radio_id, step.track.id, "like", listener=user)
    assert (await a.current(step.radio_id, listener=user)).likes == 4


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
        step = await radio.start(seed, listener=listener(user_id))
        picks = []
        for _ in range(n):
            picks.append(step.track.id)
            step = await radio.feedback(step.radio_id, step.track.id, "next", listener=listener(user_id))
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
    assert await radio.start_from_latest_like(listener=listener(user)) is None
    feedback = FeedbackService(sessions)
    await feedback.like(user, catalog.by_genre["jazz"][0])
    await feedback.like(user, catalog.by_genre["techno"][0])
    step = await radio.start_from_latest_like(listener=listener(user), chat_id=5)
    assert step is not None and step.track is not None
    assert catalog.genre_of(step.track.id) == "techno"


def test_the_pick_among_the_best_three_is_weighted_and_replays() -> None:
    """The next track is one of the best three, 0.6 / 0.25 / 0.15 over many positions, and the same
    one again for the same (salt, radio, position)."""
    from ml.recsys.index import Hit

    radio = RadioService.__new__(RadioService)
    radio.salt = 7
    hits = [Hit(p, 1.0 - p / 10, 0.1, "similar sound") for p in range(3)]
    picks = [radio._pick(hits, "radio-abc", position).position for position in range(6000)]
    share = [picks.count(p) / len(picks) for p in range(3)]
    assert abs(share[0] - 0.6) < 0.03 and abs(share[1] - 0.25) < 0.03 and abs(share[2] - 0.15) < 0.03, share
    assert picks == [radio._pick(hits, "radio-abc", position).position for position in range(6000)]
    assert radio._pick(hits[:1], "radio-abc", 3) == hits[0] and radio._pick([], "radio-abc", 3) is None
