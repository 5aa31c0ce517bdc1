"""Radio sessions: start from a track, learn from likes and skips, never repeat.

The taste is a query vector in the recommender's space. Each like moves it a step towards the
liked track, each skip a smaller step away (Rocchio-style, on the very next track), and the
neighbourhoods of the last skipped tracks are pushed down in the ranking. Everything is
persisted: the vector and counters in `radio_sessions.taste`, every shown / liked / skipped
track as an `interactions` row. A restart (or another instance) rebuilds the state from the
DB; a small in-process cache only saves the history query when nothing changed since.
The next track is drawn among the best three with an RNG seeded by (salt, radio id, position),
so a radio replays identically given the same feedback.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Interaction, InteractionKind, RadioSession, RadioState
from db.repositories import InteractionRepository, LikeRepository, RadioRepository, TrackRepository
from ml.recsys.index import CatalogIndex, Hit, Query
from services.dto import RadioStep, TrackInfo
from services.errors import InvalidInput, RadioForbidden, RadioNotFound
from services.recommender import RecommendationService

log = logging.getLogger(__name__)

Action = Literal["like", "skip", "next"]
_PICK_WEIGHTS = np.asarray([0.6, 0.25, 0.15])
_AVOID_LAST = 10
_AVOID_SHOWN = 50  # the latest tracks shown to the user (anywhere) that a radio leaves out
_AVOID_LIKED = 2000  # liked tracks a radio leaves out (newest first)


@dataclass(slots=True)
class LiveRadio:
    """What one radio needs between steps (cached; the DB holds the truth)."""

    signature: str
    position: int
    query: Query
    shown: list[int] = field(default_factory=list)  # index positions, oldest first
    skipped: list[int] = field(default_factory=list)


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
        cache_size: int = 10_000,
    ) -> None:
        self._sessions = sessions
        self._recs = recommender
        self.like_rate = like_rate
        self.skip_rate = skip_rate
        self.default_diversity = default_diversity
        self.salt = salt
        self._cache: OrderedDict[int, LiveRadio] = OrderedDict()
        self._cache_size = cache_size

    # -- public API ------------------------------------------------------------------------------

    async def start(
        self,
        seed_track_id: int,
        *,
        user_id: int | None,
        diversity: float | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> RadioStep:
        index = await self._recs.index()
        query, _pos, _seed = await self._recs.seed_query(seed_track_id)
        colikes = await self._recs.colikes() if self._recs.colike_weight > 0 else None
        if diversity is None:
            diversity = await self._recs.user_diversity(user_id) if user_id is not None else self.default_diversity
        diversity = min(max(float(diversity), 0.0), 1.0)
        async with self._sessions.begin() as s:
            taste = _taste_json(index.signature(), query, query, 0, 0, 0)
            radio = await RadioRepository(s).create(
                user_id=user_id, seed_track_id=seed_track_id, diversity=diversity, taste=taste
            )
            radio.chat_id, radio.message_id = chat_id, message_id
            if user_id is not None:
                await RadioRepository(s).stop_others(user_id, radio.id)
            live = LiveRadio(index.signature(), 0, query)
            return await self._advance(s, index, radio, live, colikes)

    async def start_from_latest_like(
        self, user_id: int, *, diversity: float | None = None, chat_id: int | None = None
    ) -> RadioStep | None:
        """/radio: a radio seeded with the user's latest like; None when they have liked nothing yet."""
        async with self._sessions() as s:
            latest = await LikeRepository(s).track_ids(user_id, limit=1)
        if not latest:
            return None
        return await self.start(latest[0], user_id=user_id, diversity=diversity, chat_id=chat_id)

    async def feedback(self, radio_id: int, track_id: int, action: Action, *, user_id: int | None) -> RadioStep:
        if action not in ("like", "skip", "next"):
            raise InvalidInput(f"unknown radio action: {action}")
        index = await self._recs.index()
        colikes = await self._recs.colikes() if self._recs.colike_weight > 0 else None
        try:
            return await self._feedback(index, colikes, radio_id, track_id, action, user_id)
        except BaseException:
            self._cache.pop(radio_id, None)  # the cached state may be ahead of the rolled-back DB
            raise

    async def _feedback(
        self, index: CatalogIndex, colikes: Any, radio_id: int, track_id: int, action: Action, user_id: int | None
    ) -> RadioStep:
        async with self._sessions.begin() as s:
            radio = await self._owned(s, radio_id, user_id, for_update=True)
            if radio.state == RadioState.STOPPED:
                return self._step(radio, None)
            if radio.current_track_id != track_id:
                raise InvalidInput("That track is no longer playing on this radio.")
            live = await self._live(s, index, radio)
            interactions = InteractionRepository(s)
            pos = index.position(track_id)
            taste = dict(radio.taste or {})
            if action == "like":
                await interactions.add(track_id, InteractionKind.LIKED, user_id=user_id, radio_session_id=radio.id)
                if user_id is not None:
                    await LikeRepository(s).add(user_id, track_id)
                if pos is not None:
                    live.query = live.query.moved(index.query_for(pos), self.like_rate)
                taste["likes"] = int(taste.get("likes", 0)) + 1
            elif action == "skip":
                await interactions.add(track_id, InteractionKind.SKIPPED, user_id=user_id, radio_session_id=radio.id)
                if pos is not None:
                    live.query = live.query.moved(index.query_for(pos), -self.skip_rate)
                    live.skipped.append(pos)
                taste["skips"] = int(taste.get("skips", 0)) + 1
            taste["query"] = live.query.to_json()
            radio.taste = taste
            return await self._advance(s, index, radio, live, colikes)

    async def stop(self, radio_id: int, *, user_id: int | None) -> RadioStep:
        async with self._sessions.begin() as s:
            radio = await self._owned(s, radio_id, user_id, for_update=True)
            radio.state = RadioState.STOPPED
            self._cache.pop(radio.id, None)
            return self._step(radio, None)

    async def current(self, radio_id: int, *, user_id: int | None) -> RadioStep:
        """The radio as it stands (e.g. to redraw its message after a restart)."""
        async with self._sessions() as s:
            radio = await self._owned(s, radio_id, user_id)
            track = None
            if radio.current_track_id is not None and radio.state == RadioState.ACTIVE:
                row = await TrackRepository(s).get(radio.current_track_id)
                track = TrackInfo.from_row(row) if row is not None else None
            return self._step(radio, track)

    async def attach_message(self, radio_id: int, chat_id: int, message_id: int) -> None:
        async with self._sessions.begin() as s:
            radio = await RadioRepository(s).get(radio_id, for_update=True)
            if radio is None:
                raise RadioNotFound("This radio no longer exists.")
            radio.chat_id, radio.message_id = chat_id, message_id

    def live_sessions(self) -> int:
        return len(self._cache)

    # -- internals -------------------------------------------------------------------------------

    async def _owned(self, s: AsyncSession, radio_id: int, user_id: int | None, *, for_update: bool = False) -> Any:
        radio = await RadioRepository(s).get(radio_id, for_update=for_update)
        if radio is None:
            raise RadioNotFound("This radio no longer exists.")
        if radio.user_id is not None and radio.user_id != user_id:
            raise RadioForbidden("This radio belongs to someone else.")
        return radio

    async def _live(self, s: AsyncSession, index: CatalogIndex, radio: RadioSession) -> LiveRadio:
        """The cached state when it matches the DB, otherwise rebuilt from the DB."""
        taste = radio.taste or {}
        signature = index.signature()
        cached = self._cache.get(radio.id)
        if cached is not None and cached.signature == signature and cached.position == taste.get("position"):
            self._cache.move_to_end(radio.id)
            return cached
        rows = (
            await s.execute(
                select(Interaction.track_id, Interaction.kind)
                .where(Interaction.radio_session_id == radio.id)
                .order_by(Interaction.id)
            )
        ).all()
        shown = [p for t, k in rows if k == InteractionKind.SHOWN for p in [index.position(t)] if p is not None]
        skipped = [p for t, k in rows if k == InteractionKind.SKIPPED for p in [index.position(t)] if p is not None]
        if taste.get("signature") == signature and taste.get("query"):
            query = Query.from_json(taste["query"])
        else:  # the index changed (re-import, new weights): replay the feedback on the new vectors
            query, _pos, _info = await self._recs.seed_query(radio.seed_track_id)
            for track_id, kind in rows:
                pos = index.position(track_id)
                if pos is None or kind not in (InteractionKind.LIKED, InteractionKind.SKIPPED):
                    continue
                rate = self.like_rate if kind == InteractionKind.LIKED else -self.skip_rate
                query = query.moved(index.query_for(pos), rate)
            log.info("radio %d: taste replayed on a new index (%d events)", radio.id, len(rows))
        return LiveRadio(signature, int(taste.get("position", len(shown))), query, shown, skipped)

    async def _advance(
        self, s: AsyncSession, index: CatalogIndex, radio: RadioSession, live: LiveRadio, colikes: Any
    ) -> RadioStep:
        """Pick, record and return the next track."""
        interactions = InteractionRepository(s)
        exclude = set(live.shown) | set(live.skipped)
        if radio.user_id is not None:
            user_skips = await interactions.user_track_ids(radio.user_id, [InteractionKind.SKIPPED], limit=5000)
            exclude.update(index.positions(user_skips))
            exclude.update(index.positions(await self._seen_lately(s, radio.user_id)))
        seed_pos = index.position(radio.seed_track_id)
        keys: set[int] = set()
        if seed_pos is not None:
            exclude.add(seed_pos)
            keys = index.keys_for(index.artists[seed_pos], index.names[seed_pos])
        boost = {}
        if colikes is not None:
            anchors = [p for p in [seed_pos] if p is not None]
            liked = await interactions.session_track_ids(radio.id, [InteractionKind.LIKED])
            anchors += index.positions(liked[-20:])
            boost = {
                p: (self._recs.colike_weight * score, "liked by people who liked this")
                for p, (score, _n) in colikes.scores(anchors).items()
            }
        hits = index.search(
            live.query,
            3,
            exclude=exclude,
            exclude_keys=keys,
            recent=live.shown[-9:],
            diversity=radio.diversity,
            boost=boost,
            avoid=live.skipped[-_AVOID_LAST:],
            alternatives=True,
            seed_artists=index.artists[seed_pos] if seed_pos is not None and len(live.shown) < 9 else None,
        )
        hit = self._pick(hits, radio.id, live.position)
        track: TrackInfo | None = None
        taste = dict(radio.taste or {})
        if hit is None:
            radio.current_track_id = None
        else:
            track_id = int(index.ids[hit.position])
            row = await TrackRepository(s).get(track_id)
            track = TrackInfo.from_row(row) if row is not None else index.track_info(hit.position)
            await interactions.add(track_id, InteractionKind.SHOWN, user_id=radio.user_id, radio_session_id=radio.id)
            radio.current_track_id = track_id
            live.shown.append(hit.position)
            live.position += 1
        taste.update(signature=live.signature, position=live.position, query=live.query.to_json())
        taste.setdefault("seed_query", taste["query"])
        radio.taste = taste
        await s.flush()
        self._remember(radio.id, live)
        return self._step(radio, track, hit)

    async def _seen_lately(self, s: AsyncSession, user_id: int) -> list[int]:
        """What the person already has or just saw: liked tracks and the latest shown ones (a 🔎 Similar
        list, an earlier radio). A radio plays neither again."""
        liked = await LikeRepository(s).track_ids(user_id, limit=_AVOID_LIKED)
        shown = await InteractionRepository(s).user_track_ids(user_id, [InteractionKind.SHOWN], limit=_AVOID_SHOWN)
        return liked + shown

    def _pick(self, hits: list[Hit], radio_id: int, position: int) -> Hit | None:
        if not hits:
            return None
        weights = _PICK_WEIGHTS[: len(hits)] / _PICK_WEIGHTS[: len(hits)].sum()
        rng = np.random.default_rng([self.salt, radio_id, position])
        return hits[int(rng.choice(len(hits), p=weights))]

    def _remember(self, radio_id: int, live: LiveRadio) -> None:
        self._cache[radio_id] = live
        self._cache.move_to_end(radio_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    @staticmethod
    def _step(radio: RadioSession, track: TrackInfo | None, hit: Hit | None = None) -> RadioStep:
        taste = radio.taste or {}
        extra: dict[str, object] = {"diversity": radio.diversity}
        if hit is not None:
            extra.update(reason=hit.reason, score=round(hit.score, 4))
        return RadioStep(
            radio_id=radio.id,
            track=track,
            position=int(taste.get("position", 0)),
            likes=int(taste.get("likes", 0)),
            skips=int(taste.get("skips", 0)),
            stopped=radio.state == RadioState.STOPPED,
            extra=extra,
        )


def _taste_json(signature: str, query: Query, seed: Query, position: int, likes: int, skips: int) -> dict[str, Any]:
    return {
        "signature": signature,
        "query": query.to_json(),
        "seed_query": seed.to_json(),
        "position": position,
        "likes": likes,
        "skips": skips,
    }
