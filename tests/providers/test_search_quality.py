"""Search that opens the right song, through `TrackService.resolve`: on a small catalogue, and on
the real 114-genre file when it is there (it is in CI, one level above the repository)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.base import Base
from db.engine import create_engine, create_session_factory
from db.models import Track
from services.cache import CacheService
from services.catalog import CatalogImporter
from services.dto import ResolutionKind
from services.examples import EXAMPLES, example_query, examples
from services.search import SearchIndex
from services.textnorm import song_key
from services.tracks import MSG_CLOSEST, MSG_YT_UNREADABLE, TrackService
from services.youtube import YouTubeService
from tests.fakes.youtube import FakeVideo, FakeYouTube

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG_FILE = "spotify_tracks_114genre_train.csv.gz"
REAL_CATALOG = next(
    (
        p
        for p in (REPO_ROOT / "data" / "raw" / CATALOG_FILE, REPO_ROOT.parent / "shared" / "data" / CATALOG_FILE)
        if p.exists()
    ),
    None,
)

SMALL = [
    # (name, artists, popularity)
    ("Queen of Hearts", "TWICE", 70),
    ("Bohemian Rhapsody - Remastered 2011", "Queen", 82),
    ("Bohemian Rhapsody", "Queen", 75),
    ("Bohemian Rhapsody - Acoustic", "John Adams", 52),
    ("Queen Bee", "QUEEN BEE", 40),
    ("Don't Stop Me Now - Remastered 2011", "Queen", 82),
    ("Группа крови", "Kino", 56),
    ("Пачка сигарет", "Kino", 55),
    ("Катюша", 'Группа "Загадка"', 13),
    ("Каким ты был", 'Группа "Загадка"', 9),
    ("Gruppa Express", "Someone Else", 30),
    ("Enter Sandman", "Metallica", 82),
    ("Master Of Puppets", "Metallica", 80),
]


async def _small_service(sessions: async_sessionmaker[AsyncSession]) -> tuple[TrackService, dict[str, int]]:
    ids: dict[str, int] = {}
    async with sessions.begin() as session:
        for i, (name, artists, pop) in enumerate(SMALL):
            row = Track(
                spotify_id=f"Sq{i:020d}",
                name=name,
                artists=artists,
                popularity=pop,
                source="catalog",
                search_key=song_key(artists, name),
            )
            session.add(row)
            await session.flush()
            ids[f"{artists} — {name}"] = row.id
    return TrackService(sessions, await SearchIndex.load(sessions), None, None, None, None), ids


async def test_queen_opens_with_the_other_versions(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    service, ids = await _small_service(sqlite_sessions)
    res = await service.resolve("queen bohemian rhapsody")
    assert res.kind is ResolutionKind.TRACK
    assert res.tracks[0].id == ids["Queen — Bohemian Rhapsody - Remastered 2011"]
    assert [t.id for t in res.alternatives] == [
        ids["Queen — Bohemian Rhapsody"],  # the same artist's other release first
        ids["John Adams — Bohemian Rhapsody - Acoustic"],  # then a cover (a distinctive title)
    ]
    res = await service.resolve("Bohemian Rhapsody (Remastered 2011) by Queen")
    assert res.kind is ResolutionKind.TRACK and res.tracks[0].id == ids["Queen — Bohemian Rhapsody - Remastered 2011"]


KINO_QUERIES = ["Кино группа крови", "Kino gruppa krovi", "kino - группа крови", "крови группа кино"]


@pytest.mark.parametrize("query", KINO_QUERIES)
async def test_kino_opens_in_either_script(sqlite_sessions: async_sessionmaker[AsyncSession], query: str) -> None:
    service, ids = await _small_service(sqlite_sessions)
    res = await service.resolve(query)
    assert res.kind is ResolutionKind.TRACK and res.tracks[0].id == ids["Kino — Группа крови"]
    assert res.alternatives == ()


async def test_kino_alone_lists_kino(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    service, ids = await _small_service(sqlite_sessions)
    res = await service.resolve("кино")
    assert res.kind is ResolutionKind.CANDIDATES and res.exact
    assert [t.id for t in res.tracks] == [ids["Kino — Группа крови"], ids["Kino — Пачка сигарет"]]


async def test_nonsense_is_not_found_with_an_example(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    service, _ = await _small_service(sqlite_sessions)
    res = await service.resolve("asdkjh qwpoeiru zzxq")
    assert res.kind is ResolutionKind.NOT_FOUND and not res.tracks
    assert res.message and example_query("en") in res.message


async def test_only_weak_matches_say_so(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    service, ids = await _small_service(sqlite_sessions)
    res = await service.resolve("metallica nothing else matters")
    assert res.kind is ResolutionKind.CANDIDATES and not res.exact and res.message == MSG_CLOSEST
    assert {t.id for t in res.tracks} == {ids["Metallica — Enter Sandman"], ids["Metallica — Master Of Puppets"]}
    exact = await service.resolve("metallica")
    assert exact.kind is ResolutionKind.CANDIDATES and exact.exact and exact.message is None


def test_examples_per_language() -> None:
    assert example_query("en") == EXAMPLES["en"][0]
    assert example_query("ru") != example_query("en")
    assert example_query("ru-RU") == example_query("ru") and example_query("pt") == example_query("en")
    assert example_query(None) == example_query("en")
    assert example_query("ru", 1) == examples("ru")[1] and example_query("ru", 3) == examples("ru")[0]


# -- the real catalogue ------------------------------------------------------------------------


@dataclass
class RealCatalog:
    url: str
    index: SearchIndex


def _run(coro: object) -> object:
    with ThreadPoolExecutor(max_workers=1) as pool:  # its own event loop, whatever pytest runs
        return pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def real_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCatalog]:
    """The 114-genre file imported once for this module into a SQLite file, and its index."""
    if REAL_CATALOG is None:
        pytest.skip(f"{CATALOG_FILE} is not in data/raw or ../shared/data")
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.db'}"

    async def build() -> SearchIndex:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = create_session_factory(engine)
        assert REAL_CATALOG is not None
        await CatalogImporter(sessions).import_file(REAL_CATALOG)
        index = await SearchIndex.load(sessions)
        await engine.dispose()
        return index

    index = _run(build())
    assert isinstance(index, SearchIndex)
    yield RealCatalog(url, index)


@pytest.fixture
async def real_service(real_catalog: RealCatalog) -> AsyncIterator[TrackService]:
    engine = create_engine(real_catalog.url)
    yield TrackService(create_session_factory(engine), real_catalog.index, None, None, None, None)
    await engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize(("language", "query"), [(lang, q) for lang, qs in EXAMPLES.items() for q in qs])
async def test_every_example_opens_on_the_real_catalogue(real_service: TrackService, language: str, query: str) -> None:
    res = await real_service.resolve(query)
    assert res.kind is ResolutionKind.TRACK, (language, query, res)
    artist, title = (p.strip() for p in query.split("—"))
    track = res.tracks[0]
    assert title.casefold() in track.name.casefold()
    assert artist.casefold() in {a.casefold() for a in track.artists} or artist == "Кино"  # Kino is Latin there
    if artist == "Кино":
        assert track.artists == ("Kino",)


@pytest.mark.slow
async def test_the_issue_cases_on_the_real_catalogue(real_service: TrackService) -> None:
    res = await real_service.resolve("queen bohemian rhapsody")
    assert res.kind is ResolutionKind.TRACK and res.tracks[0].artists == ("Queen",)
    assert res.tracks[0].name.startswith("Bohemian Rhapsody")
    assert any(t.artists == ("Queen",) for t in res.alternatives)
    for query in ("Кино группа крови", "Kino gruppa krovi"):
        res = await real_service.resolve(query)
        assert res.kind is ResolutionKind.TRACK, query
        assert (res.tracks[0].artists, res.tracks[0].name) == (("Kino",), "Группа крови")
    res = await real_service.resolve("кино")
    assert res.kind is ResolutionKind.CANDIDATES and res.tracks[0].artists == ("Kino",)
    res = await real_service.resolve("asdkjh qwpoeiru zzxq")
    assert res.kind is ResolutionKind.NOT_FOUND and res.message
    res = await real_service.resolve("metallica enter sandmann")  # a typo
    assert res.kind is ResolutionKind.TRACK and res.tracks[0].name == "Enter Sandman"


# -- YouTube links without a key -----------------------------------------------------------------


async def test_youtube_links_resolve_without_a_key(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    videos = [
        FakeVideo("fJ9rUzIMcZQ", "Queen – Bohemian Rhapsody (Official Video Remastered)", "Queen Official"),
        FakeVideo("KinoTopic01", "Группа крови", "Kino - Topic"),  # YouTube Music: the artist is the channel
        FakeVideo("PrIvAtE0001", "Secret", "Band", private=True),
    ]
    async with FakeYouTube(videos) as fake:
        assert isinstance(fake, FakeYouTube)
        _, ids = await _small_service(sqlite_sessions)
        service = TrackService(
            sqlite_sessions,
            await SearchIndex.load(sqlite_sessions),
            None,
            YouTubeService(CacheService(sqlite_sessions), None, oembed_url=fake.oembed_url, timeout=0.5),
            None,
            None,
        )
        res = await service.resolve("https://youtu.be/fJ9rUzIMcZQ?si=abc")
        assert res.kind is ResolutionKind.TRACK
        assert res.tracks[0].id == ids["Queen — Bohemian Rhapsody - Remastered 2011"]
        assert res.notice and "Bohemian Rhapsody (Official Video Remastered)" in res.notice
        res = await service.resolve("https://music.youtube.com/watch?v=KinoTopic01&feature=share")
        assert res.kind is ResolutionKind.TRACK and res.tracks[0].id == ids["Kino — Группа крови"]
        res = await service.resolve("https://www.youtube.com/watch?v=PrIvAtE0001")
        assert res.kind is ResolutionKind.NOT_FOUND and res.message == MSG_YT_UNREADABLE
        assert fake.calls["oembed"] == 3 and fake.calls["videos"] == 0
