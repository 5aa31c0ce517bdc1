"""Playlists on the web page, owned by the browser's session (like its radios), and the share pages.

    GET  /playlists                       this browser's playlists, a form for a new one, Spotify status
    POST /playlists                       a new playlist (form: name) → its page
    POST /playlists/add                   a song into a playlist, or into a new one (from a card or a radio)
    GET  /playlists/{id}                  its songs (paged), with every action as a form
    POST /playlists/{id}/rename|delete|remove|move|radio|share|unshare|spotify
    GET  /playlists/{id}/export.{csv,jspf,m3u8}   the file
    GET  /playlists/{id}/youtube          one-tap YouTube links
    GET  /p/{token}                       a shared playlist, read-only, for anyone with the link
    GET  /spotify/callback                where Spotify sends the person back (Authorization Code + PKCE)
    POST /spotify/disconnect              forget this browser's Spotify tokens

Another browser gets 404 for a playlist that is not its own (as for one that does not exist).
Every form comes from this site (Origin) with the session's CSRF token; nothing changes on GET.
"Save to Spotify" without a connection shows a page with a link to Spotify (a link, not a
redirect of the form: the page's CSP allows forms to post to this site only).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from bot.http.keys import config_key, services_key
from bot.http.problems import Problem
from bot.http.session import csrf_token, require_form_from_this_site
from handlers.http.page import origin_allowed, page_listener, render
from handlers.http.params import MAX_ID
from handlers.http.playlists_api import PLAYLIST_ID
from services import errors
from services.dto import PlaylistInfo, SharedPlaylist
from services.playlist_export import FORMATS
from services.protocols import Playlists, SpotifySave

PAGE_SIZE = 20
SHARE_TOKEN = r"{token:[A-Za-z0-9_-]{43}}"
NOTES = {
    "added": "Added to the playlist.",
    "already": "That song is in the playlist already.",
    "created": "Playlist made.",
    "renamed": "Renamed.",
    "deleted": "Playlist deleted.",
    "removed": "Removed.",
    "moved": "Moved.",
    "shared": "Anyone with the link below can see this playlist (not change it).",
    "unshared": "The link is revoked: its page is gone.",
    "changed": "The playlist changed meanwhile (another tab?); here it is as it is now.",
    "disconnected": "Your Spotify account is disconnected: Encore's tokens are deleted.",
}


def playlists_of(request: web.Request) -> Playlists:
    service = request.app[services_key].playlists
    if service is None:
        raise Problem(503, "Playlists are switched off here.", code="playlists_off")
    return service


def spotify_of(request: web.Request) -> SpotifySave | None:
    service = request.app[services_key].spotify_save
    return service if service is not None and service.enabled else None


def _field(form: Any, name: str, *, limit: int = 300) -> str:
    raw = form.get(name)
    if not isinstance(raw, str) or len(raw) > limit:
        raise Problem(400, f"The form field '{name}' is missing or too long.", code="invalid_form")
    return raw


def _number(form: Any, name: str, *, high: int = MAX_ID) -> int:
    raw = form.get(name)
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= high:
        raise Problem(400, f"The form field '{name}' must be a number from 1 to {high}.", code="invalid_form")
    return int(raw)


def _back(form: Any, default: str) -> str:
    """Where to go after a form: a path on this site only (never another host)."""
    raw = form.get("next")
    if isinstance(raw, str) and raw.startswith("/") and not raw.startswith(("//", "/\\")) and len(raw) <= 200:
        return raw
    return default


def _with_note(path: str, note: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}note={note}"


def share_url(request: web.Request, playlists: Playlists, token: str | None) -> str | None:
    if token is None:
        return None
    path = f"/p/{token}"
    return playlists.url(path) or str(request.url.with_path(path).with_query(None))


def spotify_context(**values: Any) -> dict[str, Any]:
    """Everything spotify.html reads (its templates are strict about missing names)."""
    context: dict[str, Any] = {
        "saved": None,
        "connect_url": None,
        "expired": False,
        "connected": False,
        "problem": None,
        "playlist": None,
    }
    context.update(values)
    return context


def _pid(request: web.Request) -> str:
    return request.match_info["playlist_id"]


# -- pages -------------------------------------------------------------------------------------


async def list_page(request: web.Request) -> web.Response:
    playlists = playlists_of(request)
    spotify = spotify_of(request)
    listener = page_listener(request)
    return render(
        request,
        "playlists.html",
        playlists=await playlists.playlists(listener),
        csrf=csrf_token(request),
        note=NOTES.get(request.query.get("note", "")),
        spotify_on=spotify is not None,
        spotify_connected=spotify is not None and await spotify.connected(listener),
    )


async def playlist_page(request: web.Request) -> web.Response:
    playlists = playlists_of(request)
    try:
        page = max(0, int(request.query.get("page", "1")) - 1)
    except ValueError:
        page = 0
    view = await playlists.view(page_listener(request), _pid(request), min(page, 100_000), PAGE_SIZE)
    return render(
        request,
        "playlist.html",
        view=view,
        first=view.tracks.page * PAGE_SIZE,
        share_url=share_url(request, playlists, view.playlist.share_token),
        formats=list(FORMATS),
        csrf=csrf_token(request),
        note=NOTES.get(request.query.get("note", "")),
        spotify_on=spotify_of(request) is not None,
    )


async def youtube_page(request: web.Request) -> web.Response:
    playlists = playlists_of(request)
    listener = page_listener(request)
    info = await playlists.get(listener, _pid(request))
    play = await playlists.youtube(listener, info.id)
    return render(request, "youtube.html", playlist=info, play=play)


async def export_file(request: web.Request) -> web.Response:
    fmt = request.match_info["format"]
    [file] = await playlists_of(request).export(page_listener(request), _pid(request), fmt, max_bytes=2**62)
    return web.Response(
        body=file.data,
        headers={
            "Content-Type": file.content_type,
            "Content-Disposition": f'attachment; filename="{file.filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


async def shared_page(request: web.Request) -> web.Response:
    """Read-only, for anyone with the link; 404 once revoked (never cached, so that happens at once)."""
    try:
        page = max(0, int(request.query.get("page", "1")) - 1)
    except ValueError:
        page = 0
    shared = await playlists_of(request).shared(request.match_info["token"], min(page, 100_000), PAGE_SIZE)
    media = request.app[config_key].media_origins
    cards = tuple(
        c if not c.preview_url or origin_allowed(c.preview_url, media) else dataclasses.replace(c, preview_url=None)
        for c in shared.tracks.items
    )
    shared = SharedPlaylist(
        shared.name, shared.kind, shared.count, dataclasses.replace(shared.tracks, items=cards), shared.top_genres
    )
    response = render(request, "shared.html", shared=shared, first=shared.tracks.page * PAGE_SIZE)
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


# -- forms -------------------------------------------------------------------------------------


async def create(request: web.Request) -> web.Response:
    form = await require_form_from_this_site(request)
    info = await _create(request, _field(form, "name"))
    raise web.HTTPSeeOther(_with_note(f"/playlists/{info.id}", "created"))


async def _create(request: web.Request, name: str) -> PlaylistInfo:
    return await playlists_of(request).create(page_listener(request), name)  # 409 for a name in use


async def add(request: web.Request) -> web.Response:
    """From a card or a radio: into a chosen playlist, or a new one named in the same form."""
    form = await require_form_from_this_site(request)
    track_id = _number(form, "track_id")
    playlists = playlists_of(request)
    listener = page_listener(request)
    chosen = form.get("playlist")
    if isinstance(chosen, str) and chosen:
        target = chosen
    else:
        target = (await _create(request, _field(form, "name"))).id
    added = await playlists.add(listener, target, track_id)
    raise web.HTTPSeeOther(_with_note(_back(form, f"/playlists/{target}"), "added" if added else "already"))


async def rename(request: web.Request) -> web.Response:
    form = await require_form_from_this_site(request)
    await playlists_of(request).rename(page_listener(request), _pid(request), _field(form, "name"))
    raise web.HTTPSeeOther(_with_note(f"/playlists/{_pid(request)}", "renamed"))


async def delete(request: web.Request) -> web.Response:
    await require_form_from_this_site(request)
    await playlists_of(request).delete(page_listener(request), _pid(request))
    raise web.HTTPSeeOther("/playlists?note=deleted")


async def remove(request: web.Request) -> web.Response:
    form = await require_form_from_this_site(request)
    await playlists_of(request).remove(page_listener(request), _pid(request), _number(form, "track_id"))
    raise web.HTTPSeeOther(_with_note(_back(form, f"/playlists/{_pid(request)}"), "removed"))


async def move(request: web.Request) -> web.Response:
    form = await require_form_from_this_site(request)
    version = form.get("version")
    seen = int(version) if isinstance(version, str) and version.isascii() and version.isdigit() else None
    try:
        await playlists_of(request).move(
            page_listener(request),
            _pid(request),
            _number(form, "track_id"),
            _number(form, "position", high=100_000),
            version=seen,
        )
    except errors.PlaylistChanged as exc:  # another tab changed it: show it as it is now
        raise web.HTTPSeeOther(_with_note(f"/playlists/{_pid(request)}", "changed")) from exc
    raise web.HTTPSeeOther(_with_note(_back(form, f"/playlists/{_pid(request)}"), "moved"))


async def radio(request: web.Request) -> web.Response:
    await require_form_from_this_site(request)
    step = await playlists_of(request).start_radio(page_listener(request), _pid(request))
    raise web.HTTPSeeOther(f"/radio/{step.radio_id}")


async def share(request: web.Request) -> web.Response:
    await require_form_from_this_site(request)
    await playlists_of(request).share(page_listener(request), _pid(request))
    raise web.HTTPSeeOther(_with_note(f"/playlists/{_pid(request)}", "shared"))


async def unshare(request: web.Request) -> web.Response:
    await require_form_from_this_site(request)
    await playlists_of(request).unshare(page_listener(request), _pid(request))
    raise web.HTTPSeeOther(_with_note(f"/playlists/{_pid(request)}", "unshared"))


async def save_to_spotify(request: web.Request) -> web.Response:
    await require_form_from_this_site(request)
    service = spotify_of(request)
    if service is None:
        raise errors.SpotifyNotConfigured("Saving to Spotify is not set up here. Export the playlist or share it.")
    listener = page_listener(request)
    info = await playlists_of(request).get(listener, _pid(request))
    context = spotify_context(playlist=info)
    try:
        context["saved"] = await service.save(listener, info.id)
    except errors.SpotifyNotConnected as exc:
        context.update(connect_url=exc.authorize_url, expired=exc.expired)
    except (errors.SpotifyRefused, errors.SpotifyRateLimited, errors.ProviderUnavailable, errors.InvalidInput) as exc:
        context["problem"] = exc.message
    return render(request, "spotify.html", **context)


async def spotify_callback(request: web.Request) -> web.Response:
    """Spotify sends the person back here with `code` and `state` (or `error`)."""
    service = spotify_of(request)
    if service is None:
        raise errors.SpotifyNotConfigured("Saving to Spotify is not set up here.")
    state = request.query.get("state", "")[:100]
    code = request.query.get("code") or None
    error = request.query.get("error") or None
    context = spotify_context()
    try:
        done = await service.complete(state, code=code[:2000] if code else None, error=error[:100] if error else None)
    except errors.InvalidInput as exc:
        context["problem"] = exc.message
    else:
        context.update(saved=done.saved, problem=done.error, connected=True)
    return render(request, "spotify.html", **context)


async def disconnect(request: web.Request) -> web.Response:
    await require_form_from_this_site(request)
    service = request.app[services_key].spotify_save
    if service is not None:
        await service.disconnect(page_listener(request))
    raise web.HTTPSeeOther("/playlists?note=disconnected")


def setup_routes(app: web.Application) -> None:
    router = app.router
    one = f"/playlists/{PLAYLIST_ID}"
    router.add_get("/playlists", list_page, name="playlists")
    router.add_post("/playlists", create, name="playlist_create")
    router.add_post("/playlists/add", add, name="playlist_add")
    router.add_get(one, playlist_page, name="playlist")
    router.add_get(f"{one}/youtube", youtube_page, name="playlist_youtube")
    router.add_get(f"{one}/export.{{format:(?:csv|jspf|m3u8)}}", export_file, name="playlist_export")
    for action, view in (
        ("rename", rename),
        ("delete", delete),
        ("remove", remove),
        ("move", move),
        ("radio", radio),
        ("share", share),
        ("unshare", unshare),
        ("spotify", save_to_spotify),
    ):
        router.add_post(f"{one}/{action}", view, name=f"playlist_{action}")
    router.add_get(f"/p/{SHARE_TOKEN}", shared_page, name="shared")
    router.add_get("/spotify/callback", spotify_callback, name="spotify_callback")
    router.add_post("/spotify/disconnect", disconnect, name="spotify_disconnect")
