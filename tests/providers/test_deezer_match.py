"""DeezerLookup's memory, with a scripted Deezer client and a clock of the test's own: a miss is
remembered per song (for a week, in the shared cache), a failure pauses every lookup for a minute,
doubling while Deezer keeps failing, and an answer ends the pause. Matching: by ISRC, else by artist
and title (same song key, or the same main artist and title without version marks)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Track
from services.cache import CacheService
from services.deezer import DeezerTrack
from services.deezer_match import NS_MISS, DeezerLookup, match_on_deezer
from services.dto import TrackInfo
from services.errors import ProviderUnavailable
from services.textnorm import song_key


@dataclass
class ScriptedDeezer:
    hits: dict[str, tuple[DeezerTrack, ...]] = field(default_factory=dict)  # title → search answer
    down: bool = False
    searches: list[tuple[str, str]] = field(default_factory=list)

    async def track_by_isrc(self, isrc: str) -> DeezerTrack | None:
        return None

    async def search_track(self, artist: str, title: str, *, limit: int = 10) -> tuple[DeezerTrack, ...]:
        self.searches.append((artist, title))
        if self.down:
            raise ProviderUnavailable("Deezer is unavailable right now")
        return self.hits.get(title, ())

    async def track(self, deezer_id: int) -> DeezerTrack | None:
        return None

    async def remember_preview(self, track: DeezerTrack) -> None:
        return None


async def add(sessions: async_sessionmaker[AsyncSession], name: str, artists: str = "Band") -> TrackInfo:
    async with sessions.begin() as s:
        row = Track(name=name, artists=artists, search_key=song_key(artists, name), source="catalog")
        s.add(row)
        await s.flush()
        return TrackInfo.from_row(row)


async def test_a_miss_is_per_song_and_a_failure_pauses_every_lookup(
    sqlite_sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = [1000.0]
    deezer = ScriptedDeezer()
    cache = CacheService(sqlite_sessions)
    lookup = DeezerLookup(sqlite_sessions, deezer, cache, clock=lambda: now[0])  # type: ignore[arg-type]
    a, b, c = [await add(sqlite_sessions, n) for n in ("Alpha", "Beta", "Gamma")]

    assert await lookup.attach(a) == a and deezer.searches == [("Band", "Alpha")]  # a miss
    assert await lookup.attach(a) == a and len(deezer.searches) == 1  # remembered
    assert await cache.get(NS_MISS, str(a.id)) is True
    fresh = DeezerLookup(sqlite_sessions, deezer, cache, clock=lambda: now[0])  # type: ignore[arg-type]
    await fresh.attach(a)  # another process: the shared cache knows
    assert len(deezer.searches) == 1 and fresh.lookups == 0

    deezer.down = True
    await lookup.attach(b)
    await lookup.attach(c)  # paused: not asked
    assert [t for _, t in deezer.searches] == ["Alpha", "Beta"]
    now[0] += 61
    await lookup.attach(c)  # asked again after a minute, fails again: the pause doubles
    now[0] += 61
    await lookup.attach(c)
    assert [t for _, t in deezer.searches] == ["Alpha", "Beta", "Gamma"]
    now[0] += 60
    deezer.down = False
    deezer.hits["Gamma"] = (DeezerTrack(77, "Gamma", ("Band",), cover_url="https://c.dz/g.jpg"),)
    found = await lookup.attach(c)
    assert found.deezer_id == 77 and found.cover_url == "https://c.dz/g.jpg"
    assert (await lookup.attach(b)).deezer_id is None and deezer.searches[-1] == ("Band", "Beta")  # not paused


@pytest.mark.parametrize(
    ("deezer_title", "deezer_artists", "loose", "matches"),
    [
        ("Song", ("Band",), False, True),
        ("Song (Remastered 2011)", ("Band",), False, False),
        ("Song (Remastered 2011)", ("Band",), True, True),
        ("Song", ("Other Band",), True, False),
    ],
)
async def test_matching(deezer_title: str, deezer_artists: tuple[str, ...], loose: bool, matches: bool) -> None:
    deezer = ScriptedDeezer(hits={"Song": (DeezerTrack(5, deezer_title, deezer_artists),)})
    found = await match_on_deezer(
        deezer,  # type: ignore[arg-type]
        isrc=None,
        artists=("Band",),
        name="Song - Remastered 2011" if loose else "Song",
        loose=loose,
    )
    assert (found is not None) is matches
