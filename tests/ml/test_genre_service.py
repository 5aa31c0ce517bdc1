from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.features import AUDIO_FEATURES, rows_to_matrix
from ml.predictor import GenrePredictor
from services.dto import GenreGuess, GenreSource, TrackInfo
from services.errors import InvalidInput, ModelNotReady, NoFeatures
from services.genre import GenreService
from services.genre_labels import genre_verdict
from tests.ml.test_features import GOOD


@pytest.fixture(scope="module")
def service(trained_models: Path) -> GenreService:
    return GenreService(GenrePredictor.load(trained_models / "catalog"))


async def test_guess_returns_genre_and_family(service: GenreService) -> None:
    guess = await service.guess({k: GOOD[k] for k in AUDIO_FEATURES})
    assert isinstance(guess, GenreGuess)
    assert guess.genre in service.classes
    assert len(guess.top) == 3 and guess.family_top[0][0] == guess.family
    assert guess.model_version == service.version != ""
    assert service.guess_sync(GOOD).genre in service.classes


async def test_errors(service: GenreService) -> None:
    with pytest.raises(NoFeatures):
        await service.guess(None)
    with pytest.raises(NoFeatures):
        await service.guess({"energy": 0.5})
    with pytest.raises(InvalidInput):
        await service.guess({**GOOD, "tempo": -3})
    with pytest.raises(ModelNotReady):
        await GenreService(None).guess(GOOD)
    with pytest.raises(ModelNotReady):
        _ = GenreService(None).classes


async def test_proba_matrix_accepts_audio_only_and_full_rows(service: GenreService) -> None:
    audio = await service.proba_matrix(rows_to_matrix([GOOD] * 4, AUDIO_FEATURES))
    full = await service.proba_matrix(rows_to_matrix([GOOD] * 4))
    assert audio.shape == full.shape == (4, len(service.classes))
    np.testing.assert_allclose(audio.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(InvalidInput):
        await service.proba_matrix(np.full((1, len(AUDIO_FEATURES)), np.nan))


async def test_the_guess_says_where_the_genre_comes_from(service: GenreService) -> None:
    """Issue 14: artists and title reach the model's metadata heads; the guess says which head answered,
    keeps the audio-only answer beside a blended one, and carries catalogue labels."""
    audio = await service.guess(GOOD)
    assert (audio.head, audio.source, audio.audio_top, audio.labels) == ("audio", GenreSource.AUDIO, (), ())

    artist = await service.guess(GOOD, artists=["Artist 2-3"], title=None)
    assert artist.head == "audio+artist" and artist.artists_known == 1 and artist.source is GenreSource.ARTIST
    assert "artist (1/1 known" in artist.evidence
    assert artist.audio_top == audio.top  # what the sound alone says, for "… · sounds like …"
    verdict = genre_verdict(artist)
    assert verdict.source is GenreSource.ARTIST and verdict.sounds_like == audio.top[0]

    both = await service.guess(GOOD, artists="Artist 2-3", title="A Brand New Song")
    assert both.head == "audio+artist+title" and both.source is GenreSource.ARTIST

    title_only = await service.guess(GOOD, title="Song 4-1")
    assert title_only.head == "audio+artist+title" and title_only.source is GenreSource.TITLE
    assert genre_verdict(title_only).sounds_like is None

    unknown = await service.guess(GOOD, artists=["Совсем Новый"])  # nothing the catalogue knows
    assert unknown.source is GenreSource.AUDIO and unknown.probability == pytest.approx(audio.probability)

    # A catalogue song: its own labels are what the card names; no second, audio-only prediction.
    catalogue = await service.guess(GOOD, artists=["Artist 2-3"], title="Song 2-5", labels=("techno", "house"))
    assert catalogue.source is GenreSource.CATALOGUE and catalogue.audio_top == ()
    assert genre_verdict(catalogue).labels == ("techno", "house")

    track = TrackInfo(1, None, "Song 2-5", ("Artist 2-3",), genres=("techno",), features=dict(GOOD))
    assert (await service.guess_track(track)).source is GenreSource.CATALOGUE
    new = TrackInfo(2, None, "Something New", ("Artist 2-3",), features=dict(GOOD))
    [guess] = await service.guess_tracks([new])
    assert guess is not None and guess.source is GenreSource.ARTIST and guess.audio_top
