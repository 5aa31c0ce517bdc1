"""Radio: ▶ Start radio from a card, /radio from the latest like, and 👍 👎 ⏭ ⏹ edited in place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, LinkPreviewOptions, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import (
    LikesAction,
    LikesItemCallback,
    RadioAction,
    RadioCallback,
    TrackAction,
    TrackCallback,
)
from bot.telegram.keyboards import radio_keyboard
from bot.telegram.texts import Texts, cover_preview
from handlers.telegram.common import callback_message, edit
from services.dto import RadioStep, UserInfo

if TYPE_CHECKING:
    from services.radio import RadioService

FEEDBACK: dict[RadioAction, Literal["like", "skip", "next"]] = {
    RadioAction.LIKE: "like",
    RadioAction.SKIP: "skip",
    RadioAction.NEXT: "next",
}


def radio_view(
    texts: Texts, user: UserInfo, step: RadioStep
) -> tuple[str, InlineKeyboardMarkup | None, LinkPreviewOptions]:
    if step.track is None or step.stopped:
        return texts.render(user.language, "radio_end", step=step), None, cover_preview(None)
    return (
        texts.render(user.language, "radio", step=step, track=step.track),
        radio_keyboard(step, texts.labels(user.language)),
        cover_preview(step.track),
    )


async def start_radio(message: Message, seed_track_id: int, user: UserInfo, radio: RadioService, texts: Texts) -> None:
    """Start a radio and post its first card; the radio remembers that message (it outlives a restart)."""
    step = await radio.start(seed_track_id, user_id=user.id, diversity=user.diversity, chat_id=message.chat.id)
    await _post(message, step, user, radio, texts)


async def _post(message: Message, step: RadioStep, user: UserInfo, radio: RadioService, texts: Texts) -> None:
    text, markup, preview = radio_view(texts, user, step)
    sent = await message.answer(text, reply_markup=markup, link_preview_options=preview)
    await radio.attach_message(step.radio_id, sent.chat.id, sent.message_id)


async def on_start_radio(
    callback: CallbackQuery, callback_data: TrackCallback, user: UserInfo, radio: RadioService, texts: Texts
) -> None:
    await start_radio(callback_message(callback), callback_data.track_id, user, radio, texts)


async def on_start_radio_from_like(
    callback: CallbackQuery, callback_data: LikesItemCallback, user: UserInfo, radio: RadioService, texts: Texts
) -> None:
    await start_radio(callback_message(callback), callback_data.track_id, user, radio, texts)


async def cmd_radio(message: Message, user: UserInfo, radio: RadioService, texts: Texts) -> None:
    step = await radio.start_from_latest_like(user.id, diversity=user.diversity, chat_id=message.chat.id)
    if step is None:
        await message.answer(texts.render(user.language, "radio_none"))
        return
    await _post(message, step, user, radio, texts)


async def on_radio_press(
    callback: CallbackQuery,
    callback_data: RadioCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    radio: RadioService,
    texts: Texts,
) -> None:
    """Every press edits the radio's message: the next track, or the summary after ⏹."""
    message = callback_message(callback)
    if callback_data.action is RadioAction.STOP:
        step = await radio.stop(callback_data.radio_id, user_id=user.id)
    else:
        step = await radio.feedback(
            callback_data.radio_id, callback_data.track_id, FEEDBACK[callback_data.action], user_id=user.id
        )
        labels = texts.labels(user.language)
        if step.stopped:  # a press on a radio that was stopped (or replaced by a newer one): nothing was saved
            if callback_data.action is RadioAction.LIKE:
                callback_answer.text = labels("alert_radio_over")
            if message.reply_markup is None:  # this message already shows the end
                return
        elif callback_data.action is RadioAction.LIKE:
            callback_answer.text = labels("alert_radio_liked")
        elif callback_data.action is RadioAction.SKIP:
            callback_answer.text = labels("alert_radio_skipped")
    text, markup, preview = radio_view(texts, user, step)
    await edit(message, text, markup, link_preview_options=preview)


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.callback_query.register(on_start_radio, TrackCallback.filter(F.action == TrackAction.RADIO))
    router.callback_query.register(on_start_radio_from_like, LikesItemCallback.filter(F.action == LikesAction.RADIO))
    router.message.register(cmd_radio, Command("radio"))
    router.callback_query.register(on_radio_press, RadioCallback.filter())
    return router
