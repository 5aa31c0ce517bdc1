"""Small helpers the bot's handlers share: rendering a card, editing in place, deep links."""

from __future__ import annotations

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.telegram.keyboards import track_keyboard
from bot.telegram.texts import Texts
from services.dto import TrackCard, UserInfo
from services.errors import InvalidInput

EXAMPLE_QUERY = "Daft Punk — One More Time"
DEEP_LINK_PREFIX = "t_"


def card_text(texts: Texts, user: UserInfo, card: TrackCard, *, deep_link: str | None = None) -> str:
    return texts.render(
        user.language,
        "card",
        track=card.track,
        genre=card.genre,
        note=card.note,
        youtube_url=card.youtube.url,
        deep_link=deep_link,
    )


async def send_card(message: Message, texts: Texts, user: UserInfo, card: TrackCard) -> Message:
    return await message.answer(
        card_text(texts, user, card),
        reply_markup=track_keyboard(card.track.id, liked=card.liked, labels=texts.labels(user.language)),
    )


def callback_message(callback: CallbackQuery) -> Message:
    """The message a button sits on; a message too old for Telegram to hand over is stale."""
    if not isinstance(callback.message, Message):
        raise InvalidInput("the message is no longer accessible")
    return callback.message


async def edit(message: Message, text: str, reply_markup: InlineKeyboardMarkup | None = None) -> None:
    """Edit in place; pressing the same button twice ("message is not modified") is not an error."""
    try:
        await message.edit_text(text, reply_markup=reply_markup)
    except TelegramBadRequest as exc:
        if "message is not modified" not in exc.message:
            raise


async def edit_markup(message: Message, reply_markup: InlineKeyboardMarkup | None) -> None:
    try:
        await message.edit_reply_markup(reply_markup=reply_markup)
    except TelegramBadRequest as exc:
        if "message is not modified" not in exc.message:
            raise


async def deep_link(bot: Bot, track_id: int) -> str:
    me = await bot.me()  # cached by aiogram after the first call
    return f"https://t.me/{me.username}?start={DEEP_LINK_PREFIX}{track_id}"
