"""Serving the web app: a server that shrugs off slow, broken and vanishing clients.

- **Timeouts.** A connection gets `keepalive_timeout` seconds to send a complete request's headers
  (aiohttp's keep-alive timer also runs from the connection's start, and closes a connection that
  is idle or still sending headers when it fires); request bodies are read under `body_timeout`
  (`read_body`: 408 when the client sends too slowly).
- **Connections per client.** At most `max_per_client` open connections from one address; more are
  closed at once (one short log line, rate-limited).
- **Malformed requests** (a negative Content-Length, a 20 kB header, an 8 kB URL) get aiohttp's 400
  and one short log line instead of a traceback; those lines are rate-limited too, so a flood of
  bad requests cannot flood the log.
- **Disconnects.** A client that hangs up mid-request is counted as status 499 in the metrics (the
  nginx convention), without a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.http.problems import Problem

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    keepalive_timeout: float = 15.0  # seconds: idle keep-alive, and time to send a request's headers
    body_timeout: float = 30.0  # seconds to send a request body
    max_per_client: int = 64  # open connections from one address


class RateLimitedLog:
    """At most `per_minute` lines a minute; the lines dropped are counted in the next one let through."""

    def __init__(self, logger: logging.Logger, per_minute: int = 10, clock: Callable[[], float] = time.monotonic):
        self._log = logger
        self._per_minute = per_minute
        self._clock = clock
        self._window = -1.0
        self._sent = 0
        self._dropped = 0

    def warning(self, message: str, *args: object) -> bool:
        now = self._clock()
        if now - self._window >= 60.0:
            self._window, self._sent = now, 0
        if self._sent >= self._per_minute:
            self._dropped += 1
            return False
        self._sent += 1
        if self._dropped:
            message += " (%d similar lines dropped)"
            args = (*args, self._dropped)
            self._dropped = 0
        self._log.warning(message, *args)
        return True


class QuietBadRequests(logging.Filter):
    """On the `aiohttp.server` logger: a malformed request becomes one short, rate-limited line
    instead of an ERROR with a traceback (the client still gets its 400)."""

    def __init__(self, out: RateLimitedLog | None = None) -> None:
        super().__init__()
        self._out = out or RateLimitedLog(logging.getLogger("encore.http.bad_requests"))

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            self._out.warning("bad request refused: %s", _short(exc))
            return False
        if isinstance(exc, ConnectionResetError):  # the client hung up mid-request (metrics: 499)
            log.debug("client went away: %s", _short(exc))
            return False
        return True


def _short(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "message", "") or exc).split())
    return f"{type(exc).__name__}: {text[:120]}"


def guard_connections(server: web.Server, max_per_client: int, out: RateLimitedLog | None = None) -> None:
    """Close connections beyond `max_per_client` open ones from one address, as they arrive."""
    counts: Counter[str] = Counter()
    peers: dict[Any, str] = {}  # handler -> address (RequestHandler has __slots__)
    refused = out or RateLimitedLog(log)
    made, lost = server.connection_made, server.connection_lost

    def connection_made(handler: Any, transport: asyncio.Transport) -> None:
        made(handler, transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        peers[handler] = address
        counts[address] += 1
        if counts[address] > max_per_client:
            refused.warning("too many connections from %s (%d open): closing the newest", address, counts[address])
            transport.close()

    def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
        address = peers.pop(handler, None)
        if address is not None:
            counts[address] -= 1
            if counts[address] <= 0:
                del counts[address]
        lost(handler, exc)

    server.connection_made = connection_made  # type: ignore[method-assign]
    server.connection_lost = connection_lost  # type: ignore[method-assign]


async def read_body(request: web.Request, reader: Callable[[], Awaitable[T]], seconds: float) -> T:
    """`reader()` (request.read, request.post …) under a time limit: 408 for a client that sends its
    body too slowly; a client that hangs up is let go (the metrics count it as 499)."""
    try:
        async with asyncio.timeout(seconds):
            return await reader()
    except TimeoutError:
        raise Problem(408, "The request body came in too slowly.", code="request_timeout") from None


async def start_server(
    app: web.Application,
    host: str,
    port: int,
    *,
    limits: ServerLimits,
    reuse_port: bool = False,
) -> web.AppRunner:
    """Set the app up and listen on host:port with Encore's limits."""
    install_log_filters()
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=limits.keepalive_timeout,
    )
    await runner.setup()
    assert runner.server is not None
    guard_connections(runner.server, limits.max_per_client)
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    return runner


def install_log_filters() -> None:
    """Once per process: malformed requests log one short line, rate-limited."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietBadRequests) for f in server_log.filters):
        server_log.addFilter(QuietBadRequests())
