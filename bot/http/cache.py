"""A small TTL cache for encoded HTTP answers (the hot `/similar` endpoint)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ResponseCache:
    """Encoded answers by key, fresh for ``ttl`` seconds (LRU beyond ``size`` entries).

    - Concurrent misses on one key share a single computation (no stampede).
    - Stale-while-revalidate: for ``stale_for`` seconds after it expires an entry is still
      answered at once while a background task recomputes it (one refresh at a time), so popular
      keys never make a client wait for the recommender. A failed refresh drops the entry.
    """

    ttl: float
    size: int
    stale_for: float = 0.0
    clock: Callable[[], float] = time.monotonic
    _items: OrderedDict[tuple[Any, ...], tuple[float, bytes]] = field(default_factory=OrderedDict)
    _inflight: dict[tuple[Any, ...], asyncio.Future[bytes]] = field(default_factory=dict)
    # Background refreshes run one at a time: spread out, they never stall the loop in a burst.
    _refresh_gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    def lookup(self, key: tuple[Any, ...]) -> tuple[bytes | None, bool]:
        """(body, fresh); (None, False) when absent or too old."""
        item = self._items.get(key)
        if item is None:
            return None, False
        fresh_until, body = item
        now = self.clock()
        if now > fresh_until + self.stale_for:
            del self._items[key]
            return None, False
        self._items.move_to_end(key)
        return body, now <= fresh_until

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Forget every answer (the data behind them changed, e.g. the catalogue grew)."""
        self._items.clear()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        body, fresh = self.lookup(key)
        return body if fresh else None

    def put(self, key: tuple[Any, ...], body: bytes) -> None:
        self._items[key] = (self.clock() + self.ttl, body)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    async def get_or_compute(self, key: tuple[Any, ...], compute: Callable[[], Awaitable[bytes]]) -> tuple[bytes, str]:
        """The body and how it was found: ``hit``, ``stale`` (answered, refresh started),
        ``miss`` (computed) or ``coalesced`` (waited for a computation already running)."""
        body, fresh = self.lookup(key)
        if body is not None and fresh:
            return body, "hit"
        task = self._inflight.get(key)
        if body is not None:
            if task is None:

                async def refresh() -> bytes:
                    async with self._refresh_gate:
                        return await compute()

                self._start(key, refresh)
            return body, "stale"
        outcome = "coalesced"
        if task is None:
            outcome = "miss"
            task = self._start(key, compute)
        return await asyncio.shield(task), outcome

    def _start(self, key: tuple[Any, ...], compute: Callable[[], Awaitable[bytes]]) -> asyncio.Future[bytes]:
        # A task of its own: a client that hangs up does not cancel the work others wait for.
        task = asyncio.ensure_future(compute())
        self._inflight[key] = task
        task.add_done_callback(lambda done: self._settle(key, done))
        return task

    def _settle(self, key: tuple[Any, ...], task: asyncio.Future[bytes]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:  # errors are not cached
            self._items.pop(key, None)
        else:
            self.put(key, task.result())

    async def settled(self) -> None:
        """Until every computation and background refresh running now has finished."""
        tasks = list(self._inflight.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._items.clear()
