"""Encore's one entry point.

    python main.py [serve]        apply migrations, start the HTTP server and (with a token) the bot;
                                  HTTP_WORKERS=N adds N-1 processes serving HTTP on the same port
    python main.py migrate        upgrade the database schema to the latest migration
    python main.py setup          datasets, catalogue import and the genre model, when missing
    python main.py <command> -h   help for any other command (train, predict, collect, recommend …)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.config import Settings
from bot.logging import setup_logging

log = logging.getLogger("encore")

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

# Modules that add their own subcommands (each has `register(subparsers)`).
COMMAND_MODULES = (
    "handlers.cli_catalog",
    "handlers.cli_ml",
    "handlers.cli_providers",
    "handlers.cli_recs",
)


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from db.migrate import upgrade_to_head

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_to_head(settings.db_url)
    log.info("database schema is at the latest migration")
    return 0


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from bot.container import build_container
    from bot.web import create_web_app

    await cmd_migrate(args, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)

    workers = None
    count = settings.http.workers
    if count > 1 and settings.telegram.bot_token is not None and settings.webhook.url:
        # Only the primary has the webhook route, and Telegram's POSTs would reach any process.
        log.warning("HTTP_WORKERS=%d ignored: webhook mode serves HTTP from one process", count)
        count = 1
    if count > 1:
        # After the migrations, so the workers find the schema ready; they build their containers meanwhile.
        workers = HttpWorkers([sys.executable, __file__, "serve-http-worker"], count - 1)
        workers.start()
    try:
        container = await build_container(settings)
        app = create_web_app(container)
        telegram = None
        if settings.telegram.bot_token is None:
            log.warning("TELEGRAM_BOT_TOKEN is not set: the Telegram bot is off, the HTTP API and page are on")
        else:
            from bot.runtime import start_telegram

            # Before runner.setup(): webhook mode adds its route to the app, which setup() freezes.
            telegram = await start_telegram(container, app)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        if workers is None:
            site = web.TCPSite(runner, settings.http.host, settings.http.port)
        else:
            site = web.TCPSite(runner, settings.http.host, settings.http.port, reuse_port=True)
        await site.start()
        log.info(
            "HTTP server on http://%s:%d (health: /healthz)%s",
            settings.http.host,
            settings.http.port,
            f" with {count} processes" if workers is not None else "",
        )
        try:
            await stop.wait()
            log.info("shutting down: finishing in-flight work")
        finally:
            if workers is not None:
                workers.terminate()
            if telegram is not None:
                await telegram.stop()
            await runner.cleanup()
            await container.close()
    finally:
        if workers is not None:
            await workers.stop()
        log.info("stopped")
    return 0


async def cmd_serve_http_worker(args: argparse.Namespace, settings: Settings) -> int:
    """An extra HTTP process started by `serve` (HTTP_WORKERS > 1): no migrations, bot or scheduler."""
    from aiohttp import web

    from bot.container import build_container
    from bot.web import create_web_app

    async def serve(stop: asyncio.Event) -> None:
        container = await build_container(settings)
        try:
            runner = web.AppRunner(create_web_app(container), handle_signals=False, access_log=None)
            await runner.setup()
            try:
                if not stop.is_set():
                    await web.TCPSite(runner, settings.http.host, settings.http.port, reuse_port=True).start()
                    log.info("HTTP worker %d serving", os.getpid())
                await stop.wait()
            finally:
                await runner.cleanup()
        finally:
            await container.close()
        log.info("HTTP worker %d stopped", os.getpid())

    await run_http_worker(serve)
    return 0


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


async def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    """Everything `make run` needs once: datasets, schema, catalogue, product model (each only when missing)."""
    from handlers.cli_catalog import setup_catalog

    stats = await setup_catalog(settings, progress=not args.no_progress)
    if stats is None:
        log.info("catalogue already imported")
    train = build_parser().parse_args(["train", "--task", "catalog", "--quick", "--if-missing"])
    code = await asyncio.to_thread(train.handler, train, settings)
    if code:
        log.error("training the genre model failed (exit %s)", code)
    return int(code or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="Encore: music recommendations.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run the HTTP server and the Telegram bot").set_defaults(handler=cmd_serve)
    # Hidden (no help): started by `serve` itself when HTTP_WORKERS > 1.
    sub.add_parser("serve-http-worker").set_defaults(handler=cmd_serve_http_worker)
    sub.add_parser("migrate", help="upgrade the database schema").set_defaults(handler=cmd_migrate)
    setup = sub.add_parser("setup", help="fetch the datasets, import the catalogue, train the model when missing")
    setup.add_argument("--no-progress", action="store_true", help="no progress bars")
    setup.set_defaults(handler=cmd_setup)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if args.command is None:
        args = parser.parse_args(["serve"])
    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    handler: Callable[[argparse.Namespace, Settings], int | Awaitable[int]] = args.handler
    try:
        if inspect.iscoroutinefunction(handler):
            return int(asyncio.run(handler(args, settings)) or 0)
        result: Any = handler(args, settings)
        if inspect.isawaitable(result):
            result = asyncio.run(result)
        return int(result or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
