"""Small helpers the bot's handlers share: rendering a card, editing in place, deep links."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramNetworkError
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, LinkPreviewOptions, Message
from aiogram.utils.chat_action import ChatActionSender

from bot.telegram.keyboards import has_preview, track_keyboard
from bot.telegram.texts import Texts, cover_preview
from services.dto import GenreGuess, TrackCard, TrackInfo, UserInfo
from services.errors import InvalidInput
from services.examples import example_query
from services.genre_labels import genre_verdict

DEEP_LINK_PREFIX = "t_"
CHAT_ACTION_EVERY = 5.0  # Telegram shows a chat action for 5 s (or until the bot's next message)


def example_for(user: UserInfo) -> str:
    """A search that works in the user's language (varied per user, stable for one user)."""
    return example_query(user.language, user.id)


def card_text(
    texts: Texts,
    language: str,
    track: TrackInfo,
    genre: GenreGuess | None,
    *,
    youtube_url: str,
    youtube_is_search: bool = True,
    note: str | None = None,
    deep_link: str | None = None,
    from_tags: bool = False,
) -> str:
    """The one rendering of a track card (chat card and inline result): the genre through
    `genre_verdict`, so both say the same as the web page. `from_tags`: the song was found by the
    tags of a recording the person sent."""
    return texts.render(
        language,
        "card",
        track=track,
        verdict=genre_verdict(genre, track.genres),
        note=note,
        no_features=track.features is None,
        # Known only by the nine values of an audio analysis: no genre head reads those yet.
        analysis_only=track.features is not None and not track.features_complete,
        youtube_url=youtube_url,
        youtube_is_search=youtube_is_search,
        deep_link=deep_link,
        from_tags=from_tags,
    )


async def send_card(
    message: Message,
    texts: Texts,
    user: UserInfo,
    card: TrackCard,
    *,
    versions: tuple[int, int] | None = None,
    from_tags: bool = False,
) -> Message:
    text = card_text(
        texts,
        user.language,
        card.track,
        card.genre,
        youtube_url=card.youtube.url,
        youtube_is_search=card.youtube.is_search,
        note=card.note,
        from_tags=from_tags,
    )
    return await message.answer(
        text,
        reply_markup=track_keyboard(
            card.track.id,
            liked=card.liked,
            labels=texts.labels(user.language),
            versions=versions,
            preview=has_preview(card.track, card.preview_url),
        ),
        link_preview_options=cover_preview(card.track),
    )


def callback_message(callback: CallbackQuery) -> Message:
    """The message a button sits on; a message too old for Telegram to hand over is stale."""
    if not isinstance(callback.message, Message):
        raise InvalidInput("the message is no longer accessible")
    return callback.message


async def edit(
    message: Message,
    text: str,
    reply_markup: InlineKeyboardMarkup | None = None,
    *,
    link_preview_options: LinkPreviewOptions | None = None,
) -> None:
    """Edit in place; pressing the same button twice ("message is not modified") is not an error."""
    try:
        if link_preview_options is None:  # the bot's default: no preview
            await message.edit_text(text, reply_markup=reply_markup)
        else:
            await message.edit_text(text, reply_markup=reply_markup, link_preview_options=link_preview_options)
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


@contextlib.asynccontextmanager
async def chat_action(bot: Bot, chat_id: int, action: str) -> AsyncIterator[None]:
    """ "typing…" (or "sending audio…") at once, then every few seconds until the block ends. The
    first one is sent before the work starts, so even quick work shows it; a failure to show it
    never stops the work."""
    with contextlib.suppress(TelegramAPIError, TelegramNetworkError):
        await bot.send_chat_action(chat_id, action)
    async with ChatActionSender(
        bot=bot, chat_id=chat_id, action=action, interval=CHAT_ACTION_EVERY, initial_sleep=CHAT_ACTION_EVERY
    ):
        yield
