"""Engine and session factory. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from db.direct import CoreRunner, DirectRunner, Runner

log = logging.getLogger(__name__)

T = TypeVar("T")
P = TypeVar("P")

SQLITE_MMAP_BYTES = 1 << 30


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine; SQLite gets foreign keys, WAL and a busy timeout on every connection."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        kwargs["connect_args"] = {"timeout": 30}
        if database in ("", ":memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            from pathlib import Path

            Path(database).parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=10)
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _install_sqlite_pragmas(engine, in_memory=parsed.database in (None, "", ":memory:"))
    return engine


def _install_sqlite_pragmas(engine: AsyncEngine | Engine, *, in_memory: bool) -> None:
    target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(target, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Pages read through a shared read-only mapping of the file (counted once for every
            # connection and process, given back under memory pressure) rather than copied into
            # each connection's own page cache on the heap; a virtual size, not an allocation.
            cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.close()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def backend_name(engine: AsyncEngine) -> str:
    return engine.url.get_backend_name()


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database (raises when it cannot be reached)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


class Units:
    """Runs a unit of work — one plain function over a `db.direct.Runner` — in one transaction.

    On a SQLite file the units run one at a time in a thread of their own, straight on a plain
    `sqlite3` connection to the same file that the thread keeps (`DirectRunner`): one hand-over from
    the event loop per unit, where aiosqlite takes about five per statement (each a queue and a
    wake-up); no Session, pool check-out or execution context per statement; and the writers of this
    process queue here in order instead of sleeping in SQLite's busy handler. Elsewhere (PostgreSQL,
    an in-memory SQLite) the same function runs through Core on the async engine, in
    `AsyncSession.run_sync` (`CoreRunner`)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        engine: AsyncEngine | None = None,
        *,
        checkpoint_every: int = 250,
    ) -> None:
        self._sessions = sessions
        self._sync: Engine | None = None
        self._raw: Any = None  # the thread's pooled connection, opened by its first unit
        self._thread: ThreadPoolExecutor | None = None
        self._checkpoints: Checkpoints | None = None
        url = engine.url if engine is not None else None
        if url is not None and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self._sync = sqlalchemy.create_engine(
                url.set(drivername="sqlite+pysqlite"), connect_args={"timeout": 30}, pool_size=1, max_overflow=0
            )
            _install_sqlite_pragmas(self._sync, in_memory=False)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-units")
            self._checkpoints = Checkpoints(url.database or "", checkpoint_every)

    @property
    def threaded(self) -> bool:
        return self._thread is not None

    @property
    def checkpoints(self) -> Checkpoints | None:
        """Who copies the WAL back into a SQLite file (None: not a SQLite file)."""
        return self._checkpoints

    async def run(self, fn: Callable[[Runner], T]) -> T:
        if self._thread is None:
            async with self._sessions.begin() as s:
                return await s.run_sync(lambda session: fn(CoreRunner(session.connection())))
        return await asyncio.get_running_loop().run_in_executor(self._thread, self.run_here, fn)

    async def run_after(
        self,
        work: Callable[[], P],
        unit: Callable[[Runner, P], T],
        *,
        offload: Executor | None = None,
    ) -> tuple[P, T]:
        """`work()` (blocking CPU work, outside any transaction) on `offload` (asyncio's default pool
        when None, then the unit as `run` runs it), then `unit(runner, what it gave)` in one
        transaction.

        With the units' own thread the two are a pipeline with one wake-up of the event loop: the
        work's thread queues the unit straight to the units thread, which settles the caller's
        future. So the units thread does only units, and the next answer's search runs while this
        one's unit commits (both on the units thread, the search held every write behind it, and
        that thread was the radio's bottleneck: busy 99 % of the time, much of it waiting for the
        GIL)."""
        loop = asyncio.get_running_loop()
        if self._thread is None or offload is None:
            done = await loop.run_in_executor(offload, work)
            return done, await self.run(lambda run: unit(run, done))
        units = self._thread
        result: asyncio.Future[tuple[P, T]] = loop.create_future()

        def settle(outcome: tuple[P, T] | None, error: BaseException | None) -> None:
            if result.done():  # the caller was cancelled: the unit still ran (or failed) as queued
                return
            if error is not None:
                result.set_exception(error)
            else:
                result.set_result(outcome)  # type: ignore[arg-type]

        def report(outcome: tuple[P, T] | None, error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(settle, outcome, error)

        def second(done: P) -> None:
            try:
                outcome = (done, self.run_here(lambda run: unit(run, done)))
            except BaseException as exc:  # handed to the caller, who re-raises it
                report(None, exc)
            else:
                report(outcome, None)

        def first() -> None:
            try:
                done = work()
                units.submit(second, done)
            except BaseException as exc:  # as above (a shut-down units thread too)
                report(None, exc)

        offload.submit(first)  # not run_in_executor: its own wake-up of the loop is what is saved
        return await result

    def run_here(self, fn: Callable[[Runner], T]) -> T:
        """`fn` in one transaction, in the calling thread, which must be the units' own (blocking:
        for work that already runs there, e.g. after a search)."""
        assert self._sync is not None and self._checkpoints is not None
        if self._raw is None:
            self._raw = self._sync.raw_connection()
            # This connection's commits never copy the log back into the file (a checkpoint, with
            # its fsyncs, stalled every answer queued behind it): `Checkpoints` does that aside.
            self._raw.dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
        dbapi = self._raw.dbapi_connection
        with dbapi:  # commits, or rolls back when `fn` raises
            done = fn(DirectRunner(dbapi, self._sync.dialect))
        self._checkpoints.committed()
        return done

    async def close(self) -> None:
        """Closes the thread's connection (in that thread: sqlite3 connections stay in theirs)."""
        if self._thread is None or self._sync is None:
            return
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close_here)
        self._thread.shutdown(wait=True)
        self._thread = None

    def _close_here(self) -> None:
        assert self._sync is not None and self._checkpoints is not None
        self._checkpoints.close()
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        self._sync.dispose()


class Checkpoints:
    """Copies a SQLite file's write-ahead log back into the file (a PASSIVE checkpoint: it neither
    waits for nor blocks readers and writers) in a thread and on a connection of its own, once every
    `every` commits of the units thread, whose own connection does not checkpoint. SQLite's
    automatic checkpoint runs inside the commit that crosses 1,000 pages of log, so every ~250th
    radio answer waited for the copy and its fsyncs (5-15 ms here), and the answers queued behind it
    with it."""

    def __init__(self, database: str, every: int = 250) -> None:
        self._database = database
        self._every = every
        self._since = 0
        self._pending: Future[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._db: sqlite3.Connection | None = None
        self.done = 0  # checkpoints run
        self.last: tuple[int, int, int] | None = None  # (busy, frames in the log, frames copied)

    def committed(self) -> None:
        """A commit happened (called from the units thread)."""
        self._since += 1
        if self._since >= self._every and (self._pending is None or self._pending.done()):
            self._since = 0
            self._pending = self._thread.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        if self._db is None:
            self._db = sqlite3.connect(self._database, timeout=30, check_same_thread=True)
        try:
            busy, frames, copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.last = (int(busy), int(frames), int(copied))
        except sqlite3.Error:
            log.warning("WAL checkpoint of %s failed; the next one retries", self._database, exc_info=True)
        self.done += 1

    def settled(self) -> None:
        """Blocks until the checkpoint under way, if any, is over."""
        if self._pending is not None:
            self._pending.result()

    def close(self) -> None:
        """Waits for a checkpoint under way, then runs a last one (when anything was committed since
        the previous) and closes the connection."""
        if self._since:
            self._thread.submit(self._checkpoint).result()
        self._thread.submit(self._close_here).result()
        self._thread.shutdown(wait=True)

    def _close_here(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
