"""The API and the page over the real services (TrackService, RecommendationService, RadioService,
GenreService) on an in-memory SQLite catalogue; schemathesis against that live app too."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, settings

from bot.config import Settings
from bot.http.config import WebConfig
from db.base import Base
from db.engine import create_engine, create_session_factory
from db.models import AUDIO_FEATURE_COLUMNS, Track, TrackGenre
from handlers.http.api import OPENAPI_PATH
from ml.text import song_key
from services.analysis import AnalysisService
from services.container import Services
from services.feedback import FeedbackService
from services.genre import GenreService
from services.health import HealthService
from services.radio import RadioService
from services.ratelimit import MemoryTokenBuckets
from services.recommender import RecommendationService
from services.search import SearchIndex
from services.tracks import TrackService
from services.users import UserService
from tests.api.conftest import LiveServer, binary_upload_checks
from tests.api.test_api import FEATURES
from tests.fakes.services import FakeGenreService, sound_model
from tests.wiring import Wiring

CENTRES = {
    "rock": {"energy": 0.85, "acousticness": 0.08, "danceability": 0.45, "loudness": -5.0, "tempo": 140.0},
    "jazz": {"energy": 0.3, "acousticness": 0.8, "danceability": 0.55, "loudness": -14.0, "tempo": 100.0},
    "techno": {"energy": 0.9, "acousticness": 0.01, "danceability": 0.8, "loudness": -7.0, "tempo": 128.0},
}


def catalogue_rows(seed: int = 3) -> list[Track]:
    rng = np.random.default_rng(seed)
    rows: list[Track] = []
    for genre, centre in CENTRES.items():
        for a in range(8):
            artist = f"{genre.title()} Band {a}"
            for k in range(3):
                features = {c: float(rng.uniform(0.05, 0.3)) for c in AUDIO_FEATURE_COLUMNS}
                features.update({c: float(v + rng.normal(0, 0.03)) for c, v in centre.items()})
                features.update(key=float(rng.integers(0, 12)), mode=float(rng.integers(0, 2)), time_signature=4.0)
                name = f"{genre.title()} Song {a}-{k}"
                rows.append(
                    Track(
                        spotify_id=f"{genre[:2]}{a:02d}{k:02d}".ljust(22, "x"),
                        name=name,
                        artists=artist,
                        album=f"{artist} Album",
                        duration_ms=200_000,
                        explicit=False,
                        popularity=int(rng.integers(0, 100)),
                        search_key=song_key(artist, name),
                        genres=[TrackGenre(genre=genre)],
                        **features,
                    )
                )
    rows.append(
        Track(
            spotify_id="nofeatures".ljust(22, "x"),
            name="Lost Demo",
            artists="Nobody",
            search_key=song_key("Nobody", "Lost Demo"),
        )
    )
    return rows


async def real_container(*, genre: Any = None) -> Wiring:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    engine = create_engine("sqlite+aiosqlite://")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = create_session_factory(engine)
    async with sessions.begin() as s:
        s.add_all(catalogue_rows())
    genre = genre if genre is not None else FakeGenreService(sound_model)
    recs = RecommendationService(sessions)
    tracks = TrackService(sessions, await SearchIndex.load(sessions), None, None, None, genre)
    # No analysis provider here: a decodable recording would be 503, anything else is refused first.
    analysis = AnalysisService(sessions, tracks, recs, None, MemoryTokenBuckets(10**6, 1.0))
    services = Services(
        analysis=analysis,
        users=UserService(sessions),
        health=HealthService(engine, version="test"),
        tracks=tracks,
        genre=genre,
        recommendations=recs,
        radio=RadioService(sessions, recs),
        feedback=FeedbackService(sessions, genres=genre),
    )
    return Wiring(settings, services, engine, sessions)


@pytest.fixture
async def real() -> AsyncIterator[Wiring]:
    container = await real_container()
    yield container
    await container.close()


@pytest.fixture
async def rclient(aiohttp_client: Any, real: Wiring) -> TestClient:
    return await aiohttp_client(real.http_app(WebConfig(rate_limit_per_minute=0)))


async def test_search_card_similar_and_radio_end_to_end(rclient: TestClient) -> None:
    found = await (await rclient.get("/api/v1/tracks/search", params={"q": "Jazz Band 3"})).json()
    assert found["kind"] in ("track", "candidates") and found["items"]
    track = found["items"][0]
    assert track["artists"] == ["Jazz Band 3"]

    card = await (await rclient.get(f"/api/v1/tracks/{track['id']}")).json()
    assert card["track"]["id"] == track["id"] and card["genre"]["genre"]
    assert card["links"]["youtube_is_search"] is True  # no YouTube key: a search link

    similar = await (await rclient.get(f"/api/v1/tracks/{track['id']}/similar", params={"limit": "5"})).json()
    assert len(similar["items"]) == 5
    assert all(item["track"]["id"] != track["id"] for item in similar["items"])
    assert sum("jazz" in item["track"]["genres"] for item in similar["items"]) >= 4  # sounds alike

    resp = await rclient.post("/api/v1/radio", json={"track_id": track["id"]})
    assert resp.status == 201, await resp.text()
    step = await resp.json()
    radio, current, seen = step["radio_id"], step["track"]["id"], {step["track"]["id"]}
    for action in ("like", "skip", "next"):
        resp = await rclient.post(f"/api/v1/radio/{radio}/feedback", json={"track_id": current, "action": action})
        assert resp.status == 200, await resp.text()
        step = await resp.json()
        current = step["track"]["id"]
        assert current not in seen
        seen.add(current)
    stale = await rclient.post(f"/api/v1/radio/{radio}/feedback", json={"track_id": track["id"], "action": "like"})
    assert stale.status == 409 and (await stale.json())["radio"]["track"]["id"] == current

    now = await (await rclient.get(f"/api/v1/radio/{radio}")).json()
    assert (now["track"]["id"], now["position"], now["likes"], now["skips"]) == (current, 4, 1, 1)
    stopped = await rclient.post(f"/api/v1/radio/{radio}/stop")
    assert stopped.status == 200
    body = await stopped.json()
    assert body["stopped"] is True and body["track"] is None and body["position"] == 4
    # Feedback after the stop moves nothing and records nothing: the radio stays where it stopped.
    late = await rclient.post(f"/api/v1/radio/{radio}/feedback", json={"track_id": current, "action": "like"})
    late_body = await late.json()
    assert late.status == 409 and late_body["code"] == "radio_stopped" and late_body["radio"]["stopped"] is True
    again = await (await rclient.get(f"/api/v1/radio/{radio}")).json()
    assert (again["stopped"], again["likes"], again["position"]) == (True, 1, 4)
    assert (await rclient.post(f"/api/v1/radio/{radio}/stop")).status == 200  # stopping twice is harmless


async def test_real_errors_map_to_problems(rclient: TestClient) -> None:
    assert (await rclient.get("/api/v1/tracks/99999")).status == 404
    assert (await rclient.get("/api/v1/tracks/99999/similar")).status == 404
    assert (await rclient.post("/api/v1/radio", json={"track_id": 99999})).status == 404
    resp = await rclient.post("/api/v1/radio/99999/feedback", json={"track_id": 1, "action": "like"})
    assert resp.status == 404 and resp.content_type == "application/problem+json"
    for resp in (await rclient.get("/api/v1/radio/99999"), await rclient.post("/api/v1/radio/99999/stop")):
        assert resp.status == 404 and resp.content_type == "application/problem+json"


async def test_track_without_features(rclient: TestClient, real: Wiring) -> None:
    found = await (await rclient.get("/api/v1/tracks/search", params={"q": "Lost Demo"})).json()
    track_id = found["items"][0]["id"]
    card = await (await rclient.get(f"/api/v1/tracks/{track_id}")).json()
    assert card["genre"] is None and card["note"]
    similar = await rclient.get(f"/api/v1/tracks/{track_id}/similar")
    assert similar.status == 200 and (await similar.json())["items"] == []
    assert (await rclient.get(f"/track/{track_id}", headers={"Accept": "text/html"})).status == 200


async def test_page_over_real_services(rclient: TestClient) -> None:
    html = await (await rclient.get("/?q=Techno Band 1")).text()
    assert "Techno Band 1" in html
    card = await (await rclient.get("/track/1")).text()
    token = re.search(r'name="csrf" value="([0-9a-f]{64})"', card).group(1)  # type: ignore[union-attr]
    origin = str(rclient.make_url("/")).rstrip("/")
    resp = await rclient.post(
        "/radio", data={"track_id": "1", "csrf": token}, headers={"Origin": origin}, allow_redirects=False
    )
    assert resp.status == 303
    page = await rclient.get(resp.headers["Location"])
    assert page.status == 200 and "👍" in await page.text()


async def test_real_genre_service_without_a_model_is_503(aiohttp_client: Any) -> None:
    container = await real_container(genre=GenreService(None))
    try:
        client = await aiohttp_client(container.http_app(WebConfig(rate_limit_per_minute=0)))
        resp = await client.post("/api/v1/genre", json=FEATURES)
        assert resp.status == 503 and resp.headers["Retry-After"]
        assert (await resp.json(content_type=None))["code"] == "model_not_ready"
        card = await (await client.get("/api/v1/tracks/1")).json()
        assert card["genre"] is None and card["note"]
        metrics = await (await client.get("/metrics")).text()
        assert "encore_model_info{" not in metrics
    finally:
        await container.close()


schema = schemathesis.openapi.from_path(OPENAPI_PATH)


@pytest.fixture(scope="module")
def real_live_server() -> Iterator[LiveServer]:
    holder: dict[str, Wiring] = {}

    async def factory() -> web.Application:
        holder["c"] = await real_container()
        return holder["c"].http_app(WebConfig(rate_limit_per_minute=1_000_000))

    server = LiveServer(factory).start()
    yield server
    server.run(holder["c"].close())
    server.stop()


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_schemathesis_against_the_real_services(case: Any, real_live_server: LiveServer) -> None:
    case.call_and_validate(base_url=real_live_server.url, excluded_checks=binary_upload_checks(case))


async def test_composition_root_build_container_then_create_web_app(aiohttp_client: Any, tmp_path: Any) -> None:
    """What main.py does: Settings → build_services → the web app (no network: no provider keys)."""
    from bot.config import ReccoBeatsSettings
    from main import build_services

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, reccobeats=ReccoBeatsSettings(enabled=False), api_keys="secret"
    )
    engine = create_engine(settings.db_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with create_session_factory(engine).begin() as s:
        s.add_all(catalogue_rows())
    await engine.dispose()

    services = await build_services(settings)
    container = Wiring(settings, services, None, None)  # type: ignore[arg-type]
    try:
        await services.warm_up()
        client = await aiohttp_client(container.http_app())
        health = await (await client.get("/healthz")).json()
        assert health["status"] == "ok" and health["database"] == "ok"
        found = await (await client.get("/api/v1/tracks/search", params={"q": "Rock Band 2"})).json()
        track_id = found["items"][0]["id"]
        card = await (await client.get(f"/api/v1/tracks/{track_id}")).json()
        assert card["track"]["id"] == track_id  # no model trained here: genre null with a note
        assert card["genre"] is None and card["note"]
        similar = await (await client.get(f"/api/v1/tracks/{track_id}/similar")).json()
        assert len(similar["items"]) == 10
        assert (await client.post("/api/v1/radio", json={"track_id": track_id})).status == 401  # API_KEYS set
        resp = await client.post("/api/v1/radio", json={"track_id": track_id}, headers={"X-API-Key": "secret"})
        assert resp.status == 201
        assert (await client.post("/api/v1/genre", json=FEATURES, headers={"X-API-Key": "secret"})).status == 503
        page = await client.get(f"/track/{track_id}")
        assert page.status == 200 and "Rock Band 2" in await page.text()
    finally:
        await services.close()


def write_catalogue_csv(path: Any, per_genre: int = 60, seed: int = 5) -> None:
    """A small file in the 114-genre format: 6 genres far apart in audio space."""
    import pandas as pd  # type: ignore[import-untyped]

    rng = np.random.default_rng(seed)
    parts = []
    for gi, genre in enumerate(("rock", "metal", "techno", "house", "jazz", "salsa")):
        centre = gi / 6
        n = per_genre
        frame = pd.DataFrame(
            {
                "track_id": [f"t{gi}x{i:04d}".ljust(22, "0") for i in range(n)],
                "artists": [f"Artist {gi}-{i % 7}" for i in range(n)],
                "album_name": "Album",
                "track_name": [f"Song {gi}-{i}" for i in range(n)],
                "popularity": rng.integers(0, 100, n),
                "duration_ms": rng.integers(120_000, 400_000, n),
                "explicit": rng.random(n) < 0.1,
                "danceability": np.clip(rng.normal(centre, 0.08, n), 0, 1),
                "energy": np.clip(rng.normal(1 - centre, 0.08, n), 0, 1),
                "key": rng.integers(0, 12, n),
                "loudness": np.clip(rng.normal(-5 - 10 * centre, 1.5, n), -60, 0),
                "mode": rng.integers(0, 2, n),
                "speechiness": np.clip(rng.normal(0.05, 0.03, n), 0, 1),
                "acousticness": np.clip(rng.normal(centre, 0.1, n), 0, 1),
                "instrumentalness": np.clip(rng.normal(0.1 * gi, 0.05, n), 0, 1),
                "liveness": np.clip(rng.normal(0.2, 0.05, n), 0, 1),
                "valence": np.clip(rng.normal(0.5, 0.2, n), 0, 1),
                "tempo": np.clip(rng.normal(90 + 10 * gi, 8, n), 40, 220),
                "time_signature": 4,
                "track_genre": genre,
            }
        )
        parts.append(frame)
    pd.concat(parts, ignore_index=True).to_csv(path, index=False)


async def test_with_a_real_trained_genre_model(aiohttp_client: Any, tmp_path: Any) -> None:
    """A tiny model trained by ml.training and loaded by build_services: the card and POST /genre
    answer with its probabilities, and /metrics names its version."""
    import asyncio

    from bot.config import ReccoBeatsSettings
    from main import build_services
    from ml.training.pipeline import train
    from services.catalog import CatalogImporter

    raw = tmp_path / "raw"
    raw.mkdir()
    csv = raw / "spotify_tracks_114genre_train.csv.gz"
    write_catalogue_csv(csv)
    small: dict[str, dict[str, Any]] = {
        "catboost": {"iterations": 60},
        "lightgbm": {"n_estimators": 30},
        "mlp": {"hidden_layer_sizes": (32,), "batch_size": 32},
    }
    await asyncio.to_thread(
        train, tmp_path, tmp_path / "models", tasks=("catalog",), zoo=False, seed=3,
        reports_dir=tmp_path / "reports", overrides=small,
    )  # fmt: skip
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, reccobeats=ReccoBeatsSettings(enabled=False)
    )
    engine = create_engine(settings.db_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await CatalogImporter(create_session_factory(engine)).import_file(csv)
    await engine.dispose()

    services = await build_services(settings)
    container = Wiring(settings, services, None, None)  # type: ignore[arg-type]
    try:
        await services.warm_up()
        assert services.genre.ready
        client = await aiohttp_client(container.http_app())
        version = services.genre.version
        guess = await (await client.post("/api/v1/genre", json=FEATURES)).json()
        assert guess["model_version"] == version and guess["genre"] in services.genre.classes  # type: ignore[attr-defined]
        assert 0 < guess["probability"] <= 1 and len(guess["top"]) >= 1
        found = await (await client.get("/api/v1/tracks/search", params={"q": "Song 4-3"})).json()
        card = await (await client.get(f"/api/v1/tracks/{found['items'][0]['id']}")).json()
        assert card["genre"]["model_version"] == version
        metrics = await (await client.get("/metrics")).text()
        assert f'encore_model_info{{version="{version}"}} 1.0' in metrics
        html = await (await client.get(f"/track/{card['track']['id']}")).text()
        assert "Genre probabilities" in html
    finally:
        await services.close()
