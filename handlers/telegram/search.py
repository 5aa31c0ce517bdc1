"""Any text or link → the track card, a list of candidates to choose from, or a helpful miss.

The latest few result lists (and the other versions of opened songs) are kept in FSM storage
(Redis with several instances), so an older list still pages; past `MAX_SAVED` it says so.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import SearchPageCallback, VersionsCallback
from bot.telegram.filters import SearchText
from bot.telegram.keyboards import candidates_keyboard
from bot.telegram.texts import Labels, Texts
from handlers.telegram.common import callback_message, edit, example_for, send_card
from services.dto import ResolutionKind, TrackInfo, UserInfo
from services.errors import InvalidInput
from services.tracks import NOTICE_FROM_VIDEO, NOTICE_SPOTIFY_DOWN

if TYPE_CHECKING:
    from services.tracks import TrackService

PAGE_SIZE = 8
MAX_CANDIDATES = 20  # TrackService.resolve returns at most 20
MAX_QUERY = 512
MAX_SAVED = 5  # result lists kept per chat (each ≤ 20 short tracks)
STATE_KEY = "searches"
_FROM_VIDEO = re.compile(re.escape(NOTICE_FROM_VIDEO).replace(re.escape("{}"), "(?P<title>.*?)"))


def localize_notice(notice: str | None, labels: Labels) -> str | None:
    """The services' notices (English) in the user's language; one it does not know stays as written."""
    if not notice:
        return None
    parts: list[str] = []
    rest = notice.strip()
    match = _FROM_VIDEO.match(rest)
    if match is not None:
        parts.append(labels("notice_from_video", title=match.group("title")))
        rest = rest[match.end() :].strip()
    if rest == NOTICE_SPOTIFY_DOWN:
        parts.append(labels("notice_spotify_down"))
        rest = ""
    if rest:
        parts.append(rest)
    return " ".join(parts)


def _page_count(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


def _candidate_page(candidates: list[TrackInfo], page: int) -> list[TrackInfo]:
    return candidates[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]


async def _save(state: FSMContext, entry: dict[str, Any]) -> None:
    """Keep `entry` with the latest lists (the oldest beyond MAX_SAVED dropped). Updates of one chat
    run one at a time (the dispatcher's event isolation), so read-modify-write is safe here."""
    saved = [e for e in (await state.get_data()).get(STATE_KEY, []) if e.get("id") != entry["id"]]
    await state.update_data({STATE_KEY: [*saved, entry][-MAX_SAVED:]})


async def _saved(state: FSMContext, search_id: int) -> dict[str, Any] | None:
    return next((e for e in (await state.get_data()).get(STATE_KEY, []) if e.get("id") == search_id), None)


def _results_view(texts: Texts, user: UserInfo, entry: dict[str, Any], page: int) -> tuple[str, Any]:
    candidates = [_unpack(t) for t in entry["tracks"]]
    pages = _page_count(len(candidates))
    if not 0 <= page < pages:
        raise InvalidInput("no such page")
    of = entry.get("of")
    text = texts.render(
        user.language,
        "results",
        query=entry.get("query", ""),
        exact=entry.get("exact", True),
        notice=localize_notice(entry.get("notice"), texts.labels(user.language)),
        versions_of=_unpack(of) if of else None,
    )
    markup = candidates_keyboard(
        _candidate_page(candidates, page),
        search_id=entry["id"],
        page=page,
        pages=pages,
        labels=texts.labels(user.language),
        versions=bool(of),
    )
    return text, markup


async def on_text(message: Message, user: UserInfo, tracks: TrackService, texts: Texts, state: FSMContext) -> None:
    query = (message.text or "").strip()
    if not query or len(query) > MAX_QUERY:
        await message.answer(
            texts.render(user.language, "not_found", kind="invalid", query=query, example=example_for(user))
        )
        return
    resolution = await tracks.resolve(query, user_id=user.id, limit=MAX_CANDIDATES)
    if resolution.kind is ResolutionKind.TRACK and resolution.tracks:
        chosen = resolution.tracks[0]
        card = await tracks.card(chosen.id, user_id=user.id)
        versions = None
        if resolution.alternatives:
            alternatives = list(resolution.alternatives[:MAX_CANDIDATES])
            await _save(
                state,
                {
                    "id": message.message_id,
                    "query": query,
                    "of": _pack(chosen),
                    "tracks": [_pack(t) for t in alternatives],
                },
            )
            versions = (message.message_id, len(alternatives))
        await send_card(message, texts, user, card, versions=versions)
        return
    if resolution.kind is ResolutionKind.CANDIDATES and resolution.tracks:
        entry = {
            "id": message.message_id,
            "query": query,
            "tracks": [_pack(t) for t in resolution.tracks[:MAX_CANDIDATES]],
            "notice": resolution.notice,
            "exact": resolution.exact,
        }
        await _save(state, entry)
        text, markup = _results_view(texts, user, entry, 0)
        await message.answer(text, reply_markup=markup)
        return
    await message.answer(
        texts.render(user.language, "not_found", kind=resolution.kind.value, query=query, example=example_for(user))
    )


async def on_search_page(
    callback: CallbackQuery,
    callback_data: SearchPageCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    texts: Texts,
    state: FSMContext,
) -> None:
    message = callback_message(callback)
    entry = await _saved(state, callback_data.search_id)
    if entry is None:
        callback_answer.text = texts.labels(user.language)("alert_search_gone")
        return
    text, markup = _results_view(texts, user, entry, callback_data.page)
    await edit(message, text, markup)


async def on_versions(
    callback: CallbackQuery,
    callback_data: VersionsCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    texts: Texts,
    state: FSMContext,
) -> None:
    """🔀 Other versions on a card: the releases, live takes and covers the search set aside."""
    message = callback_message(callback)
    entry = await _saved(state, callback_data.search_id)
    if entry is None or not entry.get("of"):
        callback_answer.text = texts.labels(user.language)("alert_search_gone")
        return
    text, markup = _results_view(texts, user, entry, 0)
    await message.answer(text, reply_markup=markup)


def _pack(track: TrackInfo) -> dict[str, Any]:
    packed: dict[str, Any] = {"id": track.id, "s": track.spotify_id, "n": track.name, "a": list(track.artists)}
    if track.album:
        packed["al"] = track.album
    if track.year:
        packed["y"] = track.year
    return packed


def _unpack(data: dict[str, Any]) -> TrackInfo:
    spotify_id = data.get("s")
    year = data.get("y")
    return TrackInfo(
        id=int(data["id"]),
        spotify_id=str(spotify_id) if spotify_id else None,
        name=str(data["n"]),
        artists=tuple(data["a"]),
        album=str(data["al"]) if data.get("al") else None,
        year=int(year) if year else None,
    )


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.message.register(on_text, SearchText())
    router.callback_query.register(on_search_page, SearchPageCallback.filter())
    router.callback_query.register(on_versions, VersionsCallback.filter())
    return router
