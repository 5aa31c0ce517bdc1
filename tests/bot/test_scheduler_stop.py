"""Stopping the scheduler never cancels a job in the middle of its work (the catalogue refresh was
cancelled mid-query at shutdown: APScheduler logged a traceback and the engine was disposed under it)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from bot.scheduler import Scheduler, create_scheduler


async def test_stop_lets_a_running_job_finish(caplog: pytest.LogCaptureFixture) -> None:
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def refresh() -> int:
        started.set()
        await release.wait()
        finished.set()
        return 0

    scheduler = create_scheduler(None, None, refresh=refresh, refresh_seconds=3600)
    job = scheduler.get_job("refresh_catalogue")
    assert job is not None
    scheduler.start()
    job.modify(next_run_time=datetime.now(UTC))
    await started.wait()
    stopping = asyncio.create_task(scheduler.stop())
    await asyncio.sleep(0)  # stop() is now waiting for the job
    assert not stopping.done() and not finished.is_set()
    release.set()
    await stopping
    assert finished.is_set() and not scheduler.running
    assert "raised an exception" not in caplog.text and "Traceback" not in caplog.text


async def test_a_job_past_the_grace_period_is_stopped_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    started = asyncio.Event()
    never = asyncio.Event()

    async def stuck() -> None:
        started.set()
        await never.wait()

    scheduler = Scheduler(timezone=UTC)
    scheduler.add_tracked_job(stuck, "date", run_date=datetime.now(UTC), id="stuck")
    scheduler.start()
    await started.wait()
    with caplog.at_level(logging.INFO):
        await scheduler.stop(grace=0.05)
    assert not scheduler.running
    assert "scheduled job stuck stopped by the shutdown" in caplog.text
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records]
