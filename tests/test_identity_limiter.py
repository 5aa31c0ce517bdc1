"""The per-identity budget of audio analyses: in memory, and shared through Redis."""

from __future__ import annotations

import pytest

from services.ratelimit import MemoryTokenBuckets, RedisTokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_buckets_per_identity() -> None:
    clock = Clock()
    limiter = MemoryTokenBuckets(2, 60.0, clock=clock)
    assert await limiter.acquire("tg:1") == 0 and await limiter.acquire("tg:1") == 0
    wait = await limiter.acquire("tg:1")
    assert wait == pytest.approx(30.0)  # one unit every 30 s
    assert await limiter.acquire("tg:2") == 0  # someone else has their own budget
    clock.now += 30
    assert await limiter.acquire("tg:1") == 0
    assert await limiter.acquire("tg:1") > 0


def test_memory_buckets_forget_idle_identities() -> None:
    clock = Clock()
    limiter = MemoryTokenBuckets(1, 10.0, clock=clock, max_identities=3)
    for who in ("a", "b", "c"):
        assert limiter.take(who) == 0
    clock.now += 11  # all refilled: forgetting them loses nothing
    assert limiter.take("d") == 0 and len(limiter._buckets) == 1


async def test_redis_buckets_are_shared_between_instances(redis_url: str, redis_prefix: str) -> None:
    first = RedisTokenBuckets.from_url(redis_url, 2, 3600.0, prefix=f"{redis_prefix}:analysis:")
    second = RedisTokenBuckets.from_url(redis_url, 2, 3600.0, prefix=f"{redis_prefix}:analysis:")  # another process
    try:
        assert await first.acquire("key:abc") == 0
        assert await second.acquire("key:abc") == 0
        assert await first.acquire("key:abc") > 1000  # 1800 s until the next one
        assert await second.acquire("ip:127.0.0.1") == 0
    finally:
        await first.close()
        await second.close()


async def test_redis_down_lets_analyses_through() -> None:
    limiter = RedisTokenBuckets.from_url("redis://127.0.0.1:1/0", 1, 60.0, prefix="encore:analysis:")
    try:
        assert await limiter.acquire("tg:1") == 0 and await limiter.acquire("tg:1") == 0
    finally:
        await limiter.close()
