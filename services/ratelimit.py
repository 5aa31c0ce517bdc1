"""A rolling-window rate limiter for providers with a fixed "N requests per T seconds" quota.

Deezer allows 50 requests per 5 seconds per IP address. A token bucket (aiolimiter's leaky
bucket, for instance) with burst N and refill N/T lets 2N requests through inside one window:
N at once, then N more as the bucket refills. That trips a fixed quota while looking compliant.
This limiter remembers when each of the last N requests started and admits a new one only when
fewer than N started within the last T seconds, so no window of length T ever holds more than N.

Waiters are served in arrival order (asyncio.Lock is FIFO). `pause()` holds every caller back,
e.g. after the provider answered "quota exceeded" anyway (another process on the same IP).
The clock and the sleep are injectable so tests run on a virtual clock, without waiting.

`MemoryTokenBuckets` / `RedisTokenBuckets` are the other kind: a budget per identity (a person, an
API client) for work that costs a provider, such as analysing sent audio.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


class RollingWindowLimiter:
    def __init__(
        self,
        max_calls: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_calls < 1 or period <= 0:
            raise ValueError("max_calls must be ≥ 1 and period > 0")
        self.max_calls = max_calls
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self.waited = 0.0  # total seconds callers were held back (for logs and tests)

    def _delay(self, now: float) -> float:
        while self._starts and self._starts[0] <= now - self.period:
            self._starts.popleft()
        delay = max(0.0, self._paused_until - now)
        if len(self._starts) >= self.max_calls:
            delay = max(delay, self._starts[0] + self.period - now)
        return delay

    async def acquire(self) -> None:
        """Wait until one more request fits in the window, then count it."""
        async with self._lock:
            while True:
                now = self._clock()
                delay = self._delay(now)
                if delay <= 0:
                    self._starts.append(now)
                    return
                self.waited += delay
                await self._sleep(delay)

    def pause(self, seconds: float) -> None:
        """Admit nothing for `seconds` from now (never shortens an earlier pause)."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())


class IdentityLimiter(Protocol):
    """A budget per person or client (a Telegram user, an API key, an address)."""

    async def acquire(self, identity: str) -> float:
        """Take one unit; 0 when allowed, else the seconds until one is free (nothing taken then)."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class MemoryTokenBuckets:
    """A token bucket per identity, in this process: `capacity` at once, refilled evenly over `period`
    seconds (capacity 12, period 3600: twelve an hour, all twelve at once after a quiet hour)."""

    def __init__(
        self,
        capacity: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_identities: int = 100_000,
    ) -> None:
        if capacity < 1 or period <= 0:
            raise ValueError("capacity must be ≥ 1 and period > 0")
        self.capacity = capacity
        self.rate = capacity / period
        self._clock = clock
        self._max = max_identities
        self._buckets: dict[str, _Bucket] = {}

    def take(self, identity: str) -> float:
        now = self._clock()
        bucket = self._buckets.get(identity)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._sweep(now)
            bucket = self._buckets[identity] = _Bucket(float(self.capacity), now)
        else:
            bucket.tokens = min(float(self.capacity), bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _sweep(self, now: float) -> None:
        full_after = self.capacity / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= full_after]:
            del self._buckets[key]
        if len(self._buckets) >= self._max:  # still full: forget the oldest half
            for key in sorted(self._buckets, key=lambda k: self._buckets[k].updated)[: len(self._buckets) // 2]:
                del self._buckets[key]

    async def acquire(self, identity: str) -> float:
        return self.take(identity)

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket; ARGV: capacity, refill rate per second. Redis's own clock, so every process agrees.
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


class RedisTokenBuckets:
    """The same buckets in Redis (keys `<prefix><identity>`), shared by every instance. When Redis
    fails the call is let through (fail open) and a warning is logged."""

    def __init__(self, client: Redis, capacity: int, period: float, *, prefix: str) -> None:
        if capacity < 1 or period <= 0:
            raise ValueError("capacity must be ≥ 1 and period > 0")
        self._client = client
        self.capacity = capacity
        self.rate = capacity / period
        self._prefix = prefix
        self._script = client.register_script(_REDIS_BUCKET)

    @classmethod
    def from_url(cls, url: str, capacity: int, period: float, *, prefix: str) -> RedisTokenBuckets:
        from redis.asyncio import Redis

        client = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return cls(client, capacity, period, prefix=prefix)

    async def acquire(self, identity: str) -> float:
        try:
            wait = await self._script(keys=[self._prefix + identity], args=[self.capacity, self.rate])
        except Exception as exc:  # Redis down: better an extra analysis than none for everybody
            log.warning("identity limiter: Redis failed (%s), letting the call through", type(exc).__name__)
            return 0.0
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    async def close(self) -> None:
        await self._client.aclose()
