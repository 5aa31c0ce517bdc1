"""A radio from a whole playlist (RadioService.start_from_tracks through PlaylistService.start_radio),
over the generated three-genre catalogue, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Like, RadioSession, Track
from ml.features import AUDIO_FEATURES
from ml.recsys.index import Query
from ml.recsys.scaling import PARTIAL_SCALED, SCALED_COLUMNS
from ml.recsys.taste import mean_query
from services.dto import Listener
from services.errors import InvalidInput, NoFeatures, RadioNotFound
from services.playlists import PlaylistService
from services.radio import RadioService
from services.recommender import RecommendationService
from tests.recs.conftest import Catalog

Sessions = async_sessionmaker[AsyncSession]


def build(sessions: Sessions) -> tuple[RecommendationService, RadioService, PlaylistService]:
    recs = RecommendationService(sessions)
    radio = RadioService(sessions, recs)
    return recs, radio, PlaylistService(sessions, radio)


async def jazz_playlist(
    playlists: PlaylistService, who: Listener, catalog: Catalog, n: int = 12
) -> tuple[str, list[int]]:
    pid = (await playlists.create(who, "Late night jazz")).id
    songs = catalog.by_genre["jazz"][: n * 2 : 2]
    for t in songs:
        await playlists.add(who, pid, t)
    return pid, songs


async def test_a_playlist_radio_plays_its_genre_and_none_of_its_songs(sessions: Sessions, catalog: Catalog) -> None:
    _recs, radio, playlists = build(sessions)
    who = Listener.telegram(catalog.users[0])
    pid, songs = await jazz_playlist(playlists, who, catalog)

    step = await playlists.start_radio(who, pid, diversity=0.2)
    played = [step.track.id]
    for i in range(39):
        action = ("next", "skip", "next")[i % 3]
        step = await radio.feedback(step.radio_id, step.track.id, action, listener=who)
        assert step.track is not None
        played.append(step.track.id)
    assert not set(played) & set(songs)  # the playlist's own songs never come back
    assert len(set(played)) == 40
    genres = Counter(catalog.genre_of(t) for t in played[:10])
    assert genres["jazz"] >= 8, genres  # the mean of jazz songs stays in jazz at first

    async with sessions() as s:
        row = await s.scalar(select(RadioSession).where(RadioSession.public_id == step.radio_id))
        taste = await s.scalar(select(RadioSession.taste).where(RadioSession.public_id == step.radio_id))
    assert row is not None and row.seed_track_id == songs[0]  # one seed column: the first song
    assert taste is not None and sorted(taste["seeds"]) == sorted(songs)
    assert row.owner == who.owner  # the radio belongs to whoever started it
    with pytest.raises(RadioNotFound):
        await radio.current(step.radio_id, listener=Listener.telegram(catalog.users[1]))


async def test_likes_inside_a_playlist_radio_steer_it_and_are_kept(sessions: Sessions, catalog: Catalog) -> None:
    """A playlist half rock, half jazz: liking the rock picks (and skipping the jazz ones) makes the
    radio play more rock than the same radio left alone; the likes are the person's likes."""
    ids = iter(f"steer-radio-{n:010d}" for n in range(100))
    recs = RecommendationService(sessions)
    radio = RadioService(sessions, recs, new_id=lambda: next(ids))
    playlists = PlaylistService(sessions, radio)
    who = Listener.telegram(catalog.users[0])
    pid = (await playlists.create(who, "Both")).id
    for t in catalog.by_genre["rock"][:30:5] + catalog.by_genre["jazz"][:30:5]:
        await playlists.add(who, pid, t)

    async def run(steer: bool) -> list[str]:
        step = await playlists.start_radio(who, pid, diversity=0.0)
        genres = []
        for _ in range(16):
            genre = catalog.genre_of(step.track.id)
            genres.append(genre)
            action = ("like" if genre == "rock" else "skip") if steer else "next"
            step = await radio.feedback(step.radio_id, step.track.id, action, listener=who)
        return genres

    control = await run(False)
    treated = await run(True)
    assert treated[8:].count("rock") > control[8:].count("rock"), (treated, control)
    liked_in_radio = [g for g in treated if g == "rock"]
    async with sessions() as s:
        kept = (await s.scalars(select(Like.track_id).where(Like.user_id == who.user_id))).all()
    assert len(kept) == len(liked_in_radio)  # likes in the radio are likes, as in any radio


async def test_a_restart_and_a_new_index_still_keep_the_playlist_out(tmp_path) -> None:
    from db.base import Base
    from db.engine import create_engine, create_session_factory
    from tests.recs.conftest import fill_catalog

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = create_session_factory(engine)
    catalog = await fill_catalog(sessions)
    _recs, radio, playlists = build(sessions)
    who = Listener.telegram(catalog.users[0])
    pid, songs = await jazz_playlist(playlists, who, catalog, n=20)
    step = await playlists.start_radio(who, pid)
    played = [step.track.id]
    for _ in range(10):
        step = await radio.feedback(step.radio_id, step.track.id, "next", listener=who)
        played.append(step.track.id)

    # A new song with features joins the catalogue, and a fresh process builds a different index:
    # the radio's taste is replayed from the playlist's songs, which stay out.
    async with sessions.begin() as s:
        first = catalog.tracks[0]
        features = {c: getattr(first, c) for c in AUDIO_FEATURES}
        s.add(
            Track(spotify_id="sp_new_song_after_start", name="New", artists="New", search_key="new - new", **features)
        )
    _recs, radio, _playlists = build(sessions)
    for _ in range(40):
        step = await radio.feedback(step.radio_id, step.track.id, "skip", listener=who)
        if step.track is None:
            break
        played.append(step.track.id)
    assert len(played) > 30
    assert not set(played) & set(songs)
    assert len(set(played)) == len(played)
    await engine.dispose()


async def test_empty_and_featureless_playlists(sessions: Sessions, catalog: Catalog) -> None:
    _recs, _radio, playlists = build(sessions)
    who = Listener.telegram(catalog.users[0])
    empty = (await playlists.create(who, "Empty")).id
    with pytest.raises(InvalidInput):
        await playlists.start_radio(who, empty)
    async with sessions.begin() as s:
        bare = Track(spotify_id="sp_no_features_at_all", name="Demo", artists="Nobody", search_key="nobody - demo")
        s.add(bare)
        await s.flush()
        bare_id = bare.id
    silent = (await playlists.create(who, "No features")).id
    await playlists.add(who, silent, bare_id)
    with pytest.raises(NoFeatures):
        await playlists.start_radio(who, silent)
    # One placeable song is enough; the featureless one is just left out of the mean.
    await playlists.add(who, silent, catalog.by_genre["rock"][0])
    step = await playlists.start_radio(who, silent)
    assert step.track is not None and step.track.id not in (bare_id, catalog.by_genre["rock"][0])


def test_mean_query_averages_and_handles_partial_songs() -> None:
    n = len(SCALED_COLUMNS)
    cols = [SCALED_COLUMNS.index(c) for c in PARTIAL_SCALED]
    full_a = Query(np.full(n, 1.0, dtype=np.float32), np.asarray([1.0, 0.0], dtype=np.float32))
    full_b = Query(np.full(n, 3.0, dtype=np.float32), None)
    partial = np.full(n, 5.0, dtype=np.float32)
    partial[cols] = 0.0
    half = Query(partial, np.asarray([0.0, 1.0], dtype=np.float32), partial=True)

    mean = mean_query([full_a, full_b, half])
    others = [i for i in range(n) if i not in cols]
    assert np.allclose(mean.audio[others], 3.0)
    assert np.allclose(mean.audio[cols], 2.0)  # only the songs that know key, mode, time signature
    assert mean.genre is not None and np.allclose(mean.genre, [0.5, 0.5])
    assert not mean.partial
    only_partial = mean_query([half, half])
    assert only_partial.partial and np.allclose(only_partial.audio[cols], 0.0)
    with pytest.raises(ValueError):
        mean_query([])
