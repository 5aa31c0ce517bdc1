"""The bot's side of services.jobs.Notifier: renders a daily pick and sends it."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramNetworkError, TelegramRetryAfter

from bot.telegram.keyboards import track_keyboard
from bot.telegram.texts import Texts, cover_preview
from services.dto import Recommendation
from services.jobs import DeliveryStatus

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 30


class TelegramNotifier:
    def __init__(self, bot: Bot, texts: Texts) -> None:
        self._bot = bot
        self._texts = texts

    async def send_pick(self, telegram_id: int, language: str, pick: Recommendation) -> DeliveryStatus:
        text = self._texts.render(language, "daily_pick", track=pick.track, reason=pick.reason)
        markup = track_keyboard(pick.track.id, liked=False, labels=self._texts.labels(language))
        for attempt in range(2):
            try:
                await self._bot.send_message(
                    telegram_id, text, reply_markup=markup, link_preview_options=cover_preview(pick.track)
                )
                return DeliveryStatus.SENT
            except TelegramForbiddenError:
                return DeliveryStatus.BLOCKED
            except TelegramRetryAfter as exc:
                if attempt or exc.retry_after > MAX_RETRY_AFTER:
                    return DeliveryStatus.FAILED
                await asyncio.sleep(exc.retry_after)
            except TelegramBadRequest as exc:
                if "chat not found" in exc.message.lower():
                    return DeliveryStatus.BLOCKED
                log.warning("daily pick to %s refused: %s", telegram_id, exc.message)
                return DeliveryStatus.FAILED
            except TelegramNetworkError as exc:
                log.warning("daily pick to %s failed: %s", telegram_id, exc)
                return DeliveryStatus.FAILED
        return DeliveryStatus.FAILED
