"""Any text or link → the track card, a list of candidates to choose from, or a helpful miss."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.telegram.callbacks import SearchPageCallback
from bot.telegram.filters import SearchText
from bot.telegram.keyboards import candidates_keyboard
from bot.telegram.texts import Texts
from handlers.telegram.common import EXAMPLE_QUERY, callback_message, edit, send_card
from services.dto import ResolutionKind, TrackInfo, UserInfo
from services.errors import InvalidInput

if TYPE_CHECKING:
    from services.tracks import TrackService

PAGE_SIZE = 8
MAX_CANDIDATES = 20  # TrackService.resolve returns at most 20
MAX_QUERY = 512
STATE_KEY = "search"


def _page_count(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


def _candidate_page(candidates: list[TrackInfo], page: int) -> list[TrackInfo]:
    return candidates[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]


async def on_text(message: Message, user: UserInfo, tracks: TrackService, texts: Texts, state: FSMContext) -> None:
    query = (message.text or "").strip()
    if not query or len(query) > MAX_QUERY:
        await message.answer(
            texts.render(user.language, "not_found", kind="invalid", query=query, example=EXAMPLE_QUERY)
        )
        return
    resolution = await tracks.resolve(query, user_id=user.id, limit=MAX_CANDIDATES)
    if resolution.kind is ResolutionKind.TRACK and resolution.tracks:
        card = await tracks.card(resolution.tracks[0].id, user_id=user.id)
        await send_card(message, texts, user, card)
        return
    if resolution.kind is ResolutionKind.CANDIDATES and resolution.tracks:
        candidates = list(resolution.tracks[:MAX_CANDIDATES])
        # Paging re-reads the list from FSM storage (Redis with several instances); the id of
        # the user's message tells this list from an older one.
        await state.update_data(
            {
                STATE_KEY: {
                    "id": message.message_id,
                    "query": query,
                    "tracks": [_pack(t) for t in candidates],
                    "notice": resolution.notice,
                }
            }
        )
        pages = _page_count(len(candidates))
        await message.answer(
            texts.render(user.language, "results", query=query, page=0, pages=pages, notice=resolution.notice),
            reply_markup=candidates_keyboard(
                _candidate_page(candidates, 0),
                search_id=message.message_id,
                page=0,
                pages=pages,
                labels=texts.labels(user.language),
            ),
        )
        return
    await message.answer(
        texts.render(user.language, "not_found", kind=resolution.kind.value, query=query, example=EXAMPLE_QUERY)
    )


async def on_search_page(
    callback: CallbackQuery, callback_data: SearchPageCallback, user: UserInfo, texts: Texts, state: FSMContext
) -> None:
    message = callback_message(callback)
    saved = (await state.get_data()).get(STATE_KEY)
    if not saved or saved.get("id") != callback_data.search_id:
        raise InvalidInput("an older search")
    candidates = [_unpack(t) for t in saved["tracks"]]
    pages = _page_count(len(candidates))
    if not 0 <= callback_data.page < pages:
        raise InvalidInput("no such page")
    await edit(
        message,
        texts.render(
            user.language,
            "results",
            query=saved["query"],
            page=callback_data.page,
            pages=pages,
            notice=saved.get("notice"),
        ),
        candidates_keyboard(
            _candidate_page(candidates, callback_data.page),
            search_id=callback_data.search_id,
            page=callback_data.page,
            pages=pages,
            labels=texts.labels(user.language),
        ),
    )


def _pack(track: TrackInfo) -> dict[str, Any]:
    return {"id": track.id, "s": track.spotify_id, "n": track.name, "a": list(track.artists)}


def _unpack(data: dict[str, Any]) -> TrackInfo:
    spotify_id = data.get("s")
    return TrackInfo(
        id=int(data["id"]),
        spotify_id=str(spotify_id) if spotify_id else None,
        name=str(data["n"]),
        artists=tuple(data["a"]),
    )


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.message.register(on_text, SearchText())
    router.callback_query.register(on_search_page, SearchPageCallback.filter())
    return router
