"""The OpenAPI document matches the app: same routes, and schemathesis against the live server
finds no 5xx and no answer outside the schema (status, content type, headers, body)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from bot.http.config import WebConfig
from handlers.http.api import OPENAPI_PATH
from tests.api.conftest import LiveServer, binary_upload_checks
from tests.fakes.services import fake_container

DOC = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
schema = schemathesis.openapi.from_path(OPENAPI_PATH)
PAGE_PREFIXES = ("/static", "/track/", "/radio", "/analyze", "/playlists", "/p/", "/spotify/")  # the web page's


def app_routes() -> set[tuple[str, str]]:
    app = fake_container().http_app(WebConfig())
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix", "")
        if route.method == "HEAD" or path == "/" or path.startswith(PAGE_PREFIXES):
            continue
        path = path.replace(r"{track_id}", "{track_id}").replace(r"{radio_id}", "{radio_id}")
        path = path.replace(r"{playlist_id}", "{playlist_id}")
        found.add((route.method.lower(), path))
    return found


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    documented = {(method, path) for path, ops in DOC["paths"].items() for method in ops}
    assert app_routes() == documented


def test_every_operation_documents_its_errors_as_problems() -> None:
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if status.startswith("4"):
                    assert "application/problem+json" in response["content"], (method, path, status)
            if path.startswith("/api/v1/"):
                assert "429" in op["responses"], (method, path)
            if method == "post":  # writes: an API key, a body size limit; with a body, its checks
                assert {"401", "413"} <= op["responses"].keys(), path
                if "requestBody" in op:
                    assert {"400", "415", "422"} <= op["responses"].keys(), path


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_schemathesis_finds_no_server_errors_or_schema_violations(case: Any, live_server: LiveServer) -> None:
    case.call_and_validate(base_url=live_server.url, excluded_checks=binary_upload_checks(case))
