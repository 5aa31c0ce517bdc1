"""The web page's identity: a signed session cookie, and CSRF protection for its forms.

The page and the JSON API are two doors with two locks:

- the **page** (`/`, `/track/…`, `/radio…`) identifies a browser by a session cookie — a random
  128-bit id, signed (itsdangerous) so that it cannot be forged, `HttpOnly` and `SameSite=Lax`.
  Radios started on the page belong to that session; every state-changing form must come from this
  site (an `Origin` header naming this host: a missing or `null` Origin is refused) and carry the
  session's CSRF token;
- the **API** (`/api/…`) identifies a client by its API key (`API_KEYS`); without keys configured
  it is open, and an API radio's unguessable id is its only key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import hdrs, web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from bot.http.config import API_PREFIX, UNLIMITED_PATHS
from bot.http.keys import config_key
from bot.http.problems import Problem
from bot.http.server import read_body

log = logging.getLogger(__name__)

COOKIE = "encore_session"
MAX_AGE = 180 * 24 * 3600  # seconds
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class WebSessions:
    secret: bytes
    secure_cookie: bool = False  # set the Secure flag (the page is served over HTTPS)

    def _signer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt="encore-session")

    def sign(self, session_id: str) -> str:
        return str(self._signer().dumps(session_id))

    def verify(self, cookie: str | None) -> str | None:
        """The session id in a cookie, or None when it is missing, forged or expired."""
        if not cookie or len(cookie) > 256:
            return None
        try:
            value = self._signer().loads(cookie, max_age=MAX_AGE)
        except BadSignature:
            return None
        return value if isinstance(value, str) and 16 <= len(value) <= 64 else None

    def csrf_token(self, session_id: str) -> str:
        return hmac.new(self.secret, b"csrf:" + session_id.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session_id: str, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token, self.csrf_token(session_id))


sessions_key = web.AppKey("web_sessions", WebSessions)
session_key = web.RequestKey("web_session_id", str)


def session_id(request: web.Request) -> str:
    """This browser's session id (the middleware gives every page request one)."""
    value = request.get(session_key)
    if value is None:
        raise RuntimeError("session_middleware did not run for this route")
    return value


def csrf_token(request: web.Request) -> str:
    return request.app[sessions_key].csrf_token(session_id(request))


def _is_page(request: web.Request) -> bool:
    return not (
        request.path.startswith(API_PREFIX) or request.path.startswith("/static/") or request.path in UNLIMITED_PATHS
    )


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Page requests get a session (a new one, set as a cookie on the answer, when there is none)."""
    if not _is_page(request) or sessions_key not in request.app:
        return await handler(request)
    sessions = request.app[sessions_key]
    current = sessions.verify(request.cookies.get(COOKIE))
    fresh = current is None
    request[session_key] = current or secrets.token_urlsafe(16)
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects (303 after a form) carry the cookie too
        if fresh:
            _set_cookie(exc, sessions, request[session_key])
        raise
    if fresh:
        _set_cookie(response, sessions, request[session_key])
    return response


def _set_cookie(response: web.StreamResponse, sessions: WebSessions, sid: str) -> None:
    response.set_cookie(
        COOKIE,
        sessions.sign(sid),
        max_age=MAX_AGE,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=sessions.secure_cookie,
    )


def require_this_site(request: web.Request) -> None:
    """Refuse (403) a state-changing form whose Origin is not this site — a missing or `null` one too."""
    origin = request.headers.get(hdrs.ORIGIN)
    expected = request.app[config_key].public_origin or f"{request.scheme}://{request.host}"
    if not origin or origin == "null" or origin != expected:
        log.info("form refused: origin %r, expected %r", (origin or "")[:100], expected)
        raise Problem(403, "Forms can only be sent from this site.", code="cross_site_form")


def require_csrf(request: web.Request, token: object) -> None:
    """Refuse (403) a form without this session's CSRF token."""
    if not request.app[sessions_key].csrf_ok(session_id(request), token):
        raise Problem(403, "This form has expired. Reload the page and try again.", code="csrf_token_invalid")


async def require_form_from_this_site(request: web.Request) -> Mapping[str, str | bytes | bytearray | web.FileField]:
    """The posted (small) form, when it comes from this site with the session's CSRF token."""
    require_this_site(request)
    form = await read_body(request, request.post, request.app[config_key].body_timeout)
    require_csrf(request, form.get("csrf"))
    return form
