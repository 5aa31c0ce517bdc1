"""Repositories: queries over one AsyncSession. They flush when they need ids, never commit.

A unit of work that must be cheap under load is one plain function over a `db.direct.Runner`
(`record_radio_answer`), run by `db.engine.Units` in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    Date,
    Table,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, lazyload

from db.base import Base
from db.direct import Runner
from db.models import (
    ANALYSIS_FEATURE_COLUMNS,
    AUDIO_FEATURE_COLUMNS,
    CacheEntry,
    DailyPick,
    Interaction,
    InteractionKind,
    Like,
    RadioSession,
    RadioState,
    StoredTrack,
    Track,
    TrackAlias,
    TrackGenre,
    User,
)

UPLOAD_SOURCE = "upload"  # tracks.source of a song someone sent as audio


def utcnow() -> datetime:
    return datetime.now(UTC)


def rowcount(result: Result[Any]) -> int:
    """Rows an INSERT / UPDATE / DELETE touched (DML returns a CursorResult; `execute` is typed as Result)."""
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def table_of(model: type[Base]) -> Table:
    """A mapped class's Core table (declarative types `__table__` as the wider FromClause)."""
    return cast("Table", model.__table__)


def column_lengths(model: type[Base], columns: Iterable[str]) -> dict[str, int | None]:
    """The declared length of each string column (None: unbounded), for clipping values to fit."""
    table = table_of(model)
    return {c: getattr(table.c[c].type, "length", None) for c in columns}


def dialect_insert(session: AsyncSession | Session, table: Any) -> Any:
    """The one dialect `INSERT` with ON CONFLICT (SQLite and PostgreSQL both have it)."""
    return insert_for(session.get_bind().dialect.name, table)


def insert_for(name: str, table: Any) -> Any:
    """`dialect_insert` by the dialect's name."""
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect: {name}")


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, user_id: int) -> User | None:
        return await self._s.get(User, user_id)

    async def by_telegram_id(self, telegram_id: int) -> User | None:
        return await self._s.scalar(select(User).where(User.telegram_id == telegram_id))

    async def upsert_telegram(
        self,
        telegram_id: int,
        *,
        first_name: str | None,
        last_name: str | None,
        username: str | None,
        language: str | None,
        default_pick_hour: int = 10,
        timezone: str | None = None,
    ) -> User:
        """Insert or refresh a Telegram user in one statement (safe under concurrent updates).

        `language` and `timezone` are written on insert only."""
        now = utcnow()
        values: dict[str, Any] = {
            "telegram_id": telegram_id,
            "first_name": first_name,
            "last_name": last_name,
            "username": username,
            "last_seen_at": now,
            "created_at": now,
            "pick_hour": default_pick_hour,
        }
        if timezone:
            values["timezone"] = timezone
        if language:
            values["language"] = language
        stmt = dialect_insert(self._s, User).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[User.telegram_id],
            set_={"first_name": first_name, "last_name": last_name, "username": username, "last_seen_at": now},
        )
        await self._s.execute(stmt)
        user = await self._s.scalar(
            select(User).where(User.telegram_id == telegram_id).execution_options(populate_existing=True)
        )
        assert user is not None
        return user

    async def update(self, user_id: int, **values: Any) -> None:
        await self._s.execute(update(User).where(User.id == user_id).values(**values))

    async def subscriber_timezones(self) -> list[str]:
        """The distinct time zones of active subscribers (a few dozen at most in practice)."""
        stmt = select(User.timezone).where(User.subscribed.is_(True), User.active.is_(True)).distinct()
        return list((await self._s.scalars(stmt)).all())

    async def due_subscribers(
        self, local: Mapping[str, tuple[date, int]], limit: int = 1000
    ) -> Sequence[tuple[User, date]]:
        """Active subscribers whose local pick time has come and who have no pick for their local day.

        `local` maps each time zone to its current local date and minutes since local midnight
        (`services.schedule.local_day_and_minute`). One query for every zone: CASE picks the
        zone's values per row; users in a zone missing from `local` are not due.
        """
        if not local:
            return []
        zones = sorted(local)
        minute_now = case({z: local[z][1] for z in zones}, value=User.timezone, else_=-1)
        local_day = case({z: literal(local[z][0], type_=Date()) for z in zones}, value=User.timezone, else_=null())
        picked = select(DailyPick.id).where(DailyPick.user_id == User.id, DailyPick.day == local_day)
        stmt = (
            select(User, local_day.label("local_day"))
            .where(User.subscribed.is_(True), User.active.is_(True), User.timezone.in_(zones))
            .where(User.pick_hour * 60 + User.pick_minute <= minute_now)
            .where(~picked.exists())
            .order_by(User.id)
            .limit(limit)
        )
        rows = (await self._s.execute(stmt)).all()
        return [(user, day if isinstance(day, date) else date.fromisoformat(str(day))) for user, day in rows]


class TrackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, track_id: int, *, genres: bool = True) -> Track | None:
        """The track; `genres=False` leaves its genre labels unloaded (one query instead of two)."""
        if genres:
            return await self._s.get(Track, track_id)
        return await self._s.get(Track, track_id, options=[lazyload(Track.genres)])

    async def get_many(self, track_ids: Iterable[int]) -> dict[int, Track]:
        ids = list(dict.fromkeys(track_ids))
        if not ids:
            return {}
        rows = (await self._s.scalars(select(Track).where(Track.id.in_(ids)))).all()
        return {t.id: t for t in rows}

    async def by_spotify_id(self, spotify_id: str) -> Track | None:
        track = await self._s.scalar(select(Track).where(Track.spotify_id == spotify_id))
        if track is not None:
            return track
        alias = await self._s.get(TrackAlias, spotify_id)
        return await self._s.get(Track, alias.track_id) if alias else None

    async def count(self) -> int:
        return int(await self._s.scalar(select(func.count()).select_from(Track)) or 0)

    async def by_deezer_id(self, deezer_id: int) -> Track | None:
        return await self._s.scalar(select(Track).where(Track.deezer_id == deezer_id))

    async def upsert_provider_track(self, values: Mapping[str, Any]) -> tuple[Track, bool]:
        """A track found through a provider (Deezer, Spotify): inserted unless a row with the same
        Deezer id, Spotify id or ISRC exists. Returns (the row, whether this call created it).

        One conditional statement, `INSERT … SELECT … WHERE NOT EXISTS (same ISRC) ON CONFLICT DO
        NOTHING` (the unique Deezer and Spotify ids), so concurrent callers cannot both insert.
        The ISRC is not unique in the schema (catalogue rows have none, and a recording can carry
        one ISRC under several Deezer ids); on PostgreSQL a transaction-scoped advisory lock on the
        ISRC serialises the NOT EXISTS check, and SQLite takes its write lock before the statement
        reads. An existing row is returned as it is: nothing of it is overwritten.
        """
        table = Track.__table__
        unknown = set(values) - {c.name for c in table.columns} | ({"id"} & set(values))
        if unknown:
            raise ValueError(f"not track columns: {sorted(unknown)}")
        cols = dict(values)
        if cols.get("deezer_id") is None and not cols.get("spotify_id"):
            raise ValueError("a provider track needs a Deezer id or a Spotify id")
        if not cols.get("name") or cols.get("artists") is None:
            raise ValueError("a provider track needs a name and artists")
        cols.setdefault("created_at", utcnow())
        isrc = cols.get("isrc") or None
        if isrc is not None and self._s.get_bind().dialect.name == "postgresql":
            await self._s.execute(select(func.pg_advisory_xact_lock(func.hashtext("isrc:" + isrc))))
        names = list(cols)
        source = select(*(literal(cols[n], type_=table.c[n].type).label(n) for n in names))
        # A WHERE is needed anyway: SQLite would read "SELECT … ON CONFLICT" as a join constraint.
        source = source.where(~exists().where(table.c.isrc == isrc) if isrc is not None else true())
        stmt = dialect_insert(self._s, Track).from_select(names, source).on_conflict_do_nothing()
        created = bool(rowcount(await self._s.execute(stmt)))
        row = await self._provider_match(cols.get("deezer_id"), cols.get("spotify_id") or None, isrc)
        if row is None:  # cannot happen: the insert either wrote a row or hit one of these
            raise RuntimeError("provider track upsert found no row")
        return row, created

    async def _provider_match(self, deezer_id: int | None, spotify_id: str | None, isrc: str | None) -> Track | None:
        for column, value in ((Track.deezer_id, deezer_id), (Track.spotify_id, spotify_id), (Track.isrc, isrc)):
            if value is None:
                continue
            stmt = select(Track).where(column == value).order_by(Track.id).limit(1)
            row = await self._s.scalar(stmt.execution_options(populate_existing=True))
            if row is not None:
                return row
        return None

    async def add(self, track: Track) -> Track:
        self._s.add(track)
        await self._s.flush()
        return track

    async def set_features(self, track_id: int, features: dict[str, float]) -> None:
        values = {k: float(v) for k, v in features.items() if k in AUDIO_FEATURE_COLUMNS}
        if values:
            await self._s.execute(update(Track).where(Track.id == track_id).values(**values))

    async def store_features(self, track_id: int, features: Mapping[str, float], source: str) -> bool:
        """Features found for a track, with where they came from, in one conditional statement: written
        when the row has none yet, or when it has only the nine analysis values and these are all
        twelve; never over better ones (a catalogue row's, or a concurrent writer's). Every feature
        column is written, so the nine analysis values leave key, mode and time signature NULL.
        True when written. `features` must be all twelve or the nine analysis values."""
        names = {k for k, v in features.items() if v is not None}
        complete = names >= set(AUDIO_FEATURE_COLUMNS)
        if not complete and not names >= set(ANALYSIS_FEATURE_COLUMNS):
            raise ValueError("features must be all twelve or the nine analysis values")
        values: dict[str, Any] = {c: float(features[c]) if c in names else None for c in AUDIO_FEATURE_COLUMNS}
        values["features_source"] = source[:16]
        # All twelve also replace the nine of an analysis.
        empty = or_(Track.danceability.is_(None), Track.key.is_(None)) if complete else Track.danceability.is_(None)
        result = await self._s.execute(update(Track).where(Track.id == track_id, empty).values(**values))
        return bool(rowcount(result))

    async def add_alias(self, spotify_id: str, track_id: int) -> None:
        """Another Spotify id of a stored track (kept when the id is an alias already)."""
        await self._s.execute(
            dialect_insert(self._s, TrackAlias)
            .values(spotify_id=spotify_id, track_id=track_id)
            .on_conflict_do_nothing(index_elements=[TrackAlias.spotify_id])
        )

    async def by_isrc(self, isrc: str) -> Track | None:
        return await self._s.scalar(select(Track).where(Track.isrc == isrc).order_by(Track.id).limit(1))

    async def by_song_key(self, key: str) -> Track | None:
        """The track a song folds onto: the catalogue's copy first, then the oldest."""
        if not key:
            return None
        stmt = (
            select(Track)
            .where(Track.search_key == key)
            .order_by((Track.source != "catalog"), Track.id)  # False (catalogue) sorts first
            .limit(1)
        )
        return await self._s.scalar(stmt)

    async def attach_deezer(
        self,
        track_id: int,
        deezer_id: int,
        *,
        isrc: str | None = None,
        cover_url: str | None = None,
        release_year: int | None = None,
    ) -> bool:
        """Give a track (say the catalogue's copy of a song found on Deezer) its Deezer id, and the ISRC,
        cover and year where it has none; one conditional statement, which leaves a track that already
        has a Deezer id alone and never takes an id another track holds. True when the id was set."""
        table = Track.__table__
        stmt = (
            update(Track)
            .where(Track.id == track_id, Track.deezer_id.is_(None), ~exists().where(table.c.deezer_id == deezer_id))
            .values(
                deezer_id=deezer_id,
                isrc=func.coalesce(Track.isrc, isrc),
                cover_url=func.coalesce(Track.cover_url, cover_url),
                release_year=func.coalesce(Track.release_year, release_year),
            )
        )
        try:
            async with self._s.begin_nested():
                result = await self._s.execute(stmt)
        except IntegrityError:  # a concurrent writer gave that id to another track first
            return False
        return bool(rowcount(result))

    async def fill_artwork(self, track_id: int, *, cover_url: str | None, release_year: int | None) -> None:
        """Give a track the cover and year a provider has, where it has none (one statement)."""
        if cover_url is None and release_year is None:
            return
        await self._s.execute(
            update(Track)
            .where(Track.id == track_id, or_(Track.cover_url.is_(None), Track.release_year.is_(None)))
            .values(
                cover_url=func.coalesce(Track.cover_url, cover_url),
                release_year=func.coalesce(Track.release_year, release_year),
            )
        )

    async def add_upload(self, values: Mapping[str, Any]) -> Track:
        """A song someone sent as audio (source "upload"): one row, its features written with it."""
        row = Track(**{**values, "source": UPLOAD_SOURCE})
        self._s.add(row)
        await self._s.flush()
        return row

    async def provider_feature_ids(self) -> list[int]:
        """Tracks found through a provider or sent as audio that can be recommended (they have at
        least the nine analysis features): what may be missing from an index built earlier."""
        stmt = (
            select(Track.id)
            .where(Track.source.not_in(("catalog", UPLOAD_SOURCE)))
            .where(*(getattr(Track, c).is_not(None) for c in ANALYSIS_FEATURE_COLUMNS))
            .order_by(Track.id)
        )
        return list((await self._s.scalars(stmt)).all())

    async def by_artist(self, artist: str, limit: int = 50) -> Sequence[Track]:
        pattern = f"%{artist}%"
        stmt = select(Track).where(Track.artists.ilike(pattern)).order_by(Track.popularity.desc()).limit(limit)
        return (await self._s.scalars(stmt)).all()

    async def popular(self, genres: Sequence[str] | None = None, limit: int = 50) -> Sequence[Track]:
        stmt = select(Track).where(Track.popularity.is_not(None))
        if genres:
            stmt = stmt.where(Track.id.in_(select(TrackGenre.track_id).where(TrackGenre.genre.in_(genres))))
        stmt = stmt.order_by(Track.popularity.desc(), Track.id).limit(limit)
        return (await self._s.scalars(stmt)).all()

    @staticmethod
    def _recommendable() -> list[Any]:
        """Conditions of a track the recommender can place (what `feature_rows` reads)."""
        needed = [getattr(Track, c).is_not(None) for c in ANALYSIS_FEATURE_COLUMNS]
        return [*needed, Track.source != UPLOAD_SOURCE]

    async def feature_rows_after(self, after_id: int, limit: int | None = None) -> Sequence[Any]:
        """`feature_rows` of the tracks with an id above `after_id` (new since an index was built)."""
        return await self.feature_rows(after_id=after_id, limit=limit)

    async def index_counts(self, up_to_id: int | None = None) -> tuple[int, int, int, int]:
        """(recommendable tracks, their highest id, genre labels of those tracks, searchable tracks),
        counted over ids ≤ `up_to_id` when given: what an index built earlier must still match."""
        cond = self._recommendable()
        search_cond = [Track.source != UPLOAD_SOURCE]
        label_cond: list[Any] = []
        if up_to_id is not None:
            cond.append(Track.id <= up_to_id)
            search_cond.append(Track.id <= up_to_id)
            label_cond.append(TrackGenre.track_id <= up_to_id)
        count, top = (await self._s.execute(select(func.count(Track.id), func.max(Track.id)).where(*cond))).one()
        labels = await self._s.scalar(select(func.count()).select_from(TrackGenre).where(*label_cond))
        searchable = await self._s.scalar(select(func.count(Track.id)).where(*search_cond))
        return int(count or 0), int(top or 0), int(labels or 0), int(searchable or 0)

    async def search_rows_after(self, after_id: int) -> Sequence[Any]:
        """`search_rows` of the tracks with an id above `after_id`."""
        stmt = (
            select(Track.id, Track.name, Track.artists, Track.album, Track.popularity)
            .where(Track.source != UPLOAD_SOURCE, Track.id > after_id)
            .order_by(Track.id)
        )
        return (await self._s.execute(stmt)).all()

    async def feature_rows(
        self, ids: Iterable[int] | None = None, *, after_id: int | None = None, limit: int | None = None
    ) -> Sequence[Any]:
        """Every track the recommender can place (`ids`: just those; `after_id`: those with a higher
        id, at most `limit`): all twelve audio features, or the nine an audio analysis gives (key,
        mode and time signature NULL)."""
        cols = [getattr(Track, c) for c in AUDIO_FEATURE_COLUMNS]
        needed = [getattr(Track, c) for c in ANALYSIS_FEATURE_COLUMNS]
        stmt = (
            select(
                Track.id,
                Track.spotify_id,
                Track.name,
                Track.artists,
                Track.album,
                Track.search_key,
                Track.popularity,
                Track.duration_ms,
                Track.explicit,
                *cols,
            )
            .where(*(c.is_not(None) for c in needed))
            .where(Track.source != UPLOAD_SOURCE)  # someone's recording: a seed, never recommended to others
            .order_by(Track.id)
        )
        if ids is not None:
            wanted = list(dict.fromkeys(int(i) for i in ids))
            if not wanted:
                return []
            stmt = stmt.where(Track.id.in_(wanted))
        if after_id is not None:
            stmt = stmt.where(Track.id > after_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return (await self._s.execute(stmt)).all()

    async def search_rows(self) -> Sequence[Any]:
        # Songs people sent as audio are not searchable by others (their titles are private).
        stmt = (
            select(Track.id, Track.name, Track.artists, Track.album, Track.popularity)
            .where(Track.source != UPLOAD_SOURCE)
            .order_by(Track.id)
        )
        return (await self._s.execute(stmt)).all()

    async def genre_map(self, ids: Iterable[int] | None = None) -> dict[int, list[str]]:
        stmt = select(TrackGenre.track_id, TrackGenre.genre)
        if ids is not None:
            stmt = stmt.where(TrackGenre.track_id.in_(list(ids)))
        rows = (await self._s.execute(stmt)).all()
        out: dict[int, list[str]] = {}
        for track_id, genre in rows:
            out.setdefault(track_id, []).append(genre)
        return out


def interaction_rows(
    events: Sequence[tuple[int, InteractionKind]], user_id: int | None, radio_session_id: int | None
) -> list[dict[str, Any]]:
    """(track_id, kind) events as `interactions` rows, all stamped now."""
    now = utcnow()
    return [
        {
            "user_id": user_id,
            "track_id": track_id,
            "kind": kind,
            "radio_session_id": radio_session_id,
            "context": None,
            "created_at": now,
        }
        for track_id, kind in events
    ]


class InteractionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add_many(
        self, track_ids: Sequence[int], kind: InteractionKind, *, user_id: int | None, context: str | None = None
    ) -> None:
        """One row per track, in one executemany INSERT."""
        if track_ids:
            now = utcnow()
            rows = [
                {"user_id": user_id, "track_id": t, "kind": kind, "context": context, "created_at": now}
                for t in track_ids
            ]
            await self._s.execute(insert(Interaction), rows)

    async def add(
        self,
        track_id: int,
        kind: InteractionKind,
        *,
        user_id: int | None = None,
        radio_session_id: int | None = None,
        context: str | None = None,
    ) -> Interaction:
        row = Interaction(
            user_id=user_id, track_id=track_id, kind=kind, radio_session_id=radio_session_id, context=context
        )
        self._s.add(row)
        await self._s.flush()
        return row

    async def record(
        self,
        events: Sequence[tuple[int, InteractionKind]],
        *,
        user_id: int | None = None,
        radio_session_id: int | None = None,
    ) -> None:
        """(track_id, kind) events in one INSERT, in this order (ids grow with it)."""
        if events:
            await self._s.execute(insert(Interaction), interaction_rows(events, user_id, radio_session_id))

    async def session_track_ids(self, radio_session_id: int, kinds: Sequence[InteractionKind]) -> list[int]:
        stmt = (
            select(Interaction.track_id)
            .where(Interaction.radio_session_id == radio_session_id, Interaction.kind.in_(kinds))
            .order_by(Interaction.id)
        )
        return list((await self._s.scalars(stmt)).all())

    async def user_track_ids(self, user_id: int, kinds: Sequence[InteractionKind], limit: int = 1000) -> list[int]:
        stmt = (
            select(Interaction.track_id)
            .where(Interaction.user_id == user_id, Interaction.kind.in_(kinds))
            .order_by(Interaction.id.desc())
            .limit(limit)
        )
        return list((await self._s.scalars(stmt)).all())

    async def user_history(self, user_id: int, kinds: Sequence[InteractionKind], limit: int = 500) -> Sequence[Any]:
        """(track_id, kind, created_at) rows, newest first."""
        stmt = (
            select(Interaction.track_id, Interaction.kind, Interaction.created_at)
            .where(Interaction.user_id == user_id, Interaction.kind.in_(kinds))
            .order_by(Interaction.id.desc())
            .limit(limit)
        )
        return (await self._s.execute(stmt)).all()


@cache
def like_insert(dialect: str) -> Any:
    """INSERT one like (p_user, p_track, p_now) unless it is there already (the primary key keeps
    one like); built once per dialect, for `LikeRepository.add` and `record_radio_answer`."""
    table = table_of(Like)
    return (
        insert_for(dialect, table)
        .values(user_id=bindparam("p_user"), track_id=bindparam("p_track"), created_at=bindparam("p_now"))
        .on_conflict_do_nothing(index_elements=[table.c.user_id, table.c.track_id])
    )


class LikeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, user_id: int, track_id: int) -> bool:
        """Like a track; False when it was liked already (the primary key keeps one like)."""
        like = like_insert(self._s.get_bind().dialect.name)
        params = {"p_user": user_id, "p_track": track_id, "p_now": utcnow()}
        return bool(rowcount(await self._s.execute(like, params)))

    async def remove(self, user_id: int, track_id: int) -> bool:
        result = await self._s.execute(delete(Like).where(Like.user_id == user_id, Like.track_id == track_id))
        return bool(rowcount(result))

    async def exists(self, user_id: int, track_id: int) -> bool:
        return await self._s.get(Like, (user_id, track_id)) is not None

    async def count(self, user_id: int) -> int:
        return int(await self._s.scalar(select(func.count()).where(Like.user_id == user_id)) or 0)

    async def page(self, user_id: int, offset: int, limit: int) -> Sequence[Track]:
        stmt = (
            select(Track)
            .join(Like, Like.track_id == Track.id)
            .where(Like.user_id == user_id)
            .order_by(Like.created_at.desc(), Track.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return (await self._s.scalars(stmt)).all()

    async def dated(self, user_id: int) -> Sequence[Any]:
        """(track_id, created_at) of every like, newest first."""
        stmt = select(Like.track_id, Like.created_at).where(Like.user_id == user_id).order_by(Like.created_at.desc())
        return (await self._s.execute(stmt)).all()

    async def track_ids(self, user_id: int, limit: int | None = None) -> list[int]:
        """The user's liked tracks, newest first (`limit`: only that many)."""
        stmt = select(Like.track_id).where(Like.user_id == user_id).order_by(Like.created_at.desc(), Like.track_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self._s.scalars(stmt)).all())

    async def all_pairs(self) -> Sequence[Any]:
        """(user_id, track_id) for every like: input to the co-like model."""
        return (await self._s.execute(select(Like.user_id, Like.track_id))).all()


@cache
def _radio_advance() -> Any:
    """The conditional UPDATE of an answer, built once (building it took a fifth of the unit's time)."""
    r = table_of(RadioSession)
    return (
        update(r)
        .where(
            r.c.id == bindparam("p_radio"),
            r.c.position == bindparam("p_seen"),
            r.c.current_track_id == bindparam("p_track"),
            r.c.state == RadioState.ACTIVE,
        )
        .values(
            position=r.c.position + bindparam("p_step"),
            likes=r.c.likes + bindparam("p_liked"),
            skips=r.c.skips + bindparam("p_skipped"),
            current_track_id=bindparam("p_next"),
            updated_at=bindparam("p_now"),
        )
        .returning(r.c.position, r.c.likes, r.c.skips)
    )


@cache
def _track_row() -> Any:
    t = table_of(Track)
    return select(*t.c).where(t.c.id == bindparam("p_track"))


@cache
def _track_columns() -> tuple[str, ...]:
    return tuple(c.key for c in table_of(Track).c)


@cache
def _interaction_insert() -> Any:
    t = table_of(Interaction)
    return insert(t).values(
        user_id=bindparam("p_user"),
        track_id=bindparam("p_track"),
        kind=bindparam("p_kind"),
        radio_session_id=bindparam("p_radio"),
        context=null(),
        created_at=bindparam("p_now"),
    )


@dataclass(frozen=True, slots=True)
class RadioAnswer:
    """What `record_radio_answer` left: the radio's new counters and its next track as stored."""

    position: int
    likes: int
    skips: int
    next_track: StoredTrack | None


def record_radio_answer(
    run: Runner,
    *,
    radio_id: int,
    seen_position: int,
    track_id: int,
    next_track_id: int | None,
    events: Sequence[tuple[int, InteractionKind]],
    user_id: int | None,
    like_for: int | None = None,
) -> RadioAnswer | None:
    """One answer to a radio, as one unit of work (a sync function: `db.engine.Units` runs it).

    Moves the radio past `track_id` in one conditional UPDATE: only the answer that finds it still
    active, still at `seen_position` and still playing `track_id` goes on; the others (a concurrent
    answer, or a stop, won) get None and write nothing. The winner writes its `events` as
    interaction rows (and a like for `like_for`), and reads the next track without its genres, as a
    plain `StoredTrack`."""
    now = utcnow()
    moved = run.one(
        _radio_advance(),
        {
            "p_radio": radio_id,
            "p_seen": seen_position,
            "p_track": track_id,
            "p_step": 1 if next_track_id is not None else 0,
            "p_liked": int(any(kind == InteractionKind.LIKED for _t, kind in events)),
            "p_skipped": int(any(kind == InteractionKind.SKIPPED for _t, kind in events)),
            "p_next": next_track_id,
            "p_now": now,
        },
    )
    if moved is None:
        return None
    if like_for is not None:
        run.many(like_insert(run.dialect), [{"p_user": like_for, "p_track": track_id, "p_now": now}])
    if events:
        run.many(
            _interaction_insert(),
            [{"p_user": user_id, "p_track": t, "p_kind": k, "p_radio": radio_id, "p_now": now} for t, k in events],
        )
    track = None
    if next_track_id is not None:
        row = run.one(_track_row(), {"p_track": next_track_id})
        track = StoredTrack(dict(zip(_track_columns(), row, strict=True))) if row is not None else None
    return RadioAnswer(int(moved[0]), int(moved[1]), int(moved[2]), track)


class RadioRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def create(
        self,
        *,
        public_id: str,
        owner: str,
        user_id: int | None,
        seed_track_id: int,
        current_track_id: int | None,
        diversity: float,
        taste: dict,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> RadioSession:
        row = RadioSession(
            public_id=public_id,
            owner=owner,
            user_id=user_id,
            seed_track_id=seed_track_id,
            current_track_id=current_track_id,
            position=1 if current_track_id is not None else 0,
            likes=0,
            skips=0,
            diversity=diversity,
            taste=taste,
            state=RadioState.ACTIVE,
            chat_id=chat_id,
            message_id=message_id,
        )
        self._s.add(row)
        await self._s.flush()
        return row

    async def by_public_id(self, public_id: str) -> RadioSession | None:
        stmt = select(RadioSession).where(RadioSession.public_id == public_id)
        return await self._s.scalar(stmt.execution_options(populate_existing=True))

    async def stop(self, radio_id: int) -> bool:
        """Stop it (True when this call did; False when it was stopped already)."""
        result = await self._s.execute(
            update(RadioSession)
            .where(RadioSession.id == radio_id, RadioSession.state == RadioState.ACTIVE)
            .values(state=RadioState.STOPPED, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(rowcount(result))

    async def latest_active(self, user_id: int) -> RadioSession | None:
        stmt = (
            select(RadioSession)
            .where(RadioSession.user_id == user_id, RadioSession.state == RadioState.ACTIVE)
            .order_by(RadioSession.id.desc())
            .limit(1)
        )
        return await self._s.scalar(stmt)

    async def stop_others(self, owner: str, keep_id: int) -> None:
        await self._s.execute(
            update(RadioSession)
            .where(RadioSession.owner == owner, RadioSession.id != keep_id)
            .where(RadioSession.state == RadioState.ACTIVE)
            .values(state=RadioState.STOPPED)
            .execution_options(synchronize_session=False)
        )

    async def attach_message(self, radio_id: int, chat_id: int, message_id: int) -> None:
        await self._s.execute(
            update(RadioSession)
            .where(RadioSession.id == radio_id)
            .values(chat_id=chat_id, message_id=message_id)
            .execution_options(synchronize_session=False)
        )

    async def taste(self, radio_id: int) -> dict[str, Any]:
        """The radio's stored start of taste (see RadioSession.taste)."""
        value = await self._s.scalar(select(RadioSession.taste).where(RadioSession.id == radio_id))
        return dict(value) if isinstance(value, dict) else {}

    async def history(self, radio_id: int) -> Sequence[Any]:
        """(track_id, kind) of every interaction of the radio, oldest first."""
        stmt = (
            select(Interaction.track_id, Interaction.kind)
            .where(Interaction.radio_session_id == radio_id)
            .order_by(Interaction.id)
        )
        return (await self._s.execute(stmt)).all()


class CacheRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, namespace: str, key: str, *, now: datetime | None = None) -> CacheEntry | None:
        entry = await self._s.get(CacheEntry, (namespace, key))
        if entry is None:
            return None
        expires = entry.expires_at if entry.expires_at.tzinfo else entry.expires_at.replace(tzinfo=UTC)
        return entry if expires > (now or utcnow()) else None

    async def get_many(
        self, namespace: str, keys: Sequence[str], *, now: datetime | None = None, chunk: int = 500
    ) -> dict[str, Any]:
        """Fresh values by key (missing and expired keys left out), in chunked IN queries."""
        out: dict[str, Any] = {}
        wanted = list(dict.fromkeys(keys))
        at = now or utcnow()
        for i in range(0, len(wanted), chunk):
            stmt = select(CacheEntry.key, CacheEntry.value, CacheEntry.expires_at).where(
                CacheEntry.namespace == namespace, CacheEntry.key.in_(wanted[i : i + chunk])
            )
            for key, value, expires in (await self._s.execute(stmt)).all():
                if (expires if expires.tzinfo else expires.replace(tzinfo=UTC)) > at:
                    out[key] = value
        return out

    async def put(self, namespace: str, key: str, value: Any, expires_at: datetime) -> None:
        stmt = dialect_insert(self._s, CacheEntry).values(
            namespace=namespace, key=key, value=value, expires_at=expires_at, created_at=utcnow()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[CacheEntry.namespace, CacheEntry.key],
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at},
        )
        await self._s.execute(stmt)

    async def purge_expired(self, now: datetime | None = None) -> int:
        result = await self._s.execute(delete(CacheEntry).where(CacheEntry.expires_at <= (now or utcnow())))
        return rowcount(result)


class DailyPickRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def claim(self, user_id: int, day: date) -> bool:
        """Claim today's pick for a user; False when any instance already claimed it."""
        stmt = (
            dialect_insert(self._s, DailyPick)
            .values(user_id=user_id, day=day, status="claimed", created_at=utcnow())
            .on_conflict_do_nothing(index_elements=[DailyPick.user_id, DailyPick.day])
        )
        result = await self._s.execute(stmt)
        return bool(rowcount(result))

    async def mark(self, user_id: int, day: date, *, status: str, track_id: int | None = None) -> None:
        await self._s.execute(
            update(DailyPick)
            .where(DailyPick.user_id == user_id, DailyPick.day == day)
            .values(status=status, track_id=track_id)
        )

    async def release(self, user_id: int, day: date) -> None:
        await self._s.execute(delete(DailyPick).where(DailyPick.user_id == user_id, DailyPick.day == day))


class CatalogRepository:
    """Bulk reads and writes of the catalogue import (one transaction, chunked statements)."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def tracks(self, columns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Every track by Spotify id: `id`, `spotify_id` and `columns`. Songs found through Deezer may have
        no Spotify id: keyed by a placeholder no dataset id can equal, they still fold by song key."""
        table = Track.__table__
        cols = [table.c.id, table.c.spotify_id, *(table.c[c] for c in columns)]
        result = await self._s.execute(select(*cols))
        return {row.spotify_id or f"#track-{row.id}": dict(row._mapping) for row in result}

    async def aliases(self) -> dict[str, int]:
        result = await self._s.execute(select(TrackAlias.spotify_id, TrackAlias.track_id))
        return {spid: tid for spid, tid in result}

    async def genres(self) -> set[tuple[int, str]]:
        result = await self._s.execute(select(TrackGenre.track_id, TrackGenre.genre))
        return {(tid, genre) for tid, genre in result}

    async def ids_of(self, spotify_ids: Iterable[str]) -> dict[str, int]:
        wanted = set(spotify_ids)
        result = await self._s.execute(select(Track.spotify_id, Track.id))
        return {spid: tid for spid, tid in result if spid in wanted}

    async def insert_ignoring_conflicts(self, model: Any, rows: Sequence[dict[str, Any]]) -> None:
        """INSERT … ON CONFLICT DO NOTHING: a concurrent writer's row wins instead of failing the import."""
        if rows:
            await self._s.execute(dialect_insert(self._s, model.__table__).on_conflict_do_nothing(), list(rows))

    async def update_tracks(self, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
        """Rows of `_id` and `columns`: one executemany UPDATE."""
        if rows:
            table = table_of(Track)
            stmt = update(table).where(table.c.id == bindparam("_id")).values({c: bindparam(c) for c in columns})
            await self._s.execute(stmt, list(rows))

    async def count(self, source: str) -> int:
        return int(await self._s.scalar(select(func.count()).select_from(Track).where(Track.source == source)) or 0)
