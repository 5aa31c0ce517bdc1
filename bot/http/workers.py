"""Extra HTTP processes on the primary's port (HTTP_WORKERS > 1): the supervisor and the worker side."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger(__name__)

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


class HttpWorkers:
    """Extra processes that serve HTTP on the primary's host:port, the kernel spreading connections
    over every listener (SO_REUSEPORT). The primary starts them, logs one that dies and stops them."""

    def __init__(self, command: Sequence[str], count: int, *, stop_timeout: float = 20.0) -> None:
        self._command = list(command)
        self._count = count
        self._stop_timeout = stop_timeout
        self._procs: list[subprocess.Popen[bytes]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._reported: set[int] = set()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def start(self) -> None:
        """Start the processes (and, inside an event loop, a watcher that logs unexpected exits).

        They start with SIGINT and SIGTERM blocked and unblock them once their handlers are in place
        (`run_http_worker`), so a Ctrl-C during their start-up cannot end in a traceback."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for _ in range(self._count):
                self._procs.append(subprocess.Popen(self._command, stdin=subprocess.DEVNULL))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        log.info("started %d HTTP worker process(es): %s", self._count, ", ".join(map(str, self.pids)))
        with contextlib.suppress(RuntimeError):  # no running loop: nobody to watch
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for proc in self._procs:
                code = proc.poll()
                if code is not None and proc.pid not in self._reported:
                    self._reported.add(proc.pid)
                    log.error("HTTP worker %d exited unexpectedly (exit code %s)", proc.pid, code)

    def terminate(self) -> None:
        """Ask every live worker to finish its in-flight requests and stop (SIGTERM)."""
        if self._watcher is not None:
            self._watcher.cancel()
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)

    async def stop(self) -> None:
        """terminate(), wait up to stop_timeout seconds, then kill whatever is left."""
        self.terminate()
        if self._watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_timeout
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, max(0.0, deadline - loop.time()))
            if proc.returncode is None:
                log.warning("HTTP worker %d did not stop in %.0f s: killing it", proc.pid, self._stop_timeout)
                proc.kill()
                proc.wait()
            elif proc.returncode != 0 and proc.pid not in self._reported:
                log.warning("HTTP worker %d exited with code %s", proc.pid, proc.returncode)


async def run_http_worker(serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `serve(stop)` in a process started by HttpWorkers: stop is set by SIGINT/SIGTERM or when
    the primary goes away (so a killed primary leaves no worker behind)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by HttpWorkers.start()
    parent = os.getppid()

    async def orphaned() -> None:
        while True:
            await asyncio.sleep(1.0)
            if os.getppid() != parent:
                break
        log.warning("HTTP worker %d: the primary process is gone, stopping", os.getpid())
        stop.set()

    watchdog = asyncio.create_task(orphaned())
    try:
        await serve(stop)
    finally:
        # Ctrl-C reaches every process and the primary then sends SIGTERM too: keep that late signal
        # pending once the loop (and its handlers) are gone, rather than die of it.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
