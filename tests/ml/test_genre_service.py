from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.features import AUDIO_FEATURES, rows_to_matrix
from ml.predictor import GenrePredictor
from services.dto import GenreGuess
from services.errors import InvalidInput, ModelNotReady, NoFeatures
from services.genre import GenreService
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
