"""Playlists in the JSON API, under /api/v1/playlists (described in handlers/http/openapi.json).

A playlist belongs to the API key that made it, so every route here needs a key from API_KEYS
(`X-API-Key` or `Authorization: Bearer`): without one the answer is 401 — the keyless API owns
nothing that lasts. Another key's playlist is answered 404, exactly like one that does not exist.
A radio started from a playlist belongs to the same key.
"""

from __future__ import annotations

from aiohttp import web

from bot.http.keys import services_key
from bot.http.middlewares import valid_key_hash
from bot.http.problems import Problem
from handlers.http.params import int_param, read_json_object, validate
from handlers.http.render import (
    json_response,
    playlist_json,
    playlist_view_json,
    radio_json,
    share_json,
    spotify_saved_json,
    youtube_play_json,
)
from handlers.http.schemas import PlaylistCreate, PlaylistMove, PlaylistRadio, PlaylistRename, PlaylistTrack
from services import errors
from services.dto import Listener, PlaylistInfo
from services.playlist_export import FORMATS
from services.protocols import Playlists, SpotifySave

API = "/api/v1"
PLAYLIST_ID = r"{playlist_id:[A-Za-z0-9_-]{22}}"
TRACK_ID = r"{track_id:[0-9]{1,18}}"
MAX_PAGE_SIZE = 100


def key_owner(request: web.Request) -> Listener:
    """The API key presented (its hash): who owns the playlists. 401 without a valid one."""
    key_hash = valid_key_hash(request)
    if key_hash is None:
        raise Problem(
            401,
            "Playlists belong to an API key: send one of this server's API keys in the X-API-Key header.",
            code="api_key_required",
            headers={"WWW-Authenticate": 'Bearer realm="encore"'},
        )
    return Listener.api_key(key_hash)


def playlists_of(request: web.Request) -> Playlists:
    service = request.app[services_key].playlists
    if service is None:
        raise Problem(503, "Playlists are switched off here.", code="playlists_off")
    return service


def spotify_of(request: web.Request) -> SpotifySave:
    service = request.app[services_key].spotify_save
    if service is None:
        raise errors.SpotifyNotConfigured("Saving to Spotify is not set up here.")
    return service


def share_url(request: web.Request, playlists: Playlists, token: str | None) -> str | None:
    """The share page's address: on PUBLIC_URL, else on the address this request came to."""
    if token is None:
        return None
    path = f"/p/{token}"
    return playlists.url(path) or str(request.url.with_path(path).with_query(None))


def _out(request: web.Request, playlists: Playlists, info: PlaylistInfo) -> dict[str, object]:
    return playlist_json(info, share_url(request, playlists, info.share_token))


def _track_id(request: web.Request) -> int:
    value = int(request.match_info["track_id"])
    if value < 1:
        raise errors.TrackNotFound("No such track.")
    return value


async def list_playlists(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    return json_response({"items": [_out(request, playlists, p) for p in await playlists.playlists(owner)]})


async def create_playlist(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    body = validate(PlaylistCreate, await read_json_object(request))
    return json_response(_out(request, playlists, await playlists.create(owner, body.name)), status=201)


async def get_playlist(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    page = int_param(request, "page", 0, 0, 100_000)
    size = int_param(request, "size", 50, 1, MAX_PAGE_SIZE)
    view = await playlists.view(owner, request.match_info["playlist_id"], page, size)
    return json_response(playlist_view_json(view, share_url(request, playlists, view.playlist.share_token)))


async def rename_playlist(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    body = validate(PlaylistRename, await read_json_object(request))
    info = await playlists.rename(owner, request.match_info["playlist_id"], body.name)
    return json_response(_out(request, playlists, info))


async def delete_playlist(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    await playlists.delete(owner, request.match_info["playlist_id"])
    return web.Response(status=204)


async def add_track(request: web.Request) -> web.Response:
    """201 when added; 200 when the song was there already (adding twice adds once)."""
    owner, playlists = key_owner(request), playlists_of(request)
    body = validate(PlaylistTrack, await read_json_object(request))
    pid = request.match_info["playlist_id"]
    added = await playlists.add(owner, pid, body.track_id)
    info = await playlists.get(owner, pid)
    return json_response({"added": added, "playlist": _out(request, playlists, info)}, status=201 if added else 200)


async def remove_track(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    if not await playlists.remove(owner, request.match_info["playlist_id"], _track_id(request)):
        raise errors.TrackNotFound("That song is not in this playlist.")
    return web.Response(status=204)


async def move_track(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    body = validate(PlaylistMove, await read_json_object(request))
    info = await playlists.move(
        owner, request.match_info["playlist_id"], body.track_id, body.position, version=body.version
    )
    return json_response(_out(request, playlists, info))


async def export_playlist(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    fmt = request.query.get("format", "csv")
    if fmt not in FORMATS:
        raise Problem(
            400,
            f"Query parameter 'format' must be one of {', '.join(FORMATS)}.",
            code="invalid_query",
            errors=[{"location": "query.format", "message": f"must be one of {', '.join(FORMATS)}"}],
        )
    # One file, however long the playlist (the API has no document limit).
    [file] = await playlists.export(owner, request.match_info["playlist_id"], fmt, max_bytes=2**62)
    return web.Response(
        body=file.data,
        headers={
            "Content-Type": file.content_type,
            "Content-Disposition": f'attachment; filename="{file.filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


async def share_playlist(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    share = await playlists.share(owner, request.match_info["playlist_id"])
    url = share_url(request, playlists, share.token)
    assert url is not None
    return json_response(share_json(share, url))


async def unshare_playlist(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    await playlists.unshare(owner, request.match_info["playlist_id"])
    return web.Response(status=204)


async def playlist_radio(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    body = validate(PlaylistRadio, await read_json_object(request))
    step = await playlists.start_radio(owner, request.match_info["playlist_id"], diversity=body.diversity)
    return json_response(radio_json(step), status=201)


async def playlist_youtube(request: web.Request) -> web.Response:
    owner, playlists = key_owner(request), playlists_of(request)
    return json_response(youtube_play_json(await playlists.youtube(owner, request.match_info["playlist_id"])))


async def save_to_spotify(request: web.Request) -> web.Response:
    """201 with the new Spotify playlist; 409 with `authorize_url` while the key has not connected a
    Spotify account (open it in a browser, then call again); 403 when Spotify refuses (allow-list)."""
    owner = key_owner(request)
    playlists_of(request)
    saved = await spotify_of(request).save(owner, request.match_info["playlist_id"])
    return json_response(spotify_saved_json(saved), status=201)


async def disconnect_spotify(request: web.Request) -> web.Response:
    owner = key_owner(request)
    service = request.app[services_key].spotify_save
    if service is not None:
        await service.disconnect(owner)
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    router = app.router
    base = f"{API}/playlists"
    one = f"{base}/{PLAYLIST_ID}"
    router.add_get(base, list_playlists)
    router.add_post(base, create_playlist)
    router.add_get(one, get_playlist)
    router.add_patch(one, rename_playlist)
    router.add_delete(one, delete_playlist)
    router.add_post(f"{one}/tracks", add_track)
    router.add_delete(f"{one}/tracks/{TRACK_ID}", remove_track)
    router.add_post(f"{one}/move", move_track)
    router.add_get(f"{one}/export", export_playlist)
    router.add_post(f"{one}/share", share_playlist)
    router.add_delete(f"{one}/share", unshare_playlist)
    router.add_post(f"{one}/radio", playlist_radio)
    router.add_get(f"{one}/youtube", playlist_youtube)
    router.add_post(f"{one}/spotify", save_to_spotify)
    router.add_delete(f"{API}/spotify", disconnect_spotify)
