"""Encore's one entry point.

    python main.py [serve]        apply migrations, start the HTTP server and (with a token) the bot
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
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from bot.config import Settings
from bot.logging import setup_logging

log = logging.getLogger("encore")

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
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

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
    site = web.TCPSite(runner, settings.http.host, settings.http.port)
    await site.start()
    log.info("HTTP server on http://%s:%d (health: /healthz)", settings.http.host, settings.http.port)
    try:
        await stop.wait()
        log.info("shutting down: finishing in-flight work")
    finally:
        if telegram is not None:
            await telegram.stop()
        await runner.cleanup()
        await container.close()
        log.info("stopped")
    return 0


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
