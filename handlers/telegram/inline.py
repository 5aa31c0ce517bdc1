"""Inline mode: `@bot query` in any chat → up to 10 personal results; an empty query → recent likes.

A track with a 30-second preview (Deezer) is a playable audio result (`InlineQueryResultAudio`),
so a person can share a song that plays right in the chat; the others are text cards (articles).

When inline feedback is switched on for the bot (BotFather → /setinlinefeedback), Telegram reports
each result a user sends; it is recorded as a search of that track (context "inline"), so it counts
in the user's genre history and cold-start picks like a search in private chat.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiogram import Bot, Router
from aiogram.types import (
    ChosenInlineResult,
    InlineQuery,
    InlineQueryResultArticle,
    InlineQueryResultAudio,
    InlineQueryResultsButton,
    InlineQueryResultUnion,
    InputTextMessageContent,
)

from bot.telegram.keyboards import has_preview, links_keyboard
from bot.telegram.texts import Texts, clip, cover_preview, fit
from handlers.telegram.common import card_text, deep_link
from services.dto import InteractionKind, TrackInfo, UserInfo
from services.errors import TrackNotFound
from services.genre_labels import genre_verdict

if TYPE_CHECKING:
    from services.feedback import FeedbackService
    from services.protocols import Genres, Tracks

log = logging.getLogger(__name__)
MAX_RESULTS = 10
BUDGET_SECONDS = 0.8  # Telegram shows nothing when the answer takes longer than about a second
PREVIEW_BUDGET_SECONDS = 0.5  # for the preview URLs, within the budget above
# Results with preview URLs (signed, valid for minutes) must not outlive them in Telegram's cache.
CACHE_SECONDS = 5
PREVIEW_SECONDS = 30
CAPTION_LIMIT = 1024


async def _previews(tracks: Tracks, found: list[TrackInfo]) -> list[str | None]:
    """A fresh preview URL per track where Deezer has one, within `PREVIEW_BUDGET_SECONDS`; a track
    whose URL is not back in time is shown as an article (text card) instead."""
    tasks = {i: asyncio.create_task(tracks.preview_url(track)) for i, track in enumerate(found) if has_preview(track)}
    urls: list[str | None] = [None] * len(found)
    if not tasks:
        return urls
    done, pending = await asyncio.wait(tasks.values(), timeout=PREVIEW_BUDGET_SECONDS)
    for task in pending:
        task.cancel()
    for i, task in tasks.items():
        if task not in done or task.cancelled():
            continue
        error = task.exception()
        if error is None:
            urls[i] = task.result()
        else:
            log.info("no preview for inline result %s: %r", found[i].id, error)
    return urls


async def _results(
    query: str,
    user: UserInfo,
    bot: Bot,
    tracks: Tracks,
    feedback: FeedbackService,
    genre: Genres | None,
    texts: Texts,
) -> list[InlineQueryResultUnion]:
    if query:
        found = await tracks.search(query, limit=MAX_RESULTS)
    else:
        found = list((await feedback.likes(user.id, 0, size=MAX_RESULTS)).items)
    found = found[:MAX_RESULTS]
    # The same guess as the chat card's and the web page's (services.genre.genre_inputs); the previews
    # are fetched meanwhile.
    previews = asyncio.create_task(_previews(tracks, found))
    guesses = await genre.guess_tracks(found) if genre is not None and found else [None] * len(found)
    urls = await previews
    labels = texts.labels(user.language)
    results: list[InlineQueryResultUnion] = []
    for track, guess, url in zip(found, guesses, urls, strict=True):
        link = await deep_link(bot, track.id)
        verdict = genre_verdict(guess, track.genres)
        markup = links_keyboard(
            track, youtube_url=track.youtube_search_url, youtube_is_search=True, deep_link=link, labels=labels
        )
        if url:
            # Playable in any chat. Telegram fetches the URL when the result is sent; the answer's
            # cache_time is far below the URL's lifetime (minutes).
            caption = texts.render(user.language, "inline_caption", track=track, verdict=verdict, deep_link=link)
            results.append(
                InlineQueryResultAudio(
                    id=str(track.id),
                    audio_url=url,
                    title=clip(track.name, 100),
                    performer=clip(track.artist_line, 100),
                    audio_duration=PREVIEW_SECONDS,
                    caption=fit(caption, CAPTION_LIMIT),
                    reply_markup=markup,
                )
            )
            continue
        text = card_text(texts, user.language, track, guess, youtube_url=track.youtube_search_url, deep_link=link)
        description = texts.plain(user.language, "inline_description", track=track, verdict=verdict)
        cover = track.cover_url if track.cover_url and track.cover_url.startswith("https://") else None
        results.append(
            InlineQueryResultArticle(
                id=str(track.id),
                title=clip(track.name, 100),
                description=clip(description, 120) or None,
                thumbnail_url=cover,
                input_message_content=InputTextMessageContent(
                    message_text=text, link_preview_options=cover_preview(track)
                ),
                reply_markup=markup,
            )
        )
    return results


async def on_inline_query(
    inline_query: InlineQuery,
    bot: Bot,
    user: UserInfo,
    tracks: Tracks,
    feedback: FeedbackService,
    genre: Genres | None,
    texts: Texts,
) -> None:
    query = inline_query.query.strip()[:256]
    try:
        results = await asyncio.wait_for(
            _results(query, user, bot, tracks, feedback, genre, texts), timeout=BUDGET_SECONDS
        )
    except TimeoutError:
        log.warning("inline query took longer than %.1fs; answering empty", BUDGET_SECONDS)
        results = []
    button = None
    if not results and not query:
        button = InlineQueryResultsButton(
            text=texts.labels(user.language)("inline_likes_empty"), start_parameter="inline"
        )
    await inline_query.answer(results, cache_time=CACHE_SECONDS, is_personal=True, button=button)


async def on_chosen_inline_result(chosen: ChosenInlineResult, user: UserInfo, feedback: FeedbackService) -> None:
    if not chosen.result_id.isdecimal() or len(chosen.result_id) > 18:
        log.info("chosen inline result with a foreign id ignored")
        return
    try:
        await feedback.record(user.id, int(chosen.result_id), InteractionKind.SEARCHED, "inline")
    except TrackNotFound:
        log.info("chosen inline result for a track that no longer exists: %s", chosen.result_id)


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.inline_query.register(on_inline_query)
    router.chosen_inline_result.register(on_chosen_inline_result)
    return router
