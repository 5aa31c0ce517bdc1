"""Tracks that get features after the recommender's index was built: added by id, placed by the nine
analysis values when that is all they have, candidates at once; uploads stay seeds only."""

from __future__ import annotations

from db.models import UNANALYSED_COLUMNS, Track
from ml.features import AUDIO_FEATURES
from services.recommender import RecommendationService
from tests.recs.conftest import Catalog


def _copy(template: Track, **values: object) -> Track:
    track = Track(**values)  # type: ignore[arg-type]
    for c in AUDIO_FEATURES:
        setattr(track, c, getattr(template, c))
    return track


async def test_refresh_new_adds_what_another_process_wrote(sessions, catalog: Catalog) -> None:
    recs = RecommendationService(sessions)
    size = len(await recs.index())
    jazz = catalog.tracks[catalog.by_genre["jazz"][3] - 1]
    async with sessions.begin() as s:
        full = _copy(jazz, deezer_id=501, name="Blue Deezer", artists="Dz Quartet", source="deezer")
        nine = _copy(jazz, deezer_id=502, name="Half Known", artists="Dz Trio", source="deezer")
        for c in UNANALYSED_COLUMNS:
            setattr(nine, c, None)
        nine.features_source = "analysis"
        upload = _copy(jazz, name="My Memo", artists="", source="upload")
        bare = Track(deezer_id=503, name="No Features", artists="Nobody", source="deezer")
        s.add_all([full, nine, upload, bare])
    assert await recs.refresh_new() == 2  # not the upload (never recommended to others), not the bare one
    index = await recs.index()
    assert len(index) == size + 2 and index.position(upload.id) is None
    assert await recs.refresh_new() == 0

    # Both are candidates for a catalogue jazz seed now …
    seed = catalog.by_genre["jazz"][3]
    found = {r.track.id for r in await recs.similar(seed, 30)}
    assert {full.id, nine.id} <= found
    # … and seeds, the nine-value one placed among jazz by the nine values it has.
    similar = await recs.similar(nine.id, 10)
    assert sum(r.track.genres == ("jazz",) for r in similar) >= 8
    assert set(next(r for r in await recs.similar(seed, 30) if r.track.id == nine.id).track.features or {}) == set(
        AUDIO_FEATURES
    ) - set(UNANALYSED_COLUMNS)
    # The upload is a seed too (read from the database every time).
    assert len(await recs.similar(upload.id, 5)) == 5


async def test_add_tracks_is_idempotent_and_keeps_the_signature(sessions, catalog: Catalog) -> None:
    recs = RecommendationService(sessions)
    before = await recs.index()
    rock = catalog.tracks[catalog.by_genre["rock"][0] - 1]
    async with sessions.begin() as s:
        new = _copy(rock, spotify_id="addedlater000000000000", name="Later", artists="Late Band", source="spotify")
        s.add(new)
    assert await recs.add_tracks([new.id, new.id]) == 1
    assert await recs.add_tracks([new.id]) == 0
    after = await recs.index()
    assert after is not before and after.signature() == before.signature() and len(after) == len(before) + 1
