from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ml.features import ANALYSIS_VALUES, AUDIO_FEATURES, rows_to_matrix
from ml.predictor import GenrePredictor
from services.dto import GenreGuess, GenreSource, TrackInfo
from services.errors import InvalidInput, ModelNotReady, NoFeatures, NoGenreHead
from services.genre import NOTE_NO_ANALYSIS_HEAD, GenreService, guess_from_analysis
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


# -- the analysis head (issue 13 §2) -------------------------------------------------------------

NINE = {k: GOOD[k] for k in ANALYSIS_VALUES}


async def test_a_song_known_by_an_excerpts_analysis_gets_a_genre(service: GenreService) -> None:
    guess = await guess_from_analysis(service, NINE, duration_ms=200_000)
    assert guess.head == "analysis" and guess.excerpt and guess.source is GenreSource.AUDIO
    assert guess.genre in service.classes and 0.0 < guess.probability <= 1.0
    verdict = genre_verdict(guess)
    assert verdict.excerpt and verdict.source is GenreSource.AUDIO
    # the same answer as the predictor's analysis head (nothing filled in for key, mode, time signature)
    predictor = service.predictor()
    assert predictor is not None
    direct = predictor.predict_one({**NINE, "duration_ms": 200_000, "explicit": None})
    assert (guess.genre, guess.probability) == (direct.genre, pytest.approx(direct.probability))
    # a duration outside the model's range counts as unknown (Deezer says 0 when it does not know)
    zero = await guess_from_analysis(service, NINE, duration_ms=0, explicit=True)
    unknown = predictor.predict_one({**NINE, "explicit": True})
    assert zero.probability == pytest.approx(unknown.probability) and zero.genre == unknown.genre
    # with the artists, the metadata heads blend in over the analysis head
    artist = await guess_from_analysis(service, NINE, artists=["Artist 0-1"], title="Song 0-2")
    assert artist.head == "analysis+artist+title" and artist.source is GenreSource.ARTIST
    assert artist.audio_top and artist.audio_top[0][0] in service.classes  # "sounds like", from the excerpt


async def test_no_analysis_head_in_an_old_model_and_no_model(trained_models: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(trained_models / "catalog", old)
    meta = json.loads((old / "meta.json").read_text())
    meta["heads"] = [h for h in meta["heads"] if h["name"] != "analysis"]
    (old / "meta.json").write_text(json.dumps(meta))
    service = GenreService(GenrePredictor.load(old))
    with pytest.raises(NoGenreHead) as caught:
        await guess_from_analysis(service, NINE, duration_ms=200_000)
    assert caught.value.message == NOTE_NO_ANALYSIS_HEAD
    assert (await service.guess(GOOD)).head == "audio"  # the old heads still answer
    with pytest.raises(ModelNotReady):
        await guess_from_analysis(None, NINE)
    with pytest.raises(NoFeatures):
        await guess_from_analysis(service, {**NINE, "energy": None})
