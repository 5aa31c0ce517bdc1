"""Problem details (RFC 9457): every error the web app answers, as JSON or as an HTML page."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import hdrs, web

from bot.http.config import API_PREFIX, UNLIMITED_PATHS
from bot.http.keys import jinja_key, static_urls_key
from services import audio_errors, errors

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """Raised by views for a client error; ``problem_middleware`` renders it."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
        self.title = title or HTTPStatus(status).phrase
        self.headers = dict(headers or {})
        self.extra = extra


# Domain errors → HTTP status. Views may raise a more specific Problem themselves.
ERROR_STATUS: dict[type[errors.EncoreError], int] = {
    # Sent audio: before InvalidInput, which they subclass.
    audio_errors.AudioTooLarge: 413,
    audio_errors.NotAudio: 415,
    errors.AnalysisRateLimited: 429,
    errors.TrackNotFound: 404,
    errors.RadioNotFound: 404,
    errors.RadioConflict: 409,
    errors.PlaylistNotFound: 404,
    errors.PlaylistNameTaken: 409,
    errors.PlaylistChanged: 409,
    errors.SpotifyNotConnected: 409,
    errors.SpotifyRefused: 403,
    errors.SpotifyRateLimited: 429,
    errors.SpotifyNotConfigured: 503,
    errors.InvalidInput: 422,
    errors.NoFeatures: 422,
    errors.UnsupportedInput: 422,
    errors.ModelNotReady: 503,
    errors.ProviderUnavailable: 503,
}


def problem_from_error(exc: errors.EncoreError) -> Problem:
    status = next((s for cls, s in ERROR_STATUS.items() if isinstance(exc, cls)), 422)
    # A 503 that passes (a model loading, a provider down) says when to retry; a switched-off feature does not.
    headers = {"Retry-After": "30"} if status == 503 and not isinstance(exc, errors.SpotifyNotConfigured) else None
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.AnalysisRateLimited | errors.SpotifyRateLimited):
        retry_after = max(1, math.ceil(exc.retry_after))
        headers, extra = {"Retry-After": str(retry_after)}, {"retry_after": retry_after}
    elif isinstance(exc, errors.PlaylistChanged):
        extra = {"version": exc.version}
    elif isinstance(exc, errors.SpotifyNotConnected):
        extra = {"authorize_url": exc.authorize_url, "expired": exc.expired}
    return Problem(status, exc.message or HTTPStatus(status).phrase, code=exc.code, headers=headers, **extra)


def problem_body(problem: Problem, instance: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:encore:problem:{problem.code}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": instance,
        "code": problem.code,
    }
    body.update(problem.extra)
    return body


def _wants_html(request: web.Request) -> bool:
    if request.path.startswith(API_PREFIX) or request.path in UNLIMITED_PATHS:
        return False
    return "text/html" in request.headers.get(hdrs.ACCEPT, "") or request.method == "POST"


def problem_response(request: web.Request, problem: Problem) -> web.Response:
    headers = dict(problem.headers)
    if _wants_html(request) and jinja_key in request.app:
        html = (
            request.app[jinja_key]
            .get_template("error.html")
            .render(problem=problem, static=request.app[static_urls_key], path=request.path, query="")
        )
        return web.Response(status=problem.status, text=html, content_type="text/html", headers=headers)
    text = json.dumps(problem_body(problem, request.path), ensure_ascii=False)
    headers[hdrs.CONTENT_TYPE] = PROBLEM_JSON
    return web.Response(status=problem.status, text=text, headers=headers)


def _problem_from_http(exc: web.HTTPException) -> Problem:
    status = exc.status
    detail = exc.reason or HTTPStatus(status).phrase
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        detail = f"{exc.method} is not allowed here"
    elif isinstance(exc, web.HTTPNotFound):
        detail = "There is nothing at this address."
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        detail = "The request body is too large."
    return Problem(status, detail, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(request, problem)
    except errors.EncoreError as exc:
        return problem_response(request, problem_from_error(exc))
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and the like pass through
            raise
        return problem_response(request, _problem_from_http(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise  # the client hung up: nobody to answer, nothing to log (the metrics count it)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(request, Problem(500, "Something went wrong on our side.", code="internal"))
