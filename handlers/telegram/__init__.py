"""Telegram delivery: one router per feature, in the order the Dispatcher tries them (catch-alls last)."""

from __future__ import annotations

from aiogram import Router

from handlers.telegram import (
    audio,
    errors,
    inline,
    library,
    playlists,
    preview,
    radio,
    search,
    settings,
    start,
    tracks,
)

MODULES = (start, settings, library, playlists, radio, tracks, preview, audio, inline, search, errors)


def get_routers() -> list[Router]:
    """Fresh routers with every handler, filter and middleware of each feature module.

    Each call builds new Router objects: a Router can belong to one Dispatcher only, and tests, the
    benchmark and a restart within one process each build their own Dispatcher.
    """
    return [module.create_router() for module in MODULES]
