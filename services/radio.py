"""Radio sessions: start from a track, learn from likes and skips, never repeat.

The taste is a query vector in the recommender's space. Each like moves it a step towards the
liked track, each skip a smaller step away (Rocchio-style, on the very next track), and the
neighbourhoods of the last skipped tracks are pushed down in the ranking. Everything is persisted:
where the taste starts (the seed's vector, in `radio_sessions.taste`, written once), the counters in
their columns, every shown / liked / skipped track as an `interactions` row. A restart (or another
instance) rebuilds the taste by replaying the likes and skips from the start (the same steps in the
same order: the same vector); a small in-process cache saves that work while nothing changed.

Who may touch a radio: its `owner` (a `Listener`: the Telegram user, the API key, the web page's
session, or "open" for the keyless API, where the unguessable public id is the capability). Anyone
else is told it does not exist.

One answer per position. An answer (like, skip, next) names the track it answers for; the next
track is chosen first (CPU work in a worker thread, no transaction open), then one conditional
UPDATE … WHERE position = :seen AND current_track_id = :track moves the radio on and the
interaction rows are written in the same transaction. Of concurrent answers exactly one finds the
radio where it saw it; the others get `RadioConflict` with the radio's current state. So the
counters always equal the rows, on SQLite and PostgreSQL alike (no row locks needed).

A radio from a whole playlist (`start_from_tracks`) starts from the mean of its songs' queries;
its songs (kept in the taste JSON as `seeds`) are never played by it.

The next track is drawn among the best three by a hash of (salt, radio, position), so a radio
replays identically given the same feedback.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Literal

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.direct import Runner
from db.engine import Units
from db.models import InteractionKind, RadioSession, RadioState, StoredTrack, Track
from db.repositories import (
    InteractionRepository,
    LikeRepository,
    RadioAnswer,
    RadioRepository,
    TrackRepository,
    record_radio_answer,
)
from ml.recsys.colikes import CoLikeModel
from ml.recsys.index import CatalogIndex, Hit, Query
from ml.recsys.taste import mean_query
from services.dto import Listener, RadioStep, TrackInfo
from services.errors import InvalidInput, NoFeatures, RadioConflict, RadioNotFound, RadioStopped, TrackNotFound
from services.recommender import RecommendationService

if TYPE_CHECKING:
    from services.protocols import Tracks

log = logging.getLogger(__name__)

Action = Literal["like", "skip", "next"]
_PICK_WEIGHTS = np.asarray([0.6, 0.25, 0.15])
_AVOID_LAST = 10
MSG_MOVED_ON = "This radio has already moved on to another track."
MSG_STOPPED = "This radio is over."
MSG_NOT_FOUND = "There is no such radio."
_AVOID_SHOWN = 50  # the latest tracks shown to the user (anywhere) that a radio leaves out
_AVOID_LIKED = 2000  # liked tracks a radio leaves out (newest first)
MAX_SEED_QUERIES = 200  # songs of a playlist whose mean is a playlist radio's seed (spread over it)
MAX_SEEDS_KEPT_OUT = 2000  # songs of a playlist a playlist radio never plays (the first ones)
MAX_UNINDEXED_SEEDS = 20  # seed songs outside the index placed one by one (each may read the DB)


@dataclass(frozen=True, slots=True)
class RadioView:
    """A radio row as last seen by this process (never an ORM instance: it outlives its session)."""

    id: int
    public_id: str
    owner: str
    user_id: int | None
    seed_track_id: int
    diversity: float
    position: int
    current_track_id: int | None
    likes: int
    skips: int
    stopped: bool

    @classmethod
    def of(cls, row: RadioSession) -> RadioView:
        return cls(
            id=row.id,
            public_id=row.public_id,
            owner=row.owner,
            user_id=row.user_id,
            seed_track_id=row.seed_track_id,
            diversity=row.diversity,
            position=row.position,
            current_track_id=row.current_track_id,
            likes=row.likes,
            skips=row.skips,
            stopped=row.state == RadioState.STOPPED,
        )

    def visible_to(self, listener: Listener) -> bool:
        return self.owner == "open" or self.owner == listener.owner


@dataclass(slots=True)
class LiveRadio:
    """What one radio needs between steps (cached; the DB holds the truth)."""

    signature: str
    position: int
    query: Query
    shown: list[int] = field(default_factory=list)  # index positions, oldest first
    skipped: list[int] = field(default_factory=list)
    liked: list[int] = field(default_factory=list)  # track ids, oldest first (the co-likes' anchors)
    # What the listener skipped elsewhere, likes already or was just shown (index positions): read
    # when the radio is (re)loaded, not on every answer.
    avoid: frozenset[int] = frozenset()
    # A radio from several songs (a playlist): their track ids, kept out of its picks.
    seeds: tuple[int, ...] = ()
    # The row as this process last wrote or read it: lets an answer skip reading it again (the
    # conditional UPDATE still decides; a stale view only costs a conflict and a fresh read).
    view: RadioView | None = None


@dataclass(frozen=True, slots=True)
class _Move:
    """The outcome of one answer, computed before anything is written."""

    live: LiveRadio
    hit: Hit | None
    next_track_id: int | None


async def with_deezer(step: RadioStep, tracks: Tracks) -> RadioStep:
    """The step's track with its Deezer id (▶ preview) and cover when Deezer finds it in time
    (`Tracks.with_deezer`: a short budget, misses remembered); the step as it was otherwise. Every
    delivery shows a radio's track through it: the bot's card, the page and the API."""
    if step.track is None or step.stopped:
        return step
    track = await tracks.with_deezer(step.track)
    return step if track is step.track else replace(step, track=track)


def new_public_id() -> str:
    """128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


class RadioService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        recommender: RecommendationService,
        *,
        like_rate: float = 0.5,
        skip_rate: float = 0.2,
        default_diversity: float = 0.3,
        salt: int = 0,
        cache_size: int = 2_000,
        new_id: Callable[[], str] = new_public_id,
        units: Units | None = None,
    ) -> None:
        self._sessions = sessions
        self._recs = recommender
        self.like_rate = like_rate
        self.skip_rate = skip_rate
        self.default_diversity = default_diversity
        self.salt = salt
        self._cache: OrderedDict[str, LiveRadio] = OrderedDict()
        self._cache_size = cache_size
        self._new_id = new_id
        self._units = units or Units(sessions)

    # -- public API ------------------------------------------------------------------------------

    async def start(
        self,
        seed_track_id: int,
        *,
        listener: Listener,
        diversity: float | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> RadioStep:
        query, _pos, _seed = await self._recs.seed_query(seed_track_id)  # may add the seed: index after
        return await self._start(
            seed_track_id, query, (), listener=listener, diversity=diversity, chat_id=chat_id, message_id=message_id
        )

    async def start_from_tracks(
        self,
        track_ids: Sequence[int],
        *,
        listener: Listener,
        diversity: float | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> RadioStep:
        """A radio from several songs (a whole playlist): the seed is the mean of their queries (up
        to `MAX_SEED_QUERIES`, spread over the list), the first placeable song is the radio's
        `seed_track_id`, and none of the songs is played by it. Likes and skips then steer it as any
        radio. `NoFeatures` when none of the songs can be placed, `InvalidInput` for no songs."""
        ids = list(dict.fromkeys(int(t) for t in track_ids))
        if not ids:
            raise InvalidInput("There are no songs to start a radio from.")
        index = await self._recs.index()
        step = max(1, -(-len(ids) // MAX_SEED_QUERIES))
        sample = ids[::step][:MAX_SEED_QUERIES]
        queries, placed = await self._seed_queries(index, sample)
        if not queries:
            raise NoFeatures("None of these songs has audio features known yet, so there is nothing to start from.")
        seeds = tuple(ids[:MAX_SEEDS_KEPT_OUT])
        return await self._start(
            placed[0],
            mean_query(queries),
            seeds,
            listener=listener,
            diversity=diversity,
            chat_id=chat_id,
            message_id=message_id,
        )

    async def _seed_queries(self, index: CatalogIndex, track_ids: Sequence[int]) -> tuple[list[Query], list[int]]:
        """The queries of the songs that can be placed (in the index, or by their features), in order."""
        queries: list[Query] = []
        placed: list[int] = []
        outside = 0
        for track_id in track_ids:
            pos = index.position(track_id)
            if pos is not None:
                queries.append(index.query_for(pos))
                placed.append(track_id)
                continue
            if outside >= MAX_UNINDEXED_SEEDS:
                continue
            outside += 1
            try:
                query, _pos, _info = await self._recs.seed_query(track_id)
            except (NoFeatures, TrackNotFound):
                continue
            queries.append(query)
            placed.append(track_id)
        return queries, placed

    async def _start(
        self,
        seed_track_id: int,
        query: Query,
        seeds: tuple[int, ...],
        *,
        listener: Listener,
        diversity: float | None,
        chat_id: int | None,
        message_id: int | None,
    ) -> RadioStep:
        index = await self._recs.index()
        if diversity is None:
            user = listener.user_id
            diversity = await self._recs.user_diversity(user) if user is not None else self.default_diversity
        diversity = min(max(float(diversity), 0.0), 1.0)
        public_id = self._new_id()
        exclude = await self._user_skips(listener.user_id, index)
        live = LiveRadio(index.signature(), 0, query, avoid=frozenset(exclude), seeds=seeds)
        # The first pick: CPU work in a worker thread, before any transaction is open.
        move = await self._recs.searching(
            self._choose, index, live, seed_track_id, public_id, diversity, exclude, await self._recs.colike_model(), []
        )
        async with self._sessions.begin() as s:
            repo = RadioRepository(s)
            radio = await repo.create(
                public_id=public_id,
                owner=listener.owner,
                user_id=listener.user_id,
                seed_track_id=seed_track_id,
                current_track_id=move.next_track_id,
                diversity=diversity,
                taste={
                    "signature": live.signature,
                    "seed_query": query.to_json(),
                    **({"seeds": list(seeds)} if seeds else {}),
                },
                chat_id=chat_id,
                message_id=message_id,
            )
            if listener.user_id is not None:  # one radio at a time in a Telegram chat
                await repo.stop_others(listener.owner, radio.id)
            if move.next_track_id is not None:
                await InteractionRepository(s).add(
                    move.next_track_id, InteractionKind.SHOWN, user_id=listener.user_id, radio_session_id=radio.id
                )
        move.live.view = RadioView.of(radio)
        self._remember(radio.public_id, move.live)
        return self._step(radio, await self._track(move), move.hit)

    async def feedback(self, radio_id: str, track_id: int, action: Action, *, listener: Listener) -> RadioStep:
        """Answer the radio's current track and move on: `RadioConflict` when it has moved on already
        (the answer is not counted), `RadioStopped` when it is over, `RadioNotFound` when not yours.

        While this process holds the radio as it last left it (the usual case), nothing is read
        before the conditional UPDATE; otherwise the row and its history are read first."""
        if action not in ("like", "skip", "next"):
            raise InvalidInput(f"unknown radio action: {action}")
        index = await self._recs.index()
        live = self._cached(radio_id, track_id, listener, index)
        if live is None:
            async with self._sessions() as s:
                radio = await self._owned(s, radio_id, listener)
                if radio.state == RadioState.STOPPED:
                    raise RadioStopped(MSG_STOPPED, await self._current(s, radio))
                if radio.current_track_id != track_id:
                    raise RadioConflict(MSG_MOVED_ON, await self._current(s, radio))
                live = await self._live(s, index, radio)
                live.view = RadioView.of(radio)
        view = live.view
        assert view is not None
        if action == "like":
            live.liked.append(track_id)
        liked = list(live.liked)
        exclude = set(live.avoid)
        colikes = await self._recs.colike_model()

        def record(run: Runner, move: _Move) -> RadioAnswer | None:
            events: list[tuple[int, InteractionKind]] = []
            if action == "like":
                events.append((track_id, InteractionKind.LIKED))
            elif action == "skip":
                events.append((track_id, InteractionKind.SKIPPED))
            if move.next_track_id is not None:
                events.append((move.next_track_id, InteractionKind.SHOWN))
            return record_radio_answer(
                run,
                radio_id=view.id,
                seen_position=view.position,
                track_id=track_id,
                next_track_id=move.next_track_id,
                events=events,
                user_id=view.user_id,
                like_for=view.user_id if action == "like" else None,
            )

        # The search on the searches' thread, then the answer's unit of work on the writer's: one
        # hand-over from the event loop, and one wake-up back.
        move, answer = await self._units.run_after(
            partial(self._answer, index, live, view, track_id, action, exclude, colikes, liked),
            record,
            offload=self._recs.cpu,
        )
        if answer is None:
            self._cache.pop(radio_id, None)
            async with self._sessions() as s:
                current = await RadioRepository(s).by_public_id(radio_id)
                assert current is not None  # radios are never deleted while their owner exists
                step = await self._current(s, current)
            raise (RadioStopped if step.stopped else RadioConflict)(MSG_STOPPED if step.stopped else MSG_MOVED_ON, step)
        move.live.view = replace(
            view,
            position=answer.position,
            current_track_id=move.next_track_id,
            likes=answer.likes,
            skips=answer.skips,
        )
        self._remember(radio_id, move.live)
        return RadioStep(
            radio_id=view.public_id,
            track=self._track_of(index, move, answer.next_track),
            position=answer.position,
            likes=answer.likes,
            skips=answer.skips,
            stopped=False,
            extra=self._extra(view.diversity, move.hit),
        )

    def _cached(self, radio_id: str, track_id: int, listener: Listener, index: CatalogIndex) -> LiveRadio | None:
        """A copy of the radio as this process left it, when that is where the answer finds it
        (same track, same index, still playing); None: read it from the DB."""
        cached = self._cache.get(radio_id)
        view = cached.view if cached is not None else None
        if cached is None or view is None or not view.visible_to(listener) or view.stopped:
            return None
        if view.current_track_id != track_id or cached.position != view.position:
            return None
        if cached.signature != index.signature():
            return None
        self._cache.move_to_end(radio_id)
        return replace(cached, shown=list(cached.shown), skipped=list(cached.skipped), liked=list(cached.liked))

    async def stop(self, radio_id: str, *, listener: Listener) -> RadioStep:
        async with self._sessions.begin() as s:
            radio = await self._owned(s, radio_id, listener)
            await RadioRepository(s).stop(radio.id)
            self._cache.pop(radio.public_id, None)
        async with self._sessions() as s:
            radio = await self._owned(s, radio_id, listener)
            return await self._current(s, radio)

    async def current(self, radio_id: str, *, listener: Listener) -> RadioStep:
        """The radio as it stands (e.g. to redraw its message after a restart)."""
        async with self._sessions() as s:
            return await self._current(s, await self._owned(s, radio_id, listener))

    async def attach_message(self, radio_id: str, chat_id: int, message_id: int, *, listener: Listener) -> None:
        async with self._sessions.begin() as s:
            radio = await self._owned(s, radio_id, listener)
            await RadioRepository(s).attach_message(radio.id, chat_id, message_id)

    async def start_from_latest_like(
        self, *, listener: Listener, diversity: float | None = None, chat_id: int | None = None
    ) -> RadioStep | None:
        """A radio from the listener's most recent like (None: nothing liked yet)."""
        if listener.user_id is None:
            return None
        async with self._sessions() as s:
            liked = await LikeRepository(s).track_ids(listener.user_id, limit=1)
        if not liked:
            return None
        return await self.start(liked[0], listener=listener, diversity=diversity, chat_id=chat_id)

    def live_sessions(self) -> int:
        return len(self._cache)

    # -- internals -------------------------------------------------------------------------------

    async def _owned(self, s: AsyncSession, radio_id: str, listener: Listener) -> RadioSession:
        """The radio, when the listener may see it: its owner, or anyone for an "open" radio."""
        radio = await RadioRepository(s).by_public_id(radio_id) if radio_id else None
        if radio is None or (radio.owner != "open" and radio.owner != listener.owner):
            raise RadioNotFound(MSG_NOT_FOUND)
        return radio

    async def _current(self, s: AsyncSession, radio: RadioSession) -> RadioStep:
        track = None
        if radio.current_track_id is not None and radio.state == RadioState.ACTIVE:
            row = await TrackRepository(s).get(radio.current_track_id)
            track = TrackInfo.from_row(row) if row is not None else None
        return self._step(radio, track)

    async def _user_skips(self, user_id: int | None, index: CatalogIndex) -> set[int]:
        """What a radio leaves out for this person: what they skipped anywhere, what they already like,
        and what they were just shown (a 🔎 Similar list, the previous radio)."""
        if user_id is None:
            return set()
        async with self._sessions() as s:
            interactions = InteractionRepository(s)
            skips = await interactions.user_track_ids(user_id, [InteractionKind.SKIPPED], limit=5000)
            liked = await LikeRepository(s).track_ids(user_id, limit=_AVOID_LIKED)
            shown = await interactions.user_track_ids(user_id, [InteractionKind.SHOWN], limit=_AVOID_SHOWN)
        return set(index.positions([*skips, *liked, *shown]))

    async def _live(self, s: AsyncSession, index: CatalogIndex, radio: RadioSession) -> LiveRadio:
        """The cached state when it matches the DB, otherwise rebuilt from the DB: the stored start of
        the taste (or the seed's vector anew when the index changed since: re-import, new weights),
        moved by every like and skip in order."""
        signature = index.signature()
        cached = self._cache.get(radio.public_id)
        if cached is not None and cached.signature == signature and cached.position == radio.position:
            self._cache.move_to_end(radio.public_id)
            return replace(cached, shown=list(cached.shown), skipped=list(cached.skipped), liked=list(cached.liked))
        repo = RadioRepository(s)
        rows = await repo.history(radio.id)
        shown = [p for t, k in rows if k == InteractionKind.SHOWN for p in [index.position(t)] if p is not None]
        skipped = [p for t, k in rows if k == InteractionKind.SKIPPED for p in [index.position(t)] if p is not None]
        liked = [t for t, k in rows if k == InteractionKind.LIKED]
        taste = await repo.taste(radio.id)
        seeds = tuple(int(t) for t in taste.get("seeds") or ())
        if taste.get("signature") == signature and taste.get("seed_query"):
            query = Query.from_json(taste["seed_query"])
        else:
            queries: list[Query] = []
            if seeds:
                step = max(1, -(-len(seeds) // MAX_SEED_QUERIES))
                queries, _placed = await self._seed_queries(index, seeds[::step][:MAX_SEED_QUERIES])
            if queries:
                query = mean_query(queries)
            else:
                query, _pos, _info = await self._recs.seed_query(radio.seed_track_id)
            log.info("radio %d: the index changed since it started; its taste is replayed on the new one", radio.id)
        for track_id, kind in rows:
            pos = index.position(track_id)
            if pos is None or kind not in (InteractionKind.LIKED, InteractionKind.SKIPPED):
                continue
            rate = self.like_rate if kind == InteractionKind.LIKED else -self.skip_rate
            query = index.steer(query, pos, rate)
        avoid = frozenset(await self._user_skips(radio.user_id, index))
        return LiveRadio(signature, radio.position, query, shown, skipped, liked, avoid, seeds)

    def _answer(
        self,
        index: CatalogIndex,
        live: LiveRadio,
        radio: RadioView,
        track_id: int,
        action: Action,
        exclude: set[int],
        colikes: CoLikeModel | None,
        liked: Sequence[int],
    ) -> _Move:
        """The taste after the answer, and the next track (blocking: runs in a worker thread)."""
        pos = index.position(track_id)
        if pos is not None and action == "like":
            live.query = index.steer(live.query, pos, self.like_rate)
        elif pos is not None and action == "skip":
            live.query = index.steer(live.query, pos, -self.skip_rate)
            live.skipped.append(pos)
        return self._choose(index, live, radio.seed_track_id, radio.public_id, radio.diversity, exclude, colikes, liked)

    def _choose(
        self,
        index: CatalogIndex,
        live: LiveRadio,
        seed_track_id: int,
        public_id: str,
        diversity: float,
        exclude: set[int],
        colikes: CoLikeModel | None,
        liked: Sequence[int],
    ) -> _Move:
        """The next track for `live` (blocking: runs in a worker thread)."""
        exclude = exclude | set(live.shown) | set(live.skipped)
        if live.seeds:  # a playlist radio plays none of the playlist's songs
            exclude |= set(index.positions(live.seeds))
        seed_pos = index.position(seed_track_id)
        keys: set[int] = set()
        if seed_pos is not None:
            exclude.add(seed_pos)
            keys = index.keys_at(seed_pos)
        boost = {}
        if colikes is not None:
            anchors = [p for p in [seed_pos] if p is not None] + index.positions(list(liked)[-20:])
            boost = self._recs.colike_boost(colikes, anchors)
        hits = index.search(
            live.query,
            3,
            exclude=exclude,
            exclude_keys=keys,
            recent=live.shown[-9:],
            diversity=diversity,
            boost=boost,
            avoid=live.skipped[-_AVOID_LAST:],
            alternatives=True,
            seed_artists=index.artists[seed_pos] if seed_pos is not None and len(live.shown) < 9 else None,
        )
        hit = self._pick(hits, public_id, live.position)
        next_track_id = None
        if hit is not None:
            next_track_id = int(index.ids[hit.position])
            live.shown.append(hit.position)
            live.position += 1
        return _Move(live, hit, next_track_id)

    def _pick(self, hits: list[Hit], public_id: str, position: int) -> Hit | None:
        """One of the best three (weighted 0.6 / 0.25 / 0.15), the same for the same (salt, radio,
        position): a uniform draw from a hash of the three (a fresh numpy Generator per answer
        cost more than the rest of the pick)."""
        if not hits:
            return None
        weights = _PICK_WEIGHTS[: len(hits)] / _PICK_WEIGHTS[: len(hits)].sum()
        digest = hashlib.blake2b(f"{self.salt}:{public_id}:{position}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2.0**64
        return hits[min(int(np.searchsorted(np.cumsum(weights), u, side="right")), len(hits) - 1)]

    async def _track(self, move: _Move) -> TrackInfo | None:
        """The next track as stored (read after the write: no transaction held for it)."""
        if move.next_track_id is None:
            return None
        async with self._sessions() as s:
            row = await TrackRepository(s).get(move.next_track_id, genres=False)
        return self._track_of(await self._recs.index(), move, row)

    @staticmethod
    def _track_of(index: CatalogIndex, move: _Move, row: Track | StoredTrack | None) -> TrackInfo | None:
        """The next track from its row, with its genre labels from the index (the same labels, one
        query less); from the index alone when the row is gone."""
        if move.next_track_id is None:
            return None
        assert move.hit is not None
        if row is not None:
            return replace(TrackInfo.from_row(row), genres=tuple(index.genres[move.hit.position]))
        return TrackInfo.from_entry(index.entry(move.hit.position))

    def _remember(self, radio_id: str, live: LiveRadio) -> None:
        self._cache[radio_id] = live
        self._cache.move_to_end(radio_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    @staticmethod
    def _extra(diversity: float, hit: Hit | None) -> dict[str, object]:
        extra: dict[str, object] = {"diversity": diversity}
        if hit is not None:
            extra.update(reason=hit.reason, score=round(hit.score, 4))
        return extra

    @classmethod
    def _step(cls, radio: RadioSession, track: TrackInfo | None, hit: Hit | None = None) -> RadioStep:
        return RadioStep(
            radio_id=radio.public_id,
            track=track,
            position=radio.position,
            likes=radio.likes,
            skips=radio.skips,
            stopped=radio.state == RadioState.STOPPED,
            extra=cls._extra(radio.diversity, hit),
        )
