"""/settings (language, the familiar ↔ new dial, daily picks), /subscribe [hour], /unsubscribe."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import SettingsAction, SettingsCallback
from bot.telegram.keyboards import DIAL_STEPS, dial_step, settings_keyboard
from bot.telegram.middlewares import UserCache
from bot.telegram.texts import Texts
from handlers.telegram.common import callback_message, edit
from services.dto import UserInfo
from services.errors import InvalidInput
from services.users import SUPPORTED_LANGUAGES, UserService


def settings_text(texts: Texts, user: UserInfo) -> str:
    return texts.render(user.language, "settings", user=user, dial=dial_step(user.diversity))


async def cmd_settings(message: Message, user: UserInfo, texts: Texts) -> None:
    await message.answer(settings_text(texts, user), reply_markup=settings_keyboard(user, texts.labels(user.language)))


async def on_settings(
    callback: CallbackQuery,
    callback_data: SettingsCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    users: UserService,
    user_cache: UserCache,
    texts: Texts,
) -> None:
    message = callback_message(callback)
    value = callback_data.value
    match callback_data.action:
        case SettingsAction.LANGUAGE:
            if not 0 <= value < len(SUPPORTED_LANGUAGES):
                raise InvalidInput("unknown language")
            user = await users.set_language(user.id, SUPPORTED_LANGUAGES[value])
        case SettingsAction.DIAL:
            if not 0 <= value <= DIAL_STEPS:
                raise InvalidInput("unknown dial step")
            user = await users.set_diversity(user.id, value / DIAL_STEPS)
        case SettingsAction.SUBSCRIBE:
            user = await users.subscribe(user.id, value)
        case SettingsAction.UNSUBSCRIBE:
            user = await users.unsubscribe(user.id)
    user_cache.remember(user)
    callback_answer.text = texts.labels(user.language)("alert_saved")
    await edit(message, settings_text(texts, user), settings_keyboard(user, texts.labels(user.language)))


async def cmd_subscribe(
    message: Message,
    command: CommandObject,
    user: UserInfo,
    users: UserService,
    user_cache: UserCache,
    texts: Texts,
) -> None:
    hour: int | None = None
    if command.args:
        arg = command.args.strip().removesuffix(":00")
        if not arg.isdigit() or not 0 <= int(arg) <= 23:
            await message.answer(texts.render(user.language, "bad_hour"))
            return
        hour = int(arg)
    user = await users.subscribe(user.id, hour if hour is not None else user.pick_hour)
    user_cache.remember(user)
    await message.answer(texts.render(user.language, "subscribed", user=user))


async def cmd_unsubscribe(
    message: Message, user: UserInfo, users: UserService, user_cache: UserCache, texts: Texts
) -> None:
    user = await users.unsubscribe(user.id)
    user_cache.remember(user)
    await message.answer(texts.render(user.language, "unsubscribed"))


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.message.register(cmd_settings, Command("settings"))
    router.callback_query.register(on_settings, SettingsCallback.filter())
    router.message.register(cmd_subscribe, Command("subscribe"))
    router.message.register(cmd_unsubscribe, Command("unsubscribe"))
    return router
