"""Inline mode: `@bot query` in any chat → up to 10 personal results; an empty query → recent likes.

A query goes through the same resolution as a message to the bot (`Tracks.resolve`: the relevance
threshold, Deezer for songs outside the catalogue, Spotify / Deezer / YouTube links), within
`RESOLVE_BUDGET_SECONDS`: one clear match comes first with its other versions after it; weak matches
only come with a "no exact match" note on the button above the results; nonsense gets no results and
a button that says nothing was found (it opens the bot, where /start shows a search that works).
A resolution slower than the budget goes on (a song found on Deezer joins the catalogue), so the next
keystroke finds it.

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
from services.dto import InteractionKind, Resolution, ResolutionKind, TrackInfo, UserInfo
from services.errors import TrackNotFound
from services.genre_labels import genre_verdict

if TYPE_CHECKING:
    from services.feedback import FeedbackService
    from services.protocols import Genres, Tracks

log = logging.getLogger(__name__)
MAX_RESULTS = 10
BUDGET_SECONDS = 2.0  # everything; Telegram shows its loading bar meanwhile
RESOLVE_BUDGET_SECONDS = 1.2  # finding the songs (a Deezer search for songs outside the catalogue)
PREVIEW_BUDGET_SECONDS = 0.5  # for the preview URLs (and the Deezer lookup of catalogue songs)
LOOKUP_RESULTS = 3  # the first results looked up on Deezer when they have no Deezer id yet
# Results with preview URLs (signed, valid for minutes) must not outlive them in Telegram's cache.
CACHE_SECONDS = 5
PREVIEW_SECONDS = 30
CAPTION_LIMIT = 1024


async def _preview(tracks: Tracks, track: TrackInfo, lookup: bool) -> tuple[TrackInfo, str | None]:
    if lookup:  # a catalogue song Deezer may know (preview, cover): found once, stored on its row
        track = await tracks.with_deezer(track, budget=PREVIEW_BUDGET_SECONDS)
    return track, (await tracks.preview_url(track) if has_preview(track) else None)


async def _previews(tracks: Tracks, found: list[TrackInfo]) -> tuple[list[TrackInfo], list[str | None]]:
    """The tracks (the first few looked up on Deezer when they have no Deezer id) and a fresh preview
    URL per track where Deezer has one, within `PREVIEW_BUDGET_SECONDS`; a track whose URL is not back
    in time is shown as an article (text card) instead."""
    tasks = {
        i: asyncio.create_task(_preview(tracks, track, i < LOOKUP_RESULTS and track.deezer_id is None))
        for i, track in enumerate(found)
        if has_preview(track) or (i < LOOKUP_RESULTS and track.deezer_id is None)
    }
    shown = list(found)
    urls: list[str | None] = [None] * len(found)
    if not tasks:
        return shown, urls
    done, pending = await asyncio.wait(tasks.values(), timeout=PREVIEW_BUDGET_SECONDS)
    for task in pending:
        task.cancel()
    for i, task in tasks.items():
        if task not in done or task.cancelled():
            continue
        error = task.exception()
        if error is None:
            shown[i], urls[i] = task.result()
        else:
            log.info("no preview for inline result %s: %r", found[i].id, error)
    return shown, urls


def _quiet(task: asyncio.Future[Resolution]) -> None:
    """A resolution that outlived the inline budget: its failure is logged, not left unretrieved."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.info("inline resolution failed after the budget: %r", error)


async def _find(query: str, tracks: Tracks) -> tuple[list[TrackInfo], str | None]:
    """The songs for a query, as a message to the bot would find them, and the label of the button
    above them ("nothing found", "no exact match") or None."""
    task = asyncio.ensure_future(tracks.resolve(query, limit=MAX_RESULTS))
    task.add_done_callback(_quiet)
    try:
        resolution = await asyncio.wait_for(asyncio.shield(task), RESOLVE_BUDGET_SECONDS)
    except TimeoutError:  # it goes on: a song found on Deezer is there for the next keystroke
        log.info("inline resolution of a query took longer than %.1fs", RESOLVE_BUDGET_SECONDS)
        return [], "inline_searching"
    if resolution.kind is ResolutionKind.TRACK:
        return [*resolution.tracks, *resolution.alternatives], None
    if resolution.kind is ResolutionKind.CANDIDATES:
        return list(resolution.tracks), None if resolution.exact else "inline_closest"
    return [], "inline_not_found"


async def _results(
    query: str,
    user: UserInfo,
    bot: Bot,
    tracks: Tracks,
    feedback: FeedbackService,
    genre: Genres | None,
    texts: Texts,
) -> tuple[list[InlineQueryResultUnion], str | None]:
    note = None
    if query:
        found, note = await _find(query, tracks)
    else:
        found = list((await feedback.likes(user.id, 0, size=MAX_RESULTS)).items)
    found = found[:MAX_RESULTS]
    # The same guess as the chat card's and the web page's (services.genre.genre_inputs); the previews
    # are fetched meanwhile.
    previews = asyncio.create_task(_previews(tracks, found))
    guesses = await genre.guess_tracks(found) if genre is not None and found else [None] * len(found)
    found, urls = await previews
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
    return results, note


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
    note: str | None = None
    try:
        results, note = await asyncio.wait_for(
            _results(query, user, bot, tracks, feedback, genre, texts), timeout=BUDGET_SECONDS
        )
    except TimeoutError:
        log.warning("inline query took longer than %.1fs; answering empty", BUDGET_SECONDS)
        results = []
    if not results and not query:
        note = "inline_likes_empty"
    button = None
    if note is not None:  # above the results; it opens the bot's chat, where /start shows an example
        button = InlineQueryResultsButton(text=texts.labels(user.language)(note), start_parameter="inline")
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
