"""Playlists: a person's likes (the default playlist) and named playlists — songs added, moved and
removed, a radio from a whole playlist, export files, a read-only share page and YouTube links.

Who owns a playlist is a `Listener` (as for radios): the Telegram user, the API key, or the web
page's session. Anyone else is told the playlist does not exist (`PlaylistNotFound`), never that it
belongs to someone; the keyless API ("open") owns nothing. A Telegram user's likes are their default
playlist, made on first use: its songs are their likes (newest first), adding to it likes a song
and removing unlikes it; it cannot be renamed, deleted or reordered.

Every change runs in one transaction that begins by locking the playlist (`PlaylistRepository.
lock`, which also checks the owner), so concurrent edits of one playlist never lose each other's
songs (see db/playlists.py). Share links are 256 random bits; revoking one makes its page 404 at
once, and sharing again gives a new link.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InteractionKind, Playlist, PlaylistKind
from db.playlists import PlaylistRepository
from db.repositories import InteractionRepository, LikeRepository, TrackRepository
from services.dto import (
    ExportFile,
    GenreGuess,
    Listener,
    Page,
    PlaylistInfo,
    PlaylistTarget,
    PlaylistView,
    RadioStep,
    SharedPlaylist,
    SharedTrack,
    ShareInfo,
    TrackInfo,
    YouTubePlay,
)
from services.errors import (
    InvalidInput,
    LikesPlaylistFixed,
    PlaylistChanged,
    PlaylistNameTaken,
    PlaylistNotFound,
    TrackNotFound,
)
from services.playlist_export import FORMATS, PART_BYTES, export_files, rows_for

MAX_NAME = 100
MAX_PLAYLISTS = 200  # named playlists per owner
MAX_SONGS = 10_000  # songs per named playlist
MAX_PAGE = 100
LIKES_NAME = "Likes"  # the default playlist's name in files and on its share page
WATCH_VIDEOS = "https://www.youtube.com/watch_videos?video_ids="
VIDEOS_PER_LINK = 50  # YouTube plays at most 50 ids from one watch_videos link
YOUTUBE_LOOKUPS = 10  # searches (100 quota units each) one request may spend on songs never looked up
TOP_GENRES = 3
GUESSES_FOR_SUMMARY = 500  # unlabelled songs the genre model guesses for a summary
MSG_NOT_FOUND = "There is no such playlist."


class GenreGuesses(Protocol):
    async def guess_tracks(self, tracks: Sequence[TrackInfo]) -> list[GenreGuess | None]: ...


class PlaylistRadios(Protocol):
    async def start_from_tracks(
        self,
        track_ids: Sequence[int],
        *,
        listener: Listener,
        diversity: float | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> RadioStep: ...


class VideoIds(Protocol):
    """`services.youtube.YouTubeService` fits."""

    async def known_videos(self, tracks: list[TrackInfo], *, lookups: int = 0) -> dict[int, str]: ...


def new_public_id() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits, 22 characters


def new_share_token() -> str:
    return secrets.token_urlsafe(32)  # 256 random bits, 43 characters


def clean_name(raw: str) -> str:
    """A playlist name as stored: one line, single spaces, no control characters, 1–100 characters."""
    text = " ".join("".join(" " if not ch.isprintable() else ch for ch in raw or "").split())
    if not text:
        raise InvalidInput("Give the playlist a name.")
    if len(text) > MAX_NAME:
        raise InvalidInput(f"A playlist name can be at most {MAX_NAME} characters.")
    return text


def share_path(token: str) -> str:
    return f"/p/{token}"


def youtube_play_urls(video_ids: Sequence[str], per_link: int = VIDEOS_PER_LINK) -> tuple[str, ...]:
    """watch_videos links, `per_link` ids each (the first link plays the first songs)."""
    ids = list(dict.fromkeys(video_ids))
    return tuple(WATCH_VIDEOS + ",".join(ids[i : i + per_link]) for i in range(0, len(ids), per_link))


class PlaylistService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        radio: PlaylistRadios,
        *,
        genres: GenreGuesses | None = None,
        youtube: VideoIds | None = None,
        previews: Callable[[TrackInfo], Awaitable[str | None]] | None = None,
        public_url: str | None = None,
        new_id: Callable[[], str] = new_public_id,
        new_token: Callable[[], str] = new_share_token,
        part_bytes: int = PART_BYTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._radio = radio
        self._genres = genres
        self._youtube = youtube
        self._previews = previews
        self.public_url = public_url.rstrip("/") if public_url else None
        self._new_id = new_id
        self._new_token = new_token
        self.part_bytes = part_bytes
        self._clock = clock

    # -- reading -----------------------------------------------------------------------------

    async def playlists(self, listener: Listener) -> list[PlaylistInfo]:
        """The likes playlist first (Telegram users), then named playlists by name."""
        owner = _owner(listener)
        if listener.user_id is not None:
            async with self._sessions.begin() as s:
                await PlaylistRepository(s).ensure_likes(owner, listener.user_id, self._new_id())
        async with self._sessions() as s:
            repo = PlaylistRepository(s)
            rows = await repo.of_owner(owner)
            counts = await repo.counts(rows)
            return [self._info(r, counts[r.id]) for r in rows]

    async def get(self, listener: Listener, playlist_id: str) -> PlaylistInfo:
        async with self._sessions() as s:
            row = await self._owned(s, listener, playlist_id)
            return self._info(row, (await PlaylistRepository(s).counts([row]))[row.id])

    async def view(self, listener: Listener, playlist_id: str, page: int = 0, size: int = 5) -> PlaylistView:
        """A page of its songs (in order; the likes playlist newest first). A page past the end
        shows the last one."""
        size = min(max(1, size), MAX_PAGE)
        async with self._sessions() as s:
            row = await self._owned(s, listener, playlist_id)
            repo = PlaylistRepository(s)
            count = (await repo.counts([row]))[row.id]
            pages = max(1, math.ceil(count / size))
            page = min(max(page, 0), pages - 1)
            if row.kind == PlaylistKind.LIKES and row.user_id is not None:
                tracks = await LikeRepository(s).page(row.user_id, page * size, size)
            else:
                tracks = await repo.item_page(row.id, page * size, size)
            items = tuple(TrackInfo.from_row(t) for t in tracks)
            return PlaylistView(self._info(row, count), Page(items, page, pages, count))

    async def targets(self, listener: Listener, track_id: int) -> list[PlaylistTarget]:
        """Where "➕ to playlist" can put a song, and whether it is there already."""
        playlists = await self.playlists(listener)
        async with self._sessions() as s:
            repo = PlaylistRepository(s)
            rows = {r.public_id: r for r in await repo.of_owner(_owner(listener))}
            inside = await repo.containing([r.id for r in rows.values() if r.kind == PlaylistKind.LIST], track_id)
            liked = (
                await LikeRepository(s).exists(listener.user_id, track_id) if listener.user_id is not None else False
            )
        out = []
        for info in playlists:
            row = rows.get(info.id)
            if row is None:
                continue
            contains = liked if info.is_likes else row.id in inside
            out.append(PlaylistTarget(info, contains))
        return out

    async def tracks(self, listener: Listener, playlist_id: str) -> tuple[PlaylistInfo, list[TrackInfo]]:
        """Every song, in order."""
        async with self._sessions() as s:
            row = await self._owned(s, listener, playlist_id)
            tracks = await self._all_tracks(s, row)
            return self._info(row, len(tracks)), tracks

    # -- changing ----------------------------------------------------------------------------

    async def create(self, listener: Listener, name: str) -> PlaylistInfo:
        owner = _owner(listener)
        name = clean_name(name)
        async with self._sessions.begin() as s:
            repo = PlaylistRepository(s)
            # The insert first: on SQLite a transaction that writes first never meets a stale snapshot.
            row = await repo.create(owner, listener.user_id, name, self._new_id())
            if row is None:
                raise PlaylistNameTaken(f"You already have a playlist called “{name}”.")
            if sum(r.kind == PlaylistKind.LIST for r in await repo.of_owner(owner)) > MAX_PLAYLISTS:
                raise InvalidInput(f"You can keep up to {MAX_PLAYLISTS} playlists; delete one first.")
            return self._info(row, 0)

    async def rename(self, listener: Listener, playlist_id: str, name: str) -> PlaylistInfo:
        name = clean_name(name)
        async with self._sessions.begin() as s:
            row = await self._locked(s, listener, playlist_id)
            if row.kind == PlaylistKind.LIKES:
                raise LikesPlaylistFixed("Your likes playlist keeps its name.")
            repo = PlaylistRepository(s)
            if row.name != name and not await repo.rename(row.id, name):
                raise PlaylistNameTaken(f"You already have a playlist called “{name}”.")
            return replace(self._info(row, await repo.item_count(row.id)), name=name)

    async def delete(self, listener: Listener, playlist_id: str) -> None:
        async with self._sessions.begin() as s:
            row = await self._locked(s, listener, playlist_id)
            if row.kind == PlaylistKind.LIKES:
                raise LikesPlaylistFixed("Your likes cannot be deleted as a playlist; remove songs one by one.")
            await PlaylistRepository(s).delete(row.id)

    async def add(self, listener: Listener, playlist_id: str, track_id: int) -> bool:
        """Add a song; False when it was there already (two quick taps add it once)."""
        async with self._sessions.begin() as s:
            row = await self._locked(s, listener, playlist_id)
            if await TrackRepository(s).get(track_id) is None:
                raise TrackNotFound("That song is no longer available.")
            if row.kind == PlaylistKind.LIKES:
                assert row.user_id is not None
                added = await LikeRepository(s).add(row.user_id, track_id)
                if added:
                    await InteractionRepository(s).add(
                        track_id, InteractionKind.LIKED, user_id=row.user_id, context="playlist"
                    )
                return added
            repo = PlaylistRepository(s)
            if await repo.item_count(row.id) >= MAX_SONGS:
                raise InvalidInput(f"A playlist holds up to {MAX_SONGS:,} songs.")
            return await repo.add_item(row.id, track_id)

    async def remove(self, listener: Listener, playlist_id: str, track_id: int) -> bool:
        """Remove a song; False when it was not there."""
        async with self._sessions.begin() as s:
            row = await self._locked(s, listener, playlist_id)
            if row.kind == PlaylistKind.LIKES:
                assert row.user_id is not None
                removed = await LikeRepository(s).remove(row.user_id, track_id)
                if removed:
                    await InteractionRepository(s).add(
                        track_id, InteractionKind.UNLIKED, user_id=row.user_id, context="playlist"
                    )
                return removed
            return await PlaylistRepository(s).remove_item(row.id, track_id)

    async def move(
        self, listener: Listener, playlist_id: str, track_id: int, position: int, *, version: int | None = None
    ) -> PlaylistInfo:
        """Move a song to `position` (1-based; clamped to the playlist). With `version`, only when the
        playlist is still at that version (`PlaylistChanged` otherwise: nothing is moved)."""
        return await self._reorder(listener, playlist_id, track_id, lambda _index: position, version)

    async def shift(self, listener: Listener, playlist_id: str, track_id: int, by: int) -> PlaylistInfo:
        """Move a song `by` places (−1: one up) from where it is now (the bot's ⬆)."""
        return await self._reorder(listener, playlist_id, track_id, lambda index: index + 1 + by, None)

    async def _reorder(
        self,
        listener: Listener,
        playlist_id: str,
        track_id: int,
        target: Callable[[int], int],
        version: int | None,
    ) -> PlaylistInfo:
        async with self._sessions.begin() as s:
            row = await self._locked(s, listener, playlist_id)
            if row.kind == PlaylistKind.LIKES:
                raise LikesPlaylistFixed("Your likes stay in the order you liked them.")
            if version is not None and version != row.version:
                raise PlaylistChanged(
                    "The playlist has changed since you loaded it; reload and try again.", row.version
                )
            repo = PlaylistRepository(s)
            order = await repo.item_ids(row.id)
            if track_id not in order:
                raise TrackNotFound("That song is not in this playlist.")
            position = target(order.index(track_id))
            order.remove(track_id)
            order.insert(min(max(position, 1), len(order) + 1) - 1, track_id)
            # Dense positions 1..n for every song: ties and gaps left by concurrent adds are settled too.
            await repo.reorder(row.id, row.version, {t: i for i, t in enumerate(order, 1)})
            return self._info(row, len(order), version=row.version + 1)

    # -- radio, export, share, YouTube -------------------------------------------------------

    async def start_radio(
        self, listener: Listener, playlist_id: str, *, diversity: float | None = None, chat_id: int | None = None
    ) -> RadioStep:
        """A radio from the whole playlist (its songs' mean taste); it belongs to the same listener."""
        async with self._sessions() as s:
            row = await self._owned(s, listener, playlist_id)
            ids = await self._track_ids(s, row)
        if not ids:
            raise InvalidInput("This playlist is empty — add songs first.")
        return await self._radio.start_from_tracks(ids, listener=listener, diversity=diversity, chat_id=chat_id)

    async def export(
        self, listener: Listener, playlist_id: str, fmt: str, *, max_bytes: int | None = None
    ) -> list[ExportFile]:
        """The playlist as a file of `fmt` (csv, jspf, m3u8): in parts of at most `max_bytes`
        (default: under Telegram's 50 MB document limit), each a complete file."""
        if fmt not in FORMATS:
            raise InvalidInput(f"Export formats: {', '.join(FORMATS)}.")
        info, tracks = await self.tracks(listener, playlist_id)
        videos = await self._youtube.known_videos(tracks) if self._youtube is not None else {}
        title = info.name or LIKES_NAME
        return export_files(
            fmt,
            title,
            rows_for(tracks, videos),
            created=self._clock(),
            max_bytes=max_bytes or self.part_bytes,
        )

    async def youtube(self, listener: Listener, playlist_id: str) -> YouTubePlay:
        """One-tap YouTube links for the songs whose video is known (in playlist order)."""
        _info, tracks = await self.tracks(listener, playlist_id)
        videos: dict[int, str] = {}
        if self._youtube is not None:
            videos = await self._youtube.known_videos(tracks, lookups=YOUTUBE_LOOKUPS)
        ids = [videos[t.id] for t in tracks if t.id in videos]
        return YouTubePlay(youtube_play_urls(ids), len(ids), len(tracks))

    async def share(self, listener: Listener, playlist_id: str) -> ShareInfo:
        """The playlist's read-only link (made now, or the one it has), with its top genres."""
        async with self._sessions.begin() as s:
            row = await self._locked(s, listener, playlist_id)
            repo = PlaylistRepository(s)
            if row.share_token is None:
                await repo.set_share_token(row.id, self._new_token(), only_if_unset=True)
                row = await repo.owned(row.owner, row.public_id) or row
            tracks = await self._all_tracks(s, row)
            info = self._info(row, len(tracks))
        assert info.share_token is not None
        top = await self._top_genres(tracks)
        path = share_path(info.share_token)
        return ShareInfo(info, info.share_token, path, self.url(path), top)

    async def unshare(self, listener: Listener, playlist_id: str) -> bool:
        """Revoke the link (its page is gone at once); False when it was not shared."""
        async with self._sessions.begin() as s:
            row = await self._locked(s, listener, playlist_id)
            if row.share_token is None:
                return False
            return await PlaylistRepository(s).set_share_token(row.id, None)

    async def shared(self, token: str, page: int = 0, size: int = 20) -> SharedPlaylist:
        """What a share link shows (anyone holding it; read-only): a page of cards with genres and,
        where known, a fresh preview. `PlaylistNotFound` for an unknown or revoked link."""
        size = min(max(1, size), MAX_PAGE)
        async with self._sessions() as s:
            row = await PlaylistRepository(s).by_share_token(token) if token else None
            if row is None:
                raise PlaylistNotFound("This link does not lead to a playlist (it may have been revoked).")
            tracks = await self._all_tracks(s, row)
        pages = max(1, math.ceil(len(tracks) / size))
        page = min(max(page, 0), pages - 1)
        shown = tracks[page * size : (page + 1) * size]
        genres = await self._genres_of(shown)
        cards = []
        for track in shown:
            names, predicted = genres.get(track.id, ((), False))
            preview = await self._previews(track) if self._previews is not None else None
            cards.append(SharedTrack(track, names, predicted, preview))
        return SharedPlaylist(
            name=row.name or LIKES_NAME,
            kind=row.kind.value,
            count=len(tracks),
            tracks=Page(tuple(cards), page, pages, len(tracks)),
            top_genres=await self._top_genres(tracks),
        )

    def url(self, path: str) -> str | None:
        """An absolute link on the public address (PUBLIC_URL), when it is known."""
        return f"{self.public_url}{path}" if self.public_url else None

    # -- internals ---------------------------------------------------------------------------

    async def _owned(self, s: AsyncSession, listener: Listener, playlist_id: str) -> Playlist:
        row = await PlaylistRepository(s).owned(_owner(listener), playlist_id) if playlist_id else None
        if row is None:
            raise PlaylistNotFound(MSG_NOT_FOUND)
        return row

    async def _locked(self, s: AsyncSession, listener: Listener, playlist_id: str) -> Playlist:
        row = await PlaylistRepository(s).lock(_owner(listener), playlist_id) if playlist_id else None
        if row is None:
            raise PlaylistNotFound(MSG_NOT_FOUND)
        return row

    @staticmethod
    async def _track_ids(s: AsyncSession, row: Playlist) -> list[int]:
        if row.kind == PlaylistKind.LIKES and row.user_id is not None:
            return await LikeRepository(s).track_ids(row.user_id)
        return await PlaylistRepository(s).item_ids(row.id)

    async def _all_tracks(self, s: AsyncSession, row: Playlist) -> list[TrackInfo]:
        ids = await self._track_ids(s, row)
        found = await TrackRepository(s).get_many(ids)
        return [TrackInfo.from_row(found[t]) for t in ids if t in found]

    async def _genres_of(self, tracks: Sequence[TrackInfo]) -> dict[int, tuple[tuple[str, ...], bool]]:
        """Labels where the dataset has them, else the genre model's guess (marked predicted)."""
        out: dict[int, tuple[tuple[str, ...], bool]] = {t.id: (t.genres, False) for t in tracks if t.genres}
        unlabelled = [t for t in tracks if not t.genres and t.features is not None][:GUESSES_FOR_SUMMARY]
        if unlabelled and self._genres is not None:
            for track, guess in zip(unlabelled, await self._genres.guess_tracks(unlabelled), strict=True):
                if guess is not None:
                    out[track.id] = ((guess.genre,), True)
        return out

    async def _top_genres(self, tracks: Sequence[TrackInfo]) -> tuple[tuple[str, int], ...]:
        counts: Counter[str] = Counter()
        for names, _predicted in (await self._genres_of(tracks)).values():
            counts.update(set(names))
        return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_GENRES])

    @staticmethod
    def _info(row: Playlist, count: int, *, version: int | None = None) -> PlaylistInfo:
        return PlaylistInfo(
            id=row.public_id,
            name=row.name,
            kind=row.kind.value,
            count=count,
            version=row.version if version is None else version,
            share_token=row.share_token,
            updated_at=row.updated_at,
        )


def _owner(listener: Listener) -> str:
    """The owner key of a listener's playlists; the keyless API ("open") owns none."""
    if listener.owner == "open" or not listener.owner:
        raise PlaylistNotFound(MSG_NOT_FOUND)
    return listener.owner
