"""Shared helpers: a few users and tracks in a database, and the playlist service over it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import AUDIO_FEATURE_COLUMNS, Track, TrackGenre, User
from services.dto import Listener
from services.playlists import PlaylistService
from tests.recs.conftest import catalog  # noqa: F401  (the generated catalogue, a fixture)

ANN = Listener.telegram(1)
BEN = Listener.telegram(2)
KEY = Listener.api_key("a" * 32)
WEB = Listener.web("w" * 22)


def track_row(i: int, *, genre: str | None = "rock", features: bool = True, **extra: object) -> Track:
    values: dict[str, object] = {}
    if features:
        values = {c: 0.5 for c in AUDIO_FEATURE_COLUMNS}
        values.update(energy=(i % 10) / 10, tempo=100.0 + i, key=float(i % 12), mode=1.0, time_signature=4.0)
    values.update(extra)
    return Track(
        id=i,
        spotify_id=f"sp{i:020d}",
        name=f"Song {i}",
        artists=f"Artist {i % 7}",
        album=f"Album {i % 3}",
        duration_ms=180_000 + i,
        search_key=f"artist {i % 7} - song {i}",
        genres=[TrackGenre(genre=genre)] if genre else [],
        **values,
    )


async def seed(sessions: async_sessionmaker[AsyncSession], tracks: int = 30, users: Sequence[int] = (1, 2)) -> None:
    async with sessions.begin() as s:
        for uid in users:
            s.add(User(id=uid, telegram_id=1000 + uid, first_name=f"User {uid}"))
        for i in range(1, tracks + 1):
            s.add(track_row(i, genre=("rock", "jazz", "techno")[i % 3]))


def service(sessions: async_sessionmaker[AsyncSession], radio: object = None, **kwargs: object) -> PlaylistService:
    return PlaylistService(sessions, radio, **kwargs)  # type: ignore[arg-type]
