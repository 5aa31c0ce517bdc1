"""Buttons on track cards and track lists: open a card, 👍 / unlike, 🔎 Similar."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import TrackAction, TrackCallback
from bot.telegram.keyboards import similar_keyboard, with_like_state
from bot.telegram.texts import Texts
from handlers.telegram.common import callback_message, edit_markup, send_card
from services.dto import InteractionKind, UserInfo

if TYPE_CHECKING:
    from services.feedback import FeedbackService
    from services.recommender import RecommendationService
    from services.tracks import TrackService

SIMILAR_COUNT = 5


async def on_open_card(
    callback: CallbackQuery,
    callback_data: TrackCallback,
    user: UserInfo,
    tracks: TrackService,
    feedback: FeedbackService,
    texts: Texts,
) -> None:
    message = callback_message(callback)
    card = await tracks.card(callback_data.track_id, user_id=user.id)
    if callback_data.action is TrackAction.PICK:
        await feedback.record(user.id, card.track.id, InteractionKind.SEARCHED, context="pick")
    await send_card(message, texts, user, card)


async def on_like(
    callback: CallbackQuery,
    callback_data: TrackCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    tracks: TrackService,
    feedback: FeedbackService,
    texts: Texts,
) -> None:
    message = callback_message(callback)
    track = await tracks.get(callback_data.track_id)  # TrackNotFound for a forged id
    labels = texts.labels(user.language)
    if callback_data.action is TrackAction.LIKE:
        added = await feedback.like(user.id, track.id)
        callback_answer.text = labels("alert_liked" if added else "alert_already_liked")
        liked = True
    else:
        await feedback.unlike(user.id, track.id)
        callback_answer.text = labels("alert_unliked")
        liked = False
    # Only the 👍 / 💚 button changes; the others on this card (e.g. 🔀 Other versions) stay.
    await edit_markup(message, with_like_state(message.reply_markup, track.id, liked=liked, labels=labels))


async def on_similar(
    callback: CallbackQuery,
    callback_data: TrackCallback,
    user: UserInfo,
    tracks: TrackService,
    recommendations: RecommendationService,
    texts: Texts,
) -> None:
    message = callback_message(callback)
    seed = await tracks.get(callback_data.track_id)
    # With the user's id the service records the list as shown (a radio started next leaves it out).
    recs = await recommendations.similar(seed.id, SIMILAR_COUNT, user_id=user.id, diversity=user.diversity)
    await message.answer(
        texts.render(user.language, "similar", seed=seed, recommendations=recs),
        reply_markup=similar_keyboard(recs) if recs else None,
    )


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.callback_query.register(
        on_open_card, TrackCallback.filter(F.action.in_({TrackAction.CARD, TrackAction.PICK}))
    )
    router.callback_query.register(on_like, TrackCallback.filter(F.action.in_({TrackAction.LIKE, TrackAction.UNLIKE})))
    router.callback_query.register(on_similar, TrackCallback.filter(F.action == TrackAction.SIMILAR))
    return router
