"""One retry policy for every outside call (Spotify, Deezer, ReccoBeats, dataset downloads), on tenacity.

An attempt is an async function. It returns the answer, raises `TryAgain` for a failure that may
pass (429, 5xx, a timeout, a cut connection, a "busy" code in a body), or raises anything else to
fail at once (that exception passes through `RetryPolicy.run` untouched). The policy:

- makes at most ``max_retries + 1`` attempts;
- waits what the server asked (`TryAgain.retry_after`, from Retry-After or a known quota window),
  or else a jittered exponential backoff: before retry *n* (1, 2, …) it waits between half and all
  of ``min(backoff_max, backoff_base * 2 ** (n - 1))`` ("equal jitter": spread out, never near 0);
- does not sleep for a paced failure (`TryAgain(paced=True)`): its wait already went through a
  shared limiter (Deezer's `RollingWindowLimiter.pause`), which holds the next attempt back, and
  every other caller with it;
- never retries when the server asks for longer than ``max_retry_after``: it gives up at once
  with ``RetriesExhausted(too_long=True)``, and the client decides how long to fail fast;
- logs one INFO line per retry and one WARNING line when it gives up, with `what` (a label such as
  "deezer search") and the failure text only. Neither may hold user input or a secret.

`RetriesExhausted` carries the last failure; each client turns it into its own error
(`ProviderUnavailable`, `DatasetError`). The sleep is injectable, so tests never wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential, wait_random_exponential

log = logging.getLogger(__name__)

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


class TryAgain(Exception):
    """Raised by an attempt that may succeed later.

    `failure`: what went wrong, for logs and errors ("HTTP 503", "ReadTimeout"); never user input.
    `retry_after`: seconds the server asked to wait (None: use backoff).
    `paced`: the wait already went through a shared limiter; the policy must not sleep it again.
    """

    def __init__(self, failure: str, retry_after: float | None = None, *, paced: bool = False) -> None:
        super().__init__(failure)
        self.failure = failure
        self.retry_after = None if retry_after is None else max(0.0, retry_after)
        self.paced = paced


class RetriesExhausted(Exception):
    """No more attempts: `attempts` were made, the last failed with `failure`. `too_long`: the server
    asked to wait `retry_after` seconds, more than the policy's cap, so it was not retried."""

    def __init__(self, failure: str, retry_after: float | None, *, too_long: bool, attempts: int) -> None:
        super().__init__(failure)
        self.failure = failure
        self.retry_after = retry_after
        self.too_long = too_long
        self.attempts = attempts


def _last(state: RetryCallState) -> TryAgain:
    """The `TryAgain` the last attempt raised (the policy only ever retries those)."""
    assert state.outcome is not None
    exc = state.outcome.exception()
    assert isinstance(exc, TryAgain)
    return exc


class _stop_when_too_long(stop_base):
    def __init__(self, cap: float) -> None:
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> bool:
        retry_after = _last(retry_state).retry_after
        return retry_after is not None and retry_after > self.cap


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 3
    max_retry_after: float = 10.0
    backoff_base: float = 0.5
    backoff_max: float = 8.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.max_retry_after < 0 or self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("retry counts and times must not be negative")

    def _wait(self) -> Callable[[RetryCallState], float]:
        """Seconds to sleep before the next attempt, from the last failure."""
        half_base, half_max = self.backoff_base / 2, self.backoff_max / 2
        backoff = wait_exponential(multiplier=half_base, max=half_max) + wait_random_exponential(
            multiplier=half_base, max=half_max
        )

        def wait(state: RetryCallState) -> float:
            last = _last(state)
            if last.paced:
                return 0.0
            if last.retry_after is not None:
                return last.retry_after
            return backoff(state)

        return wait

    async def run(self, what: str, attempt: Callable[[], Awaitable[T]], *, sleep: Sleep = asyncio.sleep) -> T:
        """`attempt()` until it answers; `RetriesExhausted` when it keeps raising `TryAgain`;
        any other exception from it at once."""

        async def pause(seconds: float) -> None:
            if seconds > 0:  # a paced wait (0 here) is held back by the shared limiter instead
                await sleep(seconds)

        def before_sleep(state: RetryCallState) -> None:
            last = _last(state)
            retry, wait = state.attempt_number, state.upcoming_sleep
            if last.paced:
                wait = last.retry_after or 0.0
                log.info("%s: %s, retry %d/%d after a paced %.2fs", what, last.failure, retry, self.max_retries, wait)
            else:
                log.info("%s: %s, retry %d/%d in %.2fs", what, last.failure, retry, self.max_retries, wait)

        def give_up(state: RetryCallState) -> NoReturn:
            last = _last(state)
            too_long = last.retry_after is not None and last.retry_after > self.max_retry_after
            if too_long:
                log.warning(
                    "%s: %s, asked to wait %.0fs (over the %.0fs cap): not retrying",
                    what,
                    last.failure,
                    last.retry_after,
                    self.max_retry_after,
                )
            else:
                log.warning("%s: %s, giving up after %d attempts", what, last.failure, state.attempt_number)
            raise RetriesExhausted(
                last.failure, last.retry_after, too_long=too_long, attempts=state.attempt_number
            ) from last

        retrying = AsyncRetrying(
            sleep=pause,
            stop=stop_after_attempt(self.max_retries + 1) | _stop_when_too_long(self.max_retry_after),
            wait=self._wait(),
            retry=retry_if_exception_type(TryAgain),
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )
        return await retrying(attempt)
