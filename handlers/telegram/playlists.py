"""Playlists in the bot: /playlists (likes first, paged), one playlist's screen (⬆ / ✖ per song, radio,
export, share, YouTube, Save to Spotify, rename, delete), ➕ to playlist on track cards and radios,
/export, /newplaylist, /disconnect and /cancel.

A new playlist's name (and a new name) is the next message: the chat is put in a state for it,
which /cancel (or any command) leaves. Search results kept in the chat's data are left alone.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.telegram.callbacks import (
    AddToPlaylistCallback,
    NewPlaylistCallback,
    PlaylistAction,
    PlaylistCallback,
    PlaylistItemAction,
    PlaylistItemCallback,
    PlaylistsCallback,
    TrackAction,
    TrackCallback,
)
from bot.telegram.keyboards import (
    YOUTUBE_BUTTONS,
    playlist_delete_keyboard,
    playlist_keyboard,
    playlist_picker_keyboard,
    playlists_keyboard,
    share_keyboard,
    url_keyboard,
    youtube_keyboard,
)
from bot.telegram.texts import Labels, Texts
from handlers.telegram.common import callback_message, edit, edit_markup
from handlers.telegram.radio import post_radio
from services.dto import Listener, PlaylistInfo, TrackInfo, UserInfo
from services.errors import (
    InvalidInput,
    NoFeatures,
    PlaylistNameTaken,
    ProviderUnavailable,
    SpotifyNotConfigured,
    SpotifyNotConnected,
    SpotifyRateLimited,
    SpotifyRefused,
    TrackNotFound,
)
from services.playlist_export import FORMATS
from services.playlists import MAX_NAME

if TYPE_CHECKING:
    from services.protocols import Playlists, Radios, SpotifySave, Tracks

PAGE_SIZE = 5
STATE_TRACK = "playlist_track"  # the song a playlist being named will get
STATE_PLAYLIST = "playlist_renamed"  # the playlist being renamed


class PlaylistStates(StatesGroup):
    naming = State()
    renaming = State()


def owner(user: UserInfo) -> Listener:
    return Listener.telegram(user.id)


def display_name(playlist: PlaylistInfo, labels: Labels) -> str:
    return labels("playlist_likes_name") if playlist.is_likes else playlist.name


async def list_view(
    playlists: Playlists, texts: Texts, user: UserInfo, page: int, *, export: bool = False
) -> tuple[str, InlineKeyboardMarkup]:
    found = await playlists.playlists(owner(user))
    labels = texts.labels(user.language)
    return (
        texts.render(user.language, "playlists", playlists=found, export=export),
        playlists_keyboard(found, page=page, labels=labels, export=export),
    )


async def playlist_view(
    playlists: Playlists, spotify_save: SpotifySave | None, texts: Texts, user: UserInfo, playlist_id: str, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    view = await playlists.view(owner(user), playlist_id, max(page, 0), size=PAGE_SIZE)
    first = view.tracks.page * PAGE_SIZE
    spotify = spotify_save is not None and spotify_save.enabled
    return (
        texts.render(user.language, "playlist", view=view, first=first),
        playlist_keyboard(view, first=first, labels=texts.labels(user.language), spotify=spotify),
    )


# -- lists and one playlist -------------------------------------------------------------------


async def cmd_playlists(message: Message, user: UserInfo, playlists: Playlists, texts: Texts) -> None:
    text, markup = await list_view(playlists, texts, user, 0)
    await message.answer(text, reply_markup=markup)


async def cmd_export(message: Message, user: UserInfo, playlists: Playlists, texts: Texts) -> None:
    text, markup = await list_view(playlists, texts, user, 0, export=True)
    await message.answer(text, reply_markup=markup)


async def on_playlists_page(
    callback: CallbackQuery, callback_data: PlaylistsCallback, user: UserInfo, playlists: Playlists, texts: Texts
) -> None:
    text, markup = await list_view(playlists, texts, user, callback_data.page, export=callback_data.export)
    await edit(callback_message(callback), text, markup)


async def on_open(
    callback: CallbackQuery,
    callback_data: PlaylistCallback,
    user: UserInfo,
    playlists: Playlists,
    spotify_save: SpotifySave | None,
    texts: Texts,
) -> None:
    text, markup = await playlist_view(
        playlists, spotify_save, texts, user, callback_data.playlist_id, callback_data.page
    )
    await edit(callback_message(callback), text, markup)


async def on_item(
    callback: CallbackQuery,
    callback_data: PlaylistItemCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    playlists: Playlists,
    spotify_save: SpotifySave | None,
    texts: Texts,
) -> None:
    """⬆ / ⬇ move the song one place up / down (from where it is now), ✖ removes it; the screen is
    redrawn."""
    labels = texts.labels(user.language)
    pid, track_id = callback_data.playlist_id, callback_data.track_id
    if callback_data.action in (PlaylistItemAction.UP, PlaylistItemAction.DOWN):
        up = callback_data.action is PlaylistItemAction.UP
        try:
            await playlists.shift(owner(user), pid, track_id, -1 if up else 1)  # from where it is now
        except TrackNotFound:  # removed meanwhile
            callback_answer.text = labels("alert_stale")
        else:
            callback_answer.text = labels("alert_moved_up" if up else "alert_moved_down")
    else:
        removed = await playlists.remove(owner(user), pid, track_id)
        callback_answer.text = labels("alert_removed" if removed else "alert_stale")
    text, markup = await playlist_view(playlists, spotify_save, texts, user, pid, callback_data.page)
    await edit(callback_message(callback), text, markup)


# -- what a playlist can do -------------------------------------------------------------------


async def on_radio(
    callback: CallbackQuery,
    callback_data: PlaylistCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    playlists: Playlists,
    radio: Radios,
    texts: Texts,
    tracks: Tracks,
) -> None:
    message = callback_message(callback)
    try:
        step = await playlists.start_radio(
            owner(user), callback_data.playlist_id, diversity=user.diversity, chat_id=message.chat.id
        )
    except (InvalidInput, NoFeatures) as exc:
        callback_answer.text = texts.labels(user.language)(
            "alert_playlist_empty" if isinstance(exc, InvalidInput) else "alert_playlist_no_radio"
        )
        callback_answer.show_alert = True
        return
    await post_radio(message, step, user, radio, texts, tracks)


async def on_export(
    callback: CallbackQuery,
    callback_data: PlaylistCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    playlists: Playlists,
    texts: Texts,
) -> None:
    """The playlist as documents: CSV, JSPF and M3U8 (each in parts under Telegram's 50 MB)."""
    message = callback_message(callback)
    labels = texts.labels(user.language)
    info = await playlists.get(owner(user), callback_data.playlist_id)  # PlaylistNotFound before anything
    callback_answer.disable()  # the files take a moment: stop the button's spinner now
    await callback.answer(labels("alert_exporting"))
    name = display_name(info, labels)
    for fmt in FORMATS:
        for file in await playlists.export(owner(user), info.id, fmt):
            await message.answer_document(
                BufferedInputFile(file.data, filename=file.filename),
                caption=texts.render(user.language, "playlist_export", file=file, name=name),
            )


async def on_share(
    callback: CallbackQuery, callback_data: PlaylistCallback, user: UserInfo, playlists: Playlists, texts: Texts
) -> None:
    message = callback_message(callback)
    if not playlists.public_url:
        await message.answer(texts.render(user.language, "playlist_note", event="no_public_url"))
        return
    share = await playlists.share(owner(user), callback_data.playlist_id)
    await message.answer(
        texts.render(user.language, "playlist_share", share=share),
        reply_markup=share_keyboard(share, labels=texts.labels(user.language)),
    )


async def on_unshare(
    callback: CallbackQuery,
    callback_data: PlaylistCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    playlists: Playlists,
    texts: Texts,
) -> None:
    revoked = await playlists.unshare(owner(user), callback_data.playlist_id)
    callback_answer.text = texts.labels(user.language)("alert_unshared" if revoked else "alert_stale")
    await edit_markup(callback_message(callback), None)


async def on_youtube(
    callback: CallbackQuery, callback_data: PlaylistCallback, user: UserInfo, playlists: Playlists, texts: Texts
) -> None:
    labels = texts.labels(user.language)
    info = await playlists.get(owner(user), callback_data.playlist_id)
    play = await playlists.youtube(owner(user), info.id)
    await callback_message(callback).answer(
        texts.render(
            user.language, "playlist_youtube", play=play, name=display_name(info, labels), shown=YOUTUBE_BUTTONS
        ),
        reply_markup=youtube_keyboard(play, labels=labels),
    )


async def on_spotify(
    callback: CallbackQuery,
    callback_data: PlaylistCallback,
    user: UserInfo,
    spotify_save: SpotifySave | None,
    texts: Texts,
) -> None:
    """Save to Spotify: saved, or a link to connect (then it is saved), or why not."""
    message = callback_message(callback)
    labels = texts.labels(user.language)
    markup = None
    context: dict[str, Any] = {}
    try:
        if spotify_save is None:
            raise SpotifyNotConfigured("off")
        saved = await spotify_save.save(owner(user), callback_data.playlist_id)
        event, context = "saved", {"saved": saved}
        markup = url_keyboard(labels("btn_spotify_open"), saved.url)
    except SpotifyNotConnected as exc:
        event = "expired" if exc.expired else "connect"
        markup = url_keyboard(labels("btn_spotify_connect"), exc.authorize_url)
    except SpotifyRefused:
        event = "refused"
    except SpotifyRateLimited as exc:
        event, context = "rate_limited", {"minutes": max(1, math.ceil(exc.retry_after / 60))}
    except SpotifyNotConfigured:
        event = "off"
    except ProviderUnavailable:
        event = "unavailable"
    except InvalidInput:  # no song with a Spotify id
        event = "no_ids"
    await message.answer(texts.render(user.language, "spotify", event=event, **context), reply_markup=markup)


async def on_rename(
    callback: CallbackQuery,
    callback_data: PlaylistCallback,
    user: UserInfo,
    playlists: Playlists,
    texts: Texts,
    state: FSMContext,
) -> None:
    info = await playlists.get(owner(user), callback_data.playlist_id)
    await state.set_state(PlaylistStates.renaming)
    await state.update_data({STATE_PLAYLIST: info.id})
    await callback_message(callback).answer(
        texts.render(user.language, "playlist_note", event="ask_rename", playlist=info)
    )


async def on_delete(
    callback: CallbackQuery, callback_data: PlaylistCallback, user: UserInfo, playlists: Playlists, texts: Texts
) -> None:
    info = await playlists.get(owner(user), callback_data.playlist_id)
    await edit(
        callback_message(callback),
        texts.render(user.language, "playlist_note", event="delete_ask", playlist=info),
        playlist_delete_keyboard(info, page=callback_data.page, labels=texts.labels(user.language)),
    )


async def on_delete_yes(
    callback: CallbackQuery, callback_data: PlaylistCallback, user: UserInfo, playlists: Playlists, texts: Texts
) -> None:
    info = await playlists.get(owner(user), callback_data.playlist_id)
    await playlists.delete(owner(user), info.id)
    text, markup = await list_view(playlists, texts, user, 0)
    note = texts.render(user.language, "playlist_note", event="deleted", playlist=info)
    await edit(callback_message(callback), f"{note}\n\n{text}", markup)


# -- ➕ to playlist ----------------------------------------------------------------------------


async def picker_markup(playlists: Playlists, texts: Texts, user: UserInfo, track_id: int) -> InlineKeyboardMarkup:
    targets = await playlists.targets(owner(user), track_id)
    return playlist_picker_keyboard(targets, track_id=track_id, labels=texts.labels(user.language))


async def on_pick(
    callback: CallbackQuery,
    callback_data: TrackCallback,
    user: UserInfo,
    tracks: Tracks,
    playlists: Playlists,
    texts: Texts,
) -> None:
    track = await tracks.get(callback_data.track_id)  # TrackNotFound for a forged id
    await callback_message(callback).answer(
        texts.render(user.language, "playlist_pick", track=track),
        reply_markup=await picker_markup(playlists, texts, user, track.id),
    )


async def on_add(
    callback: CallbackQuery,
    callback_data: AddToPlaylistCallback,
    callback_answer: CallbackAnswer,
    user: UserInfo,
    playlists: Playlists,
    texts: Texts,
) -> None:
    """A playlist chosen: the song is added once (a second tap says it is there already)."""
    labels = texts.labels(user.language)
    info = await playlists.get(owner(user), callback_data.playlist_id)
    added = await playlists.add(owner(user), info.id, callback_data.track_id)
    callback_answer.text = labels("alert_added" if added else "alert_already_in", name=display_name(info, labels))
    if added:  # the ✓ moves; a repeated tap changes nothing on the message
        await edit_markup(
            callback_message(callback), await picker_markup(playlists, texts, user, callback_data.track_id)
        )


async def on_new(
    callback: CallbackQuery,
    callback_data: NewPlaylistCallback,
    user: UserInfo,
    tracks: Tracks,
    texts: Texts,
    state: FSMContext,
) -> None:
    track = await tracks.get(callback_data.track_id) if callback_data.track_id else None
    await state.set_state(PlaylistStates.naming)
    await state.update_data({STATE_TRACK: track.id if track is not None else None})
    await callback_message(callback).answer(texts.render(user.language, "playlist_note", event="ask_name", track=track))


async def cmd_newplaylist(
    message: Message,
    command: CommandObject,
    user: UserInfo,
    tracks: Tracks,
    playlists: Playlists,
    spotify_save: SpotifySave | None,
    texts: Texts,
    state: FSMContext,
) -> None:
    if not (command.args or "").strip():
        await state.set_state(PlaylistStates.naming)
        await state.update_data({STATE_TRACK: None})
        await message.answer(texts.render(user.language, "playlist_note", event="ask_name", track=None))
        return
    await _create(message, command.args or "", None, user, tracks, playlists, spotify_save, texts, state)


async def on_name(
    message: Message,
    user: UserInfo,
    tracks: Tracks,
    playlists: Playlists,
    spotify_save: SpotifySave | None,
    texts: Texts,
    state: FSMContext,
) -> None:
    track_id = (await state.get_data()).get(STATE_TRACK)
    await _create(message, message.text or "", track_id, user, tracks, playlists, spotify_save, texts, state)


async def _create(
    message: Message,
    name: str,
    track_id: int | None,
    user: UserInfo,
    tracks: Tracks,
    playlists: Playlists,
    spotify_save: SpotifySave | None,
    texts: Texts,
    state: FSMContext,
) -> None:
    try:
        info = await playlists.create(owner(user), name)
    except PlaylistNameTaken:
        await message.answer(
            texts.render(user.language, "playlist_note", event="name_taken", name=" ".join(name.split()))
        )
        return
    except InvalidInput:
        event = "name_long" if len(name.strip()) > MAX_NAME else ("name_empty" if not name.strip() else "too_many")
        await message.answer(texts.render(user.language, "playlist_note", event=event))
        return
    await _leave_state(state)
    track: TrackInfo | None = None
    if track_id:
        track = await tracks.get(int(track_id))
        await playlists.add(owner(user), info.id, track.id)
    note = texts.render(user.language, "playlist_note", event="created", playlist=info, track=track)
    _text, markup = await playlist_view(playlists, spotify_save, texts, user, info.id, 0)
    await message.answer(note, reply_markup=markup)


async def on_new_name(
    message: Message,
    user: UserInfo,
    playlists: Playlists,
    spotify_save: SpotifySave | None,
    texts: Texts,
    state: FSMContext,
) -> None:
    playlist_id = str((await state.get_data()).get(STATE_PLAYLIST) or "")
    name = message.text or ""
    try:
        await playlists.rename(owner(user), playlist_id, name)
    except PlaylistNameTaken:
        await message.answer(
            texts.render(user.language, "playlist_note", event="name_taken", name=" ".join(name.split()))
        )
        return
    except InvalidInput:
        event = "name_long" if len(name.strip()) > MAX_NAME else "name_empty"
        await message.answer(texts.render(user.language, "playlist_note", event=event))
        return
    await _leave_state(state)
    text, markup = await playlist_view(playlists, spotify_save, texts, user, playlist_id, 0)
    await message.answer(text, reply_markup=markup)


async def cmd_cancel(message: Message, user: UserInfo, texts: Texts, state: FSMContext) -> None:
    await _leave_state(state)
    await message.answer(texts.render(user.language, "playlist_note", event="cancelled"))


async def cmd_disconnect(message: Message, user: UserInfo, spotify_save: SpotifySave | None, texts: Texts) -> None:
    gone = spotify_save is not None and await spotify_save.disconnect(owner(user))
    await message.answer(texts.render(user.language, "spotify", event="disconnected" if gone else "not_connected"))


async def _leave_state(state: FSMContext) -> None:
    """Out of naming / renaming; the chat's other data (kept search results) stays."""
    await state.set_state(None)
    await state.update_data({STATE_TRACK: None, STATE_PLAYLIST: None})


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.message.register(cmd_cancel, Command("cancel"))
    router.message.register(cmd_playlists, Command("playlists"))
    router.message.register(cmd_export, Command("export"))
    router.message.register(cmd_newplaylist, Command("newplaylist"))
    router.message.register(cmd_disconnect, Command("disconnect"))
    not_a_command = F.text & ~F.text.startswith("/")
    router.message.register(on_name, StateFilter(PlaylistStates.naming), not_a_command)
    router.message.register(on_new_name, StateFilter(PlaylistStates.renaming), not_a_command)
    router.callback_query.register(on_playlists_page, PlaylistsCallback.filter())
    actions: dict[PlaylistAction, Callable[..., Awaitable[None]]] = {
        PlaylistAction.OPEN: on_open,
        PlaylistAction.RADIO: on_radio,
        PlaylistAction.EXPORT: on_export,
        PlaylistAction.SHARE: on_share,
        PlaylistAction.UNSHARE: on_unshare,
        PlaylistAction.YOUTUBE: on_youtube,
        PlaylistAction.SPOTIFY: on_spotify,
        PlaylistAction.RENAME: on_rename,
        PlaylistAction.DELETE: on_delete,
        PlaylistAction.DELETE_YES: on_delete_yes,
    }
    for action, handler in actions.items():
        router.callback_query.register(handler, PlaylistCallback.filter(F.action == action))
    router.callback_query.register(on_item, PlaylistItemCallback.filter())
    router.callback_query.register(on_pick, TrackCallback.filter(F.action == TrackAction.PLAYLIST))
    router.callback_query.register(on_add, AddToPlaylistCallback.filter())
    router.callback_query.register(on_new, NewPlaylistCallback.filter())
    return router
