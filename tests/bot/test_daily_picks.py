"""Daily picks: once per user and day (also across restarts and two instances), paced, blocked users."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.scheduler import JOB_ID, create_scheduler, run_daily_picks
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.texts import Texts
from db.base import Base
from db.engine import create_engine, create_session_factory
from db.models import DailyPick, Track, User
from db.repositories import UserRepository
from services.dto import Recommendation, TrackInfo
from services.jobs import DailyPicksService, DeliveryStatus, Pacer
from services.users import UserService
from tests.fakes.bot import RecordingBot
from tests.fakes.services import make_track
from tests.fakes.telegram import FakeTelegram

TEN = datetime(2026, 11, 24, 10, 0, 30, tzinfo=UTC)


class RecordingNotifier:
    def __init__(self, blocked: set[int] = frozenset(), delay: float = 0.0) -> None:  # type: ignore[assignment]
        self.blocked = set(blocked)
        self.delay = delay
        self.sent: list[tuple[int, int, float]] = []  # (telegram id, track id, monotonic time)
        self.reasons: dict[int, str] = {}

    async def send_pick(self, telegram_id: int, language: str, pick: Recommendation) -> DeliveryStatus:
        if self.delay:
            await asyncio.sleep(self.delay)
        if telegram_id in self.blocked:
            return DeliveryStatus.BLOCKED
        self.sent.append((telegram_id, pick.track.id, time.monotonic()))
        self.reasons[telegram_id] = pick.reason
        return DeliveryStatus.SENT


class FixedTaste:
    def __init__(self, tracks: dict[int, TrackInfo]) -> None:
        self.tracks = tracks

    async def for_you(self, user_id: int, n: int = 10) -> list[Recommendation]:
        track = self.tracks.get(user_id)
        return [Recommendation(track=track, score=1.0, reason="because you liked jazz")] if track else []


async def seed(
    sessions: async_sessionmaker[AsyncSession], users: int, *, hour: int = 10, tracks: int = 3, zone: str = "UTC"
) -> list[int]:
    service = UserService(sessions)
    ids = []
    for i in range(users):
        info = await service.touch_telegram(9000 + i, first_name=f"u{i}", language_code="en" if i % 2 else "ru")
        await service.set_timezone(info.id, zone)
        await service.subscribe(info.id, hour)
        ids.append(info.id)
    async with sessions.begin() as session:
        for i in range(tracks):
            session.add(Track(spotify_id=f"pop{i:018d}", name=f"Popular {i}", artists="Star", popularity=90 - i))
    return ids


async def picks_of(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[int, date, str]]:
    async with sessions() as session:
        rows = (await session.scalars(select(DailyPick).order_by(DailyPick.user_id))).all()
        return [(r.user_id, r.day, r.status) for r in rows]


async def test_sends_once_a_day_and_stops_for_blocked_users(sessions: async_sessionmaker[AsyncSession]) -> None:
    ids = await seed(sessions, 5)
    users = UserService(sessions)
    await users.subscribe(ids[4], 12)  # later today
    notifier = RecordingNotifier(blocked={9001})
    picks = DailyPicksService(sessions, None, notifier, rate=1000)

    stats = await picks.run_due(TEN)
    assert (stats.due, stats.sent, stats.blocked) == (4, 3, 1)
    assert sorted(t for t, _, _ in notifier.sent) == [9000, 9002, 9003]
    assert all(track for _, track, _ in notifier.sent)  # popular fallback: no taste yet
    blocked = await users.get(ids[1])
    assert blocked is not None and blocked.active is False

    # Later the same day (and after a "restart": a new service) nobody gets a second pick …
    again = await DailyPicksService(sessions, None, notifier, rate=1000).run_due(TEN.replace(hour=13))
    assert (again.sent, again.blocked) == (1, 0)  # … except the 12:00 user, now due
    assert len(notifier.sent) == 4
    # … and the next day the blocked user is skipped.
    tomorrow = await picks.run_due(TEN.replace(day=25, hour=23))
    assert (tomorrow.due, tomorrow.sent) == (4, 4)
    statuses = {(uid, status) for uid, day, status in await picks_of(sessions) if day == TEN.date()}
    assert (ids[1], "blocked") in statuses and (ids[0], "sent") in statuses


async def test_pick_comes_from_taste_with_fallback(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    ids = await seed(sqlite_sessions, 2)
    taste_track = make_track(3, "jazz", name="Popular 2")  # a track that is in the database
    notifier = RecordingNotifier()
    await DailyPicksService(sqlite_sessions, FixedTaste({ids[0]: taste_track}), notifier).run_due(TEN)
    assert {t: track for t, track, _ in notifier.sent}[9000] == 3
    assert notifier.reasons == {9000: "because you liked jazz", 9001: "popular right now"}


async def test_nothing_to_pick_is_recorded_not_retried(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    await seed(sqlite_sessions, 1, tracks=0)
    notifier = RecordingNotifier()
    stats = await DailyPicksService(sqlite_sessions, None, notifier).run_due(TEN)
    assert (stats.empty, stats.sent) == (1, 0)
    assert [s for _, _, s in await picks_of(sqlite_sessions)] == ["empty"]


@pytest.fixture(params=["sqlite-file", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def two_instances(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], async_sessionmaker[AsyncSession]]]:
    """Two engines (as two processes would have) on one database."""
    if request.param == "sqlite-file":
        url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    else:
        url = request.getfixturevalue("pg_database_url")
    first, second = create_engine(url), create_engine(url)
    async with first.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    yield create_session_factory(first), create_session_factory(second)
    await first.dispose()
    await second.dispose()


async def test_two_instances_never_double_send(two_instances) -> None:
    one, two = two_instances
    await seed(one, 30)
    notifier_a, notifier_b = RecordingNotifier(delay=0.002), RecordingNotifier(delay=0.002)
    a = DailyPicksService(one, None, notifier_a, rate=2000)
    b = DailyPicksService(two, None, notifier_b, rate=2000)
    stats = await asyncio.gather(a.run_due(TEN), b.run_due(TEN), a.run_due(TEN))
    recipients = [t for t, _, _ in notifier_a.sent + notifier_b.sent]
    assert sorted(recipients) == [9000 + i for i in range(30)]
    assert sum(s.sent for s in stats) == 30
    assert len(await picks_of(one)) == 30


async def test_sending_is_paced(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    await seed(sqlite_sessions, 30)
    notifier = RecordingNotifier()
    await DailyPicksService(sqlite_sessions, None, notifier, rate=25).run_due(TEN)
    times = sorted(t for _, _, t in notifier.sent)
    assert len(times) == 30
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t - start < 1.0)
        assert in_window <= 25
    assert times[-1] - times[0] >= 29 / 25 - 0.05


async def test_pacer_spaces_starts() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(10, clock=lambda: now[0], sleep=fake_sleep)
    for _ in range(4):
        await pacer.wait()
    assert slept == pytest.approx([0.1, 0.1, 0.1])


async def test_telegram_notifier_maps_forbidden_to_blocked() -> None:
    bot = RecordingBot()
    bot.server.blocked.add(42)
    notifier = TelegramNotifier(bot, Texts())
    pick = Recommendation(track=make_track(5, "rock", name="Tom & <Jerry>"), score=1, reason="new <for> you")
    assert await notifier.send_pick(41, "ru", pick) is DeliveryStatus.SENT
    assert await notifier.send_pick(42, "en", pick) is DeliveryStatus.BLOCKED
    sent = bot.calls("sendMessage")[0]
    assert "Tom &amp; &lt;Jerry&gt;" in sent["text"] and "трек дня" in sent["text"]
    assert sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "t:r:5"


async def test_scheduler_runs_every_minute_and_survives_errors(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        calls = 0

        async def run_due(self, now: datetime) -> None:
            Broken.calls += 1
            raise RuntimeError("database down")

    scheduler = create_scheduler(Broken())  # type: ignore[arg-type]
    job = scheduler.get_job(JOB_ID)
    assert job is not None and str(job.trigger).startswith("cron[") and "second='5'" in str(job.trigger)
    assert job.max_instances == 1 and job.coalesce is True
    await run_daily_picks(Broken())  # type: ignore[arg-type]
    assert Broken.calls == 1 and "daily picks run failed" in caplog.text


async def test_cache_purge_job_removes_expired_answers(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    from datetime import timedelta

    from bot.scheduler import purge_cache
    from services.cache import MISS, CacheService

    now = datetime(2026, 1, 1, tzinfo=UTC)
    clock = {"now": now}
    cache = CacheService(sqlite_sessions, clock=lambda: clock["now"])
    await cache.put("yt", "old", {"v": 1}, timedelta(minutes=1))
    await cache.put("yt", "new", {"v": 2}, timedelta(days=1))
    clock["now"] = now + timedelta(hours=1)
    scheduler = create_scheduler(None, cache)  # type: ignore[arg-type]
    assert scheduler.get_job("purge_cache") is not None
    await purge_cache(cache)
    assert await cache.get("yt", "old") is MISS
    assert await cache.get("yt", "new") == {"v": 2}
    async with sqlite_sessions() as session:
        from sqlalchemy import func, select

        from db.models import CacheEntry

        assert await session.scalar(select(func.count()).select_from(CacheEntry)) == 1


async def test_daily_pick_e2e_over_the_wire(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    """The real Bot through AiohttpSession to the fake server: 403 → inactive, and the card is strict-valid."""
    from aiogram import Bot
    from aiogram.client.default import DefaultBotProperties
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    server = FakeTelegram()
    await server.start()
    bot = Bot(
        server.token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(server.base_url)),
        default=DefaultBotProperties(parse_mode="HTML"),
    )
    try:
        ids = await seed(sqlite_sessions, 3)
        server.blocked.add(9002)
        stats = await DailyPicksService(sqlite_sessions, None, TelegramNotifier(bot, Texts())).run_due(TEN)
        assert (stats.sent, stats.blocked) == (2, 1)
        assert sorted(int(c.params["chat_id"]) for c in server.calls_of("sendMessage") if c.ok) == [9000, 9001]
        async with sqlite_sessions() as session:
            inactive = await UserRepository(session).get(ids[2])
            assert inactive is not None and inactive.active is False
            active = (await session.scalars(select(User.id).where(User.active.is_(True)))).all()
            assert sorted(active) == ids[:2]
    finally:
        await bot.session.close()
        await server.close()


@pytest.mark.redis
async def test_shared_pacer_paces_two_instances_together(redis_url: str, redis_prefix: str) -> None:
    """Two processes' pacers on one Redis draw their slots from one pace: every slot is reserved at
    least 1/rate after the previous one, whichever instance takes it. Checked on the reserved slots
    (the shared key holds the next free one), not on a clock, so a busy machine cannot fail it."""
    from redis.asyncio import Redis

    from services.jobs import SharedPacer

    key = f"{redis_prefix}:pace"
    clients = [Redis.from_url(redis_url), Redis.from_url(redis_url)]
    try:
        slept: list[float] = []

        async def record(delay: float) -> None:  # reserve only; nobody needs to wait in this test
            slept.append(delay)

        pacers = [SharedPacer(c, 50, key=key, sleep=record) for c in clients]
        next_free: list[float] = []
        for i in range(40):  # the two instances alternate
            await pacers[i % 2].wait()
            next_free.append(float(await clients[0].get(key)))
        gaps = [b - a for a, b in itertools.pairwise(next_free)]
        assert min(gaps) >= 1 / 50 - 1e-6  # never two slots closer than the rate allows
        assert len(slept) <= 40 and all(d > 0 for d in slept)  # later slots had to wait
        assert 0 < await clients[0].pttl(key) <= 2000  # the key expires on its own
    finally:
        for c in clients:
            await c.aclose()


async def test_picks_arrive_at_the_local_hour_in_every_zone(sessions: async_sessionmaker[AsyncSession]) -> None:
    """09:00 in Moscow is 06:00 UTC, 21:30 in New York is 02:30 UTC the next day (in November), and a
    new Russian user starts on Moscow time; each gets one pick per *local* day."""
    service = UserService(sessions)
    moscow = await service.touch_telegram(9100, first_name="Маша", language_code="ru")
    assert moscow.timezone == "Europe/Moscow"  # from the language
    await service.subscribe(moscow.id, 9)
    york = await service.touch_telegram(9101, first_name="Ned", language_code="en")
    assert york.timezone == "UTC"
    await service.set_timezone(york.id, "america/new_york")
    await service.subscribe(york.id, 21, 30)
    async with sessions.begin() as session:
        session.add(Track(spotify_id="pop" + "0" * 18, name="Popular", artists="Star", popularity=90))
    notifier = RecordingNotifier()
    picks = DailyPicksService(sessions, None, notifier, rate=1000)

    def at(hour: int, minute: int = 0, day: int = 24) -> datetime:
        return datetime(2026, 11, day, hour, minute, 30, tzinfo=UTC)

    assert (await picks.run_due(at(5, 59))).due == 0  # 08:59 in Moscow
    assert (await picks.run_due(at(6, 0))).sent == 1  # 09:00 in Moscow
    assert [t for t, _, _ in notifier.sent] == [9100]
    assert (await picks.run_due(at(23, 0))).due == 0  # 18:00 in New York; Moscow already has today's
    assert (await picks.run_due(at(2, 29, day=25))).due == 0  # 21:29 on the 24th in New York
    assert (await picks.run_due(at(2, 30, day=25))).sent == 1
    assert [t for t, _, _ in notifier.sent] == [9100, 9101]
    days = {(uid, day) for uid, day, _ in await picks_of(sessions)}
    assert days == {(moscow.id, date(2026, 11, 24)), (york.id, date(2026, 11, 24))}  # local days
    assert (await picks.run_due(at(6, 0, day=25))).sent == 1  # Moscow's next morning


async def test_due_subscribers_is_one_query_whatever_the_zones(sqlite_engine, sqlite_sessions) -> None:
    """Many users in many zones: the users table is read by two statements (the distinct zones, then the
    due users), not once per user or per zone."""
    from sqlalchemy import event

    service = UserService(sqlite_sessions)
    zones = ["UTC", "Europe/Moscow", "Asia/Tokyo", "America/New_York", "Asia/Kolkata"]
    for i in range(40):
        info = await service.touch_telegram(9200 + i, first_name=f"u{i}", language_code="en")
        await service.set_timezone(info.id, zones[i % len(zones)])
        await service.subscribe(info.id, 0)
    async with sqlite_sessions.begin() as session:
        session.add(Track(spotify_id="pop" + "1" * 18, name="Popular", artists="Star", popularity=90))
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(sqlite_engine.sync_engine, "before_cursor_execute", record)
    try:
        stats = await DailyPicksService(sqlite_sessions, None, RecordingNotifier(), rate=10_000).run_due(TEN)
    finally:
        event.remove(sqlite_engine.sync_engine, "before_cursor_execute", record)
    assert stats.sent == 40
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM users" in s]
    assert len(reads) == 2, reads


def test_pick_times_people_type() -> None:
    from services.errors import InvalidInput
    from services.schedule import PickTime, default_timezone, parse_pick_time, parse_timezone

    cases = {
        "9": PickTime(9),
        "09": PickTime(9),
        "9am": PickTime(9),
        "9 AM": PickTime(9),
        "9 a.m.": PickTime(9),
        "12am": PickTime(0),
        "12pm": PickTime(12),
        "9pm": PickTime(21),
        "21:30": PickTime(21, 30),
        "9.30": PickTime(9, 30),
        "9:30pm": PickTime(21, 30),
        "21h": PickTime(21),
        "7h05": PickTime(7, 5),
        "0": PickTime(0),
        " 23:59 ": PickTime(23, 59),
    }
    for text, expected in cases.items():
        assert parse_pick_time(text) == expected, text
    for bad in ("25", "9:75", "13pm", "0am", "morning", "", "9:5", "-1", "9::30", "1000"):
        with pytest.raises(InvalidInput):
            parse_pick_time(bad)
    assert parse_timezone("europe/moscow") == "Europe/Moscow"
    assert parse_timezone("America/New York") == "America/New_York"
    assert parse_timezone("utc") == "UTC"
    with pytest.raises(InvalidInput):
        parse_timezone("Mars/Olympus")
    assert (default_timezone("ru"), default_timezone("en"), default_timezone(None)) == ("Europe/Moscow", "UTC", "UTC")
