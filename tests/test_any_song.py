"""Issue 13 end to end with no keys: the composition root (main.build_services) and the HTTP API and
page over fake Deezer and ReccoBeats servers on 127.0.0.1 and a real SQLite database.

A song outside the catalogue typed as text → Deezer → a catalogue row → its card (features from the
analysis of its 30-s preview, its genre from the genre model's analysis head — a tiny model trained
on generated data, `trained_models`; a model trained before that head gives the clear "no genre
from these nine values" note instead) → similar tracks → radio. Deezer links and short links,
folding onto the catalogue's copy, errors inside 200 bodies, 429 with Retry-After, timeouts, expired
preview URLs. Recordings sent to POST /api/v1/analyze (with
tags, without) → card → radio; bad uploads get the right status and nothing is stored.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.config import Settings
from bot.http.config import WebConfig
from db.base import Base
from db.engine import create_engine, create_session_factory
from db.models import Track
from handlers.http import create_app
from ml.features import AUDIO_FEATURES, FEATURE_RANGES
from services.container import Services
from services.genre import NOTE_NO_ANALYSIS_HEAD
from services.tracks import NOTICE_DEEZER_DOWN
from tests.api.test_real_services import catalogue_rows
from tests.fakes import media
from tests.fakes.deezer import FakeDeezer, FakeDeezerTrack, quota_error
from tests.fakes.reccobeats import FakeReccoBeats
from tests.fakes.spotify import Failure
from tests.ml.conftest import CATALOG_GENRES

ANALYSIS_NINE = {
    "acousticness",
    "danceability",
    "energy",
    "instrumentalness",
    "liveness",
    "loudness",
    "speechiness",
    "tempo",
    "valence",
}
DAFT_PUNK = 3135556
JAZZ_ON_DEEZER = 777001  # the catalogue's "Jazz Band 3 — Jazz Song 3-1", as Deezer knows it
NO_PREVIEW = 777002


def song_mp3(seconds: float = 40.0, hz: float = 330.0, tags: dict[str, str] | None = None) -> bytes:
    """A real MP3 (LAME, mono 22.05 kHz): a tone with a little noise, optionally ID3-tagged."""
    rate = 22_050
    signal = media.tone(seconds, rate, hz) + media.noise(seconds, rate, 0.05, seed=int(hz))
    buffer = io.BytesIO()
    media.mp3(buffer, media.channels(signal, 1), rate, tags=tags)
    return buffer.getvalue()


@dataclass
class World:
    client: TestClient
    services: Services
    deezer: FakeDeezer
    reccobeats: FakeReccoBeats
    settings: Settings
    now: list[float]

    async def tracks(self) -> int:
        engine = create_engine(self.settings.db_url)
        try:
            async with create_session_factory(engine)() as s:
                return int(await s.scalar(select(func.count()).select_from(Track)) or 0)
        finally:
            await engine.dispose()

    async def search(self, q: str) -> dict[str, Any]:
        resp = await self.client.get("/api/v1/tracks/search", params={"q": q})
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())

    async def card(self, track_id: int) -> dict[str, Any]:
        resp = await self.client.get(f"/api/v1/tracks/{track_id}")
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())

    async def analyze(self, data: bytes, name: str = "song.mp3", content_type: str = "audio/mpeg") -> Any:
        form = FormData()
        form.add_field("file", io.BytesIO(data), filename=name, content_type=content_type)
        return await self.client.post("/api/v1/analyze", data=form)


async def make_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any, model: Path | None = None, **env: str
) -> AsyncIterator[World]:
    """`model`: a catalog artefact folder, copied to where main.build_services looks for it (None: no model)."""
    from main import build_services

    if model is not None:
        shutil.copytree(model, tmp_path / "models" / "catalog")
    now = [time.time()]
    deezer = FakeDeezer(
        [
            FakeDeezerTrack(DAFT_PUNK, "One More Time", "Daft Punk", isrc="GBDUW0000053", rank=900_000),
            FakeDeezerTrack(777003, "One More Time (Radio Edit)", "Daft Punk", isrc="GBDUW0000054", rank=10_000),
            FakeDeezerTrack(JAZZ_ON_DEEZER, "Jazz Song 3-1", "Jazz Band 3", album="Live", isrc="USJZZ0300001"),
            FakeDeezerTrack(NO_PREVIEW, "Silent Type", "Quiet Quartet", has_preview=False),
        ],
        clock=lambda: now[0],
        preview_lifetime=600.0,
    )
    reccobeats = FakeReccoBeats()
    await deezer.start()
    await reccobeats.start()
    deezer.preview_audio[DAFT_PUNK] = song_mp3(30.0, 440.0)
    deezer.preview_audio[JAZZ_ON_DEEZER] = song_mp3(30.0, 220.0)
    for name, value in {
        "DEEZER_API_URL": deezer.api_url,
        "DEEZER_SHORT_LINK_URL": deezer.short_link_url,
        "DEEZER_PREVIEW_ORIGINS": deezer.base_url,
        "DEEZER_TIMEOUT": "0.5",
        "DEEZER_MAX_RETRIES": "2",
        "DEEZER_RATE_PERIOD": "0.2",  # the quota back-off after a code-4 answer
        "RECCOBEATS_API_URL": reccobeats.api_url,
        "RECCOBEATS_TIMEOUT": "1",
        "RECCOBEATS_ANALYSIS_TIMEOUT": "2",
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert not settings.spotify.enabled and not settings.youtube.enabled  # no keys at all
    engine = create_engine(settings.db_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with create_session_factory(engine).begin() as s:
        s.add_all(valid_catalogue())
    await engine.dispose()
    services = await build_services(settings)
    try:
        await services.warm_up()
        config = WebConfig.from_settings(settings)
        client = await aiohttp_client(create_app(services, config))
        yield World(client, services, deezer, reccobeats, settings, now)
    finally:
        await services.close()
        await deezer.close()
        await reccobeats.close()


@pytest.fixture
async def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any, trained_models: Path
) -> AsyncIterator[World]:
    async for w in make_world(
        tmp_path, monkeypatch, aiohttp_client, trained_models / "catalog", HTTP_RATE_LIMIT_PER_MINUTE="0"
    ):
        yield w


def valid_catalogue() -> list[Track]:
    """`catalogue_rows` with every audio value inside its valid range (the generator's noise can push a
    value just below 0, which the genre model would refuse when the recommender asks it about the
    catalogue)."""
    rows = catalogue_rows()
    for row in rows:
        for name in AUDIO_FEATURES:
            value = getattr(row, name)
            if value is not None:
                low, high = FEATURE_RANGES[name]
                setattr(row, name, min(max(value, low), high))
    return rows


def without_analysis_head(artefact: Path, into: Path) -> Path:
    """A copy of `artefact` as an artefact trained before the analysis head existed."""
    shutil.copytree(artefact, into)
    meta = json.loads((into / "meta.json").read_text())
    (analysis,) = (h for h in meta["heads"] if h["name"] == "analysis")
    meta["heads"] = [h for h in meta["heads"] if h["name"] != "analysis"]
    for head in meta["heads"]:
        head.pop("optional_inputs", None)
        head["feature_spec"].pop("analysis", None)
    meta.pop("analysis", None)
    (into / "meta.json").write_text(json.dumps(meta))
    (into / analysis["file"]).unlink()
    return into


def assert_excerpt_guess(genre: dict[str, Any] | None, classes: set[str], head: str, source: str) -> None:
    """A genre guess from the analysis head (the sound of a 30-s excerpt; `head` names the metadata
    head on top, if any), with its confidence."""
    assert genre is not None
    assert genre["head"] == head and genre["source"] == source
    assert genre["genre"] in classes and 0.0 < genre["probability"] <= 1.0
    assert genre["top"][0] == {"genre": genre["genre"], "probability": genre["probability"]}


# -- a song outside the catalogue, typed as text -------------------------------------------------


async def test_text_outside_the_catalogue_card_similar_radio(world: World) -> None:
    rows = await world.tracks()
    found = await world.search("daft punk one more time")
    assert found["kind"] == "track", found
    song = found["items"][0]
    assert (song["name"], song["artists"], song["source"]) == ("One More Time", ["Daft Punk"], "deezer")
    assert song["deezer_id"] == DAFT_PUNK and song["spotify_id"] is None
    assert await world.tracks() == rows + 2  # both Deezer results became catalogue rows, once

    before = await (await world.client.get(f"/api/v1/tracks/{song['id']}/similar", params={"limit": "5"})).json()
    assert before["items"] == [] and before["note"]  # not placed yet (and that answer is not cached)

    card = await world.card(song["id"])
    assert card["track"]["features_source"] == "analysis"
    assert set(card["track"]["features"]) == ANALYSIS_NINE  # no key, mode, time signature: not imputed
    # Nothing known of Daft Punk in the tiny model's catalogue; the title's words and script are.
    assert_excerpt_guess(card["genre"], set(CATALOG_GENRES), "analysis+artist+title", "title")
    assert card["note"] is None
    assert card["links"]["preview"].startswith(world.deezer.base_url + "/preview/")
    assert card["links"]["deezer"] == f"https://www.deezer.com/track/{DAFT_PUNK}"
    assert len(world.reccobeats.uploads) == 1 and world.reccobeats.uploads[0]["content_type"] == "audio/wav"

    # The next search finds it in the catalogue at once; the features are stored, not asked again.
    searches = world.deezer.calls["search"]
    again = await world.search("Daft Punk - One More Time")
    assert again["items"][0]["id"] == song["id"] and world.deezer.calls["search"] == searches
    assert (await world.card(song["id"]))["track"]["features"] == card["track"]["features"]
    assert len(world.reccobeats.uploads) == 1

    similar = await (await world.client.get(f"/api/v1/tracks/{song['id']}/similar", params={"limit": "5"})).json()
    assert len(similar["items"]) == 5 and similar["note"] is None
    assert all(item["track"]["source"] == "catalog" for item in similar["items"])

    resp = await world.client.post("/api/v1/radio", json={"track_id": song["id"]})
    assert resp.status == 201, await resp.text()
    step = await resp.json()
    current, seen = step["track"]["id"], {song["id"], step["track"]["id"]}
    for action in ("like", "skip", "next"):
        resp = await world.client.post(
            f"/api/v1/radio/{step['radio_id']}/feedback", json={"track_id": current, "action": action}
        )
        assert resp.status == 200, await resp.text()
        current = (await resp.json())["track"]["id"]
        assert current not in seen
        seen.add(current)

    # …and it is a candidate for the catalogue's own tracks now (added to the index without a restart).
    recs = world.services.recommendations
    index = await recs.index()  # type: ignore[attr-defined]
    assert index.position(song["id"]) is not None


async def test_deezer_links_and_short_links(world: World) -> None:
    resp = await world.search(f"https://www.deezer.com/fr/track/{DAFT_PUNK}?utm_source=x")
    assert resp["kind"] == "track" and resp["items"][0]["deezer_id"] == DAFT_PUNK
    first = resp["items"][0]["id"]
    world.deezer.short_links["deezer.page.link/AbC123"] = f"https://www.deezer.com/track/{DAFT_PUNK}"
    short = await world.search("listen https://deezer.page.link/AbC123 !")
    assert short["kind"] == "track" and short["items"][0]["id"] == first
    world.deezer.short_links["deezer.page.link/Alb"] = "https://www.deezer.com/album/302127"
    album = await world.search("https://deezer.page.link/Alb")
    assert album["kind"] == "unsupported" and "album" in album["message"]
    missing = await world.search("https://www.deezer.com/track/999999999")
    assert missing["kind"] == "not_found" and missing["message"]


async def test_a_deezer_song_folds_onto_the_catalogues_copy(world: World) -> None:
    rows = await world.tracks()
    catalogue = (await world.search("Jazz Band 3 - Jazz Song 3-1"))["items"][0]
    resp = await world.search(f"https://www.deezer.com/track/{JAZZ_ON_DEEZER}")
    assert resp["kind"] == "track"
    folded = resp["items"][0]
    assert folded["id"] == catalogue["id"] and folded["source"] == "catalog"
    assert folded["deezer_id"] == JAZZ_ON_DEEZER and folded["isrc"] == "USJZZ0300001"
    assert await world.tracks() == rows  # no duplicate
    card = await world.card(catalogue["id"])
    assert card["track"]["features_source"] is None and len(card["track"]["features"]) == 12  # the catalogue's
    assert card["links"]["preview"]  # the catalogue song can be heard now
    assert world.reccobeats.uploads == []


async def test_no_preview_and_expired_preview_urls(world: World) -> None:
    no_preview = (await world.search(f"https://www.deezer.com/track/{NO_PREVIEW}"))["items"][0]
    card = await world.card(no_preview["id"])
    assert card["track"]["features"] is None and "no preview" in card["note"] and card["links"]["preview"] is None

    song = (await world.search(f"https://www.deezer.com/track/{DAFT_PUNK}"))["items"][0]  # caches a preview URL
    world.now[0] += 1200  # the CDN's clock passes that URL's expiry; ours does not know yet
    card = await world.card(song["id"])
    assert world.deezer.previews_refused == 1 and world.deezer.previews_served == 1  # refreshed once, then fetched
    assert card["track"]["features_source"] == "analysis"


async def test_deezer_errors_in_200_bodies_429_and_timeouts(world: World) -> None:
    world.deezer.fail("search", quota_error(), Failure(status=429, headers={"Retry-After": "0"}))
    found = await world.search("daft punk one more time")
    assert found["kind"] == "track" and found["items"][0]["deezer_id"] == DAFT_PUNK
    assert world.deezer.calls["search"] == 3  # quota error (code 4 in a 200 body), 429, then the answer

    world.deezer.fail("search", *[Failure(status=None, delay=5.0)] * 3)  # three timeouts: given up
    down = await world.search("quiet quartet silent type")
    assert down["notice"] == NOTICE_DEEZER_DOWN and down["kind"] in ("not_found", "candidates")


async def test_reccobeats_down_leaves_nothing_cached(world: World) -> None:
    song = (await world.search(f"https://www.deezer.com/track/{DAFT_PUNK}"))["items"][0]
    world.reccobeats.fail("analysis", Failure(status=429, headers={"Retry-After": "120"}))
    card = await world.card(song["id"])
    assert card["track"]["features"] is None and "ReccoBeats" in card["note"]
    card = await world.card(song["id"])  # not remembered as "no features": asked again, and answered
    assert card["track"]["features_source"] == "analysis"


# -- recordings sent to /api/v1/analyze ----------------------------------------------------------


async def test_an_mp3_with_tags_opens_its_song(world: World) -> None:
    resp = await world.analyze(song_mp3(tags={"artist": "Jazz Band 3", "title": "Jazz Song 3-1"}))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["kind"] == "known" and body["tags"] == {"title": "Jazz Song 3-1", "artist": "Jazz Band 3"}
    assert body["card"]["track"]["name"] == "Jazz Song 3-1" and body["card"]["track"]["source"] == "catalog"
    assert len(body["similar"]) == 6 and world.reccobeats.uploads == []  # the tags were enough
    resp = await world.client.post("/api/v1/radio", json=body["radio"])
    assert resp.status == 201


async def test_an_mp3_without_tags_is_analysed_card_similar_radio(world: World) -> None:
    rows = await world.tracks()
    data = song_mp3(45.0, 550.0)
    resp = await world.analyze(data, name="radio_rip.mp3")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    track = body["card"]["track"]
    assert body["kind"] == "analysed" and track["source"] == "upload" and track["name"] == "radio rip"
    assert set(track["features"]) == ANALYSIS_NINE and track["features_source"] == "analysis"
    assert_excerpt_guess(body["card"]["genre"], set(CATALOG_GENRES), "analysis", "audio")  # a file: no title
    assert body["card"]["note"] is None
    assert len(body["similar"]) == 6 and body["note"] is None
    assert await world.tracks() == rows + 1
    upload = world.reccobeats.uploads[-1]
    assert upload["content_type"] == "audio/wav" and upload["size"] <= 5 * 1024 * 1024

    resp = await world.client.post("/api/v1/radio", json=body["radio"])
    assert resp.status == 201, await resp.text()
    step = await resp.json()
    resp = await world.client.post(
        f"/api/v1/radio/{step['radio_id']}/feedback", json={"track_id": step["track"]["id"], "action": "like"}
    )
    assert resp.status == 200 and (await resp.json())["track"]["id"] != step["track"]["id"]

    # The same file again: the stored answer, no second analysis and no second row.
    again = await (await world.analyze(data, name="copy.mp3")).json()
    assert again["card"]["track"]["id"] == track["id"] and len(world.reccobeats.uploads) == 1
    assert await world.tracks() == rows + 1
    # Someone's recording is never found by others nor recommended to them.
    assert (await world.search("radio rip"))["items"] == [] or all(
        i["source"] != "upload" for i in (await world.search("radio rip"))["items"]
    )
    index = await world.services.recommendations.index()  # type: ignore[attr-defined]
    assert index.position(track["id"]) is None


def random_bytes(n: int) -> bytes:
    return np.random.default_rng(13).bytes(n)


@pytest.mark.parametrize(
    ("what", "status", "code"),
    [
        ("png", 415, "not_audio"),
        ("png named .mp3", 415, "not_audio"),
        ("silence", 422, "silent_audio"),
        ("two-hour mix", 422, "audio_too_long"),
        ("random bytes", 415, "not_audio"),
        ("damaged mp3", 422, "corrupt_audio"),
        ("too short", 422, "audio_too_short"),
        ("empty", 422, "empty_file"),
        ("21 MB", 413, "body_too_large"),
    ],
)
async def test_bad_uploads_get_the_right_status_and_nothing_is_stored(
    world: World, tmp_path: Path, what: str, status: int, code: str
) -> None:
    rows = await world.tracks()
    if what == "png":
        resp = await world.analyze(media.png(), "cover.png", "image/png")
    elif what == "png named .mp3":
        resp = await world.analyze(media.png(), "cover.mp3", "application/octet-stream")
    elif what == "silence":
        buffer = io.BytesIO()
        media.mp3(buffer, np.zeros((1, 22_050 * 40), dtype=np.float32), 22_050)
        resp = await world.analyze(buffer.getvalue())
    elif what == "two-hour mix":
        path = tmp_path / "mix.mp3"
        media.long_mp3(path, 2 * 3600)
        resp = await world.analyze(path.read_bytes(), "mix.mp3")
    elif what == "random bytes":
        resp = await world.analyze(random_bytes(300_000), "noise.mp3")
    elif what == "damaged mp3":  # an ID3 tag, then noise where the frames should be
        resp = await world.analyze(media.id3v23("Title", "Artist", "Album") + random_bytes(300_000))
    elif what == "too short":
        resp = await world.analyze(song_mp3(2.0))
    elif what == "empty":
        resp = await world.analyze(b"")
    else:
        resp = await world.analyze(random_bytes(21 * 1024 * 1024))
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["code"] == code and problem["detail"]
    assert await world.tracks() == rows and world.reccobeats.uploads == []


async def test_a_model_trained_before_the_analysis_head_says_why_there_is_no_genre(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any, trained_models: Path
) -> None:
    """Old artefacts still load: catalogue songs get their genre, nine-value songs the clear note."""
    old = without_analysis_head(trained_models / "catalog", tmp_path / "old-model")
    async for world in make_world(tmp_path, monkeypatch, aiohttp_client, old, HTTP_RATE_LIMIT_PER_MINUTE="0"):
        song = (await world.search("daft punk one more time"))["items"][0]
        card = await world.card(song["id"])
        assert card["track"]["features_source"] == "analysis"
        assert card["genre"] is None and card["note"] == NOTE_NO_ANALYSIS_HEAD
        catalogue = (await world.search("Jazz Band 3 - Jazz Song 3-1"))["items"][0]
        assert (await world.card(catalogue["id"]))["genre"] is not None  # the old full head answers
        resp = await world.analyze(song_mp3(30.0, 610.0), name="memo.mp3")
        body = await resp.json()
        assert body["card"]["genre"] is None and body["card"]["note"] == NOTE_NO_ANALYSIS_HEAD


async def test_a_body_over_the_cap_without_a_declared_length_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any
) -> None:
    """The view's stream cap, not only the declared Content-Length, refuses an oversized file."""
    async for world in make_world(
        tmp_path, monkeypatch, aiohttp_client, ANALYSIS_MAX_BYTES="1000000", HTTP_RATE_LIMIT_PER_MINUTE="0"
    ):
        rows = await world.tracks()
        resp = await world.analyze(random_bytes(1_030_000))  # under the route's body limit, over the file cap
        assert resp.status == 413 and (await resp.json())["code"] == "audio_too_large"
        assert await world.tracks() == rows
        # Every other route keeps the 64 kB limit.
        resp = await world.client.post(
            "/api/v1/radio", data=b"{" + b" " * 70_000 + b"}", headers={"Content-Type": "application/json"}
        )
        assert resp.status == 413


async def test_analysis_is_limited_per_client_and_provider_failures_are_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any
) -> None:
    async for world in make_world(
        tmp_path, monkeypatch, aiohttp_client, ANALYSIS_PER_IDENTITY="2", HTTP_RATE_LIMIT_PER_MINUTE="0"
    ):
        rows = await world.tracks()
        world.reccobeats.fail("analysis", Failure(status=503, headers={"Retry-After": "60"}))
        down = await world.analyze(song_mp3(20.0, 300.0))
        assert down.status == 503 and down.headers["Retry-After"]
        assert (await down.json())["code"] == "provider_unavailable" and await world.tracks() == rows
        ok = await world.analyze(song_mp3(20.0, 310.0))
        assert ok.status == 200
        limited = await world.analyze(song_mp3(20.0, 320.0))
        assert limited.status == 429, await limited.text()
        assert int(limited.headers["Retry-After"]) >= 1
        assert (await limited.json())["code"] == "analysis_rate_limited"
        assert await world.tracks() == rows + 1


# -- the web page ----------------------------------------------------------------------------------


async def test_page_upload_form_result_and_preview_player(world: World) -> None:
    home = await world.client.get("/")
    html = await home.text()
    assert 'enctype="multipart/form-data"' in html and 'action="/analyze"' in html
    csp = home.headers["Content-Security-Policy"]
    assert f"media-src {world.deezer.base_url}" in csp

    token = re.search(r'name="csrf" value="([0-9a-f]{64})"', html).group(1)  # type: ignore[union-attr]
    origin = {"Origin": str(world.client.make_url("/")).rstrip("/")}

    def upload(data: bytes, name: str, content_type: str, *, csrf: str | None = token) -> FormData:
        form = FormData()
        if csrf is not None:
            form.add_field("csrf", csrf)  # before the file, as the page's form sends it
        form.add_field("file", io.BytesIO(data), filename=name, content_type=content_type)
        return form

    missing_token = await world.client.post(
        "/analyze", data=upload(song_mp3(30.0, 660.0), "memo.mp3", "audio/mpeg", csrf=None), headers=origin
    )
    assert missing_token.status == 403
    resp = await world.client.post(
        "/analyze", data=upload(song_mp3(30.0, 660.0), "memo.mp3", "audio/mpeg"), headers=origin, allow_redirects=False
    )
    assert resp.status == 303, await resp.text()
    page = await world.client.get(resp.headers["Location"])
    text = await page.text()
    assert page.status == 200 and "what your recording sounds like" in text and "Start a radio" in text

    cross = await world.client.post(
        "/analyze", data=upload(b"x" * 100, "memo.mp3", "audio/mpeg"), headers={"Origin": "https://evil.example"}
    )
    assert cross.status == 403

    refused = await world.client.post(
        "/analyze", data=upload(media.png(), "cover.png", "image/png"), headers={"Accept": "text/html", **origin}
    )
    assert refused.status == 415 and "look like audio" in await refused.text()

    song = (await world.search(f"https://www.deezer.com/track/{DAFT_PUNK}"))["items"][0]
    card_page = await (await world.client.get(f"/track/{song['id']}")).text()
    assert f'<audio controls preload="none" src="{world.deezer.base_url}/preview/{DAFT_PUNK}.mp3' in card_page
    assert 'data-head="analysis+artist+title">From the sound of a 30-second excerpt, with the words' in card_page


async def test_the_service_takes_a_path_and_the_callers_tags(world: World, tmp_path: Path) -> None:
    """What the bot will call for an audio message: a downloaded file and Telegram's performer/title."""
    analysis = world.services.analysis
    assert analysis is not None
    path = tmp_path / "voice.mp3"
    path.write_bytes(song_mp3(20.0, 500.0))  # no tags in the file itself
    result = await analysis.analyse(path, identity="tg:42", title="One More Time", performer="Daft Punk")
    assert result.kind == "known" and result.card.track.deezer_id == DAFT_PUNK  # found on Deezer by the tags
    assert len(world.reccobeats.uploads) == 1  # the song's Deezer preview, for its card
    assert result.card.track.features_source == "analysis"
    result = await analysis.analyse(path, identity="tg:42", mime_type="audio/mpeg")
    assert result.kind == "analysed" and result.card.track.source == "upload" and len(result.similar) == 6
    assert len(world.reccobeats.uploads) == 2
    assert path.exists()  # the caller's file is left alone


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://cdnt-preview.dzcdn.net/api/1/1/a/b/0/x.mp3?hdnea=exp=1", True),
        ("https://cdns-preview-d.dzcdn.net/stream/c-d.mp3", True),
        ("http://cdnt-preview.dzcdn.net/x.mp3", False),
        ("https://dzcdn.net.evil.example/x.mp3", False),
        ("https://evil.example/x.mp3", False),
        ("not a url", False),
    ],
)
def test_preview_origins(url: str, allowed: bool) -> None:
    from handlers.http.page import origin_allowed

    assert origin_allowed(url, ("https://*.dzcdn.net",)) is allowed


async def test_the_genre_api_takes_the_nine_analysis_values_and_the_artists(world: World) -> None:
    """POST /api/v1/genre with only the nine values an excerpt's analysis gives reaches the analysis
    head; with the artists and title, the metadata heads on top; the guess says which answered."""
    nine = {"danceability": 0.5, "energy": 0.9, "loudness": -6.0, "speechiness": 0.05, "acousticness": 0.01}
    nine |= {"instrumentalness": 0.8, "liveness": 0.1, "valence": 0.4, "tempo": 128.0}
    assert set(nine) == ANALYSIS_NINE
    resp = await world.client.post("/api/v1/genre", json=nine)
    assert resp.status == 200, await resp.text()
    assert_excerpt_guess(await resp.json(), set(CATALOG_GENRES), "analysis", "audio")
    named = {**nine, "artists": ["Jazz Band 3"], "title": "Jazz Song 3-1", "duration_ms": 200_000, "explicit": False}
    guess = await (await world.client.post("/api/v1/genre", json=named)).json()
    assert guess["head"].startswith("analysis+artist") and guess["source"] in ("artist", "title"), guess
    full = await world.client.post("/api/v1/genre", json={**nine, "key": 5, "mode": 1, "time_signature": 4})
    assert full.status == 200 and (await full.json())["head"] == "audio"
    for bad in ({**nine, "artists": []}, {**nine, "title": "   "}, {**nine, "duration_ms": 5}, {"energy": 0.5}):
        refused = await world.client.post("/api/v1/genre", json=bad)
        assert refused.status == 422, (bad, await refused.text())
    partial = await world.client.post("/api/v1/genre", json={**nine, "key": 5, "mode": 1})  # short of all three
    assert partial.status == 200 and (await partial.json())["head"] == "analysis"
