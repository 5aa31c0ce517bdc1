"""APScheduler: hourly, drop expired cache rows; once a minute, deliver the daily picks that are due
(when a bot is there to deliver them). It runs whether or not the Telegram bot does."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from services.cache import CacheService
from services.jobs import DailyPicksService

log = logging.getLogger(__name__)

JOB_ID = "daily_picks"


class Scheduler(AsyncIOScheduler):
    """An AsyncIOScheduler whose `stop()` lets running jobs finish before shutting down.

    APScheduler's own `shutdown()` cancels the tasks of jobs that are running (its asyncio executor
    cannot wait); a refresh cancelled in the middle of a query logs a traceback and may hold a pooled
    connection while the engine is disposed. Jobs added with `add_tracked_job` are awaited by `stop()`
    (up to its grace period); what is still running then is cancelled and logged in one line.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._running: set[asyncio.Task[Any]] = set()

    def add_tracked_job(self, func: Callable[..., Awaitable[None]], *args: Any, **kwargs: Any) -> Any:
        @functools.wraps(func)
        async def tracked(*call_args: Any, **call_kwargs: Any) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                await func(*call_args, **call_kwargs)
            except asyncio.CancelledError:
                log.warning("scheduled job %s stopped by the shutdown", func.__name__)
            finally:
                if task is not None:
                    self._running.discard(task)

        return self.add_job(tracked, *args, **kwargs)

    async def stop(self, grace: float = 15.0) -> None:
        """No new runs; running jobs finish (waiting at most `grace` seconds); then shut down."""
        if not self.running:
            return
        self.pause()
        running = set(self._running)
        if running:
            log.info("waiting for %d scheduled job(s) to finish", len(running))
            await asyncio.wait(running, timeout=grace)
        self.shutdown(wait=False)
        if running:  # let cancelled ones (past the timeout) run their handlers before the loop moves on
            await asyncio.wait(running, timeout=1.0)


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
) -> Scheduler:
    """Not started: the caller starts it inside the running loop and shuts it down. `refresh`: the
    catalogue refresh every `refresh_seconds` (each process runs its own: it fills that process's
    in-memory indices)."""
    scheduler = Scheduler(timezone=UTC)
    if refresh is not None:
        scheduler.add_tracked_job(
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
        scheduler.add_tracked_job(
            purge_cache, "cron", minute=17, args=[cache], id="purge_cache", max_instances=1, coalesce=True
        )
    return scheduler


def _add_picks(scheduler: Scheduler, picks: DailyPicksService) -> None:
    scheduler.add_tracked_job(
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
