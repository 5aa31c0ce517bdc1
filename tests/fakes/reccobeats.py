"""A fake ReccoBeats API on 127.0.0.1.

- `GET /v1/audio-features?ids=<spotify ids, comma-separated>` answers like the real service:
  `{"content": [...]}` with one item per known track, each with ReccoBeats' own uuid as `id`, the
  Spotify link as `href`, and no `time_signature`.
- `POST /v1/analysis/audio-features` takes multipart/form-data with the file in the field
  `audioFile` and answers the nine values (acousticness … valence) as a flat JSON object. Like
  the real one it refuses a missing field or a file that is not MP3 / OGG Vorbis / AIFF / WAV
  (400), a part whose content type is not audio (415), and more than 5 MB (413). The values are
  derived from the file's hash (or taken from `analysis_answers[sha256]`), so the same file
  always gets the same answer. `fail("analysis", …)` scripts 429 with Retry-After, 5xx, or slow
  answers (timeouts).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.spotify import Failure, ScriptedServer

__all__ = ["Failure", "FakeReccoBeats"]

MAX_IDS = 40
MAX_UPLOAD = 5 * 1024 * 1024
AUDIO_TYPES = frozenset(
    {"audio/mpeg", "audio/mp3", "audio/ogg", "audio/vorbis", "audio/wav", "audio/x-wav", "audio/wave"}
    | {"audio/aiff", "audio/x-aiff"}
)


def _looks_like_audio(data: bytes) -> bool:
    return (
        data[:3] == b"ID3"
        or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)
        or (data[:4] == b"OggS" and b"vorbis" in data[:64])
        or (data[:4] == b"RIFF" and data[8:12] == b"WAVE")
        or (data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"))
    )


def analysis_for(data: bytes) -> dict[str, float]:
    """The fake's answer for a file: nine plausible values from its hash."""
    digest = hashlib.sha256(data).digest()
    unit = [b / 255 for b in digest[:9]]
    return {
        "acousticness": round(unit[0], 4),
        "danceability": round(unit[1], 4),
        "energy": round(unit[2], 4),
        "instrumentalness": round(unit[3], 4),
        "liveness": round(unit[4], 4),
        "loudness": round(-30 + 28 * unit[5], 4),
        "speechiness": round(unit[6] / 2, 4),
        "tempo": round(60 + 140 * unit[7], 4),
        "valence": round(unit[8], 4),
    }


def reccobeats_error(status: int) -> dict[str, Any]:
    return {"timestamp": "2026-01-01T00:00:00Z", "status": status, "error": "Error", "path": "/v1/audio-features"}


class FakeReccoBeats(ScriptedServer):
    def __init__(self, features: dict[str, dict[str, float]] | None = None) -> None:
        super().__init__()
        self.features = dict(features or {})
        self.analysis_answers: dict[str, dict[str, float]] = {}  # sha256 hex → answer
        self.uploads: list[dict[str, Any]] = []  # what each accepted analysis request carried

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1/"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/audio-features", self._audio_features)
        app.router.add_post("/v1/analysis/audio-features", self._analysis)

    async def _analysis(self, request: web.Request) -> web.Response:
        scripted = await self.scripted("analysis", request, reccobeats_error)
        if scripted is not None:
            return scripted

        def error(status: int) -> web.Response:
            body = reccobeats_error(status)
            body["path"] = "/v1/analysis/audio-features"
            return web.json_response(body, status=status)

        if not request.content_type.startswith("multipart/form-data"):
            return error(400)
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                return error(400)  # no audioFile field
            if isinstance(part, BodyPartReader) and part.name == "audioFile":
                break
            if isinstance(part, BodyPartReader):
                await part.release()
        data = bytearray()
        while chunk := await part.read_chunk(64 * 1024):
            data.extend(chunk)
            if len(data) > MAX_UPLOAD:
                return error(413)
        content_type = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in AUDIO_TYPES:
            return error(415)
        if not data or not _looks_like_audio(bytes(data)):
            return error(400)
        self.uploads.append({"filename": part.filename, "content_type": content_type, "size": len(data)})
        digest = hashlib.sha256(bytes(data)).hexdigest()
        return web.json_response(self.analysis_answers.get(digest) or analysis_for(bytes(data)))

    async def _audio_features(self, request: web.Request) -> web.Response:
        scripted = await self.scripted("audio-features", request, reccobeats_error)
        if scripted is not None:
            return scripted
        ids = [i for raw in request.query.getall("ids", []) for i in raw.split(",") if i]
        if not ids or len(ids) > MAX_IDS:
            return web.json_response(reccobeats_error(400), status=400)
        content = []
        for sid in ids:
            feats = self.features.get(sid)
            if feats is None:
                continue
            item = {k: v for k, v in feats.items() if k != "time_signature"}
            content.append(
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, sid)),
                    "href": f"https://open.spotify.com/track/{sid}",
                    **item,
                }
            )
        return web.json_response({"content": content})
