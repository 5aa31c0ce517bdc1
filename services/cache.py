"""A small async cache over `cache_entries`: namespaces, TTLs, and cached "no answer" too."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories import CacheRepository

log = logging.getLogger(__name__)

MAX_KEY = 256
MAX_NAMESPACE = 32


class _Miss:
    def __repr__(self) -> str:
        return "MISS"


MISS: Final = _Miss()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CacheService:
    """`get` returns `MISS` when nothing fresh is stored, so `None` can be cached as an answer.

    A broken cache (database down, table missing) never breaks the caller: reads miss, writes are
    dropped, both are logged.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    @staticmethod
    def make_key(key: str) -> str:
        """Keys longer than the column hold are replaced by a stable hash."""
        if len(key) <= MAX_KEY:
            return key
        return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()

    async def get(self, namespace: str, key: str) -> Any:
        try:
            async with self._sessions() as session:
                entry = await CacheRepository(session).get(
                    namespace[:MAX_NAMESPACE], self.make_key(key), now=self._clock()
                )
        except SQLAlchemyError:
            log.exception("cache read failed (%s)", namespace)
            return MISS
        if entry is None:
            return MISS
        value = entry.value
        return value.get("v") if isinstance(value, dict) else value

    async def get_many(self, namespace: str, keys: list[str]) -> dict[str, Any]:
        """Fresh values of several keys at once (missing ones left out; a broken cache: none)."""
        stored = {self.make_key(k): k for k in keys}
        try:
            async with self._sessions() as session:
                found = await CacheRepository(session).get_many(
                    namespace[:MAX_NAMESPACE], list(stored), now=self._clock()
                )
        except SQLAlchemyError:
            log.exception("cache read failed (%s)", namespace)
            return {}
        return {stored[k]: (v.get("v") if isinstance(v, dict) else v) for k, v in found.items()}

    async def put(self, namespace: str, key: str, value: Any, ttl: timedelta) -> None:
        try:
            async with self._sessions.begin() as session:
                await CacheRepository(session).put(
                    namespace[:MAX_NAMESPACE], self.make_key(key), {"v": value}, self._clock() + ttl
                )
        except SQLAlchemyError:
            log.exception("cache write failed (%s)", namespace)

    async def purge_expired(self) -> int:
        async with self._sessions.begin() as session:
            return await CacheRepository(session).purge_expired(self._clock())
