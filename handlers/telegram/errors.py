"""Last in line: buttons nobody recognises (forged or from an old version) and the error handler."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, Router
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import CallbackQuery, ErrorEvent, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import NoopCallback
from bot.telegram.filters import UnknownCommand
from bot.telegram.texts import Texts, language_of
from handlers.telegram.common import example_for
from services.dto import UserInfo
from services.errors import EncoreError

log = logging.getLogger(__name__)


async def on_noop(callback: CallbackQuery) -> None:
    """The page counter: answered (by the middleware) and nothing else."""


async def on_unknown_callback(
    callback: CallbackQuery, callback_answer: CallbackAnswer, user: UserInfo, texts: Texts
) -> None:
    log.info("unknown callback data from user %s: %r", user.id, (callback.data or "")[:64])
    callback_answer.text = texts.labels(user.language)("alert_stale")  # a toast: an old button, nothing to fix


async def on_unknown_command(message: Message, bot: Bot, user: UserInfo, texts: Texts) -> None:
    """Say the command is unknown, then what the bot can do."""
    command = (message.text or "").split(maxsplit=1)[0].split("@", 1)[0]
    me = await bot.me()
    await message.answer(texts.render(user.language, "unknown_command", command=command, bot_username=me.username))


async def on_other_message(message: Message, user: UserInfo, texts: Texts) -> None:
    """Stickers, photos …: point at what works."""
    await message.answer(texts.render(user.language, "not_found", kind="invalid", query="", example=example_for(user)))


def _user_language(data: dict[str, Any]) -> str:
    user = data.get("user")
    return language_of(getattr(user, "language", None))


async def on_error(event: ErrorEvent, texts: Texts, **data: Any) -> bool:
    """Log the failure with its traceback; tell the user only that something went wrong."""
    update = event.update
    if isinstance(event.exception, EncoreError):
        log.warning("update %s ended with %s: %s", update.update_id, event.exception.code, event.exception.message)
    else:
        log.error("update %s failed", update.update_id, exc_info=event.exception)
    message = update.message
    if message is not None:
        try:
            await message.answer(texts.render(_user_language(data), "error"))
        except Exception:
            log.exception("could not tell user about the failure of update %s", update.update_id)
    # Button presses already got an alert from CallbackErrorMiddleware; inline queries just end empty.
    return True


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.callback_query.register(on_noop, NoopCallback.filter())
    router.callback_query.register(on_unknown_callback)
    router.message.register(on_unknown_command, UnknownCommand())
    router.message.register(on_other_message)
    router.error.register(on_error, ExceptionTypeFilter(Exception))
    return router
