"""Builds every service once from Settings; the bot, the web app, the scheduler and the CLI share it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from db.engine import create_engine, create_session_factory
from services.health import HealthService
from services.users import UserService

if TYPE_CHECKING:
    from services.feedback import FeedbackService
    from services.genre import GenreService
    from services.radio import RadioService
    from services.recommender import RecommendationService
    from services.tracks import TrackService

log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    users: UserService
    health: HealthService
    tracks: TrackService | None = None
    genre: GenreService | None = None
    recommendations: RecommendationService | None = None
    radio: RadioService | None = None
    feedback: FeedbackService | None = None
    _closers: list[Any] = field(default_factory=list)

    def workflow_data(self) -> dict[str, Any]:
        """What aiogram handlers receive by parameter name."""
        return {
            "users": self.users,
            "tracks": self.tracks,
            "genre": self.genre,
            "recommendations": self.recommendations,
            "radio": self.radio,
            "feedback": self.feedback,
        }

    async def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:
                log.exception("error while closing %r", closer)
        await self.engine.dispose()


async def build_container(settings: Settings) -> Container:
    engine = create_engine(settings.db_url)
    sessions = create_session_factory(engine)
    container = Container(
        settings=settings,
        engine=engine,
        sessions=sessions,
        users=UserService(sessions, default_pick_hour=settings.picks_default_hour),
        health=HealthService(engine),
    )
    return container
