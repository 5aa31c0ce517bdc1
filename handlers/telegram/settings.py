"""/settings (language, the familiar ↔ new dial, daily pick time and time zone), /subscribe [time],
/unsubscribe, /timezone [zone]. Times and zones are read by services.schedule, the dial by UserService."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import SettingsAction, SettingsCallback, SettingsScreen
from bot.telegram.keyboards import settings_keyboard
from bot.telegram.middlewares import UserCache
from bot.telegram.texts import Texts
from handlers.telegram.common import callback_message, edit
from services.dto import UserInfo
from services.errors import InvalidInput
from services.schedule import parse_pick_time
from services.users import SUPPORTED_LANGUAGES, UserService, dial_step

SCREEN_NAMES = {
    SettingsScreen.MAIN: "main",
    SettingsScreen.DIAL: "dial",
    SettingsScreen.HOURS: "hours",
    SettingsScreen.ZONES: "zones",
}


def settings_text(texts: Texts, user: UserInfo, screen: SettingsScreen = SettingsScreen.MAIN) -> str:
    return texts.render(
        user.language, "settings", user=user, dial=dial_step(user.diversity), screen=SCREEN_NAMES[screen]
    )


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
    screen = SettingsScreen.MAIN
    match callback_data.action:
        case SettingsAction.SCREEN:
            try:
                screen = SettingsScreen(value)
            except ValueError:
                raise InvalidInput("unknown settings screen") from None
        case SettingsAction.LANGUAGE:
            if not 0 <= value < len(SUPPORTED_LANGUAGES):
                raise InvalidInput("unknown language")
            user = await users.set_language(user.id, SUPPORTED_LANGUAGES[value])
        case SettingsAction.DIAL:
            user = await users.set_dial(user.id, value)
        case SettingsAction.SUBSCRIBE:
            user = await users.subscribe(user.id, value, 0)
        case SettingsAction.UNSUBSCRIBE:
            user = await users.unsubscribe(user.id)
        case SettingsAction.ZONE:
            user = await users.set_zone_choice(user.id, value)
    if callback_data.action is not SettingsAction.SCREEN:
        user_cache.remember(user)
        callback_answer.text = texts.labels(user.language)("alert_saved")
    await edit(
        message, settings_text(texts, user, screen), settings_keyboard(user, texts.labels(user.language), screen)
    )


async def cmd_subscribe(
    message: Message,
    command: CommandObject,
    user: UserInfo,
    users: UserService,
    user_cache: UserCache,
    texts: Texts,
) -> None:
    """`/subscribe`, `/subscribe 9`, `/subscribe 9am`, `/subscribe 21:30` (the user's local time)."""
    if command.args:
        try:
            time = parse_pick_time(command.args)
        except InvalidInput:
            await message.answer(texts.render(user.language, "bad_hour", user=user, value=command.args.strip()))
            return
        user = await users.subscribe(user.id, time.hour, time.minute)
    else:
        user = await users.subscribe(user.id)
    user_cache.remember(user)
    await message.answer(texts.render(user.language, "subscribed", user=user))


async def cmd_unsubscribe(
    message: Message, user: UserInfo, users: UserService, user_cache: UserCache, texts: Texts
) -> None:
    user = await users.unsubscribe(user.id)
    user_cache.remember(user)
    await message.answer(texts.render(user.language, "unsubscribed"))


async def cmd_timezone(
    message: Message,
    command: CommandObject,
    user: UserInfo,
    users: UserService,
    user_cache: UserCache,
    texts: Texts,
) -> None:
    """`/timezone` shows the zone; `/timezone Europe/Berlin` (any IANA name) sets it."""
    value = command.args.strip() if command.args else None
    ok = False
    if value:
        try:
            user = await users.set_timezone(user.id, value)
            ok = True
            user_cache.remember(user)
        except InvalidInput:
            ok = False
    await message.answer(texts.render(user.language, "timezone", user=user, value=value, ok=ok))


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.message.register(cmd_settings, Command("settings"))
    router.callback_query.register(on_settings, SettingsCallback.filter())
    router.message.register(cmd_subscribe, Command("subscribe"))
    router.message.register(cmd_unsubscribe, Command("unsubscribe"))
    router.message.register(cmd_timezone, Command("timezone"))
    return router
