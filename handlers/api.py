"""The JSON API under /api/v1 (aiohttp views), described by handlers/openapi.json.

Views read and validate input, call one service, and turn the DTO into JSON. Errors are raised
as ``bot.web.Problem`` (or as domain errors from ``services.errors``) and rendered as RFC 9457
problem details by the app's middleware.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from bot.web import Problem as Problem
from bot.web import WebConfig, container_key, metrics_key, openapi_key
from services import errors
from services.dto import (
    GenreGuess,
    RadioStep,
    Recommendation,
    Resolution,
    ResolutionKind,
    TrackCard,
    TrackInfo,
)

API = "/api/v1"
MAX_ID = 10**18 - 1  # ids are at most 18 digits (they fit a signed 64-bit column)
ID = r"{%s:[0-9]{1,18}}"
MAX_QUERY_CHARS = 200
MAX_LIMIT = 50
_INT_RE = re.compile(r"[0-9]{1,6}")
_FLOAT_RE = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
M = TypeVar("M", bound=BaseModel)


# ---------------------------------------------------------------------------------------------
# Input models


def _whole(value: float) -> float:
    if not float(value).is_integer():
        raise ValueError("must be a whole number")
    return float(value)


def _unit(description: str) -> Any:
    return Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False, description=description)


Unit = Annotated[float, _unit("0 … 1")]
Whole = Annotated[float, Field(strict=True, allow_inf_nan=False), AfterValidator(_whole)]


class AudioFeatures(BaseModel):
    """Spotify-style audio features, each in its documented range."""

    model_config = ConfigDict(extra="forbid", strict=True)

    danceability: Unit
    energy: Unit
    key: Annotated[Whole, Field(ge=-1, le=11)]
    loudness: Annotated[float, Field(strict=True, ge=-60.0, le=5.0, allow_inf_nan=False)]
    mode: Annotated[Whole, Field(ge=0, le=1)]
    speechiness: Unit
    acousticness: Unit
    instrumentalness: Unit
    liveness: Unit
    valence: Unit
    tempo: Annotated[float, Field(strict=True, ge=0.0, le=300.0, allow_inf_nan=False)]
    time_signature: Annotated[Whole, Field(ge=0, le=7)]


TrackId = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]


class RadioStart(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    track_id: TrackId
    diversity: Annotated[float | None, Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)] = None


class RadioFeedback(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    track_id: TrackId
    action: Literal["like", "skip", "next"]


# ---------------------------------------------------------------------------------------------
# Input helpers


def _query_error(name: str, message: str) -> Problem:
    return Problem(
        400,
        f"Query parameter '{name}' {message}.",
        code="invalid_query",
        errors=[{"location": f"query.{name}", "message": message}],
    )


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _INT_RE.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise _query_error(name, f"must be a whole number from {lo} to {hi}")
    return int(raw)


def float_param(request: web.Request, name: str, lo: float, hi: float) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    value = float(raw) if _FLOAT_RE.fullmatch(raw) else math.nan
    if not lo <= value <= hi:  # NaN fails too
        raise _query_error(name, f"must be a number from {lo:g} to {hi:g}")
    return value


def path_id(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])
    if not 1 <= value <= MAX_ID:
        raise errors.TrackNotFound("No such track.") if name == "track_id" else errors.RadioNotFound("No such radio.")
    return value


def clean_query(raw: str) -> str:
    return " ".join(_CONTROL_RE.sub(" ", raw).split())


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json_object(request: web.Request) -> dict[str, Any]:
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise Problem(415, "Send the body as application/json.", code="unsupported_media_type")
    raw = await request.read()
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise Problem(400, "The body is not valid JSON.", code="malformed_json") from None
    if not isinstance(data, dict):
        raise Problem(400, "The body must be a JSON object.", code="malformed_json")
    return data


def validate(model: type[M], data: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {
                "location": "body." + ".".join(str(p) for p in err["loc"]) if err["loc"] else "body",
                "message": err["msg"],
            }
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise Problem(422, "The body has invalid fields.", code="validation_failed", errors=problems) from None


# ---------------------------------------------------------------------------------------------
# DTO → JSON


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def track_json(track: TrackInfo) -> dict[str, Any]:
    features = None
    if track.features is not None:
        features = {name: _finite(value) for name, value in track.features.items()}
    return {
        "id": track.id,
        "spotify_id": track.spotify_id,
        "name": track.name,
        "artists": list(track.artists),
        "title": track.title,
        "album": track.album,
        "duration_ms": track.duration_ms,
        "explicit": track.explicit,
        "popularity": track.popularity,
        "genres": list(track.genres),
        "features": features,
        "source": track.source,
        "spotify_url": track.spotify_url,
        "youtube_search_url": track.youtube_search_url,
    }


def _pairs(pairs: tuple[tuple[str, float], ...], label: str) -> list[dict[str, Any]]:
    return [{label: name, "probability": _finite(p) or 0.0} for name, p in pairs]


def guess_json(guess: GenreGuess) -> dict[str, Any]:
    return {
        "genre": guess.genre,
        "probability": _finite(guess.probability) or 0.0,
        "top": _pairs(guess.top, "genre"),
        "family": guess.family,
        "family_probability": _finite(guess.family_probability) or 0.0,
        "family_top": _pairs(guess.family_top, "family"),
        "confident": guess.confident,
        "model_version": guess.model_version,
    }


def card_json(card: TrackCard) -> dict[str, Any]:
    return {
        "track": track_json(card.track),
        "genre": guess_json(card.genre) if card.genre is not None else None,
        "links": {
            "spotify": card.track.spotify_url,
            "youtube": card.youtube.url,
            "youtube_is_search": card.youtube.is_search,
            "youtube_video_id": card.youtube.video_id,
        },
        "note": card.note,
        "liked": card.liked,
    }


def recommendation_json(rec: Recommendation) -> dict[str, Any]:
    return {"track": track_json(rec.track), "score": _finite(rec.score) or 0.0, "reason": rec.reason}


def radio_json(step: RadioStep) -> dict[str, Any]:
    return {
        "radio_id": step.radio_id,
        "track": track_json(step.track) if step.track is not None else None,
        "position": step.position,
        "likes": step.likes,
        "skips": step.skips,
        "stopped": step.stopped,
    }


def search_json(query: str, resolution: Resolution) -> dict[str, Any]:
    return {
        "query": query,
        "kind": str(resolution.kind),
        "items": [track_json(t) for t in resolution.tracks],
        "message": resolution.message,
        "notice": resolution.notice,
    }


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False, allow_nan=False).encode(),
        status=status,
        content_type="application/json",
    )


def _service(request: web.Request, name: str) -> Any:
    service = getattr(request.app[container_key], name)
    if service is None:
        raise Problem(
            503, f"The {name} service is not running.", code="service_unavailable", headers={"Retry-After": "30"}
        )
    return service


# ---------------------------------------------------------------------------------------------
# A small TTL cache for /similar answers (the hot endpoint)


@dataclass
class ResponseCache:
    """Encoded answers by key, fresh for ``ttl`` seconds (LRU beyond ``size`` entries).

    - Concurrent misses on one key share a single computation (no stampede).
    - Stale-while-revalidate: for ``stale_for`` seconds after it expires an entry is still
      answered at once while a background task recomputes it (one refresh at a time), so popular
      keys never make a client wait for the recommender. A failed refresh drops the entry.
    """

    ttl: float
    size: int
    stale_for: float = 0.0
    clock: Callable[[], float] = time.monotonic
    _items: OrderedDict[tuple[Any, ...], tuple[float, bytes]] = field(default_factory=OrderedDict)
    _inflight: dict[tuple[Any, ...], asyncio.Future[bytes]] = field(default_factory=dict)
    # Background refreshes run one at a time: spread out, they never stall the loop in a burst.
    _refresh_gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    def lookup(self, key: tuple[Any, ...]) -> tuple[bytes | None, bool]:
        """(body, fresh); (None, False) when absent or too old."""
        item = self._items.get(key)
        if item is None:
            return None, False
        fresh_until, body = item
        now = self.clock()
        if now > fresh_until + self.stale_for:
            del self._items[key]
            return None, False
        self._items.move_to_end(key)
        return body, now <= fresh_until

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        body, fresh = self.lookup(key)
        return body if fresh else None

    def put(self, key: tuple[Any, ...], body: bytes) -> None:
        self._items[key] = (self.clock() + self.ttl, body)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    async def get_or_compute(self, key: tuple[Any, ...], compute: Callable[[], Awaitable[bytes]]) -> tuple[bytes, str]:
        """The body and how it was found: ``hit``, ``stale`` (answered, refresh started),
        ``miss`` (computed) or ``coalesced`` (waited for a computation already running)."""
        body, fresh = self.lookup(key)
        if body is not None and fresh:
            return body, "hit"
        task = self._inflight.get(key)
        if body is not None:
            if task is None:

                async def refresh() -> bytes:
                    async with self._refresh_gate:
                        return await compute()

                self._start(key, refresh)
            return body, "stale"
        outcome = "coalesced"
        if task is None:
            outcome = "miss"
            task = self._start(key, compute)
        return await asyncio.shield(task), outcome

    def _start(self, key: tuple[Any, ...], compute: Callable[[], Awaitable[bytes]]) -> asyncio.Future[bytes]:
        # A task of its own: a client that hangs up does not cancel the work others wait for.
        task = asyncio.ensure_future(compute())
        self._inflight[key] = task
        task.add_done_callback(lambda done: self._settle(key, done))
        return task

    def _settle(self, key: tuple[Any, ...], task: asyncio.Future[bytes]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:  # errors are not cached
            self._items.pop(key, None)
        else:
            self.put(key, task.result())

    async def close(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._items.clear()


similar_cache_key = web.AppKey("similar_cache", ResponseCache)


# ---------------------------------------------------------------------------------------------
# Views


async def search_tracks(request: web.Request) -> web.Response:
    raw = request.query.get("q")
    if raw is None:
        raise _query_error("q", "is required")
    if not 1 <= len(raw) <= MAX_QUERY_CHARS:
        raise _query_error("q", f"must be 1 to {MAX_QUERY_CHARS} characters")
    limit = int_param(request, "limit", 10, 1, MAX_LIMIT)
    query = clean_query(raw)
    if not query:
        empty = Resolution(kind=ResolutionKind.INVALID, message="Type a song name or paste a Spotify link.")
        return json_response(search_json(query, empty))
    tracks = _service(request, "tracks")
    try:
        resolution = await tracks.resolve(query, user_id=None, limit=limit)
    except (errors.UnsupportedInput, errors.InvalidInput) as exc:
        kind = "unsupported" if isinstance(exc, errors.UnsupportedInput) else "invalid"
        resolution = Resolution(kind=ResolutionKind(kind), message=exc.message)
    return json_response(search_json(query, resolution))


async def get_track(request: web.Request) -> web.Response:
    track_id = path_id(request, "track_id")
    card = await _service(request, "tracks").card(track_id, user_id=None)
    if card.genre is not None and card.genre.model_version:
        request.app[metrics_key].model_version_seen = card.genre.model_version
    return json_response(card_json(card))


async def similar_tracks(request: web.Request) -> web.Response:
    track_id = path_id(request, "track_id")
    limit = int_param(request, "limit", 10, 1, MAX_LIMIT)
    diversity = float_param(request, "diversity", 0.0, 1.0)
    recommendations = _service(request, "recommendations")

    async def compute() -> bytes:
        note = None
        try:
            recs = await recommendations.similar(track_id, limit, user_id=None, diversity=diversity)
        except errors.NoFeatures as exc:  # the track exists but cannot be placed: nothing similar known
            recs, note = [], exc.message or "No audio features are known for this track."
        payload = {
            "track_id": track_id,
            "diversity": diversity,
            "items": [recommendation_json(r) for r in recs],
            "note": note,
        }
        return json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()

    cache = request.app.get(similar_cache_key)
    if cache is None:
        body = await compute()
    else:
        body, outcome = await cache.get_or_compute((track_id, limit, diversity), compute)
        request.app[metrics_key].cache_lookup("similar", outcome)
    return web.Response(body=body, content_type="application/json")


async def guess_genre(request: web.Request) -> web.Response:
    features = validate(AudioFeatures, await read_json_object(request))
    guess = await _service(request, "genre").guess(features.model_dump())
    if guess.model_version:
        request.app[metrics_key].model_version_seen = guess.model_version
    return json_response(guess_json(guess))


async def start_radio(request: web.Request) -> web.Response:
    body = validate(RadioStart, await read_json_object(request))
    step = await _service(request, "radio").start(body.track_id, user_id=None, diversity=body.diversity)
    return json_response(radio_json(step), status=201)


async def radio_feedback(request: web.Request) -> web.Response:
    radio_id = path_id(request, "radio_id")
    body = validate(RadioFeedback, await read_json_object(request))
    try:
        step = await _service(request, "radio").feedback(radio_id, body.track_id, body.action, user_id=None)
    except errors.InvalidInput as exc:
        raise Problem(409, exc.message or "That track is not the radio's current track.", code="stale_track") from None
    return json_response(radio_json(step))


async def get_radio(request: web.Request) -> web.Response:
    radio_id = path_id(request, "radio_id")
    return json_response(radio_json(await _service(request, "radio").current(radio_id, user_id=None)))


async def stop_radio(request: web.Request) -> web.Response:
    radio_id = path_id(request, "radio_id")
    return json_response(radio_json(await _service(request, "radio").stop(radio_id, user_id=None)))


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[openapi_key], content_type="application/json")


def setup_routes(app: web.Application, config: WebConfig) -> None:
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
    router.add_get(f"{API}/radio/{ID % 'radio_id'}", get_radio)
    router.add_post(f"{API}/radio/{ID % 'radio_id'}/feedback", radio_feedback)
    router.add_post(f"{API}/radio/{ID % 'radio_id'}/stop", stop_radio)
