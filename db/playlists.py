"""Playlists and Spotify authorizations: queries over one AsyncSession (they flush, never commit).

Concurrency rules, the same on SQLite and PostgreSQL:

- every transaction that changes a playlist starts with `lock()`: an `UPDATE … WHERE public_id =
  :id AND owner = :owner RETURNING …`, which checks ownership and, being a write, holds the
  playlist until commit — PostgreSQL's row lock, SQLite's write lock (taken by the first statement,
  so a transaction never has to upgrade a read snapshot, which WAL would refuse). Concurrent edits
  of one playlist therefore run one after another, each seeing the last one's songs and positions;
- a song is added with `INSERT … SELECT max(position) + 1 … ON CONFLICT DO NOTHING` on the primary
  key (playlist, track): two quick taps add it once;
- every change of songs or order bumps `playlists.version`; a reorder writes its positions after a
  conditional `UPDATE … WHERE version = :seen` (a client's stale view is refused, never applied).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import bindparam, delete, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Like, Playlist, PlaylistItem, PlaylistKind, SpotifyAuthRequest, SpotifyLink, Track
from db.repositories import dialect_insert, rowcount, table_of, utcnow


class PlaylistRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    # -- playlists ---------------------------------------------------------------------------

    async def ensure_likes(self, owner: str, user_id: int, public_id: str) -> Playlist:
        """The owner's likes playlist, made on first use (one per owner: its name is "")."""
        now = utcnow()
        stmt = (
            dialect_insert(self._s, Playlist)
            .values(
                public_id=public_id,
                owner=owner,
                user_id=user_id,
                kind=PlaylistKind.LIKES,
                name="",
                version=0,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[Playlist.owner, Playlist.name])
        )
        await self._s.execute(stmt)
        row = await self._s.scalar(
            select(Playlist)
            .where(Playlist.owner == owner, Playlist.name == "")
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row

    async def create(self, owner: str, user_id: int | None, name: str, public_id: str) -> Playlist | None:
        """A new named playlist; None when the owner has one by that name already."""
        now = utcnow()
        stmt = (
            dialect_insert(self._s, Playlist)
            .values(
                public_id=public_id,
                owner=owner,
                user_id=user_id,
                kind=PlaylistKind.LIST,
                name=name,
                version=0,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[Playlist.owner, Playlist.name])
        )
        if not rowcount(await self._s.execute(stmt)):
            return None
        return await self._s.scalar(select(Playlist).where(Playlist.public_id == public_id))

    async def lock(self, owner: str, public_id: str) -> Playlist | None:
        """The playlist, held for this transaction, when `owner` owns it (None otherwise: someone
        else's looks like none at all). Run it first in a transaction that changes the playlist."""
        stmt = (
            update(Playlist)
            .where(Playlist.public_id == public_id, Playlist.owner == owner)
            .values(updated_at=utcnow())
            .returning(Playlist)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        return cast("Playlist | None", await self._s.scalar(stmt))

    async def owned(self, owner: str, public_id: str) -> Playlist | None:
        """The playlist when `owner` owns it; None otherwise (someone else's looks like none at all)."""
        stmt = select(Playlist).where(Playlist.public_id == public_id, Playlist.owner == owner)
        return await self._s.scalar(stmt.execution_options(populate_existing=True))

    async def by_id(self, playlist_id: int) -> Playlist | None:
        return await self._s.get(Playlist, playlist_id)

    async def by_share_token(self, token: str) -> Playlist | None:
        return await self._s.scalar(select(Playlist).where(Playlist.share_token == token))

    async def of_owner(self, owner: str) -> Sequence[Playlist]:
        """The likes playlist first, then named ones by name."""
        stmt = (
            select(Playlist).where(Playlist.owner == owner).order_by(Playlist.kind != PlaylistKind.LIKES, Playlist.name)
        )
        return (await self._s.scalars(stmt)).all()

    async def counts(self, playlists: Sequence[Playlist]) -> dict[int, int]:
        """How many songs each playlist holds (a likes playlist: its owner's likes)."""
        out: dict[int, int] = {}
        lists = [p.id for p in playlists if p.kind == PlaylistKind.LIST]
        if lists:
            rows = await self._s.execute(
                select(PlaylistItem.playlist_id, func.count())
                .where(PlaylistItem.playlist_id.in_(lists))
                .group_by(PlaylistItem.playlist_id)
            )
            out.update({int(pid): int(n) for pid, n in rows})
        for p in playlists:
            if p.kind == PlaylistKind.LIKES and p.user_id is not None:
                out[p.id] = int(await self._s.scalar(select(func.count()).where(Like.user_id == p.user_id)) or 0)
            out.setdefault(p.id, 0)
        return out

    async def rename(self, playlist_id: int, name: str) -> bool:
        """False when the owner has another playlist by that name."""
        try:
            async with self._s.begin_nested():
                await self._s.execute(
                    update(Playlist)
                    .where(Playlist.id == playlist_id)
                    .values(name=name, updated_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
        except IntegrityError:
            return False
        return True

    async def delete(self, playlist_id: int) -> bool:
        result = await self._s.execute(
            delete(Playlist).where(Playlist.id == playlist_id).execution_options(synchronize_session=False)
        )
        return bool(rowcount(result))

    async def set_share_token(self, playlist_id: int, token: str | None, *, only_if_unset: bool = False) -> bool:
        stmt = update(Playlist).where(Playlist.id == playlist_id)
        if only_if_unset:
            stmt = stmt.where(Playlist.share_token.is_(None))
        result = await self._s.execute(
            stmt.values(share_token=token, updated_at=utcnow()).execution_options(synchronize_session=False)
        )
        return bool(rowcount(result))

    async def _bump(self, playlist_id: int) -> None:
        await self._s.execute(
            update(Playlist)
            .where(Playlist.id == playlist_id)
            .values(version=Playlist.version + 1, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    # -- songs ------------------------------------------------------------------------------

    async def add_item(self, playlist_id: int, track_id: int) -> bool:
        """Append a song (after `lock()`); False when it is in the playlist already."""
        table = PlaylistItem.__table__
        last = select(func.coalesce(func.max(table.c.position), 0) + 1).where(table.c.playlist_id == playlist_id)
        source = select(
            literal(playlist_id).label("playlist_id"),
            literal(track_id).label("track_id"),
            last.scalar_subquery().label("position"),
            literal(utcnow(), type_=table.c.added_at.type).label("added_at"),
        )
        stmt = (
            dialect_insert(self._s, PlaylistItem)
            .from_select(["playlist_id", "track_id", "position", "added_at"], source)
            .on_conflict_do_nothing(index_elements=[PlaylistItem.playlist_id, PlaylistItem.track_id])
        )
        added = bool(rowcount(await self._s.execute(stmt)))
        if added:
            await self._bump(playlist_id)
        return added

    async def add_items(self, playlist_id: int, track_ids: Sequence[int]) -> int:
        """Append several songs in order (those already in it are left where they are); how many were added."""
        added = 0
        for track_id in track_ids:
            added += await self.add_item(playlist_id, track_id)
        return added

    async def remove_item(self, playlist_id: int, track_id: int) -> bool:
        result = await self._s.execute(
            delete(PlaylistItem).where(PlaylistItem.playlist_id == playlist_id, PlaylistItem.track_id == track_id)
        )
        removed = bool(rowcount(result))
        if removed:
            await self._bump(playlist_id)
        return removed

    def _ordered(self, playlist_id: int) -> Any:
        return (
            select(PlaylistItem.track_id)
            .where(PlaylistItem.playlist_id == playlist_id)
            .order_by(PlaylistItem.position, PlaylistItem.added_at, PlaylistItem.track_id)
        )

    async def item_ids(self, playlist_id: int, limit: int | None = None) -> list[int]:
        """The songs in order."""
        stmt = self._ordered(playlist_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [int(t) for t in (await self._s.scalars(stmt)).all()]

    async def item_count(self, playlist_id: int) -> int:
        stmt = select(func.count()).where(PlaylistItem.playlist_id == playlist_id)
        return int(await self._s.scalar(stmt) or 0)

    async def item_page(self, playlist_id: int, offset: int, limit: int) -> Sequence[Track]:
        stmt = (
            select(Track)
            .join(PlaylistItem, PlaylistItem.track_id == Track.id)
            .where(PlaylistItem.playlist_id == playlist_id)
            .order_by(PlaylistItem.position, PlaylistItem.added_at, PlaylistItem.track_id)
            .offset(offset)
            .limit(limit)
        )
        return (await self._s.scalars(stmt)).all()

    async def reorder(self, playlist_id: int, seen_version: int, positions: Mapping[int, int]) -> bool:
        """Write new positions (track id → position) when the playlist is still at `seen_version`;
        False (nothing written) when another change came first."""
        result = await self._s.execute(
            update(Playlist)
            .where(Playlist.id == playlist_id, Playlist.version == seen_version)
            .values(version=Playlist.version + 1, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if not rowcount(result):
            return False
        if positions:
            table = table_of(PlaylistItem)
            stmt = (
                update(table)
                .where(table.c.playlist_id == playlist_id, table.c.track_id == bindparam("_track"))
                .values(position=bindparam("_position"))
            )
            await self._s.execute(
                stmt, [{"_track": track, "_position": position} for track, position in positions.items()]
            )
        return True

    async def version(self, playlist_id: int) -> int:
        return int(await self._s.scalar(select(Playlist.version).where(Playlist.id == playlist_id)) or 0)

    async def containing(self, playlist_ids: Iterable[int], track_id: int) -> set[int]:
        """Which of these playlists hold the song."""
        ids = list(playlist_ids)
        if not ids:
            return set()
        stmt = select(PlaylistItem.playlist_id).where(
            PlaylistItem.playlist_id.in_(ids), PlaylistItem.track_id == track_id
        )
        return {int(p) for p in (await self._s.scalars(stmt)).all()}


class SpotifyLinkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, owner: str) -> SpotifyLink | None:
        stmt = select(SpotifyLink).where(SpotifyLink.owner == owner)
        return await self._s.scalar(stmt.execution_options(populate_existing=True))

    async def put(
        self,
        owner: str,
        *,
        user_id: int | None,
        access_token: str,
        refresh_token: str | None,
        expires_at: datetime,
        scope: str,
    ) -> None:
        """Insert or replace the owner's authorization (a refresh without a new refresh token keeps the old)."""
        now = utcnow()
        stmt = dialect_insert(self._s, SpotifyLink).values(
            owner=owner,
            user_id=user_id,
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=expires_at,
            scope=scope[:256],
            created_at=now,
            updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[SpotifyLink.owner],
            set_={
                "access_token": stmt.excluded.access_token,
                "refresh_token": func.coalesce(stmt.excluded.refresh_token, SpotifyLink.refresh_token),
                "expires_at": stmt.excluded.expires_at,
                "scope": stmt.excluded.scope,
                "updated_at": now,
            },
        )
        await self._s.execute(stmt)

    async def delete(self, owner: str) -> bool:
        return bool(rowcount(await self._s.execute(delete(SpotifyLink).where(SpotifyLink.owner == owner))))

    async def add_request(
        self,
        state: str,
        *,
        owner: str,
        user_id: int | None,
        verifier: str,
        playlist_id: int | None,
        created_at: datetime | None = None,
    ) -> None:
        self._s.add(
            SpotifyAuthRequest(
                state=state,
                owner=owner,
                user_id=user_id,
                verifier=verifier,
                playlist_id=playlist_id,
                created_at=created_at or utcnow(),
            )
        )
        await self._s.flush()

    async def take_request(self, state: str, *, since: datetime) -> Any | None:
        """Consume an authorization request (once: a DELETE … RETURNING); None when unknown, used or
        older than `since`. Returns (owner, user_id, verifier, playlist_id)."""
        stmt = (
            delete(SpotifyAuthRequest)
            .where(SpotifyAuthRequest.state == state)
            .returning(
                SpotifyAuthRequest.owner,
                SpotifyAuthRequest.user_id,
                SpotifyAuthRequest.verifier,
                SpotifyAuthRequest.playlist_id,
                SpotifyAuthRequest.created_at,
            )
        )
        row = (await self._s.execute(stmt)).first()
        if row is None:
            return None
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=since.tzinfo)
        return row if created >= since else None

    async def purge_requests(self, before: datetime) -> int:
        return rowcount(await self._s.execute(delete(SpotifyAuthRequest).where(SpotifyAuthRequest.created_at < before)))
