"""Finding a song that Encore already knows on Deezer, and giving its row the Deezer id.

Catalogue rows come without Deezer ids, so a card can offer no ▶ 30-s preview and has no cover or
year. `match_on_deezer` finds the same song on Deezer (by ISRC when known, else by artist and title,
kept only when Deezer's answer is the same song). The audio-feature chain uses it to find a preview
to analyse; `DeezerLookup` uses it when a card, a radio card or an inline result is about to be
shown, and stores the Deezer id, ISRC, cover and year on the row (`attach_deezer`), so it happens
once per song.

How it stays out of the way of a card:
- a budget (`budget` seconds, 1.5 by default): the card waits at most that long. When Deezer is
  slower, the card is shown as it is and the lookup carries on; the row gets the id, so the next
  time the card (or the radio, or an inline result) shows the song, the preview button and the cover
  are there. Editing the message afterwards would make the card jump under the reader's thumb.
- misses are remembered: "Deezer has no such song" for `miss_ttl` (a week, in the shared cache, so
  every instance and a restart know it).
- a failure (Deezer down or unreachable, timeouts, quota) pauses every lookup in this process for
  `pause` (a minute, doubling while failures go on, at most `max_pause`): with no network, one card a
  minute waits for the budget, the others are shown at once, as before.
- one lookup per song at a time; every request goes through the Deezer client, with its rate limiter
  (Deezer's 50 requests per 5 s) and its cache.
Nothing here raises: whatever goes wrong, the caller gets the track as it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories import TrackRepository
from ml.text import recording_key
from services.cache import MISS, CacheService
from services.dto import TrackInfo
from services.errors import EncoreError
from services.textnorm import song_key, title_core

if TYPE_CHECKING:
    from services.deezer import DeezerClient, DeezerTrack

log = logging.getLogger(__name__)

NS_MISS = "dz_match_miss"  # track id → Deezer has no such song (a stored "no")
MEMO_MAX = 50_000  # track ids remembered in process (misses and failures), oldest forgotten first


async def match_on_deezer(
    deezer: DeezerClient, *, isrc: str | None, artists: Sequence[str], name: str, loose: bool = False
) -> DeezerTrack | None:
    """The same song on Deezer: by ISRC, else by artist and title when Deezer's answer has the same
    song key (same artists and title). `loose`: also the same main artist and title once version
    marks are gone ("Song - Remastered 2011" is "Song (Remastered)"), good enough for a preview and a
    cover. `ProviderUnavailable` when Deezer cannot be asked."""
    found = await deezer.track_by_isrc(isrc) if isrc else None
    if found is not None or not artists or not name:
        return found
    wanted = song_key(";".join(artists), name)
    hits = await deezer.search_track(artists[0], title_core(name) if loose else name, limit=5)
    found = next((t for t in hits if song_key(";".join(t.artists), t.title) == wanted), None)
    if found is None and loose:
        near = recording_key(";".join(artists), name)
        found = next((t for t in hits if recording_key(";".join(t.artists), t.title) == near), None)
    return found


class DeezerLookup:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        deezer: DeezerClient,
        cache: CacheService | None = None,
        *,
        budget: float = 1.5,
        miss_ttl: timedelta = timedelta(days=7),
        pause: timedelta = timedelta(minutes=1),
        max_pause: timedelta = timedelta(minutes=10),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._deezer = deezer
        self._cache = cache
        self.budget = budget
        self._miss_ttl = miss_ttl
        self._pause = pause.total_seconds()
        self._max_pause = max_pause.total_seconds()
        self._failures = 0  # in a row
        self._paused_until = 0.0  # clock
        self._clock = clock
        self._memo: OrderedDict[int, float] = OrderedDict()  # track id → ask again after (clock)
        self._running: dict[int, asyncio.Task[TrackInfo | None]] = {}
        self.lookups = 0  # lookups that asked Deezer (for tests and metrics)

    def wanted(self, track: TrackInfo) -> bool:
        """Whether the track could gain a Deezer id now (not already, not a recording, not remembered)."""
        if track.deezer_id is not None or track.source == "upload" or not track.name:
            return False
        if not track.artists and not track.isrc:
            return False
        if self._paused_until > self._clock():  # Deezer failed a moment ago
            return False
        until = self._memo.get(track.id)
        if until is None:
            return True
        if until > self._clock():
            return False
        del self._memo[track.id]
        return True

    async def attach(self, track: TrackInfo, *, budget: float | None = None) -> TrackInfo:
        """The track with its Deezer id, cover and year when they are found within the budget;
        the track as it was otherwise (the lookup goes on and stores them for the next time)."""
        if not self.wanted(track):
            return track
        task = self._running.get(track.id)
        if task is None:
            task = asyncio.create_task(self._lookup(track), name=f"deezer-lookup-{track.id}")
            self._running[track.id] = task
            task.add_done_callback(functools.partial(self._done, track.id))
        try:
            found = await asyncio.wait_for(asyncio.shield(task), self.budget if budget is None else budget)
        except TimeoutError:
            log.info("Deezer lookup of track %s is slower than the card's budget; it goes on", track.id)
            return track
        return found or track

    async def drain(self) -> None:
        """Wait for the lookups still running (they went on past a card's budget)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def close(self) -> None:
        """Stop the lookups still running (at shutdown)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _done(self, track_id: int, _task: asyncio.Task[TrackInfo | None]) -> None:
        self._running.pop(track_id, None)

    def _failed(self) -> None:
        self._failures += 1
        pause = min(self._pause * 2 ** min(self._failures - 1, 16), self._max_pause)
        self._paused_until = self._clock() + pause

    def _remember(self, track_id: int, seconds: float) -> None:
        self._memo[track_id] = self._clock() + seconds
        self._memo.move_to_end(track_id)
        while len(self._memo) > MEMO_MAX:
            self._memo.popitem(last=False)

    async def _lookup(self, track: TrackInfo) -> TrackInfo | None:
        key = str(track.id)
        if self._cache is not None and await self._cache.get(NS_MISS, key) is not MISS:
            self._remember(track.id, self._miss_ttl.total_seconds())
            return None
        self.lookups += 1
        try:
            found = await match_on_deezer(
                self._deezer, isrc=track.isrc, artists=track.artists, name=track.name, loose=True
            )
        except EncoreError as exc:  # Deezer down, rate-limited, an answer it could not read
            log.info("Deezer lookup of track %s failed: %s", track.id, exc.code)
            self._failed()
            return None
        except Exception:  # the card is shown anyway
            log.exception("Deezer lookup of track %s failed", track.id)
            self._failed()
            return None
        self._failures = 0  # Deezer answered
        if found is None:
            await self._miss(track.id)
            return None
        if not found.detailed:  # a search answer: no ISRC or release date; /track has them (and the preview)
            try:
                found = await self._deezer.track(found.id) or found
            except EncoreError as exc:
                log.info("Deezer track %s: no details (%s); the search answer will do", found.id, exc.code)
        try:
            async with self._sessions.begin() as session:
                repo = TrackRepository(session)
                await repo.attach_deezer(
                    track.id, found.id, isrc=found.isrc, cover_url=found.cover_url, release_year=found.year
                )
                row = await repo.get(track.id)
                info = TrackInfo.from_row(row) if row is not None else None
        except SQLAlchemyError:
            log.exception("could not store the Deezer id of track %s", track.id)
            self._remember(track.id, self._pause)
            return None
        if info is None or info.deezer_id is None:  # another row holds that Deezer id (the same song twice)
            await self._miss(track.id)
            return None
        if found.preview_url and info.deezer_id == found.id:
            await self._deezer.remember_preview(found)  # the card's preview URL without another request
        # The row's other values (features, labels) are as they were; only what Deezer gave is new.
        return dataclasses.replace(
            track, deezer_id=info.deezer_id, isrc=info.isrc, cover_url=info.cover_url, year=info.year
        )

    async def _miss(self, track_id: int) -> None:
        self._remember(track_id, self._miss_ttl.total_seconds())
        if self._cache is not None:
            await self._cache.put(NS_MISS, str(track_id), True, self._miss_ttl)
