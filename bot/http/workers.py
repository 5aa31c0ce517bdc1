"""Extra HTTP processes on the primary's port (HTTP_WORKERS > 1): the supervisor and the worker side."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger(__name__)

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


class ForkedProcess:
    """A child made by os.fork(), with the part of subprocess.Popen's interface HttpWorkers uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 0  # reaped elsewhere
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
            time.sleep(0.05)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class HttpWorkers:
    """Extra processes that serve HTTP on the primary's host:port, the kernel spreading connections
    over every listener (SO_REUSEPORT). The primary starts them, logs one that dies and stops them."""

    def __init__(self, command: Sequence[str], count: int, *, stop_timeout: float = 20.0) -> None:
        self._command = list(command)
        self._count = count
        self._stop_timeout = stop_timeout
        self._procs: list[subprocess.Popen[bytes] | ForkedProcess] = []
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
        self.watch()

    def fork(self, child: Callable[[], int]) -> None:
        """Start the processes by os.fork() instead: each runs `child()` and exits with its code.

        Call it before any event loop, thread or connection exists (`main.py` does, after importing
        what serving needs): a child shares the parent's pages until it writes to them, so the
        imported modules (and a loaded model) are in memory once. The parent's objects are moved out
        of the collector's reach first (gc.freeze), or a collection in a child would write to every
        object header and copy the pages. SIGINT/SIGTERM stay blocked in a child until
        `run_http_worker` handles them, as with start()."""
        import gc

        gc.collect()
        gc.freeze()
        old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for _ in range(self._count):
                pid = os.fork()
                if pid == 0:  # the child: never returns into the parent's code
                    code = 1
                    try:
                        code = child()
                    except BaseException:
                        log.exception("HTTP worker %d failed", os.getpid())
                    finally:
                        logging.shutdown()
                        sys.stdout.flush()
                        os._exit(code)
                self._procs.append(ForkedProcess(pid))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        log.info("started %d HTTP worker process(es) by fork: %s", self._count, ", ".join(map(str, self.pids)))

    def watch(self) -> None:
        """Log workers that exit unexpectedly (from within the running event loop; else a no-op)."""
        if self._watcher is None:
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
