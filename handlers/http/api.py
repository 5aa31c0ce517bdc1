"""The JSON API under /api/v1 (aiohttp views), described by handlers/http/openapi.json.

Views read and validate input, call one service, and turn the DTO into JSON. Errors are raised
as ``bot.http.problems.Problem`` (or as domain errors from ``services.errors``) and rendered as
RFC 9457 problem details by the app's middleware.
"""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from bot.http.cache import ResponseCache
from bot.http.config import WebConfig
from bot.http.keys import body_limits_key, config_key, metrics_key, services_key
from bot.http.middlewares import valid_key_hash
from bot.http.problems import Problem
from bot.http.ratelimit import client_id
from handlers.http.params import (
    ID,
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    RADIO_ID,
    clean_query,
    float_param,
    int_param,
    path_id,
    query_error,
    read_json_object,
    read_upload,
    validate,
)
from handlers.http.render import (
    analysis_json,
    card_json,
    dumps,
    guess_json,
    json_response,
    radio_json,
    recommendation_json,
    search_json,
)
from handlers.http.schemas import AudioFeatures, RadioFeedback, RadioStart
from services import errors
from services.dto import FEATURE_RANGES, Listener, Recommendation, Resolution, ResolutionKind
from services.radio import with_deezer

API = "/api/v1"
OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"

similar_cache_key = web.AppKey("similar_cache", ResponseCache)
openapi_key = web.AppKey("openapi", bytes)

# ---------------------------------------------------------------------------------------------
# Views


async def search_tracks(request: web.Request) -> web.Response:
    raw = request.query.get("q")
    if raw is None:
        raise query_error("q", "is required")
    if not 1 <= len(raw) <= MAX_QUERY_CHARS:
        raise query_error("q", f"must be 1 to {MAX_QUERY_CHARS} characters")
    limit = int_param(request, "limit", 10, 1, MAX_LIMIT)
    query = clean_query(raw)
    if not query:
        empty = Resolution(kind=ResolutionKind.INVALID, message="Type a song name or paste a Spotify link.")
        return json_response(search_json(query, empty))
    tracks = request.app[services_key].tracks
    try:
        resolution = await tracks.resolve(query, user_id=None, limit=limit)
    except (errors.UnsupportedInput, errors.InvalidInput) as exc:
        kind = "unsupported" if isinstance(exc, errors.UnsupportedInput) else "invalid"
        resolution = Resolution(kind=ResolutionKind(kind), message=exc.message)
    return json_response(search_json(query, resolution))


async def get_track(request: web.Request) -> web.Response:
    track_id = path_id(request, "track_id")
    card = await request.app[services_key].tracks.card(track_id, user_id=None)
    if card.genre is not None and card.genre.model_version:
        request.app[metrics_key].model_version_seen = card.genre.model_version
    return json_response(card_json(card))


async def similar_tracks(request: web.Request) -> web.Response:
    track_id = path_id(request, "track_id")
    limit = int_param(request, "limit", 10, 1, MAX_LIMIT)
    diversity = float_param(request, "diversity", 0.0, 1.0)
    recommendations = request.app[services_key].recommendations

    def payload(recs: list[Recommendation], note: str | None) -> bytes:
        body = {
            "track_id": track_id,
            "diversity": diversity,
            "items": [recommendation_json(r) for r in recs],
            "note": note,
        }
        return dumps(body)  # orjson: a tenth of json.dumps's time (15 % of a /similar answer's CPU)

    async def compute() -> bytes:
        return payload(await recommendations.similar(track_id, limit, user_id=None, diversity=diversity), None)

    cache = request.app.get(similar_cache_key)
    try:
        if cache is None:
            body = await compute()
        else:
            body, outcome = await cache.get_or_compute((track_id, limit, diversity), compute)
            request.app[metrics_key].cache_lookup("similar", outcome)
    except errors.NoFeatures as exc:
        # The track exists but cannot be placed yet: nothing similar known. Not cached, since its
        # features may be found any moment (opening its card analyses its preview).
        body = payload([], exc.message or "No audio features are known for this track.")
    return web.Response(body=body, content_type="application/json")


async def guess_genre(request: web.Request) -> web.Response:
    body = validate(AudioFeatures, await read_json_object(request)).model_dump(exclude_none=True)
    artists, title = body.pop("artists", None), body.pop("title", None)
    trio = ("key", "mode", "time_signature")
    if not all(name in body for name in trio):  # short of all three: the nine values alone (head: analysis)
        for name in trio:
            body.pop(name, None)
    guess = await request.app[services_key].genre.guess(body, artists=artists, title=title)
    if guess.model_version:
        request.app[metrics_key].model_version_seen = guess.model_version
    return json_response(guess_json(guess))


def api_listener(request: web.Request) -> Listener:
    """Who is asking: the API key presented (radios bound to it), or the keyless API ("open" radios)."""
    key_hash = valid_key_hash(request)
    return Listener.api_key(key_hash) if key_hash else Listener.anonymous()


def radio_path_id(request: web.Request) -> str:
    return request.match_info["radio_id"]


def radio_conflict(exc: errors.RadioConflict) -> Problem:
    """409 with the radio as it stands now (the answer was not counted)."""
    return Problem(409, exc.message, code=exc.code, radio=radio_json(exc.step))


async def start_radio(request: web.Request) -> web.Response:
    body = validate(RadioStart, await read_json_object(request))
    radio = request.app[services_key].radio
    step = await radio.start(body.track_id, listener=api_listener(request), diversity=body.diversity)
    return json_response(radio_json(await with_deezer(step, request.app[services_key].tracks)), status=201)


async def radio_feedback(request: web.Request) -> web.Response:
    radio_id = radio_path_id(request)
    body = validate(RadioFeedback, await read_json_object(request))
    radio = request.app[services_key].radio
    try:
        step = await radio.feedback(radio_id, body.track_id, body.action, listener=api_listener(request))
    except errors.RadioConflict as exc:
        raise radio_conflict(exc) from None
    return json_response(radio_json(await with_deezer(step, request.app[services_key].tracks)))


async def get_radio(request: web.Request) -> web.Response:
    step = await request.app[services_key].radio.current(radio_path_id(request), listener=api_listener(request))
    return json_response(radio_json(await with_deezer(step, request.app[services_key].tracks)))


async def stop_radio(request: web.Request) -> web.Response:
    radio = request.app[services_key].radio
    return json_response(radio_json(await radio.stop(radio_path_id(request), listener=api_listener(request))))


# Room for the multipart framing around the file (boundaries, part headers, a short field or two).
MULTIPART_OVERHEAD = 64 * 1024


async def analyze(request: web.Request) -> web.Response:
    """POST a song as multipart (field `file`): what it sounds like, similar tracks, a radio seed."""
    analysis = request.app[services_key].analysis
    if analysis is None:
        raise Problem(503, "Analysing recordings is switched off here.", code="analysis_off")
    upload = await read_upload(request, "file", analysis.max_bytes)
    try:
        result = await analysis.analyse(
            upload.file,
            identity=client_id(request),
            file_name=upload.filename,
            mime_type=upload.content_type,
        )
    finally:
        upload.close()
    return json_response(analysis_json(result))


def openapi_document_bytes() -> bytes:
    """handlers/http/openapi.json with the audio features' ranges from the one table the validators and
    the genre model use (so the document cannot drift from what is accepted)."""
    doc = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    properties = doc["components"]["schemas"]["AudioFeatures"]["properties"]
    for name, (low, high) in FEATURE_RANGES.items():
        if properties.get(name, {}).get("type") in ("number", "integer"):
            properties[name]["minimum"], properties[name]["maximum"] = _number(low), _number(high)
    return json.dumps(doc, ensure_ascii=False).encode()


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[openapi_key], content_type="application/json")


def setup_routes(app: web.Application) -> None:
    config: WebConfig = app[config_key]
    app[openapi_key] = openapi_document_bytes()
    if config.similar_cache_ttl > 0:
        cache = ResponseCache(config.similar_cache_ttl, config.similar_cache_size, config.similar_cache_stale)
        app[similar_cache_key] = cache
        app[metrics_key].watch_cache_size("similar", lambda: len(cache))

        async def close_cache(_: web.Application) -> None:
            await cache.close()

        app.on_cleanup.append(close_cache)
    router = app.router
    router.add_get("/api/openapi.json", openapi_document)
    router.add_get(f"{API}/tracks/search", search_tracks)
    router.add_get(f"{API}/tracks/{ID % 'track_id'}", get_track)
    router.add_get(f"{API}/tracks/{ID % 'track_id'}/similar", similar_tracks)
    router.add_post(f"{API}/genre", guess_genre)
    router.add_post(f"{API}/radio", start_radio)
    router.add_get(f"{API}/radio/{RADIO_ID}", get_radio)
    router.add_post(f"{API}/radio/{RADIO_ID}/feedback", radio_feedback)
    router.add_post(f"{API}/radio/{RADIO_ID}/stop", stop_radio)
    router.add_post(f"{API}/analyze", analyze)
    app[body_limits_key][f"{API}/analyze"] = config.max_upload_bytes + MULTIPART_OVERHEAD
