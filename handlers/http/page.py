"""The web page: server-rendered with jinja2; a little vanilla JavaScript only makes it smoother.

    GET  /                         search box; with ?q= the results (a clear match goes straight to its card)
    GET  /track/{id}               the track card: genre chart, players/links, similar tracks, "start radio"
    POST /radio                    start a radio from a track (form), then → GET /radio/{id}?t=<track>
    GET  /radio/{id}?t=<track>     the radio's current track with 👍 / 👎 / next
    POST /radio/{id}/feedback      like / skip / next (form), then → GET /radio/{id}?t=<next>

Everything works without JavaScript (plain links and forms, post/redirect/get). Radios made here
are anonymous (``user_id=None``).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from bot.http.keys import jinja_key, services_key, static_urls_key
from bot.http.problems import Problem
from handlers.http.params import ID, MAX_ID, MAX_QUERY_CHARS, clean_query, service
from services import errors
from services.dto import Recommendation, Resolution, ResolutionKind

log = logging.getLogger(__name__)

SIMILAR_ON_CARD = 6
CSP = (
    "default-src 'self'; img-src 'self' data: https://i.scdn.co https://i.ytimg.com; "
    "frame-src https://open.spotify.com https://www.youtube-nocookie.com; "
    "style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


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
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


def _form_id(form: Any, name: str) -> int:
    raw = form.get(name)
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
        raise Problem(400, f"The form field '{name}' must be a track id.", code="invalid_form")
    return int(raw)


def _same_origin(request: web.Request) -> None:
    """Refuse form posts made from other sites (a browser always sends Origin on POST)."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise Problem(403, "Forms can only be sent from this site.", code="cross_site_form")


async def index(request: web.Request) -> web.Response:
    raw = request.query.get("q", "")
    query = clean_query(raw[:MAX_QUERY_CHARS])
    if not query:
        return render(request, "index.html", query="", resolution=None)
    try:
        resolution = await service(request, "tracks").resolve(query, user_id=None, limit=10)
    except (errors.UnsupportedInput, errors.InvalidInput) as exc:
        kind = ResolutionKind.UNSUPPORTED if isinstance(exc, errors.UnsupportedInput) else ResolutionKind.INVALID
        resolution = Resolution(kind, message=exc.message)
    if resolution.kind is ResolutionKind.TRACK and len(resolution.tracks) == 1:
        raise web.HTTPSeeOther(f"/track/{resolution.tracks[0].id}")
    return render(request, "index.html", query=query, resolution=resolution)


async def _similar(request: web.Request, track_id: int) -> tuple[list[Recommendation], str | None]:
    recommendations = request.app[services_key].recommendations
    if recommendations is None:
        return [], "Recommendations are not available yet."
    try:
        return list(await recommendations.similar(track_id, SIMILAR_ON_CARD, user_id=None)), None
    except (errors.NoFeatures, errors.ModelNotReady, errors.ProviderUnavailable) as exc:
        return [], exc.message or "No recommendations for this track yet."


async def track_page(request: web.Request) -> web.Response:
    track_id = int(request.match_info["track_id"])
    card = await service(request, "tracks").card(track_id, user_id=None)
    similar, similar_note = await _similar(request, track_id)
    return render(request, "track.html", card=card, similar=similar, similar_note=similar_note)


async def start_radio(request: web.Request) -> web.Response:
    _same_origin(request)
    form = await request.post()
    track_id = _form_id(form, "track_id")
    step = await service(request, "radio").start(track_id, user_id=None)
    raise web.HTTPSeeOther(_radio_url(step.radio_id, step.track.id if step.track else None))


def _radio_url(radio_id: int, track_id: int | None) -> str:
    return f"/radio/{radio_id}?t={track_id}" if track_id is not None else f"/radio/{radio_id}?end=1"


async def radio_page(request: web.Request) -> web.Response:
    radio_id = int(request.match_info["radio_id"])
    raw = request.query.get("t", "")
    if not raw:
        return render(request, "radio.html", radio_id=radio_id, card=None)
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise Problem(404, "There is no such radio track.", code="track_not_found")
    card = await service(request, "tracks").card(int(raw), user_id=None)
    return render(request, "radio.html", radio_id=radio_id, card=card)


async def radio_feedback(request: web.Request) -> web.Response:
    _same_origin(request)
    radio_id = int(request.match_info["radio_id"])
    form = await request.post()
    track_id = _form_id(form, "track_id")
    action = form.get("action")
    if action not in ("like", "skip", "next"):
        raise Problem(400, "Choose 👍, 👎 or next.", code="invalid_form")
    try:
        step = await service(request, "radio").feedback(radio_id, track_id, action, user_id=None)
    except errors.InvalidInput:
        # Pressed twice, or an old tab: the radio has moved on. Show where it is now.
        raise Problem(409, "This radio has already moved on to another track.", code="stale_track") from None
    raise web.HTTPSeeOther(_radio_url(step.radio_id, step.track.id if step.track else None))


def setup_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/", index, name="index")
    router.add_get(f"/track/{ID % 'track_id'}", track_page, name="track")
    router.add_post("/radio", start_radio, name="radio_start")
    router.add_get(f"/radio/{ID % 'radio_id'}", radio_page, name="radio")
    router.add_post(f"/radio/{ID % 'radio_id'}/feedback", radio_feedback, name="radio_feedback")
