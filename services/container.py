"""The services every entry point uses (bot, web page, API, CLI, scheduled jobs), built once.

`main.py` (the composition root) builds one `Services` from the settings and hands it to each
delivery mechanism. Heavy parts — the genre model, the search index, the recommender's index —
load on first use; `warm_up()` loads them all before a server starts taking requests.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from services.protocols import (
    Analysis,
    Feedback,
    Genres,
    Health,
    Playlists,
    Radios,
    Recommendations,
    SpotifySave,
    Tracks,
    Users,
)

if TYPE_CHECKING:
    from services.cache import CacheService
    from services.data import DataService
    from services.evaluation import RecommenderEvaluation
    from services.jobs import DailyPicksService

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]


@dataclass
class Services:
    users: Users
    health: Health
    genre: Genres
    tracks: Tracks
    recommendations: Recommendations
    radio: Radios
    feedback: Feedback
    cache: CacheService | None = None
    picks: DailyPicksService | None = None
    data: DataService | None = None  # datasets, catalogue import, collection (the CLI's)
    evaluation: RecommenderEvaluation | None = None  # the recommender's offline evaluation (the CLI's)
    analysis: Analysis | None = None  # "this sounds like …" for sent audio (None: switched off)
    playlists: Playlists | None = None  # likes and named playlists, export, share pages
    spotify_save: SpotifySave | None = None  # "Save to Spotify" in the person's own account
    # Loads what is loaded lazily (model, indices); run by warm_up().
    warmers: list[Closer] = field(default_factory=list)
    _closers: list[Closer] = field(default_factory=list)

    def on_close(self, closer: Closer) -> None:
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
            "analysis": self.analysis,
            "playlists": self.playlists,
            "spotify_save": self.spotify_save,
        }

    async def warm_up(self) -> None:
        """Load the genre model and build the indices now, not on the first request."""
        for warm in self.warmers:
            await warm()

    async def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:
                log.exception("error while closing %r", closer)
        self._closers.clear()
