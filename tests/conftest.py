"""Shared fixtures: databases (SQLite and PostgreSQL), Redis, settings.

PostgreSQL and Redis tests skip with a reason when the servers are unreachable — except with
CI=true, where an unreachable server fails the run instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.base import Base
from db.engine import create_engine, create_session_factory

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


# No test reaches the network: every provider a test does not point at a fake answers from a closed
# local port (refused at once) instead of the real service.
_OFFLINE = {
    "SPOTIFY_API_URL": "http://127.0.0.1:9/v1/",
    "SPOTIFY_TOKEN_URL": "http://127.0.0.1:9/api/token",
    "SPOTIFY_ACCOUNTS_URL": "http://127.0.0.1:9/",
    "YOUTUBE_API_URL": "http://127.0.0.1:9/",
    "YOUTUBE_OEMBED_URL": "http://127.0.0.1:9/oembed",
    "RECCOBEATS_API_URL": "http://127.0.0.1:9/v1/",
    "DEEZER_API_URL": "http://127.0.0.1:9/",
    "TELEGRAM_API_URL": "http://127.0.0.1:9",
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the mark added here counts
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Items that share a node id (schemathesis makes one per API operation, all with the test's id)
    are marked `serial`. pytest-xdist tells items apart by node id, so a worker would run only one of
    them: `make test` runs them in a pass of their own (`-m serial`), and a worker that is handed
    one anyway fails it (`pytest_runtest_setup`) rather than let the others go unrun."""
    counts = Counter(item.nodeid for item in items)
    shared = {nodeid for nodeid, n in counts.items() if n > 1}
    for item in items:
        if item.nodeid in shared:
            item.add_marker(pytest.mark.serial)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") and item.get_closest_marker("serial"):
        pytest.fail(
            f"{item.nodeid} shares its node id with other items, which pytest-xdist cannot tell apart: "
            "deselect them with -m 'not serial' and run them in a pass without -n",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _offline_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _OFFLINE.items():
        monkeypatch.setenv(name, value)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, port: int) -> None:
    """Skip (locally) or fail (CI=true) when a server the test needs is unreachable."""
    if _reachable(url, port):
        return
    message = f"{name} is unreachable at {url}"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true forbids skipping", pytrace=False)
    pytest.skip(message)


def _run_in_thread(coro: Any) -> Any:
    """Run a coroutine to completion on its own loop (fixtures may be set up inside a running loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A PostgreSQL database of the caller's own (empty), dropped when the block ends."""
    require_service("PostgreSQL", PG_URL, 5432)
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = PG_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run_in_thread(run(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        _run_in_thread(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def emptied(url: str) -> Iterator[str]:
    """The (session's) database with no tables and no alembic version, before the block and after it:
    for tests that run migrations on it."""

    async def reset() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        await engine.dispose()

    _run_in_thread(reset())
    try:
        yield url
    finally:
        _run_in_thread(reset())


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this pytest process, dropped at the end."""
    with scratch_postgres("encore_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine with the schema created, once on SQLite and once on PostgreSQL.

    SQLite is a file, as in production (WAL, a connection per session): an in-memory database shares
    one connection between all sessions, so concurrent transactions would not be isolated there."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'encore.db'}"
    else:
        url = request.getfixturevalue("pg_database_url")
    eng = create_engine(url)
    async with eng.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    yield eng
    await eng.dispose()


@pytest.fixture
async def sqlite_engine() -> AsyncIterator[AsyncEngine]:
    """In-memory SQLite only: for service tests where the backend does not matter."""
    eng = create_engine("sqlite+aiosqlite://")
    async with eng.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
def sqlite_sessions(sqlite_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(sqlite_engine)


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own: runs (and tests) sharing the Redis server never see each other."""
    return f"encore-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_url(redis_prefix: str) -> AsyncIterator[str]:
    """The real Redis; this test writes only keys under `redis_prefix`, and those are deleted after it
    (the database is never flushed: another run may be using it)."""
    require_service("Redis", REDIS_URL, 6379)
    from redis.asyncio import Redis

    yield REDIS_URL
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# -- a tiny genre model, trained once per session ----------------------------------------------------


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.ml.conftest import make_catalog_frame, make_seed_frame

    root = tmp_path_factory.mktemp("data")
    raw = root / "raw"
    raw.mkdir()
    make_seed_frame().to_csv(raw / "seed_6genre_train.csv", index=False)
    make_catalog_frame().to_csv(raw / "spotify_tracks_114genre_train.csv.gz", index=False)
    return root


@pytest.fixture(scope="session")
def trained_models(tiny_data_dir: Path) -> Path:
    """Both tasks trained on the tiny data, production model only: <models>/seed6, <models>/catalog
    (the catalog artefact with its full, audio-only and analysis heads and the metadata blend)."""
    from ml.training.pipeline import train

    models = tiny_data_dir / "models"
    small = {
        "catboost": {"iterations": 80},
        "lightgbm": {"n_estimators": 40},
        "mlp": {"hidden_layer_sizes": (32,), "batch_size": 32},
    }
    train(
        tiny_data_dir,
        models,
        tasks=("seed6", "catalog"),
        zoo=False,
        seed=3,
        reports_dir=tiny_data_dir / "reports",
        overrides=small,
    )
    return models
