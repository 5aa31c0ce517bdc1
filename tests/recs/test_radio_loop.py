"""A radio press never runs the recommender's CPU work on the event loop: the next-track search, the
co-likes (model and scores), the genre model and the index growth all run in worker threads, so one
person's press never stalls everybody else's (the stall itself is measured in bench/bench_radio.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Like, User
from ml.recsys.colikes import CoLikeModel
from ml.recsys.index import CatalogIndex
from services.dto import Listener
from services.radio import RadioService
from services.recommender import RecommendationService
from tests.recs.conftest import Catalog


class LoopProbe:
    """Wraps functions to record, per call, whether it ran on a thread with a running event loop."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.calls: dict[str, list[str]] = {}

    def watch(self, owner: Any, name: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)
        label = f"{getattr(owner, '__name__', owner)}.{name}"
        self.calls[label] = []

        def probe(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                where = f"loop ({threading.current_thread().name})"
            except RuntimeError:
                where = "worker"
            self.calls[label].append(where)
            return original(*args, **kwargs)

        self._monkeypatch.setattr(owner, name, probe)

    def on_loop(self) -> dict[str, list[str]]:
        return {label: calls for label, calls in self.calls.items() if any(c != "worker" for c in calls)}


async def _likes_from_other_people(sessions: async_sessionmaker[AsyncSession], catalog: Catalog) -> None:
    """Ten people who like the same handful of rock songs: co-likes have something to say."""
    rock = catalog.by_genre["rock"]
    async with sessions.begin() as s:
        people = [User(telegram_id=5000 + i, first_name=f"P{i}") for i in range(10)]
        s.add_all(people)
        await s.flush()
        s.add_all(Like(user_id=p.id, track_id=t) for p in people for t in rock[:6])


async def test_a_radio_press_does_its_cpu_work_off_the_loop(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _likes_from_other_people(sessions, catalog)
    probe = LoopProbe(monkeypatch)
    probe.watch(CatalogIndex, "search")
    probe.watch(CatalogIndex, "from_rows")
    probe.watch(CoLikeModel, "__init__")
    probe.watch(CoLikeModel, "scores")
    recs = RecommendationService(sessions, colike_ttl=0.0)  # the co-likes model is rebuilt on every use
    radio = RadioService(sessions, recs)
    me = Listener.telegram(catalog.users[0])
    step = await radio.start(catalog.by_genre["rock"][0], listener=me)
    for action in ("like", "skip", "next", "like", "next"):
        assert step.track is not None
        step = await radio.feedback(step.radio_id, step.track.id, action, listener=me)
    # The similar list and "for you" share the machinery.
    await recs.similar(catalog.by_genre["rock"][0], 10, user_id=catalog.users[0])
    assert all(probe.calls.values()), probe.calls  # each was called, so the check below means something
    assert probe.on_loop() == {}, probe.on_loop()


async def test_concurrent_presses_rebuild_the_colikes_once(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _likes_from_other_people(sessions, catalog)
    probe = LoopProbe(monkeypatch)
    probe.watch(CoLikeModel, "__init__")
    recs = RecommendationService(sessions)
    await recs.index()
    await asyncio.gather(*(recs.colikes() for _ in range(20)))
    assert len(probe.calls["CoLikeModel.__init__"]) == 1
