"""Inline keyboards: pure functions from DTOs (and the user's labels) to markup."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.telegram.callbacks import (
    AddToPlaylistCallback,
    HistoryPageCallback,
    LikesAction,
    LikesItemCallback,
    LikesPageCallback,
    NewPlaylistCallback,
    NoopCallback,
    PlaylistAction,
    PlaylistCallback,
    PlaylistItemAction,
    PlaylistItemCallback,
    PlaylistsCallback,
    PreviewCallback,
    RadioAction,
    RadioCallback,
    SearchPageCallback,
    SettingsAction,
    SettingsCallback,
    SettingsScreen,
    TrackAction,
    TrackCallback,
    VersionsCallback,
)
from bot.telegram.texts import BUTTON_TEXT_LIMIT, Labels, clip, clock, zone_name
from services.dto import (
    Page,
    PlaylistInfo,
    PlaylistTarget,
    PlaylistView,
    RadioStep,
    Recommendation,
    ShareInfo,
    TrackInfo,
    UserInfo,
    YouTubePlay,
)
from services.schedule import ZONES
from services.users import DIAL_STEPS, SUPPORTED_LANGUAGES, dial_step

ARTIST_ON_BUTTON = 20  # characters of the first artist on a track button; the title gets the rest
HOURS_PER_ROW = 6
ZONES_PER_ROW = 2
PLAYLISTS_PER_PAGE = 8
YOUTUBE_BUTTONS = 10  # watch_videos links under one message (50 songs each)


def nav_row(page: int, pages: int, make: Callable[[int], CallbackData], labels: Labels) -> list[InlineKeyboardButton]:
    """◀ n/m ▶ for a paged list; empty when everything fits on one page."""
    if pages <= 1:
        return []
    row = []
    if page > 0:
        row.append(InlineKeyboardButton(text=labels("btn_prev"), callback_data=make(page - 1).pack()))
    row.append(
        InlineKeyboardButton(text=labels("btn_page", page=page + 1, pages=pages), callback_data=NoopCallback().pack())
    )
    if page + 1 < pages:
        row.append(InlineKeyboardButton(text=labels("btn_next"), callback_data=make(page + 1).pack()))
    return row


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def track_button_text(track: TrackInfo, limit: int = BUTTON_TEXT_LIMIT) -> str:
    """Title first, then the first artist ("+2" for the others), so a long artist list never hides
    the title: "Man of Constant Sorrow — Dan Tyminski +3"."""
    if not track.artists:
        return clip(track.name, limit)
    artist = clip(track.artists[0], ARTIST_ON_BUTTON)
    if len(track.artists) > 1:
        artist += f" +{len(track.artists) - 1}"
    return f"{clip(track.name, max(8, limit - len(artist) - 3))} — {artist}"


# The two keyboards below are on the hot path (every card, every radio press); they are built
# directly, as InlineKeyboardBuilder deep-copies its rows on every as_markup().
def track_keyboard(
    track_id: int,
    *,
    liked: bool,
    labels: Labels,
    versions: tuple[int, int] | None = None,
    preview: bool = False,
) -> InlineKeyboardMarkup:
    """▶ Start radio / 👍 / 🔎 Similar under a track card; `versions` = (search id, how many) adds
    "🔀 Other versions" for a card opened from a search that found several releases; `preview` adds
    "▶ 30-s preview" (the track has a Deezer id or a known preview)."""
    like = (
        _button(labels("btn_liked"), TrackCallback(action=TrackAction.UNLIKE, track_id=track_id))
        if liked
        else _button(labels("btn_like"), TrackCallback(action=TrackAction.LIKE, track_id=track_id))
    )
    rows = [
        [
            _button(labels("btn_radio"), TrackCallback(action=TrackAction.RADIO, track_id=track_id)),
            _button(labels("btn_add_playlist"), TrackCallback(action=TrackAction.PLAYLIST, track_id=track_id)),
        ],
        [like, _button(labels("btn_similar"), TrackCallback(action=TrackAction.SIMILAR, track_id=track_id))],
    ]
    if preview:
        rows.append([_button(labels("btn_preview"), PreviewCallback(track_id=track_id))])
    if versions is not None and versions[1] > 0:
        rows.append([_button(labels("btn_versions", n=versions[1]), VersionsCallback(search_id=versions[0]))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def with_like_state(
    markup: InlineKeyboardMarkup | None, track_id: int, *, liked: bool, labels: Labels
) -> InlineKeyboardMarkup:
    """`markup` with its 👍 / 💚 button for `track_id` flipped to `liked`; every other button kept."""
    if markup is None:
        return track_keyboard(track_id, liked=liked, labels=labels)
    flipped = (
        _button(labels("btn_liked"), TrackCallback(action=TrackAction.UNLIKE, track_id=track_id))
        if liked
        else _button(labels("btn_like"), TrackCallback(action=TrackAction.LIKE, track_id=track_id))
    )
    like_data = {TrackCallback(action=a, track_id=track_id).pack() for a in (TrackAction.LIKE, TrackAction.UNLIKE)}
    rows = [[flipped if b.callback_data in like_data else b for b in row] for row in markup.inline_keyboard]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def version_button_text(track: TrackInfo, limit: int = BUTTON_TEXT_LIMIT) -> str:
    """For versions of one song (same title, same artist): what tells them apart, the album and year
    ("Man of Constant Sorrow — O Brother, Wher… (2000)"); the year is never cut."""
    year = f"({track.year})" if track.year else ""
    if not track.album and not year:
        return track_button_text(track, limit)
    name = clip(track.name, 24)
    album = ""
    if track.album:
        album = clip(track.album, max(6, limit - len(name) - 3 - len(year) - (1 if year else 0)))
    return clip(f"{name} — {' '.join(p for p in (album, year) if p)}", limit)


def candidates_keyboard(
    tracks: Sequence[TrackInfo], *, search_id: int, page: int, pages: int, labels: Labels, versions: bool = False
) -> InlineKeyboardMarkup:
    """One button per candidate track (versions of one song: told apart by album and year), then ◀ n/m ▶."""
    kb = InlineKeyboardBuilder()
    label = version_button_text if versions else track_button_text
    for track in tracks:
        kb.row(_button(label(track), TrackCallback(action=TrackAction.PICK, track_id=track.id)))
    nav = nav_row(page, pages, lambda p: SearchPageCallback(search_id=search_id, page=p), labels)
    if nav:
        kb.row(*nav)
    return kb.as_markup()


def similar_keyboard(recommendations: Sequence[Recommendation]) -> InlineKeyboardMarkup:
    """The similar tracks themselves (the message text only introduces them)."""
    rows = [
        [_button(track_button_text(rec.track), TrackCallback(action=TrackAction.CARD, track_id=rec.track.id))]
        for rec in recommendations
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def example_keyboard(example: str, labels: Labels) -> InlineKeyboardMarkup:
    """/start: one tap puts a search that works into the input field."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=clip(labels("btn_example", example=example), BUTTON_TEXT_LIMIT),
                    switch_inline_query_current_chat=example,
                )
            ]
        ]
    )


def radio_keyboard(step: RadioStep, labels: Labels) -> InlineKeyboardMarkup | None:
    """👍 👎 / ⏭ ⏹ for the radio's current track; None once the radio is over."""
    if step.track is None or step.stopped:
        return None
    track_id = step.track.id

    def press(action: RadioAction, key: str) -> InlineKeyboardButton:
        return _button(labels(key), RadioCallback(radio_id=step.radio_id, track_id=track_id, action=action))

    rows = [
        [press(RadioAction.LIKE, "btn_radio_like"), press(RadioAction.SKIP, "btn_radio_skip")],
        [press(RadioAction.NEXT, "btn_radio_next"), press(RadioAction.STOP, "btn_radio_stop")],
    ]
    extra = [_button(labels("btn_add_playlist"), TrackCallback(action=TrackAction.PLAYLIST, track_id=track_id))]
    if has_preview(step.track):
        extra.insert(0, _button(labels("btn_preview"), PreviewCallback(track_id=track_id)))
    rows.append(extra)
    return InlineKeyboardMarkup(inline_keyboard=rows)


def has_preview(track: TrackInfo, preview_url: str | None = None) -> bool:
    """Whether a card offers ▶ 30-s preview: a preview is known, or Deezer can be asked for one."""
    return bool(preview_url) or track.deezer_id is not None


def analysis_keyboard(track_id: int, similar: Sequence[Recommendation], labels: Labels) -> InlineKeyboardMarkup:
    """Under "this sounds like …" for a sent recording: ▶ Start radio from it, then the similar tracks."""
    rows = [[_button(labels("btn_radio"), TrackCallback(action=TrackAction.RADIO, track_id=track_id))]]
    rows.extend(
        [_button(track_button_text(rec.track), TrackCallback(action=TrackAction.CARD, track_id=rec.track.id))]
        for rec in similar
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def history_keyboard(page: Page[Any], labels: Labels) -> InlineKeyboardMarkup | None:
    nav = nav_row(page.page, page.pages, lambda p: HistoryPageCallback(page=p), labels)
    return InlineKeyboardMarkup(inline_keyboard=[nav]) if nav else None


def likes_keyboard(page: Page[TrackInfo], *, first: int, labels: Labels) -> InlineKeyboardMarkup | None:
    """Per liked track: ▶ n (radio from it) and ✖ n (remove the like); then ◀ n/m ▶."""
    rows: list[list[InlineKeyboardButton]] = []
    for n, track in enumerate(page.items, start=first + 1):
        rows.append(
            [
                InlineKeyboardButton(
                    text=labels("btn_likes_radio", n=n),
                    callback_data=LikesItemCallback(action=LikesAction.RADIO, track_id=track.id, page=page.page).pack(),
                ),
                InlineKeyboardButton(
                    text=labels("btn_likes_unlike", n=n),
                    callback_data=LikesItemCallback(
                        action=LikesAction.UNLIKE, track_id=track.id, page=page.page
                    ).pack(),
                ),
            ]
        )
    nav = nav_row(page.page, page.pages, lambda p: LikesPageCallback(page=p), labels)
    if nav:
        rows.append(nav)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def _setting(action: SettingsAction, value: int = 0) -> str:
    return SettingsCallback(action=action, value=value).pack()


def _screen(screen: SettingsScreen) -> str:
    return _setting(SettingsAction.SCREEN, int(screen))


def settings_keyboard(
    user: UserInfo, labels: Labels, screen: SettingsScreen = SettingsScreen.MAIN
) -> InlineKeyboardMarkup:
    """/settings: the main panel, or one of its pickers (familiar ↔ new, the hour, the time zone)."""
    mark = "• "
    back = [InlineKeyboardButton(text=labels("btn_back"), callback_data=_screen(SettingsScreen.MAIN))]
    rows: list[list[InlineKeyboardButton]] = []
    if screen is SettingsScreen.DIAL:
        current = dial_step(user.diversity)
        for step in range(DIAL_STEPS + 1):
            text = (mark if step == current else "") + labels(f"btn_dial_{step}")
            rows.append([InlineKeyboardButton(text=text, callback_data=_setting(SettingsAction.DIAL, step))])
        rows.append(back)
    elif screen is SettingsScreen.HOURS:
        hours = [
            InlineKeyboardButton(
                text=(mark if user.subscribed and user.pick_hour == hour else "") + clock(hour),
                callback_data=_setting(SettingsAction.SUBSCRIBE, hour),
            )
            for hour in range(24)
        ]
        rows.extend(hours[i : i + HOURS_PER_ROW] for i in range(0, 24, HOURS_PER_ROW))
        if user.subscribed:
            rows.append(
                [
                    InlineKeyboardButton(
                        text=labels("btn_unsubscribe"), callback_data=_setting(SettingsAction.UNSUBSCRIBE)
                    )
                ]
            )
        rows.append(back)
    elif screen is SettingsScreen.ZONES:
        zones = [
            InlineKeyboardButton(
                text=clip((mark if zone == user.timezone else "") + zone_name(zone, user.language), BUTTON_TEXT_LIMIT),
                callback_data=_setting(SettingsAction.ZONE, i),
            )
            for i, zone in enumerate(ZONES)
        ]
        rows.extend(zones[i : i + ZONES_PER_ROW] for i in range(0, len(zones), ZONES_PER_ROW))
        rows.append(back)
    else:
        rows.append(
            [
                InlineKeyboardButton(
                    text=(mark if user.language == code else "") + labels(f"btn_lang_{code}"),
                    callback_data=_setting(SettingsAction.LANGUAGE, i),
                )
                for i, code in enumerate(SUPPORTED_LANGUAGES)
            ]
        )
        dial = labels(f"btn_dial_{dial_step(user.diversity)}")
        rows.append(
            [InlineKeyboardButton(text=labels("btn_open_dial", value=dial), callback_data=_screen(SettingsScreen.DIAL))]
        )
        pick = (
            labels("btn_open_hours_on", time=clock(user.pick_hour, user.pick_minute))
            if user.subscribed
            else labels("btn_open_hours_off")
        )
        rows.append([InlineKeyboardButton(text=pick, callback_data=_screen(SettingsScreen.HOURS))])
        zone = clip(labels("btn_open_zones", zone=zone_name(user.timezone, user.language)), BUTTON_TEXT_LIMIT)
        rows.append([InlineKeyboardButton(text=zone, callback_data=_screen(SettingsScreen.ZONES))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def links_keyboard(
    track: TrackInfo,
    *,
    youtube_url: str,
    deep_link: str | None,
    labels: Labels,
    youtube_is_search: bool = True,
) -> InlineKeyboardMarkup:
    """URL buttons only: for messages posted into other chats (inline mode), where our callbacks don't belong.
    The YouTube button says "🔎 YouTube" while it is only a search."""
    kb = InlineKeyboardBuilder()
    kb.button(text=labels("btn_youtube_search" if youtube_is_search else "btn_youtube"), url=youtube_url)
    if track.spotify_url:
        kb.button(text=labels("btn_spotify"), url=track.spotify_url)
    if deep_link:
        kb.button(text=labels("btn_open_bot"), url=deep_link)
    kb.adjust(2, 1)
    return kb.as_markup()


# -- playlists -------------------------------------------------------------------------------------


def playlist_button_text(playlist: PlaylistInfo, labels: Labels) -> str:
    if playlist.is_likes:
        return labels("btn_playlist_likes", n=playlist.count)
    return clip(labels("btn_playlist", name=playlist.name, n=playlist.count), BUTTON_TEXT_LIMIT)


def playlists_keyboard(
    playlists: Sequence[PlaylistInfo], *, page: int, labels: Labels, export: bool = False
) -> InlineKeyboardMarkup:
    """/playlists: one button per playlist (likes first), ◀ n/m ▶, then ➕ New playlist. With `export`
    (/export), a button exports that playlist instead of opening it."""
    pages = max(1, -(-len(playlists) // PLAYLISTS_PER_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = playlists[page * PLAYLISTS_PER_PAGE : (page + 1) * PLAYLISTS_PER_PAGE]
    action = PlaylistAction.EXPORT if export else PlaylistAction.OPEN
    rows = [
        [_button(playlist_button_text(p, labels), PlaylistCallback(action=action, playlist_id=p.id))] for p in shown
    ]
    nav = nav_row(page, pages, lambda p: PlaylistsCallback(page=p, export=export), labels)
    if nav:
        rows.append(nav)
    if not export:
        rows.append([_button(labels("btn_playlist_new"), NewPlaylistCallback(track_id=0))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def playlist_keyboard(view: PlaylistView, *, first: int, labels: Labels, spotify: bool) -> InlineKeyboardMarkup:
    """One playlist: per song ⬆ n / ⬇ n (move up / down) and ✖ n (remove) — ✖ only for likes, whose order is
    when they were liked; ◀ n/m ▶; then radio, export, share, YouTube, Spotify, rename, delete."""
    playlist, page = view.playlist, view.tracks
    pid = playlist.id
    rows: list[list[InlineKeyboardButton]] = []
    for n, track in enumerate(page.items, start=first + 1):
        remove = _button(
            labels("btn_pl_remove", n=n),
            PlaylistItemCallback(action=PlaylistItemAction.REMOVE, playlist_id=pid, track_id=track.id, page=page.page),
        )
        if playlist.is_likes:
            rows.append([remove])
        else:
            up, down = (
                _button(
                    labels(key, n=n),
                    PlaylistItemCallback(action=action, playlist_id=pid, track_id=track.id, page=page.page),
                )
                for action, key in ((PlaylistItemAction.UP, "btn_pl_up"), (PlaylistItemAction.DOWN, "btn_pl_down"))
            )
            rows.append([up, down, remove])
    nav = nav_row(
        page.page,
        page.pages,
        lambda p: PlaylistCallback(action=PlaylistAction.OPEN, playlist_id=pid, page=p),
        labels,
    )
    if nav:
        rows.append(nav)

    def act(action: PlaylistAction, key: str) -> InlineKeyboardButton:
        return _button(labels(key), PlaylistCallback(action=action, playlist_id=pid, page=page.page))

    if playlist.count:
        rows.append([act(PlaylistAction.RADIO, "btn_pl_radio"), act(PlaylistAction.EXPORT, "btn_pl_export")])
        rows.append([act(PlaylistAction.SHARE, "btn_pl_share"), act(PlaylistAction.YOUTUBE, "btn_pl_youtube")])
        if spotify:
            rows.append([act(PlaylistAction.SPOTIFY, "btn_pl_spotify")])
    if not playlist.is_likes:
        rows.append([act(PlaylistAction.RENAME, "btn_pl_rename"), act(PlaylistAction.DELETE, "btn_pl_delete")])
    rows.append([_button(labels("btn_pl_back"), PlaylistsCallback(page=0))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def playlist_delete_keyboard(playlist: PlaylistInfo, *, page: int, labels: Labels) -> InlineKeyboardMarkup:
    pid = playlist.id
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(labels("btn_delete_yes"), PlaylistCallback(action=PlaylistAction.DELETE_YES, playlist_id=pid)),
                _button(labels("btn_cancel"), PlaylistCallback(action=PlaylistAction.OPEN, playlist_id=pid, page=page)),
            ]
        ]
    )


def playlist_picker_keyboard(
    targets: Sequence[PlaylistTarget], *, track_id: int, labels: Labels
) -> InlineKeyboardMarkup:
    """➕ to playlist: the person's playlists (✓ where the song is already), and ➕ New playlist."""
    rows = []
    for target in targets[: PLAYLISTS_PER_PAGE * 3]:
        p = target.playlist
        name = labels("btn_pick_likes") if p.is_likes else p.name
        text = clip(labels("btn_pick_in", name=name) if target.contains else name, BUTTON_TEXT_LIMIT)
        rows.append([_button(text, AddToPlaylistCallback(playlist_id=p.id, track_id=track_id))])
    rows.append([_button(labels("btn_playlist_new"), NewPlaylistCallback(track_id=track_id))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def share_keyboard(share: ShareInfo, *, labels: Labels) -> InlineKeyboardMarkup:
    rows = []
    if share.url:
        rows.append([InlineKeyboardButton(text=labels("btn_open_link"), url=share.url)])
    rows.append(
        [_button(labels("btn_unshare"), PlaylistCallback(action=PlaylistAction.UNSHARE, playlist_id=share.playlist.id))]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def youtube_keyboard(play: YouTubePlay, *, labels: Labels) -> InlineKeyboardMarkup | None:
    """One URL button per watch_videos link (50 songs each), the first `YOUTUBE_BUTTONS` of them."""
    rows = []
    for i, url in enumerate(play.urls[:YOUTUBE_BUTTONS]):
        first, last = i * 50 + 1, min((i + 1) * 50, play.known)
        rows.append([InlineKeyboardButton(text=labels("btn_youtube_part", first=first, last=last), url=url)])
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def url_keyboard(text: str, url: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=text, url=url)]])
