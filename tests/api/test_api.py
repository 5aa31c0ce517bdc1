"""The JSON API over aiohttp_client with fake services: answers and problem details."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.http.config import WebConfig
from handlers.http.api import similar_cache_key
from services.dto import Listener
from tests.fakes.services import MODEL_VERSION

FEATURES: dict[str, float] = {
    "danceability": 0.7,
    "energy": 0.8,
    "key": 5,
    "loudness": -6.5,
    "mode": 1,
    "speechiness": 0.05,
    "acousticness": 0.1,
    "instrumentalness": 0.0,
    "liveness": 0.12,
    "valence": 0.6,
    "tempo": 124.0,
    "time_signature": 4,
}


async def problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json(content_type=None)
    assert body["status"] == status
    assert body["type"].startswith("urn:encore:problem:")
    assert {"title", "detail", "instance", "code"} <= body.keys()
    return body


async def test_healthz_keeps_its_shape(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "database": "ok", "version": "test"}


async def test_search_by_name_returns_candidates(client: TestClient) -> None:
    resp = await client.get("/api/v1/tracks/search", params={"q": "  ROCK  ", "limit": "5"})
    assert resp.status == 200
    body = await resp.json()
    assert body["query"] == "ROCK" and body["kind"] in ("candidates", "not_found", "track")


async def test_search_finds_a_song_and_a_spotify_link(client: TestClient) -> None:
    body = await (await client.get("/api/v1/tracks/search", params={"q": "queen"})).json()
    assert body["kind"] == "track"
    [track] = body["items"]
    assert track["name"] == "Bohemian Rhapsody" and track["artists"] == ["Queen"]
    assert track["spotify_url"] == f"https://open.spotify.com/track/{track['spotify_id']}"
    link = body["items"][0]["spotify_url"] + "?si=abc"
    again = await (await client.get("/api/v1/tracks/search", params={"q": link})).json()
    assert again["kind"] == "track" and again["items"][0]["id"] == track["id"]


async def test_search_limit_is_applied(client: TestClient) -> None:
    body = await (await client.get("/api/v1/tracks/search", params={"q": "o", "limit": "2"})).json()
    assert body["kind"] == "candidates" and len(body["items"]) == 2


async def test_search_unsupported_link_is_a_200_with_kind(client: TestClient) -> None:
    resp = await client.get("/api/v1/tracks/search", params={"q": "https://open.spotify.com/album/xyz"})
    body = await resp.json()
    assert resp.status == 200 and body["kind"] == "unsupported" and "Albums" in body["message"]


async def test_search_blank_or_control_characters_only(client: TestClient) -> None:
    body = await (await client.get("/api/v1/tracks/search", params={"q": " \x00\t "})).json()
    assert body == {"query": "", "kind": "invalid", "items": [], "message": body["message"], "notice": None}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "x" * 201},
        {"q": "a", "limit": "0"},
        {"q": "a", "limit": "51"},
        {"q": "a", "limit": "ten"},
        {"q": "a", "limit": "1.5"},
        {"q": "a", "limit": " 5"},
    ],
)
async def test_search_bad_query_is_400(client: TestClient, params: dict[str, str]) -> None:
    body = await problem(await client.get("/api/v1/tracks/search", params=params), 400)
    assert body["code"] == "invalid_query" and body["errors"][0]["location"].startswith("query.")


async def test_track_card_has_genre_and_links(client: TestClient) -> None:
    resp = await client.get("/api/v1/tracks/1")
    assert resp.status == 200
    card = await resp.json()
    assert card["track"]["id"] == 1
    genre = card["genre"]
    assert genre["model_version"] == MODEL_VERSION
    assert 1 <= len(genre["top"]) <= 3 and genre["top"][0]["genre"] == genre["genre"]
    assert all(0 <= p["probability"] <= 1 for p in genre["top"])
    # Where the genre comes from (issue 14): a catalogue song names its own labels.
    assert genre["head"] == "audio" and genre["source"] == "catalogue" and card["track"]["genres"]
    assert card["links"]["spotify"].startswith("https://open.spotify.com/track/")
    assert card["links"]["youtube"].startswith("https://www.youtube.com/")


async def test_track_card_without_features_has_a_note(client: TestClient) -> None:
    card = await (await client.get("/api/v1/tracks/13")).json()
    assert card["genre"] is None and card["note"] and card["track"]["features"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tracks/999",
        "/api/v1/tracks/0",
        "/api/v1/tracks/" + "9" * 40,
        "/api/v1/tracks/abc",
        "/api/v1/tracks/-1",
        "/api/v1/nope",
    ],
)
async def test_unknown_track_or_path_is_404(client: TestClient, path: str) -> None:
    await problem(await client.get(path), 404)


async def test_wrong_method_is_405_with_allow(client: TestClient) -> None:
    resp = await client.delete("/api/v1/tracks/1")
    await problem(resp, 405)
    assert "GET" in resp.headers["Allow"]


async def test_similar_returns_scored_tracks(client: TestClient, container: Any) -> None:
    resp = await client.get("/api/v1/tracks/1/similar", params={"limit": "3", "diversity": "0.25"})
    assert resp.status == 200
    body = await resp.json()
    assert body["track_id"] == 1 and body["diversity"] == 0.25 and body["note"] is None
    assert len(body["items"]) == 3 and all(item["track"]["id"] != 1 for item in body["items"])
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert container.services.recommendations.calls == [(1, 3, 0.25)]


async def test_similar_is_cached_and_counted(client: TestClient, container: Any) -> None:
    first = await (await client.get("/api/v1/tracks/2/similar")).read()
    second = await (await client.get("/api/v1/tracks/2/similar")).read()
    assert first == second and len(container.services.recommendations.calls) == 1
    metrics = await (await client.get("/metrics")).text()
    assert 'encore_cache_requests_total{cache="similar",result="hit"} 1.0' in metrics
    assert 'encore_cache_requests_total{cache="similar",result="miss"} 1.0' in metrics
    assert 'encore_cache_entries{cache="similar"} 1.0' in metrics


async def test_similar_concurrent_misses_share_one_computation(client: TestClient, container: Any) -> None:
    import asyncio

    recs = container.services.recommendations
    original = recs.similar
    gate = asyncio.Event()

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await original(*args, **kwargs)

    recs.similar = slow
    cache = client.app[similar_cache_key]
    lookup, arrived = cache.get_or_compute, asyncio.Event()
    seen = [0]

    async def counting(*args: Any, **kwargs: Any) -> Any:
        seen[0] += 1
        if seen[0] == 5:
            arrived.set()
        return await lookup(*args, **kwargs)

    cache.get_or_compute = counting  # type: ignore[method-assign]
    requests = [asyncio.ensure_future(client.get("/api/v1/tracks/3/similar")) for _ in range(5)]
    await asyncio.wait_for(arrived.wait(), 30)  # all five are at the cache before the answer is released
    gate.set()
    bodies = [await (await r).read() for r in requests]
    assert len(set(bodies)) == 1 and len(recs.calls) == 1
    metrics = await (await client.get("/metrics")).text()
    assert 'encore_cache_requests_total{cache="similar",result="coalesced"} 4.0' in metrics


async def test_similar_errors_are_not_cached(client: TestClient) -> None:
    for _ in range(2):
        assert (await client.get("/api/v1/tracks/404/similar")).status == 404


async def test_similar_of_a_track_without_features_is_empty_with_note(client: TestClient) -> None:
    body = await (await client.get("/api/v1/tracks/13/similar")).json()
    assert body["items"] == [] and body["note"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "x"},
        {"diversity": "1.5"},
        {"diversity": "nan"},
        {"diversity": "-0.1"},
        {"diversity": "inf"},
    ],
)
async def test_similar_bad_query_is_400(client: TestClient, params: dict[str, str]) -> None:
    await problem(await client.get("/api/v1/tracks/1/similar", params=params), 400)


async def test_similar_unknown_track_is_404(client: TestClient) -> None:
    await problem(await client.get("/api/v1/tracks/404/similar"), 404)


async def test_genre_from_features(client: TestClient, container: Any) -> None:
    resp = await client.post("/api/v1/genre", json=FEATURES)
    assert resp.status == 200
    body = await resp.json()
    assert body["genre"] == body["top"][0]["genre"] and body["model_version"] == MODEL_VERSION
    assert (body["head"], body["source"]) == ("audio", "audio")  # features only: the sound alone
    assert 0 < sum(p["probability"] for p in body["family_top"]) <= 1 + 1e-9
    assert container.services.genre.calls[-1]["key"] == 5.0


async def test_genre_accepts_whole_floats_for_integer_features(client: TestClient) -> None:
    resp = await client.post("/api/v1/genre", json={**FEATURES, "key": 5.0, "mode": 0.0})
    assert resp.status == 200


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"danceability": 1.5}, "body.danceability"),
        ({"energy": -0.1}, "body.energy"),
        ({"key": 12}, "body.key"),
        ({"key": 2.5}, "body.key"),
        ({"mode": 2}, "body.mode"),
        ({"tempo": 301}, "body.tempo"),
        ({"loudness": -61}, "body.loudness"),
        ({"valence": "0.5"}, "body.valence"),
        ({"liveness": True}, "body.liveness"),
        ({"time_signature": 8}, "body.time_signature"),
        ({"colour": 1}, "body.colour"),
        ({"tempo": None}, "body.tempo"),
    ],
)
async def test_genre_invalid_features_are_422(client: TestClient, change: dict[str, Any], location: str) -> None:
    body = await problem(await client.post("/api/v1/genre", json={**FEATURES, **change}), 422)
    assert body["code"] == "validation_failed"
    assert location in [e["location"] for e in body["errors"]]


async def test_genre_missing_feature_is_422(client: TestClient) -> None:
    features = dict(FEATURES)
    del features["tempo"]
    body = await problem(await client.post("/api/v1/genre", json=features), 422)
    assert body["errors"] == [{"location": "body.tempo", "message": "Field required"}]


@pytest.mark.parametrize(
    "raw", [b"{", b"not json", b"[1, 2]", b'"text"', b"", b'{"a": NaN}', b'{"a": Infinity}', b"[" * 50_000, b"\xff\xfe"]
)
async def test_genre_malformed_body_is_400(client: TestClient, raw: bytes) -> None:
    resp = await client.post("/api/v1/genre", data=raw, headers={"Content-Type": "application/json"})
    body = await problem(resp, 400)
    assert body["code"] == "malformed_json"


async def test_genre_wrong_content_type_is_415(client: TestClient) -> None:
    await problem(await client.post("/api/v1/genre", data="a=1"), 415)


async def test_genre_model_not_ready_is_503(make_client: Any, container: Any) -> None:
    container.services.genre.ready = False
    client = await make_client()
    resp = await client.post("/api/v1/genre", json=FEATURES)
    await problem(resp, 503)
    assert resp.headers["Retry-After"]


async def test_analyze_switched_off_is_503_not_a_crash(make_client: Any, container: Any) -> None:
    container.services.analysis = None
    client = await make_client()
    form = aiohttp.FormData()
    form.add_field("file", b"ID3" + bytes(64), filename="song.mp3", content_type="audio/mpeg")
    body = await problem(await client.post("/api/v1/analyze", data=form), 503)
    assert body["code"] == "analysis_off"


async def test_radio_start_then_like_skip_next(client: TestClient) -> None:
    resp = await client.post("/api/v1/radio", json={"track_id": 1, "diversity": 0.3})
    assert resp.status == 201
    step = await resp.json()
    assert step["track"]["id"] != 1 and step["position"] == 1  # the seed is not played again
    radio = step["radio_id"]
    seen = [1, step["track"]["id"]]
    for action in ("like", "skip", "next"):
        resp = await client.post(
            f"/api/v1/radio/{radio}/feedback", json={"track_id": step["track"]["id"], "action": action}
        )
        assert resp.status == 200
        step = await resp.json()
        assert step["track"]["id"] not in seen
        seen.append(step["track"]["id"])
    assert (step["likes"], step["skips"], step["position"]) == (1, 1, 4)


async def test_radio_stale_track_is_409(client: TestClient) -> None:
    step = await (await client.post("/api/v1/radio", json={"track_id": 1})).json()
    url = f"/api/v1/radio/{step['radio_id']}/feedback"
    playing = step["track"]["id"]
    assert (await client.post(url, json={"track_id": playing, "action": "like"})).status == 200
    body = await problem(await client.post(url, json={"track_id": playing, "action": "like"}), 409)
    assert body["code"] == "radio_moved_on"
    # The radio as it stands, so the client can redraw without another request; the answer was not counted.
    radio = body["radio"]
    assert radio["likes"] == 1 and radio["track"]["id"] not in (1, playing) and radio["position"] == 2


async def test_radio_errors(client: TestClient) -> None:
    await problem(await client.post("/api/v1/radio", json={"track_id": 999}), 404)
    await problem(await client.post("/api/v1/radio", json={"track_id": "1"}), 422)
    await problem(await client.post("/api/v1/radio", json={"track_id": 1, "diversity": 2}), 422)
    await problem(await client.post("/api/v1/radio/77/feedback", json={"track_id": 1, "action": "like"}), 404)
    await problem(await client.post(f"/api/v1/radio/{'x' * 22}/feedback", json={"track_id": 1, "action": "like"}), 404)
    step = await (await client.post("/api/v1/radio", json={"track_id": 1})).json()
    body = await problem(
        await client.post(f"/api/v1/radio/{step['radio_id']}/feedback", json={"track_id": 1, "action": "love"}), 422
    )
    assert body["errors"][0]["location"] == "body.action"


async def test_radio_of_another_owner_does_not_exist(client: TestClient, container: Any) -> None:
    step = await container.services.radio.start(1, listener=Listener.telegram(42))
    await problem(
        await client.post(f"/api/v1/radio/{step.radio_id}/feedback", json={"track_id": 1, "action": "like"}), 404
    )
    await problem(await client.get(f"/api/v1/radio/{step.radio_id}"), 404)


async def test_a_bug_in_a_service_is_a_500_problem_without_details(make_client: Any, container: Any) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    container.services.tracks.card = broken
    client = await make_client()
    body = await problem(await client.get("/api/v1/tracks/1"), 500)
    assert "secret" not in body["detail"]


async def test_openapi_document_is_served(client: TestClient) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.") and "/api/v1/tracks/{track_id}/similar" in doc["paths"]


async def test_response_cache_serves_stale_while_one_refresh_runs() -> None:
    import asyncio

    from bot.http.cache import ResponseCache

    now = [0.0]
    cache = ResponseCache(ttl=10, size=2, stale_for=100, clock=lambda: now[0])
    calls: list[int] = []

    async def compute() -> bytes:
        calls.append(1)
        await asyncio.sleep(0)
        return f"v{len(calls)}".encode()

    assert await cache.get_or_compute(("k",), compute) == (b"v1", "miss")
    assert await cache.get_or_compute(("k",), compute) == (b"v1", "hit")
    now[0] = 15  # expired, but within stale_for: answered at once, refreshed once in the background
    assert await cache.get_or_compute(("k",), compute) == (b"v1", "stale")
    assert await cache.get_or_compute(("k",), compute) == (b"v1", "stale")
    await cache.settled()
    assert len(calls) == 2
    assert await cache.get_or_compute(("k",), compute) == (b"v2", "hit")
    now[0] = 500  # too old to serve
    assert await cache.get_or_compute(("k",), compute) == (b"v3", "miss")

    async def failing() -> bytes:
        raise RuntimeError("gone")

    now[0] = 515
    assert (await cache.get_or_compute(("k",), failing))[1] == "stale"
    await cache.settled()
    assert cache.lookup(("k",)) == (None, False)  # a failed refresh drops the entry
    for i in range(3):
        await cache.get_or_compute((i,), compute)
    assert len(cache._items) == 2  # LRU bound
    await cache.close()


async def test_radio_get_and_stop(client: TestClient, container: Any) -> None:
    step = await (await client.post("/api/v1/radio", json={"track_id": 1})).json()
    url = f"/api/v1/radio/{step['radio_id']}"
    assert (await (await client.get(url)).json())["track"]["id"] == step["track"]["id"]
    stopped = await (await client.post(f"{url}/stop")).json()
    assert stopped["stopped"] is True and stopped["track"] is None
    await problem(await client.get("/api/v1/radio/77"), 404)
    await problem(await client.post("/api/v1/radio/77/stop"), 404)
    other = await container.services.radio.start(1, listener=Listener.telegram(42))
    await problem(await client.get(f"/api/v1/radio/{other.radio_id}"), 404)
    await problem(await client.post(f"/api/v1/radio/{other.radio_id}/stop"), 404)


async def test_radios_are_bound_to_the_api_key_that_started_them(make_client: Any) -> None:
    client = await make_client(WebConfig(api_keys=frozenset({"key-one", "key-two"}), rate_limit_per_minute=10_000))
    one, two = {"X-API-Key": "key-one"}, {"Authorization": "Bearer key-two"}
    step = await (await client.post("/api/v1/radio", json={"track_id": 1}, headers=one)).json()
    url = f"/api/v1/radio/{step['radio_id']}"
    assert len(step["radio_id"]) == 22
    await problem(await client.post(f"{url}/stop", headers=two), 404)  # another key: no such radio
    await problem(await client.get(url, headers=two), 404)
    await problem(await client.get(url), 404)  # no key at all
    assert (await client.get(url, headers=one)).status == 200
    assert (await (await client.post(f"{url}/stop", headers=one)).json())["stopped"] is True
