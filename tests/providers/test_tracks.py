from __future__ import annotations

from collections.abc import Mapping

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Track, TrackAlias, User
from db.repositories import LikeRepository
from services.audio_features import AudioFeatureChain, ReccoBeatsClient
from services.cache import CacheService
from services.dto import GenreGuess, ResolutionKind
from services.errors import ModelNotReady, TrackNotFound
from services.search import SearchIndex
from services.spotify import SpotifyClient
from services.tracks import NOTICE_SPOTIFY_DOWN, TrackService
from services.youtube import YouTubeService
from tests.fakes.spotify import Failure, FakeSpotify
from tests.fakes.youtube import FakeYouTube, quota_exceeded
from tests.providers.conftest import add_catalog, sid, spotify_from_settings, youtube_settings


class FakeGenre:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.seen: list[Mapping[str, float]] = []

    async def guess(self, features: Mapping[str, float], **context: object) -> GenreGuess:
        if self.error:
            raise self.error
        self.seen.append(features)
        return GenreGuess("metal", 0.8, (("metal", 0.8),), "metal", 0.9)


async def _service(
    sessions: async_sessionmaker[AsyncSession],
    *,
    spotify: SpotifyClient | None = None,
    youtube_key: bool = False,
    reccobeats: ReccoBeatsClient | None = None,
    genre: FakeGenre | None = None,
) -> TrackService:
    cache = CacheService(sessions)
    yt_key = None
    youtube = None
    if youtube_key:
        s = youtube_settings()
        yt_key = s.api_key.get_secret_value() if s.api_key else None
        youtube = YouTubeService(cache, yt_key, s.api_url, timeout=s.timeout)
    else:
        youtube = YouTubeService(cache, None)
    chain = AudioFeatureChain(sessions, cache, spotify=spotify, reccobeats=reccobeats)
    return TrackService(sessions, await SearchIndex.load(sessions), spotify, youtube, chain, genre)


# -- no keys at all ------------------------------------------------------------------------


async def test_no_keys_everything_from_the_catalog(sessions: async_sessionmaker[AsyncSession]) -> None:
    ids = await add_catalog(sessions)
    service = await _service(sessions, genre=FakeGenre())

    res = await service.resolve("queen - bohemian rhapsody")
    assert res.kind is ResolutionKind.TRACK and res.tracks[0].id == ids[sid(1)]
    assert res.tracks[0].genres == ("rock",)

    res = await service.resolve("metalica")  # typo, two tracks
    assert res.kind is ResolutionKind.CANDIDATES
    assert [t.name for t in res.tracks] == ["Enter Sandman", "Master of Puppets"]

    res = await service.resolve(f"https://open.spotify.com/intl-de/track/{sid(5)}?si=1")
    assert res.kind is ResolutionKind.TRACK and res.tracks[0].name == "Master of Puppets"

    res = await service.resolve(f"spotify:track:{sid(101)}")  # not in the catalog, no Spotify
    assert res.kind is ResolutionKind.NOT_FOUND and res.message

    res = await service.resolve("xylophone quartet qqq")
    assert res.kind is ResolutionKind.NOT_FOUND and res.message

    card = await service.card(ids[sid(6)])
    assert card.genre is not None and card.genre.genre == "metal"
    assert card.youtube.is_search and "Metallica" in card.youtube.url
    assert card.note is None

    search = await service.search("bjork")
    assert [t.name for t in search] == ["Jóga"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("https://open.spotify.com/album/1DFixLWuPkv3KT3TnV35m3", ResolutionKind.UNSUPPORTED),
        ("https://open.spotify.com/show/2MAi0BvDc6GTFvKFPXnkCL", ResolutionKind.UNSUPPORTED),
        ("https://example.com/", ResolutionKind.UNSUPPORTED),
        ("", ResolutionKind.INVALID),
        ("x" * 600, ResolutionKind.INVALID),
    ],
)
async def test_unsupported_and_invalid(
    sqlite_sessions: async_sessionmaker[AsyncSession], text: str, kind: ResolutionKind
) -> None:
    service = await _service(sqlite_sessions)
    res = await service.resolve(text)
    assert res.kind is kind and res.message and not res.tracks


async def test_card_without_features_says_why(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    ids = await add_catalog(sqlite_sessions)
    genre = FakeGenre()
    service = await _service(sqlite_sessions, genre=genre)
    card = await service.card(ids[sid(9)])
    assert card.genre is None and card.track.features is None
    assert card.note and "same artist" in card.note and "No audio features" in card.note
    assert genre.seen == []
    assert card.youtube.is_search


async def test_card_model_not_ready(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    ids = await add_catalog(sqlite_sessions)
    service = await _service(sqlite_sessions, genre=FakeGenre(ModelNotReady("The genre model is still training.")))
    card = await service.card(ids[sid(1)])
    assert card.genre is None and card.note == "The genre model is still training."
    service_no_model = await _service(sqlite_sessions, genre=None)
    assert (await service_no_model.card(ids[sid(1)])).note


async def test_card_liked_and_missing(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    ids = await add_catalog(sqlite_sessions)
    async with sqlite_sessions.begin() as session:
        user = User(telegram_id=42, first_name="A")
        session.add(user)
        await session.flush()
        await LikeRepository(session).add(user.id, ids[sid(2)])
    service = await _service(sqlite_sessions)
    assert (await service.card(ids[sid(2)], user_id=user.id)).liked
    assert not (await service.card(ids[sid(1)], user_id=user.id)).liked
    with pytest.raises(TrackNotFound):
        await service.card(99999)
    with pytest.raises(TrackNotFound):
        await service.get(99999)


# -- with providers ------------------------------------------------------------------------


async def test_spotify_track_outside_catalog_gets_an_internal_id(
    sessions: async_sessionmaker[AsyncSession],
    spotify: SpotifyClient,
    reccobeats: ReccoBeatsClient,
    fake_spotify: FakeSpotify,
) -> None:
    await add_catalog(sessions)
    genre = FakeGenre()
    service = await _service(sessions, spotify=spotify, reccobeats=reccobeats, genre=genre, youtube_key=True)

    res = await service.resolve(f"https://open.spotify.com/track/{sid(101)}")
    assert res.kind is ResolutionKind.TRACK
    paranoid = res.tracks[0]
    assert paranoid.source == "spotify" and paranoid.name == "Paranoid" and paranoid.id > 0
    async with sessions() as session:
        row = await session.scalar(select(Track).where(Track.spotify_id == sid(101)))
        assert row is not None and row.source == "spotify" and row.search_key
    # Now it is in the search index too, and resolving again costs no Spotify call.
    calls = fake_spotify.calls["track"]
    assert (await service.resolve(f"spotify:track:{sid(101)}")).tracks[0].id == paranoid.id
    assert fake_spotify.calls["track"] == calls
    assert [t.id for t in await service.search("paranoid sabbath")] == [paranoid.id]

    # Its card: features via ReccoBeats (Spotify 403), a genre guess, the YouTube video.
    card = await service.card(paranoid.id)
    assert card.track.features is not None and card.genre is not None
    assert card.youtube.video_id == "WM8bTdBs-cw" and not card.youtube.is_search
    assert fake_spotify.calls["audio-features"] == 1


async def test_spotify_copy_of_a_catalog_song_is_folded(
    sessions: async_sessionmaker[AsyncSession], spotify: SpotifyClient, fake_spotify: FakeSpotify
) -> None:
    ids = await add_catalog(sessions)
    service = await _service(sessions, spotify=spotify)
    res = await service.resolve(f"https://open.spotify.com/track/{sid(103)}")  # Queen's other id
    assert res.kind is ResolutionKind.TRACK and res.tracks[0].id == ids[sid(1)]
    async with sessions() as session:
        alias = await session.get(TrackAlias, sid(103))
        assert alias is not None and alias.track_id == ids[sid(1)]


async def test_spotify_album_covers_and_years_are_stored(
    sessions: async_sessionmaker[AsyncSession], spotify: SpotifyClient, fake_spotify: FakeSpotify
) -> None:
    """A song found on Spotify keeps its album's image (the 300 px one) and year, on a new row and on
    the catalogue's copy it is folded onto (which had neither)."""
    ids = await add_catalog(sessions)
    service = await _service(sessions, spotify=spotify)
    paranoid = (await service.resolve(f"https://open.spotify.com/track/{sid(101)}")).tracks[0]
    assert paranoid.cover_url == f"https://i.scdn.co/image/ab67616d00001e02{sid(101)}" and paranoid.year == 1970
    assert (await service.get(paranoid.id)).cover_url == paranoid.cover_url  # stored, not just passed on
    queen = (await service.resolve(f"https://open.spotify.com/track/{sid(103)}")).tracks[0]
    assert queen.id == ids[sid(1)] and queen.source == "catalog"
    stored = await service.get(queen.id)
    assert stored.cover_url == f"https://i.scdn.co/image/ab67616d00001e02{sid(103)}" and stored.year == 1975


async def test_text_falls_back_to_spotify_search(
    sqlite_sessions: async_sessionmaker[AsyncSession], spotify: SpotifyClient, fake_spotify: FakeSpotify
) -> None:
    await add_catalog(sqlite_sessions)
    service = await _service(sqlite_sessions, spotify=spotify)
    res = await service.resolve("black sabbath")
    assert res.kind is ResolutionKind.CANDIDATES
    assert {t.name for t in res.tracks} == {"Paranoid", "Iron Man"}
    assert all(t.source == "spotify" for t in res.tracks)
    # A clear catalog match does not touch Spotify.
    calls = fake_spotify.calls["search"]
    assert (await service.resolve("Enter Sandman - Metallica")).kind is ResolutionKind.TRACK
    assert fake_spotify.calls["search"] == calls


@pytest.mark.parametrize(
    "failure", [Failure(500), Failure(429, headers={"Retry-After": "9999"}), Failure(None, delay=2)]
)
async def test_spotify_down_still_answers_from_catalog(
    sqlite_sessions: async_sessionmaker[AsyncSession],
    fake_spotify: FakeSpotify,
    provider_env: None,
    failure: Failure,
) -> None:
    await add_catalog(sqlite_sessions)
    spotify = spotify_from_settings(max_retries=0)
    service = await _service(sqlite_sessions, spotify=spotify)
    fake_spotify.fail("search", failure)
    res = await service.resolve("black sabbath")  # not in the catalog: Spotify is asked and fails
    assert res.kind is ResolutionKind.NOT_FOUND and res.notice == NOTICE_SPOTIFY_DOWN and res.message
    fake_spotify.fail("search", failure)
    res = await service.resolve("queen metalica")  # weak catalog matches: Spotify asked, fails, catalog shown
    assert res.kind is ResolutionKind.CANDIDATES and res.notice == NOTICE_SPOTIFY_DOWN
    assert {t.name for t in res.tracks} >= {"Bohemian Rhapsody", "Enter Sandman"}
    fake_spotify.fail("track", failure)
    res = await service.resolve(f"spotify:track:{sid(102)}")
    assert res.kind is ResolutionKind.NOT_FOUND and res.message
    spotify.close()


async def test_refused_spotify_and_youtube(
    sqlite_sessions: async_sessionmaker[AsyncSession], provider_env: None, closed_port: int
) -> None:
    ids = await add_catalog(sqlite_sessions)
    dead = f"http://127.0.0.1:{closed_port}"
    spotify = spotify_from_settings(api_url=f"{dead}/v1/", token_url=f"{dead}/api/token", max_retries=0)
    cache = CacheService(sqlite_sessions)
    reccobeats = ReccoBeatsClient(f"{dead}/v1/", timeout=0.5, max_retries=0)
    service = TrackService(
        sqlite_sessions,
        await SearchIndex.load(sqlite_sessions),
        spotify,
        YouTubeService(cache, "test-key", f"{dead}/", timeout=0.5),
        AudioFeatureChain(sqlite_sessions, cache, spotify=spotify, reccobeats=reccobeats),
        FakeGenre(),
    )
    res = await service.resolve("black sabbath")
    assert res.kind is ResolutionKind.NOT_FOUND and res.notice == NOTICE_SPOTIFY_DOWN
    assert (await service.resolve("metallica")).kind is ResolutionKind.CANDIDATES
    card = await service.card(ids[sid(9)])
    assert card.genre is None and card.note and "did not answer" in card.note
    assert card.youtube.is_search
    res = await service.resolve("https://youtu.be/WM8bTdBs-cw")
    assert res.kind is ResolutionKind.NOT_FOUND and res.message
    spotify.close()
    await reccobeats.close()


async def test_youtube_link_resolves_through_the_title(
    sqlite_sessions: async_sessionmaker[AsyncSession], fake_youtube: FakeYouTube, provider_env: None
) -> None:
    ids = await add_catalog(sqlite_sessions)
    service = await _service(sqlite_sessions, youtube_key=True)
    res = await service.resolve("https://www.youtube.com/watch?v=CD-E-LDc384&t=10")
    assert res.kind is ResolutionKind.TRACK and res.tracks[0].id == ids[sid(6)]
    assert res.notice and "Enter Sandman" in res.notice
    res = await service.resolve("https://music.youtube.com/watch?v=fJ9rUzIMcZQ")
    assert res.kind is ResolutionKind.TRACK and res.tracks[0].id == ids[sid(1)]


async def test_youtube_quota_keeps_cards_working(
    sqlite_sessions: async_sessionmaker[AsyncSession], fake_youtube: FakeYouTube, provider_env: None
) -> None:
    ids = await add_catalog(sqlite_sessions)
    service = await _service(sqlite_sessions, youtube_key=True, genre=FakeGenre())
    fake_youtube.fail("search", quota_exceeded())
    card = await service.card(ids[sid(5)])
    assert card.youtube.is_search and card.genre is not None
    assert (await service.card(ids[sid(6)])).youtube.is_search
    assert fake_youtube.calls["search"] == 1


async def test_resolve_records_the_search(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    from db.models import Interaction, InteractionKind

    await add_catalog(sqlite_sessions)
    async with sqlite_sessions.begin() as session:
        user = User(telegram_id=7)
        session.add(user)
    service = await _service(sqlite_sessions)
    await service.resolve("bohemian rhapsody", user_id=user.id)
    await service.resolve("bohemian rhapsody", user_id=123456)  # unknown user: still answers
    async with sqlite_sessions() as session:
        kinds = (await session.scalars(select(Interaction.kind).where(Interaction.user_id == user.id))).all()
    assert kinds == [InteractionKind.SEARCHED]


async def test_resolve_never_raises_on_random_input(sqlite_sessions: async_sessionmaker[AsyncSession]) -> None:
    import random

    await add_catalog(sqlite_sessions)
    service = await _service(sqlite_sessions)
    rng = random.Random(11)
    pieces = [
        "https://",
        "open.spotify.com/",
        "track/",
        "album/",
        "youtu.be/",
        "spotify:track:",
        sid(1),
        " - ",
        " by ",
        "Queen",
        "ü",
        "米",
        "\u200b",
        "\x00",
        "?si=",
        "@",
        "/",
        "%",
        "\U0001f3b8",
    ]
    for _ in range(300):
        text = "".join(
            rng.choice(pieces) if rng.random() < 0.5 else chr(rng.randint(1, 0x2FFFF))
            for _ in range(rng.randint(0, 60))
        )
        res = await service.resolve(text * rng.choice((1, 1, 1, 20)))
        assert res.kind in ResolutionKind
        if res.kind in (ResolutionKind.INVALID, ResolutionKind.UNSUPPORTED, ResolutionKind.NOT_FOUND):
            assert res.message and not res.tracks
        else:
            assert res.tracks
