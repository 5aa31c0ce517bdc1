"""A fake ReccoBeats API on 127.0.0.1: GET /v1/audio-features?ids=<spotify ids, comma-separated>.

Answers like the real service: `{"content": [...]}` with one item per known track, each with
ReccoBeats' own uuid as `id`, the Spotify link as `href`, and no `time_signature`.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from tests.fakes.spotify import Failure, ScriptedServer

__all__ = ["Failure", "FakeReccoBeats"]

MAX_IDS = 40


def reccobeats_error(status: int) -> dict[str, Any]:
    return {"timestamp": "2026-01-01T00:00:00Z", "status": status, "error": "Error", "path": "/v1/audio-features"}


class FakeReccoBeats(ScriptedServer):
    def __init__(self, features: dict[str, dict[str, float]] | None = None) -> None:
        super().__init__()
        self.features = dict(features or {})

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1/"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/audio-features", self._audio_features)

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
