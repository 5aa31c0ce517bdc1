"""The one retry policy (services.retry) on its own: waits, caps, counts, logs. Sleeps are recorded, never slept."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

import pytest

from services.retry import RetriesExhausted, RetryPolicy, TryAgain
from tests.providers.conftest import RecordedSleeps


def script(*steps: BaseException | str) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An attempt that raises the scripted exceptions in turn, then answers each string step."""
    calls = [0]

    async def attempt() -> str:
        step = steps[min(calls[0], len(steps) - 1)]
        calls[0] += 1
        if isinstance(step, BaseException):
            raise step
        return step

    return attempt, calls


async def test_answers_at_once_without_sleeping() -> None:
    slept = RecordedSleeps()
    attempt, calls = script("ok")
    assert await RetryPolicy().run("test", attempt, sleep=slept) == "ok"
    assert calls == [1] and slept == []


async def test_retry_after_is_honoured() -> None:
    slept = RecordedSleeps()
    attempt, calls = script(TryAgain("HTTP 429", 1.5), TryAgain("HTTP 503", 0.0), "ok")
    assert await RetryPolicy(max_retry_after=2.0).run("test", attempt, sleep=slept) == "ok"
    assert calls == [3] and slept == [1.5]  # a Retry-After of 0 retries at once, without a sleep


async def test_retry_after_over_the_cap_fails_fast() -> None:
    slept = RecordedSleeps()
    attempt, calls = script(TryAgain("HTTP 429", 600.0), "ok")
    with pytest.raises(RetriesExhausted) as info:
        await RetryPolicy(max_retries=5, max_retry_after=10.0).run("test", attempt, sleep=slept)
    assert info.value.too_long and info.value.retry_after == 600.0 and info.value.failure == "HTTP 429"
    assert info.value.attempts == 1 and calls == [1] and slept == []
    # Exactly the cap is still waited.
    attempt, calls = script(TryAgain("HTTP 429", 10.0), "ok")
    assert await RetryPolicy(max_retry_after=10.0).run("test", attempt, sleep=slept) == "ok"
    assert slept == [10.0]


@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_attempts_are_counted(max_retries: int) -> None:
    slept = RecordedSleeps()
    attempt, calls = script(TryAgain("HTTP 500"))
    with pytest.raises(RetriesExhausted) as info:
        await RetryPolicy(max_retries=max_retries).run("test", attempt, sleep=slept)
    assert calls == [max_retries + 1] and info.value.attempts == max_retries + 1
    assert len(slept) == max_retries and not info.value.too_long and info.value.retry_after is None


def _bounds(policy: RetryPolicy, retries: int) -> list[tuple[float, float]]:
    out = []
    for n in range(1, retries + 1):
        full = min(policy.backoff_max, policy.backoff_base * 2 ** (n - 1))
        out.append((full / 2, full))
    return out


async def _backoffs(policy: RetryPolicy) -> Sequence[float]:
    slept = RecordedSleeps()
    attempt, _ = script(TryAgain("timeout"))
    with pytest.raises(RetriesExhausted):
        await policy.run("test", attempt, sleep=slept)
    return slept


async def test_backoff_is_jittered_within_bounds() -> None:
    policy = RetryPolicy(max_retries=6, backoff_base=0.5, backoff_max=8.0)
    bounds = _bounds(policy, 6)  # half to all of 0.5, 1, 2, 4, 8, 8
    seen: list[Sequence[float]] = []
    for _ in range(200):
        waits = await _backoffs(policy)
        assert len(waits) == 6
        assert all(low <= w <= high for w, (low, high) in zip(waits, bounds, strict=True))
        seen.append(waits)
    assert len({w[0] for w in seen}) > 1  # jittered, not fixed


async def test_backoff_reaches_both_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = RetryPolicy(max_retries=5, backoff_base=0.25, backoff_max=4.0)
    bounds = _bounds(policy, 5)
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert list(await _backoffs(policy)) == pytest.approx([low for low, _ in bounds])
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    assert list(await _backoffs(policy)) == pytest.approx([high for _, high in bounds])
    assert bounds[-1] == (2.0, 4.0)  # capped at backoff_max


async def test_paced_waits_are_not_slept_again() -> None:
    slept = RecordedSleeps()
    attempt, calls = script(TryAgain("quota", 2.0, paced=True), TryAgain("quota", 2.0, paced=True), "ok")
    assert await RetryPolicy(max_retry_after=5.0).run("test", attempt, sleep=slept) == "ok"
    assert calls == [3] and slept == []
    # A paced wait over the cap is still too long: the client blocks instead of retrying.
    attempt, calls = script(TryAgain("quota", 60.0, paced=True), "ok")
    with pytest.raises(RetriesExhausted) as info:
        await RetryPolicy(max_retry_after=5.0).run("test", attempt, sleep=slept)
    assert info.value.too_long and calls == [1] and slept == []


async def test_other_exceptions_pass_through_at_once() -> None:
    slept = RecordedSleeps()
    attempt, calls = script(KeyError("refused"))
    with pytest.raises(KeyError):
        await RetryPolicy().run("test", attempt, sleep=slept)
    assert calls == [1] and slept == []
    attempt, calls = script(TryAgain("HTTP 502", 0.5), ValueError("bad answer"), "ok")
    with pytest.raises(ValueError, match="bad answer"):
        await RetryPolicy().run("test", attempt, sleep=slept)
    assert calls == [2] and slept == [0.5]


async def test_cancellation_is_not_retried() -> None:
    attempt, calls = script(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await RetryPolicy().run("test", attempt, sleep=RecordedSleeps())
    assert calls == [1]


async def test_the_last_failure_is_kept() -> None:
    cause = ConnectionResetError("cut")
    failure = TryAgain("ConnectionResetError")
    failure.__cause__ = cause
    attempt, _ = script(TryAgain("HTTP 500"), failure)
    with pytest.raises(RetriesExhausted) as info:
        await RetryPolicy(max_retries=1).run("test", attempt, sleep=RecordedSleeps())
    assert info.value.failure == "ConnectionResetError" and info.value.__cause__ is failure
    assert failure.__cause__ is cause


async def test_one_log_line_per_retry_and_no_user_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="services.retry")
    attempt, _ = script(TryAgain("HTTP 503"), TryAgain("quota (code 4)", 1.0, paced=True), TryAgain("HTTP 429", 0.25))
    with pytest.raises(RetriesExhausted):
        await RetryPolicy(max_retries=2).run("deezer search", attempt, sleep=RecordedSleeps())
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "services.retry"]
    assert [level for level, _ in lines] == [logging.INFO, logging.INFO, logging.WARNING]
    assert lines[0][1].startswith("deezer search: HTTP 503, retry 1/2 in ")
    assert lines[1][1] == "deezer search: quota (code 4), retry 2/2 after a paced 1.00s"
    assert lines[2][1] == "deezer search: HTTP 429, giving up after 3 attempts"


async def test_concurrent_runs_of_one_policy_count_apart() -> None:
    policy = RetryPolicy(max_retries=2)
    first, first_calls = script(TryAgain("HTTP 500", 0.0), TryAgain("HTTP 500", 0.0), "first")
    second, second_calls = script(TryAgain("HTTP 500", 0.0), "second")
    answers = await asyncio.gather(policy.run("a", first), policy.run("b", second))
    assert answers == ["first", "second"] and first_calls == [3] and second_calls == [2]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_base=-0.5)
