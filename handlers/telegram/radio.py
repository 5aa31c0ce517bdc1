"""Radio: ▶ Start radio from a card, /radio from the latest like, and 👍 👎 ⏭ ⏹ edited in place."""

from __future__ import annotations

import contextlib
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
from services.dto import Listener, RadioStep, UserInfo
from services.errors import RadioConflict, RadioStopped
from services.radio import with_deezer

if TYPE_CHECKING:
    from services.protocols import Radios, Tracks

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


async def post_radio(
    message: Message, step: RadioStep, user: UserInfo, radio: Radios, texts: Texts, tracks: Tracks
) -> None:
    """Post a radio's first card; the radio remembers that message (it outlives a restart)."""
    text, markup, preview = radio_view(texts, user, await with_deezer(step, tracks))
    sent = await message.answer(text, reply_markup=markup, link_preview_options=preview)
    await radio.attach_message(step.radio_id, sent.chat.id, sent.message_id, listener=Listener.telegram(user.id))


async def start_radio(
    message: Message, seed_track_id: int, user: UserInfo, radio: Radios, texts: Texts, tracks: Tracks
) -> None:
    listener = Listener.telegram(user.id)
    step = await radio.start(seed_track_id, listener=listener, diversity=user.diversity, chat_id=message.chat.id)
    await post_radio(message, step, user, radio, texts, tracks)


async def on_start_radio(
    callback: CallbackQuery, callback_data: TrackCallback, user: UserInfo, radio: Radios, texts: Texts, tracks: Tracks
) -> None:
    await start_radio(callback_message(callback), callback_data.track_id, user, radio, texts, tracks)


async def on_start_radio_from_like(
    callback: CallbackQuery,
    callback_data: LikesItemCallback,
    user: UserInfo,
    radio: Radios,
    texts: Texts,
    tracks: Tracks,
) -> None:
    await start_radio(callback_message(callback), callback_data.track_id, user, radio, texts, tracks)


async def cmd_radio(message: Message, user: UserInfo, radio: Radios, texts: Texts, tracks: Tracks) -> None:
    step = await radio.start_from_latest_like(
        listener=Listener.telegram(user.id), diversity=user.diversity, chat_id=message.chat.id
    )
    if step is None:
        await message.answer(texts.render(user.language, "radio_none"))
        return
    await post_radio(message, step, user, radio, texts, tracks)


async def on_radio_press(
    callback: CallbackQuery,
    callback_data: RadioCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    radio: Radios,
    texts: Texts,
    tracks: Tracks,
) -> None:
    """Every press edits the radio's message: the next track, or the summary after ⏹.

    A press the radio has moved past (two taps arriving together, an older message) is not counted:
    a toast says so and the message shows where the radio stands."""
    message = callback_message(callback)
    listener = Listener.telegram(user.id)
    labels = texts.labels(user.language)
    if callback_data.action is RadioAction.STOP:
        step = await radio.stop(callback_data.radio_id, listener=listener)
    else:
        try:
            step = await radio.feedback(
                callback_data.radio_id, callback_data.track_id, FEEDBACK[callback_data.action], listener=listener
            )
        except RadioConflict as exc:
            over = isinstance(exc, RadioStopped)
            callback_answer.text = labels("alert_radio_over" if over else "alert_radio_moved_on")
            if (over and message.reply_markup is None) or (not over and _shows(message, exc.step)):
                return  # this message already shows the end, or the next track the other tap brought
            step = exc.step
        else:
            if callback_data.action is RadioAction.LIKE:
                callback_answer.text = labels("alert_radio_liked")
            elif callback_data.action is RadioAction.SKIP:
                callback_answer.text = labels("alert_radio_skipped")
    text, markup, preview = radio_view(texts, user, await with_deezer(step, tracks))
    await edit(message, text, markup, link_preview_options=preview)


def _shows(message: Message, step: RadioStep) -> bool:
    """Whether the message's buttons already answer for the radio's current track."""
    markup = message.reply_markup
    for row in markup.inline_keyboard if markup is not None else ():
        for button in row:
            data = button.callback_data or ""
            if data.startswith(RadioCallback.__prefix__ + ":"):
                with contextlib.suppress(ValueError, TypeError):
                    pressed = RadioCallback.unpack(data)
                    return step.track is not None and pressed.track_id == step.track.id
    return False


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.callback_query.register(on_start_radio, TrackCallback.filter(F.action == TrackAction.RADIO))
    router.callback_query.register(on_start_radio_from_like, LikesItemCallback.filter(F.action == LikesAction.RADIO))
    router.message.register(cmd_radio, Command("radio"))
    router.callback_query.register(on_radio_press, RadioCallback.filter())
    return router
