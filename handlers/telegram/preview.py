"""▶ 30-s preview on track cards and radio cards: the song's Deezer preview, sent as audio.

The preview URL is signed and expires within minutes, so it is fetched when the button is pressed
(`Tracks.preview_url`) and handed to Telegram, which downloads it. No flooding: a chat holds one
preview message at a time. Pressing ▶ for the track whose preview was just sent answers with a
toast; pressing it for another track sends that preview and deletes the previous one. The latest
preview per chat is kept in FSM storage (Redis with several instances), and updates of one chat run
one at a time, so the read-modify-write below is safe.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import PreviewCallback
from bot.telegram.texts import Texts, clip
from handlers.telegram.common import callback_message, chat_action
from services.dto import UserInfo

if TYPE_CHECKING:
    from services.protocols import Tracks

log = logging.getLogger(__name__)

STATE_KEY = "preview"
REPEAT_SECONDS = 60.0  # the same track's preview pressed again within this: a toast, not a new message
PREVIEW_SECONDS = 30


def now() -> float:
    """Wall-clock seconds (kept in shared storage, so monotonic time of one process would not do)."""
    return time.time()


async def on_preview(
    callback: CallbackQuery,
    callback_data: PreviewCallback,
    callback_answer: CallbackAnswer,
    bot: Bot,
    user: UserInfo,
    tracks: Tracks,
    texts: Texts,
    state: FSMContext,
) -> None:
    message = callback_message(callback)
    labels = texts.labels(user.language)
    last = (await state.get_data()).get(STATE_KEY) or {}
    at = now()
    if last.get("track_id") == callback_data.track_id and 0 <= at - float(last.get("at", 0)) < REPEAT_SECONDS:
        callback_answer.text = labels("alert_preview_again")
        return
    track = await tracks.get(callback_data.track_id)  # TrackNotFound for a forged id
    url = await tracks.preview_url(track)
    if not url:
        callback_answer.text = labels("alert_preview_none")
        return
    try:
        async with chat_action(bot, message.chat.id, "upload_voice"):
            sent = await message.answer_audio(
                url,
                caption=labels("preview_caption"),
                performer=clip(track.artist_line, 64),
                title=clip(track.name, 64),
                duration=PREVIEW_SECONDS,
                parse_mode=None,
            )
    except TelegramBadRequest as exc:  # Telegram could not fetch it (expired meanwhile, CDN refused)
        log.info("preview of track %s not sent: %s", track.id, exc.message)
        callback_answer.text = labels("alert_preview_failed")
        return
    await state.update_data({STATE_KEY: {"message_id": sent.message_id, "track_id": track.id, "at": at}})
    previous = last.get("message_id")
    if previous and previous != sent.message_id:
        try:
            await bot.delete_message(message.chat.id, int(previous))
        except (TelegramBadRequest, TelegramForbiddenError) as exc:  # gone already, or too old to delete
            log.debug("previous preview %s not deleted: %s", previous, exc)


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.callback_query.register(on_preview, PreviewCallback.filter())
    return router
