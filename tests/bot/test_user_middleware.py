"""UserMiddleware: who is written before the handler, and who is refreshed after it (UserCache)."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiogram.types import User

from bot.telegram.middlewares import UserCache, UserMiddleware
from services.dto import UserInfo


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Users:
    """Stands in for UserService.touch_telegram; logs calls in `events` next to the handler's."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.touches = 0
        self.fail = False

    async def touch_telegram(self, telegram_id: int, **names: Any) -> UserInfo:
        self.touches += 1
        self.events.append("touch")
        if self.fail:
            raise ConnectionError("database down")
        return UserInfo(
            id=telegram_id + 1000,
            telegram_id=telegram_id,
            first_name=names.get("first_name"),
            language="en",
            diversity=0.1 * self.touches,  # tells the states apart
            subscribed=False,
            pick_hour=10,
        )


def tg(first_name: str = "Ann") -> User:
    return User(id=42, is_bot=False, first_name=first_name, language_code="en")


async def run(middleware: UserMiddleware, users: Users, tg_user: User) -> UserInfo:
    """One update through the middleware; the handler returns the user it was given."""

    async def handler(event: Any, data: dict[str, Any]) -> UserInfo:
        users.events.append("handler")
        return data["user"]

    data: dict[str, Any] = {"event_from_user": tg_user, "users": users}
    return await middleware(handler, object(), data)  # type: ignore[arg-type]


async def test_first_contact_is_written_before_the_handler_then_the_cache_answers() -> None:
    events: list[str] = []
    users, clock = Users(events), Clock()
    middleware = UserMiddleware(UserCache(ttl=60, clock=clock))
    first = await run(middleware, users, tg())
    assert events == ["touch", "handler"] and first.id == 1042
    clock.now += 59
    assert await run(middleware, users, tg()) == first
    assert events == ["touch", "handler", "handler"]


async def test_past_ttl_the_cached_user_is_used_and_refreshed_after_the_handler() -> None:
    events: list[str] = []
    users, clock = Users(events), Clock()
    cache = UserCache(ttl=60, clock=clock, stale_for=600)
    middleware = UserMiddleware(cache)
    first = await run(middleware, users, tg())
    events.clear()
    clock.now += 61
    seen = await run(middleware, users, tg())
    assert seen == first  # the handler did not wait for the database
    assert events == ["handler", "touch"]  # … which was refreshed after it
    refreshed = cache.get(42, (tg().first_name, None, None, "en"))
    assert refreshed is not None and refreshed.diversity != first.diversity
    events.clear()
    assert await run(middleware, users, tg()) == refreshed
    assert events == ["handler"]  # fresh again: no write


async def test_a_rename_or_a_long_absence_is_written_before_the_handler() -> None:
    events: list[str] = []
    users, clock = Users(events), Clock()
    middleware = UserMiddleware(UserCache(ttl=60, clock=clock, stale_for=600))
    await run(middleware, users, tg())
    events.clear()
    renamed = await run(middleware, users, tg("Anna"))
    assert events == ["touch", "handler"] and renamed.first_name == "Anna"
    events.clear()
    clock.now += 60 + 601
    await run(middleware, users, tg("Anna"))
    assert events == ["touch", "handler"]


async def test_a_failed_refresh_after_the_handler_does_not_fail_the_update() -> None:
    events: list[str] = []
    users, clock = Users(events), Clock()
    middleware = UserMiddleware(UserCache(ttl=60, clock=clock))
    first = await run(middleware, users, tg())
    clock.now += 61
    users.fail = True
    assert await run(middleware, users, tg()) == first
    users.fail = False
    events.clear()
    await run(middleware, users, tg())  # still stale: refreshed after this one
    assert events == ["handler", "touch"]


async def test_a_change_a_handler_remembers_is_kept() -> None:
    users, clock = Users([]), Clock()
    cache = UserCache(ttl=60, clock=clock)
    middleware = UserMiddleware(cache)
    first = await run(middleware, users, tg())
    changed = dataclasses.replace(first, language="ru")
    cache.remember(changed)
    assert await run(middleware, users, tg()) == changed
