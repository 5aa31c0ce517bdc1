"""APScheduler: hourly, drop expired cache rows; once a minute, deliver the daily picks that are due
(when a bot is there to deliver them). It runs whether or not the Telegram bot does."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from services.cache import CacheService
from services.jobs import DailyPicksService

log = logging.getLogger(__name__)

JOB_ID = "daily_picks"


async def run_daily_picks(picks: DailyPicksService) -> None:
    try:
        await picks.run_due(datetime.now(UTC))
    except Exception:
        log.exception("the daily picks run failed; the next minute tries again")


async def purge_cache(cache: CacheService) -> None:
    try:
        removed = await cache.purge_expired()
        log.info("provider cache: %d expired answers removed", removed)
    except Exception:
        log.exception("purging the provider cache failed; the next run tries again")


async def refresh_catalogue(refresh: Callable[[], Awaitable[int]]) -> None:
    try:
        added = await refresh()
        if added:
            log.info("catalogue refresh: %d tracks stored elsewhere added to the indices", added)
    except Exception:
        log.exception("the catalogue refresh failed; the next run tries again")


def create_scheduler(
    picks: DailyPicksService | None,
    cache: CacheService | None = None,
    *,
    refresh: Callable[[], Awaitable[int]] | None = None,
    refresh_seconds: float = 20.0,
) -> AsyncIOScheduler:
    """Not started: the caller starts it inside the running loop and shuts it down. `refresh`: the
    catalogue refresh every `refresh_seconds` (each process runs its own: it fills that process's
    in-memory indices)."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    if refresh is not None:
        scheduler.add_job(
            refresh_catalogue,
            "interval",
            seconds=refresh_seconds,
            args=[refresh],
            id="refresh_catalogue",
            max_instances=1,
            coalesce=True,
        )
    if picks is not None:
        _add_picks(scheduler, picks)
    if cache is not None:
        # Expired answers are never served (reads check the expiry); this only reclaims the space.
        scheduler.add_job(
            purge_cache, "cron", minute=17, args=[cache], id="purge_cache", max_instances=1, coalesce=True
        )
    return scheduler


def _add_picks(scheduler: AsyncIOScheduler, picks: DailyPicksService) -> None:
    scheduler.add_job(
        run_daily_picks,
        "cron",
        second=5,
        args=[picks],
        id=JOB_ID,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=50,
        replace_existing=True,
    )
