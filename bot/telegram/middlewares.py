"""Cross-cutting work around handlers: user upsert, throttling, callback answers, domain errors."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiogram import BaseMiddleware, Dispatcher
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message, TelegramObject, User
from aiogram.utils.callback_answer import CallbackAnswer, CallbackAnswerMiddleware

from bot.telegram.texts import Texts, language_of
from services.dto import UserInfo
from services.errors import EncoreError, RadioConflict, RadioStopped, TrackNotFound
from services.users import UserService, pick_language

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UpdateTracker(BaseMiddleware):
    """Knows which updates are being handled (outermost on `update`), so that shutdown can wait for
    them and then cancel what is left. Polling and the webhook run each update as its own task."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._running)

    def running(self) -> list[asyncio.Task[Any]]:
        """The update tasks being handled now."""
        return list(self._running)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - aiogram always runs handlers in a task
            return await handler(event, data)
        self._running.add(task)
        try:
            return await handler(event, data)
        finally:
            self._running.discard(task)

    async def drain(self, grace: float) -> int:
        """Wait up to `grace` seconds for running updates, then cancel the rest; how many were cancelled."""
        current = asyncio.current_task()
        pending = {t for t in self._running if t is not current and not t.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("shutdown: %d update handler(s) still running after %.0f s were cancelled", len(pending), grace)
            await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)


class ThrottleBackend(Protocol):
    async def hit(self, key: str, window: float) -> int:
        """Count one event for `key`; returns how many happened in the current window."""


class MemoryThrottle:
    """Fixed windows in a dict; good for one process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}
        self._last_sweep = clock()

    async def hit(self, key: str, window: float) -> int:
        now = self._clock()
        if now - self._last_sweep > 60:
            self._windows = {k: v for k, v in self._windows.items() if now - v[0] < window}
            self._last_sweep = now
        start, count = self._windows.get(key, (now, 0))
        if now - start >= window:
            start, count = now, 0
        count += 1
        self._windows[key] = (start, count)
        return count


class RedisThrottle:
    """The same windows in Redis, shared by every instance: INCR, and PEXPIRE NX starts the window."""

    def __init__(self, redis: Redis, prefix: str = "encore:throttle") -> None:
        self._redis = redis
        self._prefix = prefix

    async def hit(self, key: str, window: float) -> int:
        name = f"{self._prefix}:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.pexpire(name, int(window * 1000), nx=True)
            count, _ = await pipe.execute()
        return int(count)


class ThrottlingMiddleware(BaseMiddleware):
    """At most `limit` updates per user per `window` seconds; one polite note, then silence."""

    def __init__(self, backend: ThrottleBackend, texts: Texts, *, limit: int = 8, window: float = 2.0) -> None:
        self._backend = backend
        self._texts = texts
        self._limit = limit
        self._window = window

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: User | None = data.get("event_from_user")
        if tg_user is None:
            return await handler(event, data)
        count = await self._backend.hit(str(tg_user.id), self._window)
        if count <= self._limit:
            return await handler(event, data)
        language = pick_language(tg_user.language_code)
        if isinstance(event, CallbackQuery):
            # A button must always be answered, or the client shows a spinner; only the first says why.
            note = self._texts.labels(language)("alert_throttled") if count == self._limit + 1 else None
            await event.answer(note)
        elif isinstance(event, Message) and count == self._limit + 1:
            await event.answer(self._texts.render(language, "throttled"))
        log.info("throttled user %s (%d events in %.0fs)", tg_user.id, count, self._window)
        return None


class UserCache:
    """Recently seen users, so that a burst of updates does not write `last_seen` on every one.

    An entry is fresh for `ttl` seconds; the handlers that change a user (settings, subscriptions)
    put the new state back here. After `ttl` it is still used for `stale_for` seconds more, and
    refreshed from the database once the update it served has been answered (see
    `UserMiddleware`). Another instance sees such a change within `ttl` (plus that one update).
    """

    def __init__(
        self,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        size: int = 50_000,
        stale_for: float = 600.0,
    ) -> None:
        self._ttl = ttl
        self._stale_for = stale_for
        self._clock = clock
        self._size = size
        self._entries: dict[int, tuple[float, tuple[Any, ...], UserInfo]] = {}

    def get(self, telegram_id: int, fingerprint: tuple[Any, ...]) -> UserInfo | None:
        """The user while fresh, else None."""
        user, fresh = self.lookup(telegram_id, fingerprint)
        return user if fresh else None

    def lookup(self, telegram_id: int, fingerprint: tuple[Any, ...]) -> tuple[UserInfo | None, bool]:
        """(user, fresh): the user while fresh or stale (past `ttl`, within `stale_for`), else (None, False).
        A changed fingerprint (the person renamed themselves, changed language) is a miss."""
        entry = self._entries.get(telegram_id)
        if entry is None or entry[1] != fingerprint:
            return None, False
        now = self._clock()
        if now <= entry[0]:
            return entry[2], True
        if now <= entry[0] + self._stale_for:
            return entry[2], False
        return None, False

    def put(self, telegram_id: int, fingerprint: tuple[Any, ...], user: UserInfo) -> None:
        if len(self._entries) >= self._size:
            now = self._clock()
            self._entries = {k: v for k, v in self._entries.items() if v[0] + self._stale_for >= now}
            if len(self._entries) >= self._size:
                self._entries.clear()
        self._entries[telegram_id] = (self._clock() + self._ttl, fingerprint, user)

    def remember(self, user: UserInfo) -> None:
        """A handler changed `user`: keep the fresh state (same names as before)."""
        if user.telegram_id is None:
            return
        entry = self._entries.get(user.telegram_id)
        if entry is not None:
            self._entries[user.telegram_id] = (entry[0], entry[1], user)


def _fingerprint(tg_user: User) -> tuple[Any, ...]:
    return (tg_user.first_name, tg_user.last_name, tg_user.username, tg_user.language_code)


class UserMiddleware(BaseMiddleware):
    """Creates or refreshes the Encore user behind every update and hands it over as `user`.

    A user seen for the first time (or renamed, or not seen for `stale_for`) is written before the
    handler runs: the handler needs their id. A known user whose cache entry is past its `ttl` is
    handed over as cached and refreshed (names, last-seen, settings changed elsewhere) after the
    handler: the answer does not wait for that write (it was ~5 ms of CPU and a database commit
    in front of every update, once a minute per person). The refresh runs in the update's own task,
    so shutdown waits for it like for the handler.
    """

    def __init__(self, cache: UserCache | None = None) -> None:
        self._cache = cache or UserCache()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: User | None = data.get("event_from_user")
        data["user_cache"] = self._cache
        if tg_user is None or tg_user.is_bot:
            return await handler(event, data)
        fingerprint = _fingerprint(tg_user)
        user, fresh = self._cache.lookup(tg_user.id, fingerprint)
        users: UserService = data["users"]
        if user is None:
            user, fresh = await self._touch(users, tg_user, fingerprint), True
        data["user"] = user
        result = await handler(event, data)
        if not fresh and not self._cache.lookup(tg_user.id, fingerprint)[1]:  # nobody refreshed it meanwhile
            try:
                await self._touch(users, tg_user, fingerprint)
            except Exception:  # the update was answered; the next one tries again
                log.warning("could not refresh user %s", tg_user.id, exc_info=True)
        return result

    async def _touch(self, users: UserService, tg_user: User, fingerprint: tuple[Any, ...]) -> UserInfo:
        user = await users.touch_telegram(
            tg_user.id,
            first_name=tg_user.first_name,
            last_name=tg_user.last_name,
            username=tg_user.username,
            language_code=tg_user.language_code,
        )
        self._cache.put(tg_user.id, fingerprint, user)
        return user


def alert_key(exc: EncoreError) -> str:
    if isinstance(exc, TrackNotFound):
        return "alert_not_found"
    if isinstance(exc, RadioStopped):
        return "alert_radio_over"
    if isinstance(exc, RadioConflict):
        return "alert_radio_moved_on"
    if exc.code in ("radio_not_found", "invalid_input", "playlist_not_found"):
        return "alert_stale"
    return "alert_error"


# Out-of-date buttons and double taps are everyday events: a toast that goes away on its own.
# A blocking alert is kept for what the person should not miss.
TOAST_KEYS = frozenset({"alert_stale", "alert_not_found"})


class CallbackErrorMiddleware(BaseMiddleware):
    """Inside CallbackAnswerMiddleware: a failed button press becomes a short answer, never a spinner.

    Domain errors (forged or stale ids, another user's radio) end here: stale ones as a toast,
    the others as an alert. Anything else is re-raised after setting the alert, so the error
    router logs it.
    """

    def __init__(self, texts: Texts) -> None:
        self._texts = texts

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        try:
            return await handler(event, data)
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return None
            self._alert(data, "alert_error")
            raise
        except EncoreError as exc:
            log.info("callback refused: %s (%s)", exc.code, exc.message)
            self._alert(data, alert_key(exc))
            return None
        except Exception:
            self._alert(data, "alert_error")
            raise

    def _alert(self, data: dict[str, Any], key: str) -> None:
        answer: CallbackAnswer | None = data.get("callback_answer")
        if answer is None or answer.answered or answer.disabled:
            return
        user = data.get("user")
        answer.text = self._texts.labels(language_of(getattr(user, "language", None)))(key)
        answer.show_alert = key not in TOAST_KEYS


def setup_middlewares(
    dp: Dispatcher,
    *,
    texts: Texts,
    throttle: ThrottleBackend,
    limit: int,
    window: float,
    user_cache: UserCache | None = None,
    updates: UpdateTracker | None = None,
) -> None:
    if updates is not None:
        # Outermost of all, before the Dispatcher's own (errors, FSM context and the per-chat lock), so
        # that an update waiting for its chat's lock is known too.
        outer = dp.update.outer_middleware
        builtin = list(outer)
        for middleware in builtin:
            outer.unregister(middleware)
        outer.register(updates)
        for middleware in builtin:
            outer.register(middleware)
    throttling = ThrottlingMiddleware(throttle, texts, limit=limit, window=window)
    users = UserMiddleware(user_cache)
    for observer in (dp.message, dp.callback_query):
        observer.outer_middleware(throttling)
    for observer in (dp.message, dp.callback_query, dp.inline_query, dp.chosen_inline_result):
        observer.outer_middleware(users)
    dp.callback_query.middleware(CallbackAnswerMiddleware())
    dp.callback_query.middleware(CallbackErrorMiddleware(texts))
