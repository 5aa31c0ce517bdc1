"""Rate limiting: a token bucket per client, in memory or shared through Redis."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from bot.http.keys import config_key, limiter_key, metrics_key
from bot.http.middlewares import valid_key_hash
from bot.http.problems import Problem

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass
class MemoryRateLimiter:
    """A token bucket per client: ``per_minute`` burst, refilled at ``per_minute / 60`` a second."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    max_clients: int = 100_000
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, client: str) -> float:
        now = self.clock()
        rate = self.per_minute / 60.0
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._sweep(now, rate)
            bucket = self._buckets[client] = _Bucket(float(self.per_minute), now)
        else:
            bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def _sweep(self, now: float, rate: float) -> None:
        """Forget clients whose bucket has refilled (they are as good as new)."""
        full_after = self.per_minute / rate
        stale = [k for k, b in self._buckets.items() if now - b.updated >= full_after]
        for key in stale:
            del self._buckets[key]
        if len(self._buckets) >= self.max_clients:  # still full: drop the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k].updated)
            for key in oldest[: len(oldest) // 2]:
                del self._buckets[key]

    async def acquire(self, client: str) -> float:
        return self.take(client)

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket; ARGV: capacity, refill rate per second. Uses the server's clock.
_REDIS_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1]) or capacity
local ts = tonumber(data[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return tostring(wait)
"""


class RedisRateLimiter:
    """The same token bucket kept in Redis, so several app processes share one budget.

    When Redis fails the request is let through (fail open) and a warning is logged.
    """

    def __init__(self, client: Redis, per_minute: int, *, prefix: str = "encore:rl:") -> None:
        self._client = client
        self._per_minute = per_minute
        self._prefix = prefix
        self._script = client.register_script(_REDIS_BUCKET)

    @classmethod
    def from_url(cls, url: str, per_minute: int, *, prefix: str = "encore:rl:") -> RedisRateLimiter:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5), per_minute, prefix=prefix)

    async def acquire(self, client: str) -> float:
        try:
            wait = await self._script(keys=[self._prefix + client], args=[self._per_minute, self._per_minute / 60])
        except Exception as exc:  # Redis down: availability beats strictness for a rate limit
            log.warning("rate limiter: Redis failed (%s), letting the request through", type(exc).__name__)
            return 0.0
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    async def close(self) -> None:
        await self._client.aclose()


def client_id(request: web.Request) -> str:
    """Who is asking: the API key when a valid one is presented, else the peer address."""
    key_hash = valid_key_hash(request)
    return f"key:{key_hash}" if key_hash else "ip:" + (request.remote or "unknown")


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limiter = request.app.get(limiter_key)
    unlimited = request.app[config_key].unlimited_paths
    if limiter is None or request.path in unlimited or request.path.startswith("/static/"):
        return await handler(request)
    wait = await limiter.acquire(client_id(request))
    if wait > 0:
        request.app[metrics_key].rate_limited()
        retry_after = max(1, math.ceil(wait))
        raise Problem(
            429,
            f"Too many requests; try again in {retry_after} s.",
            code="rate_limited",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )
    return await handler(request)
