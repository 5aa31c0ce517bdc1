"""Plumbing for the command-line delivery: what every command gets, and progress bars on stderr.

A command is `async def cmd_x(args, cli: CliContext) -> int`. It asks `await cli.services()` for
the one container `main.py` builds (the same services the bot and the web app use), prints results
on stdout and reports failures through logging (which redacts secrets).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from bot.config import Settings

if TYPE_CHECKING:  # types only: importing them pulls in pandas and the training code at every start
    from services.container import Services
    from services.data import DataService
    from services.models import ModelService


def progress_bars(enabled: bool = True) -> Callable[..., Any]:
    """A factory of tqdm bars on stderr (the `Bars` the services take); they show nothing unless
    stderr is a terminal and `enabled`."""
    disable = not enabled or not sys.stderr.isatty()

    def bar(**options: Any) -> Any:
        return tqdm(file=sys.stderr, disable=disable, **options)

    return bar


@dataclass
class CliContext:
    settings: Settings
    build: Callable[[], Awaitable[Services]]
    models: ModelService | None = None  # train and predict: no database, no providers
    _services: Services | None = field(default=None, repr=False)

    async def services(self) -> Services:
        """The container, built on first use (commands that need no services never build it)."""
        if self._services is None:
            self._services = await self.build()
        return self._services

    async def data(self) -> DataService:
        services = await self.services()
        if services.data is None:
            raise RuntimeError("the data service is not part of this composition")
        return services.data

    def model_service(self) -> ModelService:
        if self.models is None:
            raise RuntimeError("the model service is not part of this composition")
        return self.models

    async def close(self) -> None:
        if self._services is not None:
            await self._services.close()
            self._services = None
