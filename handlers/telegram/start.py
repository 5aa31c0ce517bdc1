"""/start (with `t_<id>` deep links) and /help."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from bot.telegram.keyboards import example_keyboard
from bot.telegram.texts import Texts
from handlers.telegram.common import DEEP_LINK_PREFIX, example_for, send_card
from services.dto import UserInfo

if TYPE_CHECKING:
    from services.tracks import TrackService

TRACK_LINK = re.compile(rf"^{DEEP_LINK_PREFIX}(\d{{1,12}})$")


async def cmd_start_track(
    message: Message, command: CommandObject, user: UserInfo, tracks: TrackService, texts: Texts
) -> None:
    """`/start t_<id>`: someone followed a card's link back to the bot."""
    match = TRACK_LINK.match(command.args or "")
    assert match is not None
    card = await tracks.card(int(match.group(1)), user_id=user.id)
    await send_card(message, texts, user, card)


async def cmd_start(message: Message, user: UserInfo, texts: Texts) -> None:
    example = example_for(user)
    await message.answer(
        texts.render(user.language, "start", name=user.first_name, example=example),
        reply_markup=example_keyboard(example, texts.labels(user.language)),
    )


async def cmd_help(message: Message, bot: Bot, user: UserInfo, texts: Texts) -> None:
    me = await bot.me()
    await message.answer(texts.render(user.language, "help", bot_username=me.username))


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.message.register(cmd_start_track, CommandStart(deep_link=True, magic=F.args.regexp(TRACK_LINK)))
    router.message.register(cmd_start, CommandStart())
    router.message.register(cmd_help, Command("help"))
    return router
