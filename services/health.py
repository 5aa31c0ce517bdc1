"""Liveness and readiness: is the database reachable, which model and catalogue are loaded."""

from __future__ import annotations

import asyncio
import logging
from importlib import metadata

from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import ping
from services.dto import HealthReport

log = logging.getLogger(__name__)


def encore_version() -> str:
    try:
        return metadata.version("encore")
    except metadata.PackageNotFoundError:
        return "0.0.0+local"


class HealthService:
    def __init__(self, engine: AsyncEngine, *, version: str | None = None, timeout: float = 2.0) -> None:
        self._engine = engine
        self._version = version or encore_version()
        self._timeout = timeout
        self._details: dict[str, object] = {}

    def set_detail(self, name: str, value: object) -> None:
        """Components report what they loaded (model version, catalogue size …)."""
        self._details[name] = value

    async def check(self) -> HealthReport:
        database = await self._database_ok()
        return HealthReport(
            status="ok" if database else "degraded",
            database=database,
            version=self._version,
            details=dict(self._details),
        )

    async def _database_ok(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await ping(self._engine)
            return True
        except Exception as exc:  # any failure means "not reachable" for a health check
            log.warning("database health check failed: %s", type(exc).__name__)
            return False
