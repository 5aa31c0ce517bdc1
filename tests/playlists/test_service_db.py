"""PlaylistService on SQLite (a file, WAL) and PostgreSQL: ownership, concurrency, likes, names, sharing."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Interaction, InteractionKind, Like, Playlist, PlaylistItem
from services.dto import Listener
from services.errors import (
    InvalidInput,
    LikesPlaylistFixed,
    PlaylistChanged,
    PlaylistNameTaken,
    PlaylistNotFound,
    TrackNotFound,
)
from services.playlists import PlaylistService, clean_name
from tests.playlists.conftest import ANN, BEN, KEY, WEB, seed, service

Sessions = async_sessionmaker[AsyncSession]


async def order(svc: PlaylistService, who: Listener, pid: str) -> list[int]:
    _info, tracks = await svc.tracks(who, pid)
    return [t.id for t in tracks]


async def rows(sessions: Sessions, pid: str) -> list[tuple[int, int]]:
    async with sessions() as s:
        stmt = (
            select(PlaylistItem.track_id, PlaylistItem.position)
            .join(Playlist, Playlist.id == PlaylistItem.playlist_id)
            .where(Playlist.public_id == pid)
        )
        return [(int(t), int(p)) for t, p in (await s.execute(stmt)).all()]


async def test_two_quick_taps_add_a_song_once(sessions: Sessions) -> None:
    await seed(sessions)
    svc = service(sessions)
    pid = (await svc.create(ANN, "Road trip")).id
    results = await asyncio.gather(*(svc.add(ANN, pid, 7) for _ in range(20)))
    assert sorted(results) == [False] * 19 + [True]
    assert await rows(sessions, pid) == [(7, 1)]
    assert (await svc.get(ANN, pid)).count == 1


async def test_concurrent_adds_and_moves_lose_nothing(sessions: Sessions) -> None:
    await seed(sessions, tracks=40)
    svc = service(sessions)
    pid = (await svc.create(ANN, "Mix")).id
    for t in range(1, 11):
        await svc.add(ANN, pid, t)
    start_version = (await svc.get(ANN, pid)).version

    # Songs 11–30 are added while songs 1–10 are moved around, all at once.
    adds = [svc.add(ANN, pid, t) for t in range(11, 31)]
    moves = [svc.move(ANN, pid, t, 1 + (t * 3) % 10) for t in range(1, 11)]
    results = await asyncio.gather(*adds, *moves)
    assert all(results[:20])

    final = await order(svc, ANN, pid)
    assert sorted(final) == list(range(1, 31))  # every song once: nothing lost, nothing doubled
    assert Counter(final).most_common(1)[0][1] == 1
    info = await svc.get(ANN, pid)
    assert info.count == 30
    assert info.version == start_version + 20 + 10  # each add and each move counted once

    # A last move settles the positions to 1..n with no gaps or ties.
    await svc.move(ANN, pid, final[-1], 1)
    assert sorted(p for _t, p in await rows(sessions, pid)) == list(range(1, 31))


async def test_concurrent_reorders_each_apply(sessions: Sessions) -> None:
    await seed(sessions)
    svc = service(sessions)
    pid = (await svc.create(ANN, "Order")).id
    for t in range(1, 6):
        await svc.add(ANN, pid, t)
    # Two moves of different songs to the top at once: both land (one after the other).
    await asyncio.gather(svc.move(ANN, pid, 5, 1), svc.move(ANN, pid, 4, 1))
    final = await order(svc, ANN, pid)
    assert sorted(final) == [1, 2, 3, 4, 5]
    assert set(final[:2]) == {4, 5}
    assert final[2:] == [1, 2, 3]


async def test_a_move_from_a_stale_view_changes_nothing(sessions: Sessions) -> None:
    await seed(sessions)
    svc = service(sessions)
    info = await svc.create(ANN, "Stale")
    for t in (1, 2, 3):
        await svc.add(ANN, info.id, t)
    seen = (await svc.get(ANN, info.id)).version
    await svc.add(ANN, info.id, 4)  # someone else's change meanwhile
    with pytest.raises(PlaylistChanged) as caught:
        await svc.move(ANN, info.id, 3, 1, version=seen)
    assert caught.value.version == seen + 1
    assert await order(svc, ANN, info.id) == [1, 2, 3, 4]
    moved = await svc.move(ANN, info.id, 3, 1, version=seen + 1)
    assert moved.version == seen + 2
    assert await order(svc, ANN, info.id) == [3, 1, 2, 4]


async def test_others_get_not_found_for_everything(sessions: Sessions) -> None:
    await seed(sessions)
    svc = service(sessions)
    pid = (await svc.create(ANN, "Mine")).id
    await svc.add(ANN, pid, 1)
    attempts = {
        "get": lambda who: svc.get(who, pid),
        "view": lambda who: svc.view(who, pid),
        "tracks": lambda who: svc.tracks(who, pid),
        "add": lambda who: svc.add(who, pid, 2),
        "remove": lambda who: svc.remove(who, pid, 1),
        "move": lambda who: svc.move(who, pid, 1, 1),
        "rename": lambda who: svc.rename(who, pid, "Theirs"),
        "delete": lambda who: svc.delete(who, pid),
        "share": lambda who: svc.share(who, pid),
        "unshare": lambda who: svc.unshare(who, pid),
        "export": lambda who: svc.export(who, pid, "csv"),
        "youtube": lambda who: svc.youtube(who, pid),
        "radio": lambda who: svc.start_radio(who, pid),
    }
    for who in (BEN, KEY, WEB, Listener.anonymous()):
        for name, attempt in attempts.items():
            with pytest.raises(PlaylistNotFound):
                await attempt(who)
            assert name  # (which attempt failed shows in the traceback)
    # Nothing changed, and the owner's unknown id answers the same way as a stranger's real one.
    assert await order(svc, ANN, pid) == [1]
    assert (await svc.get(ANN, pid)).name == "Mine"
    with pytest.raises(PlaylistNotFound) as unknown:
        await svc.get(ANN, "A" * 22)
    with pytest.raises(PlaylistNotFound) as foreign:
        await svc.get(BEN, pid)
    assert unknown.value.message == foreign.value.message
    # And BEN's own list does not show ANN's.
    assert [p.name for p in await svc.playlists(BEN)] == [""]


async def test_likes_are_the_default_playlist(sessions: Sessions) -> None:
    await seed(sessions)
    svc = service(sessions)
    found = await asyncio.gather(*(svc.playlists(ANN) for _ in range(10)))  # made once, however many ask
    likes = found[0][0]
    assert likes.is_likes and all(f == [likes] for f in found)
    assert await svc.add(ANN, likes.id, 3) is True
    assert await svc.add(ANN, likes.id, 3) is False
    await svc.add(ANN, likes.id, 5)
    async with sessions() as s:
        assert set((await s.scalars(select(Like.track_id).where(Like.user_id == 1))).all()) == {3, 5}
        kinds = (await s.execute(select(Interaction.kind).where(Interaction.context == "playlist"))).scalars().all()
        assert kinds == [InteractionKind.LIKED, InteractionKind.LIKED]
    view = await svc.view(ANN, likes.id)
    assert [t.id for t in view.tracks.items] == [5, 3]  # newest first
    assert await svc.remove(ANN, likes.id, 3) is True
    assert (await svc.get(ANN, likes.id)).count == 1
    for change in (svc.rename(ANN, likes.id, "x"), svc.delete(ANN, likes.id), svc.move(ANN, likes.id, 5, 1)):
        with pytest.raises(LikesPlaylistFixed):
            await change
    # API keys and web sessions have no likes: only their named playlists.
    assert await svc.playlists(KEY) == []


async def test_names_are_cleaned_unique_and_bounded(sessions: Sessions) -> None:
    await seed(sessions)
    svc = service(sessions)
    assert clean_name("  Road\n\ttrip \u200b ") == "Road trip"  # line breaks, tabs, invisible characters
    info = await svc.create(ANN, "  Road \n trip  ")
    assert info.name == "Road trip"
    with pytest.raises(PlaylistNameTaken):
        await svc.create(ANN, "Road trip")
    other = await svc.create(BEN, "Road trip")  # another owner may use the name
    assert other.id != info.id
    for bad in ("", "   ", "\n\t", "x" * 101):
        with pytest.raises(InvalidInput):
            await svc.create(ANN, bad)
    second = await svc.create(ANN, "Second")
    with pytest.raises(PlaylistNameTaken):
        await svc.rename(ANN, second.id, "Road trip")
    assert (await svc.rename(ANN, second.id, "<b>Third</b> & co")).name == "<b>Third</b> & co"
    results = await asyncio.gather(*(svc.create(WEB, "Same") for _ in range(8)), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, PlaylistNameTaken) for r in results if isinstance(r, Exception))


async def test_adding_unknown_songs_and_removing_absent_ones(sessions: Sessions) -> None:
    await seed(sessions)
    svc = service(sessions)
    pid = (await svc.create(KEY, "API list")).id
    with pytest.raises(TrackNotFound):
        await svc.add(KEY, pid, 999_999)
    assert await svc.remove(KEY, pid, 1) is False
    with pytest.raises(TrackNotFound):
        await svc.move(KEY, pid, 1, 1)
    assert (await svc.get(KEY, pid)).count == 0


async def test_share_revoke_and_share_again(sessions: Sessions) -> None:
    await seed(sessions)
    svc = service(sessions, public_url="https://encore.example/")
    pid = (await svc.create(WEB, "Shared")).id
    for t in (1, 2, 3, 4):
        await svc.add(WEB, pid, t)
    first = await svc.share(WEB, pid)
    assert len(first.token) >= 43 and first.url == f"https://encore.example/p/{first.token}"
    assert (await svc.share(WEB, pid)).token == first.token  # sharing twice keeps the link
    page = await svc.shared(first.token)
    assert page.name == "Shared" and page.count == 4
    assert [c.track.id for c in page.tracks.items] == [1, 2, 3, 4]
    assert dict(first.top_genres)  # labels counted
    assert await svc.unshare(WEB, pid) is True
    with pytest.raises(PlaylistNotFound):
        await svc.shared(first.token)
    again = await svc.share(WEB, pid)
    assert again.token != first.token
    with pytest.raises(PlaylistNotFound):
        await svc.shared("")


async def test_deleting_a_playlist_removes_its_songs_and_link(sessions: Sessions) -> None:
    await seed(sessions)
    svc = service(sessions)
    pid = (await svc.create(ANN, "Gone")).id
    await svc.add(ANN, pid, 1)
    token = (await svc.share(ANN, pid)).token
    await svc.delete(ANN, pid)
    with pytest.raises(PlaylistNotFound):
        await svc.get(ANN, pid)
    with pytest.raises(PlaylistNotFound):
        await svc.shared(token)
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(PlaylistItem)) == 0


async def test_shift_moves_from_where_the_song_is_now(sessions: Sessions) -> None:
    await seed(sessions)
    svc = service(sessions)
    pid = (await svc.create(ANN, "Shift")).id
    for t in (1, 2, 3, 4):
        await svc.add(ANN, pid, t)
    await svc.shift(ANN, pid, 3, -1)
    assert await order(svc, ANN, pid) == [1, 3, 2, 4]
    await svc.shift(ANN, pid, 1, -1)  # already first: stays
    await svc.shift(ANN, pid, 4, +5)  # past the end: last
    assert await order(svc, ANN, pid) == [1, 3, 2, 4]
    # Ten taps on ⬆ for the last song at once: each counts from where the song is then.
    await asyncio.gather(*(svc.shift(ANN, pid, 4, -1) for _ in range(10)))
    assert await order(svc, ANN, pid) == [4, 1, 3, 2]
    with pytest.raises(TrackNotFound):
        await svc.shift(ANN, pid, 9, -1)
