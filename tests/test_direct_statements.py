"""A radio answer's statements run straight on the SQLite units thread's `sqlite3` connection
(db/direct.py): they must store exactly what SQLAlchemy Core stores, byte for byte, and give the same
answer, including the next track's typed values; elsewhere the same function runs through Core."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import Base
from db.direct import CoreRunner, DirectRunner, Runner
from db.engine import Units, create_engine, create_session_factory
from db.models import InteractionKind, RadioSession, RadioState, StoredTrack, Track, User
from db.repositories import record_radio_answer


async def _seed(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, list[int], list[int]]:
    """A user, six tracks (one with every kind of value, one mostly NULL) and two identical radios."""
    async with sessions.begin() as s:
        user = User(telegram_id=42, first_name="Ann")
        s.add(user)
        tracks = [
            Track(
                spotify_id=f"sp{i}",
                name=f"Song {i} — ünïcode",
                artists="A;B",
                album="Album" if i % 2 else None,
                duration_ms=200_000 + i,
                explicit=bool(i % 2) if i != 3 else None,
                popularity=50 + i,
                danceability=0.5 + i / 100 if i != 3 else None,
                energy=0.25,
                key=5.0,
                loudness=-7.5,
                mode=1.0,
                speechiness=0.05,
                acousticness=0.1,
                instrumentalness=0.0,
                liveness=0.12,
                valence=0.3,
                tempo=123.456,
                time_signature=4.0,
                release_year=1999 if i % 2 else None,
                created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            )
            for i in range(6)
        ]
        s.add_all(tracks)
        await s.flush()
        radios = [
            RadioSession(
                public_id=f"r{n}",
                owner="open",
                user_id=user.id,
                seed_track_id=tracks[0].id,
                current_track_id=tracks[1].id,
                position=1,
                state=RadioState.ACTIVE,
            )
            for n in range(2)
        ]
        s.add_all(radios)
        await s.flush()
        return user.id, [t.id for t in tracks], [r.id for r in radios]


def _rows(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Rows as SQLite stores them (text, integers, reals: no SQLAlchemy processing)."""
    with sqlite3.connect(path) as db:
        return db.execute(sql, params).fetchall()


async def test_the_direct_path_stores_and_answers_exactly_what_core_does(tmp_path: Path) -> None:
    path = tmp_path / "encore.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = create_session_factory(engine)
    units = Units(sessions, engine)
    assert units.threaded
    try:
        user, tracks, (direct_radio, core_radio) = await _seed(sessions)
        assert isinstance(await units.run(lambda run: run), DirectRunner)
        core = sqlalchemy.create_engine(f"sqlite+pysqlite:///{path}")  # the same function through Core

        def through_core(unit: Callable[[Runner], object]) -> object:
            with core.begin() as conn:
                return unit(CoreRunner(conn))

        answers: dict[bool, list[object]] = {True: [], False: []}
        for direct, radio in ((True, direct_radio), (False, core_radio)):
            steps = [
                (1, tracks[1], tracks[2], [(tracks[1], InteractionKind.LIKED), (tracks[2], InteractionKind.SHOWN)]),
                (2, tracks[2], tracks[3], [(tracks[2], InteractionKind.SKIPPED), (tracks[3], InteractionKind.SHOWN)]),
                (3, tracks[3], None, [(tracks[3], InteractionKind.LIKED)]),  # the end: no next track
            ]
            for seen, track, nxt, events in steps:
                like_for = user if any(k == InteractionKind.LIKED for _t, k in events) else None
                unit = partial(
                    record_radio_answer,
                    radio_id=radio,
                    seen_position=seen,
                    track_id=track,
                    next_track_id=nxt,
                    events=events,
                    user_id=user,
                    like_for=like_for,
                )
                if direct:
                    answers[direct].append(await units.run(unit))
                    assert await units.run(unit) is None  # the same answer again: refused, nothing written
                else:
                    answers[direct].append(await asyncio.to_thread(through_core, unit))
                    assert await asyncio.to_thread(through_core, unit) is None
        for got, want in zip(answers[True], answers[False], strict=True):
            assert (got.position, got.likes, got.skips) == (want.position, want.likes, want.skips)  # type: ignore[attr-defined]
            got_track, want_track = got.next_track, want.next_track  # type: ignore[attr-defined]
            assert (got_track is None) == (want_track is None)
            if got_track is not None:
                for column in (c.key for c in Track.__table__.columns):
                    mine, theirs = getattr(got_track, column), getattr(want_track, column)
                    assert mine == theirs and type(mine) is type(theirs), column
        assert answers[True][0].next_track.created_at == datetime(2026, 1, 2, 3, 4, 5, 678901)  # type: ignore[attr-defined]
        assert answers[True][0].next_track.explicit is False  # type: ignore[attr-defined]

        columns = "position, likes, skips, current_track_id, state"
        stored = {
            r: _rows(path, f"SELECT {columns} FROM radio_sessions WHERE id = ?", r) for r in (direct_radio, core_radio)
        }
        assert stored[direct_radio] == stored[core_radio] == [(3, 2, 1, None, "active")]
        interactions = {
            r: _rows(
                path,
                "SELECT user_id, track_id, kind, context, typeof(created_at), length(created_at) "
                "FROM interactions WHERE radio_session_id = ? ORDER BY id",
                r,
            )
            for r in (direct_radio, core_radio)
        }
        assert interactions[direct_radio] == interactions[core_radio]
        assert [row[2] for row in interactions[direct_radio]] == ["liked", "shown", "skipped", "shown", "liked"]
        stamps = _rows(path, "SELECT updated_at FROM radio_sessions ORDER BY id")
        assert all(isinstance(s, str) and len(s) == len("2026-01-02 03:04:05.678901") for (s,) in stamps)
        assert _rows(path, "SELECT track_id, typeof(created_at) FROM likes ORDER BY track_id") == [
            (tracks[1], "text"),
            (tracks[3], "text"),
        ]
        async with sessions() as s:  # what was written reads back through the ORM
            radio = await s.scalar(select(RadioSession).where(RadioSession.id == direct_radio))
            assert radio is not None and radio.state == RadioState.ACTIVE and radio.updated_at.year >= 2026
        core.dispose()
    finally:
        await units.close()
        await engine.dispose()


def test_a_stored_track_has_every_column_of_a_track() -> None:
    assert set(StoredTrack.__annotations__) == {c.key for c in Track.__table__.columns}


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://"])
async def test_other_connections_run_through_core(url: str) -> None:
    """aiosqlite (and PostgreSQL, covered by the radio tests) run the unit on the async engine."""
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    units = Units(sessions, engine)
    try:
        assert not units.threaded
        assert isinstance(await units.run(lambda run: run), CoreRunner)
    finally:
        await units.close()
        await engine.dispose()


async def _units_on_file(tmp_path: Path) -> tuple[Units, sqlalchemy.ext.asyncio.AsyncEngine, Path, int]:
    path = tmp_path / "encore.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    units = Units(create_session_factory(engine), engine)
    _user, _tracks, (radio, _other) = await _seed(create_session_factory(engine))
    await units.run(lambda run: run.one(text("SELECT 1"), {}))  # the thread's connection is open
    return units, engine, path, radio


def _write_elsewhere(path: Path, radio: int) -> str:
    """A write on another connection, which fails at once if a write lock were held (the work must
    run outside the unit's transaction); the name of the thread it ran in."""
    with sqlite3.connect(path, timeout=0) as other:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE radio_sessions SET diversity = 0.5 WHERE id = ?", (radio,))
    return threading.current_thread().name


async def test_work_then_unit_hands_over_once_and_the_work_holds_no_transaction(tmp_path: Path) -> None:
    """`Units.run_after`: the search (work) runs on the searches' thread before the unit's
    transaction opens, that thread queues the unit straight to the writer's thread, and the unit
    gets what it found."""
    units, engine, path, radio = await _units_on_file(tmp_path)
    searches = ThreadPoolExecutor(1, thread_name_prefix="searches")

    def unit(run: Runner, found: str) -> tuple[str, str, object]:
        row = run.one(text("SELECT diversity FROM radio_sessions WHERE id = :r"), {"r": radio})
        return found, threading.current_thread().name, row

    try:
        found, (_, ran_in, row) = await units.run_after(partial(_write_elsewhere, path, radio), unit, offload=searches)
        assert found.startswith("searches")
        assert ran_in.startswith("sqlite-units") and row == (0.5,)
    finally:
        searches.shutdown()
        await units.close()
        await engine.dispose()


async def test_pipelined_work_and_unit_failures_reach_the_caller_and_nothing_is_half_written(tmp_path: Path) -> None:
    units, engine, _path, radio = await _units_on_file(tmp_path)
    searches = ThreadPoolExecutor(1, thread_name_prefix="searches")
    ran: list[str] = []

    def unit(run: Runner, found: int) -> int:
        ran.append("unit")
        run.one(text("UPDATE radio_sessions SET diversity = :d WHERE id = :r RETURNING id"), {"d": 0.9, "r": radio})
        if found < 0:
            raise RuntimeError("the unit failed after its first write")
        return found

    def broken_search() -> int:
        raise ValueError("the search failed")

    async def diversity() -> object:
        return await units.run(
            lambda run: run.one(text("SELECT diversity FROM radio_sessions WHERE id = :r"), {"r": radio})
        )

    try:
        before = await diversity()
        with pytest.raises(ValueError, match="the search failed"):
            await units.run_after(broken_search, unit, offload=searches)
        assert ran == []  # no unit after a failed search
        with pytest.raises(RuntimeError, match="after its first write"):
            await units.run_after(lambda: -1, unit, offload=searches)
        assert ran == ["unit"] and await diversity() == before  # rolled back as a whole
        assert await units.run_after(lambda: 7, unit, offload=searches) == (7, 7)
        assert await diversity() == (0.9,)
    finally:
        searches.shutdown()
        await units.close()
        await engine.dispose()


async def test_a_caller_cancelled_mid_search_leaves_the_unit_to_finish_without_a_loop_error(tmp_path: Path) -> None:
    """The client went away while its search ran: the unit still runs as queued (the answer is
    counted, as with any hand-over to a thread), and settling the cancelled future is no error."""
    units, engine, _path, _radio = await _units_on_file(tmp_path)
    searches = ThreadPoolExecutor(1, thread_name_prefix="searches")
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    searching, go, unit_done = threading.Event(), threading.Event(), threading.Event()

    def search() -> int:
        searching.set()
        go.wait(30)
        return 1

    def unit(run: Runner, found: int) -> int:
        run.one(text("SELECT 1"), {})
        unit_done.set()
        return found

    try:
        task = asyncio.create_task(units.run_after(search, unit, offload=searches))
        await asyncio.to_thread(searching.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go.set()
        assert await asyncio.to_thread(unit_done.wait, 30)
        await units.run(lambda run: run.one(text("SELECT 1"), {}))  # after the unit: its settle is queued
        await asyncio.sleep(0)
        assert errors == []
    finally:
        go.set()
        loop.set_exception_handler(None)
        searches.shutdown()
        await units.close()
        await engine.dispose()


async def test_work_then_unit_without_a_units_thread_offloads_the_work() -> None:
    engine = create_engine("sqlite+aiosqlite://")
    units = Units(create_session_factory(engine), engine)
    searches = ThreadPoolExecutor(1, thread_name_prefix="searches")

    def work() -> int:
        assert threading.current_thread().name.startswith("searches")
        return 41

    try:
        done, got = await units.run_after(
            work, lambda run, found: run.one(text("SELECT :n + 1"), {"n": found}), offload=searches
        )
        assert (done, got) == (41, (42,))
    finally:
        searches.shutdown()
        await units.close()
        await engine.dispose()


async def test_statements_built_per_call_do_not_pile_up(tmp_path: Path) -> None:
    """The compiled forms are kept by statement identity; statements built afresh on every call
    (not the hot ones, which are built once) must not be kept without end."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'encore.db'}")
    units = Units(create_session_factory(engine), engine)
    try:
        for n in range(600):
            assert await units.run(lambda run, n=n: run.one(text("SELECT :n"), {"n": n})) == (n,)
        assert len(DirectRunner._compiled) <= 256
    finally:
        await units.close()
        await engine.dispose()
