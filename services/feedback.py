"""Likes, interactions and the genre history a user builds by searching and liking.

Genre history: each track the user searched (an `interactions` row of kind `searched`) or
currently likes (the `likes` table) counts once per event under each of its dataset genre
labels. A track without labels counts under the genre the model predicts for its audio
features (marked `predicted`), when a genre guesser is given and the features are known;
otherwise under "unknown".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InteractionKind
from db.repositories import InteractionRepository, LikeRepository, TrackRepository
from services.dto import GenreGuess, GenreHistoryEntry, Page, TrackInfo
from services.errors import EncoreError, InvalidInput, TrackNotFound

UNKNOWN_GENRE = "unknown"
_LATEST = 3


class GenreGuesser(Protocol):
    """`services.genre.GenreService` fits."""

    async def guess(self, features: Mapping[str, float]) -> GenreGuess: ...


class FeedbackService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, genres: GenreGuesser | None = None) -> None:
        self._sessions = sessions
        self._genres = genres

    async def like(self, user_id: int, track_id: int, context: str | None = None) -> bool:
        """Like a track; False when it was liked already."""
        async with self._sessions.begin() as s:
            await self._require_track(s, track_id)
            added = await LikeRepository(s).add(user_id, track_id)
            if added:
                await InteractionRepository(s).add(track_id, InteractionKind.LIKED, user_id=user_id, context=context)
            return added

    async def unlike(self, user_id: int, track_id: int, context: str | None = None) -> bool:
        """Remove a like; False when there was none."""
        async with self._sessions.begin() as s:
            removed = await LikeRepository(s).remove(user_id, track_id)
            if removed:
                await InteractionRepository(s).add(track_id, InteractionKind.UNLIKED, user_id=user_id, context=context)
            return removed

    async def is_liked(self, user_id: int, track_id: int) -> bool:
        async with self._sessions() as s:
            return await LikeRepository(s).exists(user_id, track_id)

    async def record(
        self, user_id: int | None, track_id: int, kind: InteractionKind, context: str | None = None
    ) -> None:
        """Log an interaction (searched, shown, opened, skipped …). Likes go through `like`."""
        if kind in (InteractionKind.LIKED, InteractionKind.UNLIKED):
            raise InvalidInput("use like() / unlike() for likes")
        async with self._sessions.begin() as s:
            await self._require_track(s, track_id)
            await InteractionRepository(s).add(track_id, kind, user_id=user_id, context=context)

    async def likes(self, user_id: int, page: int, size: int = 5) -> Page[TrackInfo]:
        size = max(1, size)
        async with self._sessions() as s:
            repo = LikeRepository(s)
            total = await repo.count(user_id)
            pages = max(1, math.ceil(total / size))
            page = min(max(page, 0), pages - 1)
            rows = await repo.page(user_id, page * size, size)
            return Page(tuple(TrackInfo.from_row(r) for r in rows), page, pages, total)

    async def genre_history(self, user_id: int, page: int, size: int = 5) -> Page[GenreHistoryEntry]:
        size = max(1, size)
        async with self._sessions() as s:
            history = await InteractionRepository(s).user_history(user_id, [InteractionKind.SEARCHED], limit=2000)
            searched = [(tid, at) for tid, _kind, at in history]
            liked = [(tid, at) for tid, at in await LikeRepository(s).dated(user_id)]
            tracks = await TrackRepository(s).get_many([t for t, _ in searched] + [t for t, _ in liked])
            infos = {tid: TrackInfo.from_row(row) for tid, row in tracks.items()}

        genre_of: dict[int, tuple[tuple[str, ...], bool]] = {}
        for tid, info in infos.items():
            if info.genres:
                genre_of[tid] = (info.genres, False)
            else:
                genre_of[tid] = ((await self._predict(info)) or (UNKNOWN_GENRE,), True)

        events = [(tid, at, "searched") for tid, at in searched] + [(tid, at, "liked") for tid, at in liked]
        events.sort(key=lambda e: _aware(e[1]), reverse=True)
        acc: dict[str, dict] = {}
        for tid, at, kind in events:
            if tid not in infos:
                continue
            names, predicted = genre_of[tid]
            if names == (UNKNOWN_GENRE,):
                predicted = False
            for genre in names:
                entry = acc.setdefault(
                    genre, {"searched": 0, "liked": 0, "latest": [], "last_at": _aware(at), "predicted": predicted}
                )
                entry[kind] += 1
                if tid not in [t.id for t in entry["latest"]] and len(entry["latest"]) < _LATEST:
                    entry["latest"].append(infos[tid])
        entries = [
            GenreHistoryEntry(
                genre=g,
                count=e["searched"] + e["liked"],
                searched=e["searched"],
                liked=e["liked"],
                tracks=tuple(e["latest"]),
                last_at=e["last_at"],
                predicted=e["predicted"],
            )
            for g, e in acc.items()
        ]
        entries.sort(key=lambda e: (-e.count, -e.last_at.timestamp(), e.genre))
        pages = max(1, math.ceil(len(entries) / size))
        page = min(max(page, 0), pages - 1)
        return Page(tuple(entries[page * size : (page + 1) * size]), page, pages, len(entries))

    async def _predict(self, info: TrackInfo) -> tuple[str, ...] | None:
        if self._genres is None or info.features is None:
            return None
        try:
            guess = await self._genres.guess(info.features)
        except EncoreError:
            return None
        return (guess.genre,)

    @staticmethod
    async def _require_track(s: AsyncSession, track_id: int) -> None:
        if await TrackRepository(s).get(track_id) is None:
            raise TrackNotFound(f"track {track_id} not found")


def _aware(at: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)
