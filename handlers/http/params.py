"""Reading requests: query parameters, path ids, JSON bodies, free text; errors become problems."""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, BinaryIO, TypeVar, cast

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from bot.http.keys import config_key
from bot.http.problems import Problem
from bot.http.server import read_body
from services import errors

MAX_ID = 10**18 - 1  # ids are at most 18 digits (they fit a signed 64-bit column)
ID = r"{%s:[0-9]{1,18}}"
# A radio's public id: 22 URL-safe characters (128 random bits).
RADIO_ID = r"{radio_id:[A-Za-z0-9_-]{22}}"
MAX_QUERY_CHARS = 200
MAX_LIMIT = 50
MAX_LISTED_ERRORS = 20  # a body of a thousand unknown keys gets a short answer
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
    return value + 0.0  # -0 is 0


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
    raw = await read_body(request, request.read, request.app[config_key].body_timeout)
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
        shown = problems[:MAX_LISTED_ERRORS]
        extra: dict[str, Any] = {"more_errors": len(problems) - len(shown)} if len(problems) > len(shown) else {}
        raise Problem(422, "The body has invalid fields.", code="validation_failed", errors=shown, **extra) from None


@dataclass
class Upload:
    """A file read from a multipart body: spooled in memory up to 1 MB, then to a temporary file."""

    file: BinaryIO
    filename: str | None
    content_type: str | None
    size: int
    fields: dict[str, str] = field(default_factory=dict)  # the small text fields sent before the file

    def close(self) -> None:
        self.file.close()


UPLOAD_CHUNK = 64 * 1024
SPOOL_BYTES = 1024 * 1024
MAX_TEXT_FIELD = 1024


async def read_upload(request: web.Request, field: str, max_bytes: int) -> Upload:
    """The file in multipart field `field`, read as a stream and refused (413) as soon as it passes
    `max_bytes`: the whole body is never in memory, and no other route's body limit is raised. Other
    fields count towards the same cap. 415 when the body is not multipart, 400 when the field is
    missing, 422 when the file is empty."""
    if request.content_type != "multipart/form-data":
        raise Problem(415, f"Send the file as multipart/form-data, in the field '{field}'.", code="not_multipart")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, HttpProcessingError):
        raise Problem(400, "The multipart body could not be read.", code="malformed_multipart") from None
    seen = 0
    fields: dict[str, str] = {}
    stall = request.app[config_key].body_timeout  # an upload may be slow, but it must not stall
    try:
        while True:
            part = await reader.next()
            if part is None:
                raise Problem(400, f"The body has no '{field}' field with a file.", code="missing_file")
            if not isinstance(part, BodyPartReader):  # a nested multipart: not ours
                raise Problem(400, "Nested multipart bodies are not accepted.", code="malformed_multipart")
            target = part.name == field
            spool: BinaryIO = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))  # noqa: SIM115
            try:
                while chunk := await read_body(request, partial(part.read_chunk, UPLOAD_CHUNK), stall):
                    seen += len(chunk)
                    if seen > max_bytes:
                        raise Problem(
                            413,
                            f"The file is larger than {max_bytes / 1_048_576:g} MB.",
                            code="audio_too_large",
                            max_bytes=max_bytes,
                        )
                    if target or (part.filename is None and spool.tell() + len(chunk) <= MAX_TEXT_FIELD):
                        spool.write(chunk)
            except BaseException:
                spool.close()
                raise
            if not target:
                if part.name and part.filename is None:
                    spool.seek(0)
                    fields[part.name] = spool.read().decode("utf-8", "replace")
                spool.close()
                continue
            size = spool.tell()
            if size == 0:
                spool.close()
                raise Problem(422, "The file is empty.", code="empty_file")
            spool.seek(0)
            content_type = part.headers.get(hdrs.CONTENT_TYPE)
            return Upload(spool, part.filename, content_type, size, fields)
    except (ValueError, AssertionError, HttpProcessingError) as exc:  # broken boundary, headers, encoding
        raise Problem(400, "The multipart body could not be read.", code="malformed_multipart") from exc
