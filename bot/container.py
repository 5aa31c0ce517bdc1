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
    from ml.predictor import GenrePredictor
    from services.cache import CacheService
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
    cache: CacheService | None = None
    predictor: GenrePredictor | None = None
    _closers: list[Any] = field(default_factory=list)

    def on_close(self, closer: Any) -> None:
        """Register an async callable run (in reverse order) by close()."""
        self._closers.append(closer)

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
    """Everything the bot, the web app and the jobs use, built once.

    Loads the catalogue search index and (when present) the genre model; providers whose keys are
    missing are simply absent and the services fall back to the catalogue and search links.
    """
    engine = create_engine(settings.db_url)
    sessions = create_session_factory(engine)
    container = Container(
        settings=settings,
        engine=engine,
        sessions=sessions,
        users=UserService(sessions, default_pick_hour=settings.picks_default_hour),
        health=HealthService(engine),
    )
    try:
        _build_genre(container)
        await _build_providers(container)
        await _build_recommender(container)
    except BaseException:
        await container.close()
        raise
    return container


async def _build_providers(c: Container) -> None:
    from services.audio_features import AudioFeatureChain, ReccoBeatsClient
    from services.cache import CacheService
    from services.search import SearchIndex
    from services.spotify import SpotifyClient
    from services.tracks import TrackService
    from services.youtube import YouTubeService

    s = c.settings
    cache = CacheService(c.sessions)
    spotify = None
    if s.spotify.enabled:
        assert s.spotify.client_id and s.spotify.client_secret
        spotify = SpotifyClient(
            s.spotify.client_id,
            s.spotify.client_secret.get_secret_value(),
            s.spotify.api_url,
            s.spotify.token_url,
            s.spotify.timeout,
            s.spotify.max_retries,
            s.spotify.max_retry_after,
        )
        c.on_close(_sync_closer(spotify.close))
    else:
        log.info("Spotify keys are not set: searching the bundled catalogue only")
    reccobeats = None
    if s.reccobeats.enabled:
        reccobeats = ReccoBeatsClient(s.reccobeats.api_url, timeout=s.reccobeats.timeout)
        c.on_close(reccobeats.close)
    youtube_key = s.youtube.api_key.get_secret_value() if s.youtube.api_key and s.youtube.enabled else None
    if youtube_key is None:
        log.info("YOUTUBE_API_KEY is not set: track cards link to a YouTube search")
    youtube = YouTubeService(
        cache,
        youtube_key,
        s.youtube.api_url,
        timeout=s.youtube.timeout,
        cache_days=s.youtube.cache_days,
        oembed_url=s.youtube.oembed_url,
    )
    features = AudioFeatureChain(c.sessions, cache, spotify=spotify, reccobeats=reccobeats)
    index = await SearchIndex.load(c.sessions)
    c.health.set_detail("catalog_tracks", len(index))
    c.tracks = TrackService(c.sessions, index, spotify, youtube, features, c.genre)
    c.cache = cache


def _build_genre(c: Container) -> None:
    from ml.predictor import GenrePredictor
    from services.genre import GenreService

    path = c.settings.models_path / "catalog"
    predictor = None
    if (path / "meta.json").exists():
        predictor = GenrePredictor.load(path)
        log.info("genre model %s loaded from %s", predictor.version, path)
        c.health.set_detail("model_version", predictor.version)
    else:
        log.warning("no genre model at %s: run `python main.py setup` (cards will show no genre)", path)
        c.health.set_detail("model_version", None)
    c.predictor = predictor
    c.genre = GenreService(predictor)


async def _build_recommender(c: Container) -> None:
    from services.feedback import FeedbackService
    from services.radio import RadioService
    from services.recommender import RecommendationService

    c.recommendations = RecommendationService(c.sessions, proba=c.predictor)
    index = await c.recommendations.index()  # build now, not on the first request
    c.health.set_detail("recommender_tracks", len(index))
    c.radio = RadioService(c.sessions, c.recommendations)
    c.feedback = FeedbackService(c.sessions, genres=c.genre)


def _sync_closer(fn: Any) -> Any:
    async def close() -> None:
        fn()

    return close
