"""Seeds outside the catalogue know their artists (issue 14 §2): a provider track, a features row given
with its artists and title, a song known by the nine values of an audio analysis get their genre from
the genre model WITH the artists' catalogue genres as evidence (`ml.seeds`), not from audio alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Track
from ml.blend import ARTIST_FEATURES, HEAD_ARTIST, HEAD_AUDIO, HEAD_TITLE, TITLE_FEATURES
from ml.evidence import CountTable, artist_keys, artist_name_tokens, title_tokens
from ml.features import AUDIO_FEATURES, FEATURE_RANGES, FeatureSpec
from ml.meta import MetadataBlend
from ml.predictor import GenrePredictor, Head
from ml.seeds import seed_distribution
from services.recommender import RecommendationService
from tests.recs.conftest import GENRES, make_tracks

CLASSES = tuple(GENRES)  # rock, jazz, techno


def _audio_model(features: np.ndarray) -> np.ndarray:
    """Confident audio guess: the genre centre nearest in energy, acousticness and danceability."""
    cols = [AUDIO_FEATURES.index(c) for c in ("energy", "acousticness", "danceability")]
    centres = np.asarray([[GENRES[g][c] for c in ("energy", "acousticness", "danceability")] for g in CLASSES])
    d2 = ((features[:, None, cols] - centres[None, :, :]) ** 2).sum(axis=2)
    logits = -40.0 * d2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    return 0.9 * p + 0.1 / len(CLASSES)


def artist_aware_predictor(tracks: Sequence[Track]) -> GenrePredictor:
    """A real GenrePredictor (audio heads + metadata blend) over the generated catalogue: artist
    evidence counted from the tracks' labels; the blend weighs the artist's genres above the audio."""
    labels = [t.genres[0].genre for t in tracks]
    artists = CountTable.build([artist_keys(t.artists) for t in tracks], labels, CLASSES)
    tokens = CountTable.build([artist_name_tokens(t.artists) + title_tokens(t.name) for t in tracks], labels, CLASSES)
    weights = {"audio_logp_known": 1.0, "audio_logp_unknown": 1.0, "artist_llr": 3.0}

    def logit(names: Sequence[str]) -> dict[str, object]:
        return {
            "l2": 0.0,
            "l2_bias": 0.0,
            "weights": [weights.get(n, 0.0) for n in names],
            "bias": [0.0] * len(CLASSES),
        }

    config = {
        "alpha_artist": 1.0,
        "alpha_tokens": 1.0,
        "prior": [1.0 / len(CLASSES)] * len(CLASSES),
        "heads": {
            HEAD_ARTIST: {"features": list(ARTIST_FEATURES), "logit": logit(ARTIST_FEATURES)},
            HEAD_TITLE: {
                "features": list(ARTIST_FEATURES + TITLE_FEATURES),
                "logit": logit(ARTIST_FEATURES + TITLE_FEATURES),
            },
        },
    }
    heads = [
        Head("full", _audio_model, FeatureSpec(), 1.0),
        Head("audio_only", _audio_model, FeatureSpec(audio_only=True), 1.0),
    ]
    predictor = GenrePredictor(heads, {"classes": list(CLASSES), "version": "test-artist-aware"})
    predictor.blend = MetadataBlend(CLASSES, artists, tokens, config, np.eye(len(CLASSES)))
    return predictor


def valid_tracks() -> list[Track]:
    """The generated catalogue with every feature inside the genre model's ranges (it refuses others)."""
    tracks = make_tracks()
    for t in tracks:
        for c in AUDIO_FEATURES:
            low, high = FEATURE_RANGES[c]
            setattr(t, c, float(np.clip(getattr(t, c), low, high)))
    return tracks


@pytest.fixture
async def catalogue(sqlite_sessions: async_sessionmaker[AsyncSession]) -> list[Track]:
    tracks = valid_tracks()
    async with sqlite_sessions.begin() as s:
        s.add_all(tracks)
    return tracks


async def _provider_track(
    sessions: async_sessionmaker[AsyncSession], like: Track, artists: str, name: str, *, nine: bool = False
) -> int:
    """A song found through a provider (no catalogue labels) that sounds like `like`."""
    async with sessions.begin() as s:
        row = Track(
            spotify_id=None if nine else f"prov{abs(hash(name)) % 10**16:016d}",
            name=name,
            artists=artists,
            duration_ms=like.duration_ms,
            explicit=False,
            source="spotify",
        )
        for c in AUDIO_FEATURES:
            setattr(row, c, None if nine and c in ("key", "mode", "time_signature") else getattr(like, c))
        s.add(row)
        await s.flush()
        return int(row.id)


def _genres(recs: Sequence[object]) -> Counter[str]:
    return Counter(g for r in recs for g in r.track.genres)  # type: ignore[attr-defined]


async def test_a_provider_track_by_a_known_artist_is_placed_in_that_artists_genres(
    sqlite_sessions: async_sessionmaker[AsyncSession], catalogue: list[Track]
) -> None:
    predictor = artist_aware_predictor(catalogue)
    techno_like = next(t for t in catalogue if t.genres[0].genre == "techno")
    seed = await _provider_track(sqlite_sessions, techno_like, "Jazz Artist 3", "A New Single")
    recs = RecommendationService(sqlite_sessions, proba=predictor)
    result = await recs.similar(seed, 10)
    assert len(result) == 10
    # the audio alone says techno; the artist's catalogue songs are all jazz
    assert _genres(result)["jazz"] >= 8, _genres(result)
    # the radio's artist cap holds: the seed's artist counts as one already shown
    assert sum("Jazz Artist 3" in r.track.artists for r in result) <= 1
    assert seed not in [r.track.id for r in result]
    # the same seed given as a row of features with its artists and title: the same list
    row = {c: getattr(techno_like, c) for c in AUDIO_FEATURES}
    row |= {"duration_ms": techno_like.duration_ms, "explicit": False}
    as_row = await recs.similar_to_row({**row, "artists": "Jazz Artist 3", "track_name": "A New Single"}, 10)
    assert [r.track.id for r in as_row] == [r.track.id for r in result]
    # without its artists, the row is placed by its audio: techno
    audio_only = await recs.similar_to_row(row, 10)
    assert _genres(audio_only)["techno"] >= 8, _genres(audio_only)


async def test_an_unknown_artist_keeps_the_audio_answer(
    sqlite_sessions: async_sessionmaker[AsyncSession], catalogue: list[Track]
) -> None:
    predictor = artist_aware_predictor(catalogue)
    techno_like = next(t for t in catalogue if t.genres[0].genre == "techno")
    seed = await _provider_track(sqlite_sessions, techno_like, "Nobody Heard Of", "Qwzx")
    result = await RecommendationService(sqlite_sessions, proba=predictor).similar(seed, 10)
    assert _genres(result)["techno"] >= 8, _genres(result)


async def test_a_song_known_by_nine_values_uses_its_artist_too(
    sqlite_sessions: async_sessionmaker[AsyncSession], catalogue: list[Track]
) -> None:
    predictor = artist_aware_predictor(catalogue)
    techno_like = next(t for t in catalogue if t.genres[0].genre == "techno")
    seed = await _provider_track(sqlite_sessions, techno_like, "Jazz Artist 5", "Sent As Audio", nine=True)
    result = await RecommendationService(sqlite_sessions, proba=predictor).similar(seed, 10)
    assert _genres(result)["jazz"] >= 8, _genres(result)


def test_seed_distribution_routes_by_what_is_given() -> None:
    tracks = valid_tracks()
    predictor = artist_aware_predictor(tracks)
    techno = next(t for t in tracks if t.genres[0].genre == "techno")
    row = [getattr(techno, c) for c in AUDIO_FEATURES]
    matrix = np.asarray([[*row, 200_000.0, 0.0], [*row, 200_000.0, 0.0], [*row, 200_000.0, 0.0], [*row, 0.0, 0.0]])
    proba, heads = seed_distribution(
        predictor,
        matrix,
        artists=["Jazz Artist 1", "", "Jazz Artist 1", "Jazz Artist 1"],
        titles=[None, "jazz song 1-1", "jazz song 1-1", None],
    )
    # a title counts only with artists; a 0 ms duration goes to the audio-only head, artists still count
    assert heads == [HEAD_ARTIST, HEAD_AUDIO, HEAD_TITLE, HEAD_ARTIST]
    jazz, techno_i = CLASSES.index("jazz"), CLASSES.index("techno")
    assert proba[0].argmax() == jazz and proba[1].argmax() == techno_i and proba[3].argmax() == jazz
    assert np.allclose(proba.sum(axis=1), 1.0)
