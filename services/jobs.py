"""Daily picks: every subscriber gets one track from their taste at their hour, once a day.

Delivery is claimed in the database (`daily_picks`, unique per user and day) *before* anything is
sent, so a restart, a slow run or a second instance against the same database never sends twice.
Sending goes through a `Notifier` (the bot implements it) and is paced to `rate` messages a second:
per process by default, or across every instance sharing one Redis (`SharedPacer`), since Telegram's
limit (about 30 messages a second) is per bot, not per process.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories import DailyPickRepository, TrackRepository, UserRepository
from services.dto import Recommendation, TrackInfo
from services.errors import EncoreError
from services.schedule import local_day_and_minute

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


class DeliveryStatus(enum.StrEnum):
    SENT = "sent"
    BLOCKED = "blocked"  # the user blocked the bot (or deleted the chat): stop sending
    FAILED = "failed"  # anything else; not retried the same day, so nobody gets a pick twice


class Notifier(Protocol):
    async def send_pick(self, telegram_id: int, language: str, pick: Recommendation) -> DeliveryStatus: ...


class TasteSource(Protocol):
    async def for_you(self, user_id: int, n: int = 10) -> list[Recommendation]: ...


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    due: int = 0
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    taken: int = 0  # claimed by another run or instance first
    empty: int = 0  # nothing to pick (empty catalogue)


@dataclass(frozen=True, slots=True)
class _Due:
    user_id: int
    telegram_id: int
    language: str
    day: date  # the user's local date: one pick per user and local day


class Pacer:
    """Spaces starts `1 / rate` seconds apart, and never lets more than `rate` start within a second.

    The second check guards against timers that fire a little early.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._starts: deque[float] = deque(maxlen=max(1, int(rate)))

    async def wait(self) -> None:
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await self._sleep(slot - now)
        if len(self._starts) == self._starts.maxlen:
            gap = 1.0 - (self._clock() - self._starts[0])
            if gap > 0:
                await self._sleep(gap + 0.001)
        self._starts.append(self._clock())


class Pacing(Protocol):
    async def wait(self) -> None: ...


class SharedPacer:
    """`rate` starts a second across every process that shares one Redis key.

    Each start reserves the next free slot atomically (a Lua script on Redis's own clock, so hosts'
    clocks need not agree) and sleeps until it; slots are `1 / rate` apart for all instances together.
    """

    _RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local ttl = math.ceil((slot + interval - now) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', slot + interval), 'PX', ttl)
return string.format('%.6f', slot - now)
"""

    def __init__(
        self,
        redis: Redis,
        rate: float,
        key: str = "encore:picks:pace",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        self._key = key
        self._sleep = sleep
        self._reserve = redis.register_script(self._RESERVE)

    async def wait(self) -> None:
        delay = float(await self._reserve(keys=[self._key], args=[repr(self._interval)]))
        if delay > 0:
            await self._sleep(delay)


class DailyPicksService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        recommendations: TasteSource | None,
        notifier: Notifier | None = None,
        *,
        rate: float = 25.0,
        batch: int = 1000,
        concurrency: int = 25,
        pacer: Callable[[], Pacing] | None = None,
    ) -> None:
        """`pacer` makes the pacing for one run (default: `Pacer(rate)` in this process). Nothing is
        delivered until a `notifier` is given here or attached (the bot attaches itself when it runs)."""
        self._sessions = sessions
        self._recommendations = recommendations
        self._notifier = notifier
        self._rate = rate
        self._new_pacer: Callable[[], Pacing] = pacer or (lambda: Pacer(rate))
        self._batch = batch
        self._concurrency = concurrency
        self._lock = asyncio.Lock()
        # Deliveries send concurrently, but their database work (claim, pick, mark) runs one at a
        # time: an in-memory SQLite engine shares one connection, where interleaved transactions
        # would commit or roll back each other's claims.
        self._db = asyncio.Lock()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def can_deliver(self) -> bool:
        return self._notifier is not None

    def attach(self, notifier: Notifier, pacer: Callable[[], Pacing] | None = None) -> None:
        """Deliver through `notifier` from now on (and pace with `pacer`, when given)."""
        self._notifier = notifier
        if pacer is not None:
            self._new_pacer = pacer

    async def run_due(self, now: datetime | None = None) -> DeliveryStats:
        """Deliver today's pick to every subscriber whose local pick time has come and who has none
        for their local day yet (`users.timezone`; one query finds them all, whatever their zones)."""
        if self._notifier is None:
            return DeliveryStats()
        now = (now or datetime.now(UTC)).astimezone(UTC)
        async with self._lock:
            async with self._sessions() as session:
                repo = UserRepository(session)
                local = {zone: local_day_and_minute(zone, now) for zone in await repo.subscriber_timezones()}
                rows = await repo.due_subscribers(local, limit=self._batch)
                due = [_Due(u.id, u.telegram_id, u.language, d) for u, d in rows if u.telegram_id is not None]
            if not due:
                return DeliveryStats()
            pacer = self._new_pacer()
            gate = asyncio.Semaphore(self._concurrency)
            results: list[str] = []

            async def deliver(user: _Due) -> None:
                async with gate:
                    try:
                        results.append(await self._deliver(user, user.day, pacer))
                    except Exception:  # one user's failure must not stop the others
                        log.exception("daily pick for user %s failed", user.user_id)
                        results.append(DeliveryStatus.FAILED)

            async with asyncio.TaskGroup() as group:
                for user in due:
                    group.create_task(deliver(user))
        stats = DeliveryStats(
            due=len(due),
            sent=results.count(DeliveryStatus.SENT),
            blocked=results.count(DeliveryStatus.BLOCKED),
            failed=results.count(DeliveryStatus.FAILED),
            taken=results.count("taken"),
            empty=results.count("empty"),
        )
        log.info("daily picks at %s: %s", now.strftime("%Y-%m-%d %H:%M UTC"), stats)
        return stats

    async def _deliver(self, user: _Due, day: date, pacer: Pacing) -> str:
        async with self._db:
            async with self._sessions.begin() as session:
                if not await DailyPickRepository(session).claim(user.user_id, day):
                    return "taken"
            try:
                pick = await self._pick(user.user_id, day)
            except Exception:
                log.exception("could not choose a daily pick for user %s", user.user_id)
                pick = None
        if pick is None:
            async with self._db, self._sessions.begin() as session:
                await DailyPickRepository(session).mark(user.user_id, day, status="empty")
            return "empty"
        await pacer.wait()
        assert self._notifier is not None  # run_due checked
        try:
            status = await self._notifier.send_pick(user.telegram_id, user.language, pick)
        except Exception:
            log.exception("sending the daily pick to user %s failed", user.user_id)
            status = DeliveryStatus.FAILED
        async with self._db, self._sessions.begin() as session:
            await DailyPickRepository(session).mark(user.user_id, day, status=status.value, track_id=pick.track.id)
            if status is DeliveryStatus.BLOCKED:
                await UserRepository(session).update(user.user_id, active=False)
        if status is DeliveryStatus.BLOCKED:
            log.info("user %s blocked the bot; marked inactive", user.user_id)
        return status

    async def _pick(self, user_id: int, day: date) -> Recommendation | None:
        """The best match for the user's taste; popular tracks when there is no taste yet."""
        if self._recommendations is not None:
            try:
                recommendations = await self._recommendations.for_you(user_id, n=5)
            except EncoreError as exc:
                log.info("no taste-based pick for user %s: %s", user_id, exc.code)
                recommendations = []
            if recommendations:
                return recommendations[0]
        async with self._sessions() as session:
            popular = await TrackRepository(session).popular(limit=50)
            if not popular:
                return None
            row = popular[(user_id + day.toordinal()) % len(popular)]
            return Recommendation(track=TrackInfo.from_row(row), score=0.0, reason="popular right now")
