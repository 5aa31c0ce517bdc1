"""The web page: server-rendered with jinja2; a little vanilla JavaScript only makes it smoother.

    GET  /                         search box; with ?q= the results (a clear match goes straight to its card)
    GET  /track/{id}               the track card: genre chart, players/links, similar tracks, "start radio"
    POST /radio                    start a radio from a track (form), then → GET /radio/{id}
    GET  /radio/{id}               the radio's current track with 👍 / 👎 / next
    POST /radio/{id}/feedback      like / skip / next (form), then → GET /radio/{id}
    POST /analyze                  a recording (multipart form, field "file"), then → GET /track/{id}?via=…

Everything works without JavaScript (plain links and forms, post/redirect/get). Radios started
here belong to the browser's session (bot/http/session.py): another browser gets 404. Every form
must come from this site (Origin) and carry the session's CSRF token; nothing is done on GET. A
card plays its 30-s preview in an ``<audio>`` element when the preview URL's origin is one of
``WebConfig.media_origins``, which are also the only origins the Content-Security-Policy's
``media-src`` allows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.http.keys import body_limits_key, config_key, jinja_key, services_key, static_urls_key
from bot.http.problems import Problem
from bot.http.ratelimit import client_id
from bot.http.session import csrf_token, require_csrf, require_form_from_this_site, require_this_site, session_id
from handlers.http.api import MULTIPART_OVERHEAD
from handlers.http.params import ID, MAX_ID, MAX_QUERY_CHARS, RADIO_ID, clean_query, read_upload
from services import errors
from services.dto import Listener, PlaylistInfo, Recommendation, Resolution, ResolutionKind, TrackCard
from services.protocols import RadioAction

log = logging.getLogger(__name__)

SIMILAR_ON_CARD = 6
CSP = (
    "default-src 'self'; img-src 'self' data: https://i.scdn.co https://i.ytimg.com; "
    "frame-src https://open.spotify.com https://www.youtube-nocookie.com; "
    "style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
VIA = {"tags": "Your file's tags named this song.", "sound": "Here's what your recording sounds like."}


def csp(media_origins: tuple[str, ...]) -> str:
    """The page's policy; `media-src` allows exactly the preview origins (nothing else plays)."""
    media = " ".join(media_origins) or "'none'"
    return f"{CSP}; media-src {media}"


def origin_allowed(url: str, origins: tuple[str, ...]) -> bool:
    """Whether `url` is served from one of `origins` ("https://host[:port]", or "https://*.domain")."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    for origin in origins:
        allowed = urlsplit(origin)
        if allowed.scheme != parts.scheme or not host:
            continue
        if allowed.port != port:
            continue
        pattern = (allowed.hostname or "").lower()
        if pattern == host or (allowed.netloc.startswith("*.") and host.endswith(pattern.removeprefix("*"))):
            return True
    return False


def _playable(request: web.Request, card: TrackCard) -> TrackCard:
    """The card without its preview when the page's policy would not let it play."""
    if card.preview_url and not origin_allowed(card.preview_url, request.app[config_key].media_origins):
        return dataclasses.replace(card, preview_url=None)
    return card


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("query", "")
    html = (
        request.app[jinja_key]
        .get_template(template)
        .render(static=request.app[static_urls_key], path=request.path, **context)
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": csp(request.app[config_key].media_origins),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


def _upload_on(request: web.Request) -> bool:
    return request.app[services_key].analysis is not None


def _form_id(form: Any, name: str) -> int:
    raw = form.get(name)
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
        raise Problem(400, f"The form field '{name}' must be a track id.", code="invalid_form")
    return int(raw)


async def index(request: web.Request) -> web.Response:
    raw = request.query.get("q", "")
    query = clean_query(raw[:MAX_QUERY_CHARS])
    if not query:
        return render(
            request, "index.html", query="", resolution=None, upload=_upload_on(request), csrf=csrf_token(request)
        )
    try:
        resolution = await request.app[services_key].tracks.resolve(query, user_id=None, limit=10)
    except (errors.UnsupportedInput, errors.InvalidInput) as exc:
        kind = ResolutionKind.UNSUPPORTED if isinstance(exc, errors.UnsupportedInput) else ResolutionKind.INVALID
        resolution = Resolution(kind, message=exc.message)
    if resolution.kind is ResolutionKind.TRACK and len(resolution.tracks) == 1:
        raise web.HTTPSeeOther(f"/track/{resolution.tracks[0].id}")
    return render(request, "index.html", query=query, resolution=resolution, upload=False)


async def _similar(request: web.Request, track_id: int) -> tuple[list[Recommendation], str | None]:
    recommendations = request.app[services_key].recommendations
    try:
        return list(await recommendations.similar(track_id, SIMILAR_ON_CARD, user_id=None)), None
    except (errors.NoFeatures, errors.ModelNotReady, errors.ProviderUnavailable) as exc:
        return [], exc.message or "No recommendations for this track yet."


async def track_page(request: web.Request) -> web.Response:
    track_id = int(request.match_info["track_id"])
    card = _playable(request, await request.app[services_key].tracks.card(track_id, user_id=None))
    similar, similar_note = await _similar(request, track_id)
    via = VIA.get(request.query.get("via", ""))
    return render(
        request,
        "track.html",
        card=card,
        similar=similar,
        similar_note=similar_note,
        via=via,
        csrf=csrf_token(request),
        playlists=await _own_playlists(request),
        added=ADDED.get(request.query.get("note", "")),
    )


ADDED = {"added": "Added to the playlist.", "already": "That song is in the playlist already."}


async def _own_playlists(request: web.Request) -> list[PlaylistInfo]:
    """This browser's playlists, for the card's "add to playlist" form."""
    service = request.app[services_key].playlists
    return await service.playlists(page_listener(request)) if service is not None else []


def page_listener(request: web.Request) -> Listener:
    """The browser behind this request: radios started on the page belong to its session."""
    return Listener.web(session_id(request))


async def analyze_upload(request: web.Request) -> web.Response:
    """The upload form: the recording's track page (its own, or the song its tags named)."""
    require_this_site(request)
    analysis = request.app[services_key].analysis
    if analysis is None:
        raise Problem(503, "Analysing recordings is switched off here.", code="analysis_off")
    upload = await read_upload(request, "file", analysis.max_bytes)
    try:
        require_csrf(request, upload.fields.get("csrf"))
        result = await analysis.analyse(
            upload.file, identity=client_id(request), file_name=upload.filename, mime_type=upload.content_type
        )
    finally:
        upload.close()
    via = "tags" if result.kind == "known" else "sound"
    raise web.HTTPSeeOther(f"/track/{result.card.track.id}?via={via}")


async def start_radio(request: web.Request) -> web.Response:
    form = await require_form_from_this_site(request)
    track_id = _form_id(form, "track_id")
    step = await request.app[services_key].radio.start(track_id, listener=page_listener(request))
    raise web.HTTPSeeOther(f"/radio/{step.radio_id}")


async def radio_page(request: web.Request) -> web.Response:
    """The radio as it stands; 404 for a radio that does not exist or belongs to another browser."""
    radio_id = request.match_info["radio_id"]
    step = await request.app[services_key].radio.current(radio_id, listener=page_listener(request))
    card = None
    if step.track is not None and not step.stopped:
        card = _playable(request, await request.app[services_key].tracks.card(step.track.id, user_id=None))
    return render(
        request,
        "radio.html",
        step=step,
        card=card,
        csrf=csrf_token(request),
        playlists=await _own_playlists(request) if card is not None else [],
        added=ADDED.get(request.query.get("note", "")),
    )


RADIO_ACTIONS: dict[object, RadioAction] = {"like": "like", "skip": "skip", "next": "next"}


async def radio_feedback(request: web.Request) -> web.Response:
    radio_id = request.match_info["radio_id"]
    form = await require_form_from_this_site(request)
    track_id = _form_id(form, "track_id")
    action = RADIO_ACTIONS.get(form.get("action"))
    if action is None:
        raise Problem(400, "Choose 👍, 👎 or next.", code="invalid_form")
    # Pressed twice, or an old tab: the answer is not counted; the page shows where the radio is now.
    with contextlib.suppress(errors.RadioConflict):
        await request.app[services_key].radio.feedback(radio_id, track_id, action, listener=page_listener(request))
    raise web.HTTPSeeOther(f"/radio/{radio_id}")


def setup_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/", index, name="index")
    router.add_get(f"/track/{ID % 'track_id'}", track_page, name="track")
    router.add_post("/radio", start_radio, name="radio_start")
    router.add_get(f"/radio/{RADIO_ID}", radio_page, name="radio")
    router.add_post(f"/radio/{RADIO_ID}/feedback", radio_feedback, name="radio_feedback")
    router.add_post("/analyze", analyze_upload, name="analyze")
    app[body_limits_key]["/analyze"] = app[config_key].max_upload_bytes + MULTIPART_OVERHEAD
