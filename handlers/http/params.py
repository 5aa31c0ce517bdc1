"""Reading requests: query parameters, path ids, JSON bodies, free text; errors become problems."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.http.problems import Problem
from services import errors

MAX_ID = 10**18 - 1  # ids are at most 18 digits (they fit a signed 64-bit column)
ID = r"{%s:[0-9]{1,18}}"
# A radio's public id: 22 URL-safe characters (128 random bits).
RADIO_ID = r"{radio_id:[A-Za-z0-9_-]{22}}"
MAX_QUERY_CHARS = 200
MAX_LIMIT = 50
_INT_RE = re.compile(r"[0-9]{1,6}")
_FLOAT_RE = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
M = TypeVar("M", bound=BaseModel)


def query_error(name: str, message: str) -> Problem:
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
        raise query_error(name, f"must be a whole number from {lo} to {hi}")
    return int(raw)


def float_param(request: web.Request, name: str, lo: float, hi: float) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    value = float(raw) if _FLOAT_RE.fullmatch(raw) else math.nan
    if not lo <= value <= hi:  # NaN fails too
        raise query_error(name, f"must be a number from {lo:g} to {hi:g}")
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
