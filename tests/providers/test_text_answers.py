"""TrackService reuses its answer to a text query (TextAnswers) only while it is still right."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Track, TrackGenre
from db.repositories import TrackRepository
from services.dto import ResolutionKind, TrackInfo
from services.search import SearchIndex
from services.spotify import SpotifyClient
from services.textnorm import song_key
from services.tracks import TextAnswers, TrackService
from tests.fakes.spotify import FakeSpotify
from tests.providers.conftest import add_catalog, features


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Every TrackRepository.get_many call (the read of the tracks an answer shows)."""
    seen: list[list[int]] = []
    original = TrackRepository.get_many

    async def counting(self: TrackRepository, track_ids: Any) -> dict[int, Track]:
        ids = list(track_ids)
        seen.append(ids)
        return await original(self, ids)

    monkeypatch.setattr(TrackRepository, "get_many", counting)
    return seen


async def _service(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, *, spotify: SpotifyClient | None = None
) -> TrackService:
    answers = TextAnswers(ttl=30.0, clock=clock)
    return TrackService(sessions, await SearchIndex.load(sessions), spotify, None, None, None, answers=answers)


async def _store(sessions: async_sessionmaker[AsyncSession], name: str, artists: str) -> int:
    async with sessions.begin() as session:
        row = Track(
            spotify_id=None,
            name=name,
            artists=artists,
            album=name,
            popularity=50,
            duration_ms=200000,
            explicit=False,
            source="catalog",
            search_key=song_key(artists, name),
            **features(0.7),
        )
        row.genres = [TrackGenre(genre="metal")]
        session.add(row)
        await session.flush()
        return row.id


async def test_a_repeated_query_is_answered_again_without_reading_the_database(
    sqlite_sessions: async_sessionmaker[AsyncSession], reads: list[list[int]]
) -> None:
    await add_catalog(sqlite_sessions)
    service = await _service(sqlite_sessions, Clock())
    first = await service.resolve("metalica")
    assert first.kind is ResolutionKind.CANDIDATES and len(reads) == 1
    again = await service.resolve("metalica")
    assert again == first and len(reads) == 1
    other_limit = await service.resolve("metalica", limit=1)  # another question: its own answer
    assert len(other_limit.tracks) == 1 and len(reads) == 2


async def test_the_answer_expires_after_its_ttl(
    sqlite_sessions: async_sessionmaker[AsyncSession], reads: list[list[int]]
) -> None:
    await add_catalog(sqlite_sessions)
    clock = Clock()
    service = await _service(sqlite_sessions, clock)
    await service.resolve("metalica")
    clock.now += 29.0
    await service.resolve("metalica")
    assert len(reads) == 1
    clock.now += 1.0
    await service.resolve("metalica")
    assert len(reads) == 2


async def test_a_track_that_joins_the_index_shows_in_the_next_answer(
    sqlite_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_catalog(sqlite_sessions)
    service = await _service(sqlite_sessions, Clock())
    before = await service.resolve("metalica")
    new_id = await _store(sqlite_sessions, "Nothing Else Matters", "Metallica")  # stored by another process
    assert await service.refresh_index() == 1
    after = await service.resolve("metalica")
    assert new_id not in [t.id for t in before.tracks]
    assert new_id in [t.id for t in after.tracks]


async def test_a_changed_row_shows_in_the_next_answer(
    sqlite_sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Deezer cover attached to a shown song (when its card opened) is in the next search's answer."""
    ids = await add_catalog(sqlite_sessions)
    service = await _service(sqlite_sessions, Clock())
    before = await service.resolve("enter sandman metallica")
    assert before.kind is ResolutionKind.TRACK and before.tracks[0].cover_url is None
    sandman = before.tracks[0].id
    assert sandman in ids.values()

    class Lookup:
        async def attach(self, track: TrackInfo, *, budget: float | None = None) -> TrackInfo:
            async with sqlite_sessions.begin() as session:
                row = await TrackRepository(session).get(track.id)
                assert row is not None
                row.cover_url = "https://e-cdns-images.dzcdn.net/cover.jpg"
            return TrackInfo.from_row(row)

    monkeypatch.setattr(service, "_deezer_lookup", Lookup())
    card = await service.card(sandman)
    assert card.track.cover_url is not None
    after = await service.resolve("enter sandman metallica")
    assert after.tracks[0].cover_url == card.track.cover_url


async def test_answers_that_asked_a_provider_are_not_kept(
    sqlite_sessions: async_sessionmaker[AsyncSession], spotify: SpotifyClient, fake_spotify: FakeSpotify
) -> None:
    await add_catalog(sqlite_sessions)
    service = await _service(sqlite_sessions, Clock(), spotify=spotify)
    await service.resolve("obscure tune nobody knows")  # not in the catalogue: Spotify is asked
    asked = fake_spotify.calls["search"]
    assert asked >= 1
    await service.resolve("obscure tune nobody knows")  # now stored: the index grew, so asked again or
    await service.resolve("zzz qqq xylophone")  # found in the catalogue; a miss everywhere asks every time
    await service.resolve("zzz qqq xylophone")
    assert fake_spotify.calls["search"] >= asked + 2


async def test_ttl_zero_keeps_nothing(
    sqlite_sessions: async_sessionmaker[AsyncSession], reads: list[list[int]]
) -> None:
    await add_catalog(sqlite_sessions)
    service = TrackService(
        sqlite_sessions,
        await SearchIndex.load(sqlite_sessions),
        None,
        None,
        None,
        None,
        answers=TextAnswers(ttl=0.0),
    )
    await service.resolve("metalica")
    await service.resolve("metalica")
    assert len(reads) == 2
