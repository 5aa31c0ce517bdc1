"""The bot's routers, in the order the Dispatcher tries them (catch-alls last)."""

from __future__ import annotations

from aiogram import Router


def _fresh(router: Router) -> Router:
    """A new Router with the module router's handlers.

    A Router can belong to one Dispatcher only; tests, the benchmark and a restart within one
    process each build their own Dispatcher, so each gets its own copies.
    """
    clone = Router(name=router.name)
    for name, observer in router.observers.items():
        clone.observers[name].handlers.extend(observer.handlers)
    return clone


def get_routers() -> list[Router]:
    from handlers import errors, inline, library, radio, search, settings, start, tracks

    modules = (start, settings, library, radio, tracks, inline, search, errors)
    return [_fresh(module.router) for module in modules]
