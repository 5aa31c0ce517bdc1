"""A rolling-window rate limiter for providers with a fixed "N requests per T seconds" quota.

Deezer allows 50 requests per 5 seconds per IP address. A token bucket (aiolimiter's leaky
bucket, for instance) with burst N and refill N/T lets 2N requests through inside one window:
N at once, then N more as the bucket refills. That trips a fixed quota while looking compliant.
This limiter remembers when each of the last N requests started and admits a new one only when
fewer than N started within the last T seconds, so no window of length T ever holds more than N.

Waiters are served in arrival order (asyncio.Lock is FIFO). `pause()` holds every caller back,
e.g. after the provider answered "quota exceeded" anyway (another process on the same IP).
The clock and the sleep are injectable so tests run on a virtual clock, without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable


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
