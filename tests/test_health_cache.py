"""HealthService reuses one database ping for `max_age` seconds and shares a ping in flight."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from db.engine import create_engine
from services import health
from services.health import HealthService


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Pings:
    """Stands in for db.engine.ping: counts calls; fails while `down`; can be held at a gate."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, engine: Any) -> None:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise ConnectionRefusedError("database down")


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> Pings:
    fake = Pings()
    monkeypatch.setattr(health, "ping", fake)
    return fake


async def test_one_ping_serves_checks_for_max_age_then_a_new_one_sees_the_change(pings: Pings) -> None:
    clock = Clock()
    service = HealthService(create_engine("sqlite+aiosqlite://"), version="t", max_age=1.0, clock=clock)
    assert (await service.check()).database is True
    clock.now += 0.5
    assert (await service.check()).database is True
    assert pings.calls == 1  # the second check reused the first ping

    pings.down = True
    clock.now += 0.4
    assert (await service.check()).status == "ok"  # still within max_age of the last ping
    clock.now += 0.2  # 1.1 s after the ping: asked again
    report = await service.check()
    assert (report.database, report.status, pings.calls) == (False, "degraded", 2)

    pings.down = False  # a failure is not kept longer than a success
    clock.now += 1.0
    assert (await service.check()).database is True
    assert pings.calls == 3


async def test_max_age_zero_pings_on_every_check(pings: Pings) -> None:
    service = HealthService(create_engine("sqlite+aiosqlite://"), version="t", max_age=0.0)
    for _ in range(3):
        await service.check()
    assert pings.calls == 3


async def test_checks_during_a_ping_wait_for_it_and_a_cancelled_caller_does_not_cancel_it(pings: Pings) -> None:
    service = HealthService(create_engine("sqlite+aiosqlite://"), version="t", max_age=1.0, clock=Clock())
    pings.gate = asyncio.Event()
    first = asyncio.create_task(service.check())
    await pings.entered.wait()
    others = [asyncio.create_task(service.check()) for _ in range(5)]
    await asyncio.sleep(0)  # let them reach the shared ping
    first.cancel()  # the caller that started the ping goes away
    pings.gate.set()
    reports = await asyncio.gather(*others)
    assert all(r.database for r in reports)
    assert pings.calls == 1
    with pytest.raises(asyncio.CancelledError):
        await first
