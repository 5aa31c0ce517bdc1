"""/history (genres searched and liked) and /likes (liked tracks), both paged in place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import HistoryPageCallback, LikesAction, LikesItemCallback, LikesPageCallback
from bot.telegram.keyboards import history_keyboard, likes_keyboard
from bot.telegram.texts import Texts
from handlers.telegram.common import callback_message, edit
from services.dto import UserInfo

if TYPE_CHECKING:
    from services.feedback import FeedbackService

PAGE_SIZE = 5


async def history_view(
    feedback: FeedbackService, texts: Texts, user: UserInfo, page: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    result = await feedback.genre_history(user.id, max(page, 0), size=PAGE_SIZE)
    if result.pages and result.page >= result.pages:  # the list shrank: show its last page
        result = await feedback.genre_history(user.id, result.pages - 1, size=PAGE_SIZE)
    return (
        texts.render(user.language, "history", page=result),
        history_keyboard(result, texts.labels(user.language)),
    )


async def likes_view(
    feedback: FeedbackService, texts: Texts, user: UserInfo, page: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    result = await feedback.likes(user.id, max(page, 0), size=PAGE_SIZE)
    if result.pages and result.page >= result.pages:
        result = await feedback.likes(user.id, result.pages - 1, size=PAGE_SIZE)
    first = result.page * PAGE_SIZE
    return (
        texts.render(user.language, "likes", page=result, first=first),
        likes_keyboard(result, first=first, labels=texts.labels(user.language)),
    )


async def cmd_history(message: Message, user: UserInfo, feedback: FeedbackService, texts: Texts) -> None:
    text, markup = await history_view(feedback, texts, user, 0)
    await message.answer(text, reply_markup=markup)


async def on_history_page(
    callback: CallbackQuery,
    callback_data: HistoryPageCallback,
    user: UserInfo,
    feedback: FeedbackService,
    texts: Texts,
) -> None:
    message = callback_message(callback)
    text, markup = await history_view(feedback, texts, user, callback_data.page)
    await edit(message, text, markup)


async def cmd_likes(message: Message, user: UserInfo, feedback: FeedbackService, texts: Texts) -> None:
    text, markup = await likes_view(feedback, texts, user, 0)
    await message.answer(text, reply_markup=markup)


async def on_likes_page(
    callback: CallbackQuery, callback_data: LikesPageCallback, user: UserInfo, feedback: FeedbackService, texts: Texts
) -> None:
    message = callback_message(callback)
    text, markup = await likes_view(feedback, texts, user, callback_data.page)
    await edit(message, text, markup)


async def on_likes_unlike(
    callback: CallbackQuery,
    callback_data: LikesItemCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    feedback: FeedbackService,
    texts: Texts,
) -> None:
    message = callback_message(callback)
    removed = await feedback.unlike(user.id, callback_data.track_id)
    callback_answer.text = texts.labels(user.language)("alert_unliked" if removed else "alert_stale")
    text, markup = await likes_view(feedback, texts, user, callback_data.page)
    await edit(message, text, markup)


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.message.register(cmd_history, Command("history"))
    router.callback_query.register(on_history_page, HistoryPageCallback.filter())
    router.message.register(cmd_likes, Command("likes"))
    router.callback_query.register(on_likes_page, LikesPageCallback.filter())
    router.callback_query.register(on_likes_unlike, LikesItemCallback.filter(F.action == LikesAction.UNLIKE))
    return router
