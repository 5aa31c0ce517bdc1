"""Users: who talks to Encore, their language, taste dial and daily-pick subscription."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import User
from db.repositories import UserRepository
from services.dto import UserInfo
from services.errors import InvalidInput
from services.schedule import ZONES, PickTime, default_timezone, parse_timezone

SUPPORTED_LANGUAGES = ("en", "ru")
# The familiar ↔ new dial: steps 0 … DIAL_STEPS map onto diversity 0.0 … 1.0.
DIAL_STEPS = 4


def dial_step(diversity: float) -> int:
    """The dial step that shows a diversity (0 … DIAL_STEPS)."""
    return max(0, min(DIAL_STEPS, round(diversity * DIAL_STEPS)))


def diversity_of_step(step: int) -> float:
    if not 0 <= step <= DIAL_STEPS:
        raise InvalidInput(f"the dial has steps 0 to {DIAL_STEPS}")
    return step / DIAL_STEPS


def pick_language(code: str | None) -> str:
    """Telegram's language_code ("ru", "ru-RU", "uk" …) → one Encore speaks; English by default."""
    base = (code or "").split("-")[0].lower()
    return base if base in SUPPORTED_LANGUAGES else "en"


def to_info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        telegram_id=user.telegram_id,
        first_name=user.first_name,
        language=user.language,
        diversity=user.diversity,
        subscribed=user.subscribed,
        pick_hour=user.pick_hour,
        active=user.active,
        pick_minute=user.pick_minute or 0,
        timezone=user.timezone or "UTC",
    )


class UserService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, default_pick_hour: int = 10) -> None:
        self._sessions = sessions
        self._default_pick_hour = default_pick_hour

    async def touch_telegram(
        self,
        telegram_id: int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> UserInfo:
        """Create the user on first contact, refresh names and last-seen after that.

        The language (and the time zone that goes with it, e.g. Moscow for Russian) is taken from
        Telegram only on first contact; afterwards /settings owns them.
        """
        language = pick_language(language_code)
        async with self._sessions.begin() as session:
            repo = UserRepository(session)
            user = await repo.upsert_telegram(
                telegram_id,
                first_name=_clip(first_name, 256),
                last_name=_clip(last_name, 256),
                username=_clip(username, 64),
                language=language,
                default_pick_hour=self._default_pick_hour,
                timezone=default_timezone(language),
            )
            user.active = True
            return to_info(user)

    async def get(self, user_id: int) -> UserInfo | None:
        async with self._sessions() as session:
            user = await UserRepository(session).get(user_id)
            return to_info(user) if user else None

    async def by_telegram_id(self, telegram_id: int) -> UserInfo | None:
        async with self._sessions() as session:
            user = await UserRepository(session).by_telegram_id(telegram_id)
            return to_info(user) if user else None

    async def set_language(self, user_id: int, language: str) -> UserInfo:
        if language not in SUPPORTED_LANGUAGES:
            raise InvalidInput(f"unsupported language: {language}")
        return await self._update(user_id, language=language)

    async def set_diversity(self, user_id: int, diversity: float) -> UserInfo:
        if not 0.0 <= diversity <= 1.0:
            raise InvalidInput("diversity must be between 0 and 1")
        return await self._update(user_id, diversity=round(diversity, 2))

    async def set_dial(self, user_id: int, step: int) -> UserInfo:
        """The familiar ↔ new dial at `step` (0 … DIAL_STEPS)."""
        return await self.set_diversity(user_id, diversity_of_step(step))

    async def subscribe(self, user_id: int, hour: int | None = None, minute: int | None = None) -> UserInfo:
        """Daily picks at hour:minute local time (the user's zone); without an hour, at the one set before."""
        values: dict[str, object] = {"subscribed": True}
        if hour is not None:
            if not 0 <= hour <= 23:
                raise InvalidInput("the hour must be between 0 and 23")
            if not 0 <= (minute or 0) <= 59:
                raise InvalidInput("the minute must be between 0 and 59")
            values.update(pick_hour=hour, pick_minute=minute or 0)
        return await self._update(user_id, **values)

    async def subscribe_at(self, user_id: int, time: PickTime) -> UserInfo:
        return await self.subscribe(user_id, time.hour, time.minute)

    async def set_timezone(self, user_id: int, zone: str) -> UserInfo:
        """An IANA zone name (any spelling `parse_timezone` accepts); InvalidInput for an unknown one."""
        return await self._update(user_id, timezone=parse_timezone(zone))

    async def set_zone_choice(self, user_id: int, index: int) -> UserInfo:
        """One of the zones /settings offers (`services.schedule.ZONES`), by position."""
        if not 0 <= index < len(ZONES):
            raise InvalidInput("unknown time zone choice")
        return await self.set_timezone(user_id, ZONES[index])

    async def unsubscribe(self, user_id: int) -> UserInfo:
        return await self._update(user_id, subscribed=False)

    async def mark_inactive(self, user_id: int) -> None:
        """The user blocked the bot: stop sending until they write again."""
        async with self._sessions.begin() as session:
            await UserRepository(session).update(user_id, active=False)

    async def _update(self, user_id: int, **values: object) -> UserInfo:
        async with self._sessions.begin() as session:
            repo = UserRepository(session)
            await repo.update(user_id, **values)
            user = await repo.get(user_id)
            if user is None:
                raise InvalidInput("unknown user")
            await session.refresh(user)
            return to_info(user)


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else value
