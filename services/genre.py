"""GenreService: the genre model as a use case (fine genre + coarse family, with probabilities).

Prediction is CPU-bound, so the async methods run it in a worker thread. Inputs: the 12 audio
features, optionally with `duration_ms` and `explicit` — with both, the model's full head is used
(more accurate); without them, its audio-only head. A song known only by the nine values of an audio
analysis of a 30-second excerpt goes to the model's analysis head (`guess_from_analysis`); the
routing itself is `ml.predictor.GenrePredictor.head_for`. Nothing is imputed. With the song's artists and
title, the model's metadata heads blend in what the catalogue knows about them (issue 14); the guess
says which head answered, and `services.genre_labels.genre_verdict` words it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypedDict

import numpy as np

from ml.blend import HEAD_AUDIO
from ml.features import ANALYSIS_INPUTS, ANALYSIS_VALUES, FEATURE_RANGES, FeatureError
from ml.predictor import ANALYSIS_HEAD, GenrePredictor, NoHead, Prediction
from services.dto import GenreGuess, TrackInfo
from services.errors import EncoreError, InvalidInput, ModelNotReady, NoFeatures, NoGenreHead

log = logging.getLogger(__name__)


def genre_inputs(track: TrackInfo) -> dict[str, Any] | None:
    """What the model reads for a track: its audio features, with duration and the explicit flag
    when known (then the model's full head is used, else its audio-only head). The one place this
    is decided, so the chat card, the inline result and the web page guess the same genre."""
    if track.features is None:
        return None
    return {**track.features, "duration_ms": track.duration_ms, "explicit": track.explicit}


class GenreContext(TypedDict):
    artists: Sequence[str] | None
    title: str | None
    labels: Sequence[str]


def genre_context(track: TrackInfo) -> GenreContext:
    """What the model and the card know about a track besides its sound: its artists and title (the
    metadata heads), and its catalogue labels. With `genre_inputs`, the one place this is decided."""
    return {"artists": track.artists or None, "title": track.name or None, "labels": track.genres}


def _names(artists: Sequence[str] | str | None) -> list[str] | None:
    if artists is None:
        return None
    names = [artists] if isinstance(artists, str) else list(artists)
    names = [" ".join(n.split()) for n in names if n and n.strip()]
    return names or None


class GenreService:
    """`predictor`: a loaded model; or `loader`, called once on first use (None: no model)."""

    def __init__(
        self,
        predictor: GenrePredictor | None = None,
        *,
        loader: Callable[[], GenrePredictor | None] | None = None,
    ) -> None:
        self._predictor = predictor
        self._loader = None if predictor is not None else loader
        self._lock = threading.Lock()

    def predictor(self) -> GenrePredictor | None:
        """The model, loaded on the first call (blocking: call it from a worker thread)."""
        if self._loader is not None:
            with self._lock:
                if self._loader is not None:
                    self._predictor = self._loader()
                    self._loader = None
        return self._predictor

    async def load(self) -> GenrePredictor | None:
        return await asyncio.to_thread(self.predictor)

    @property
    def ready(self) -> bool:
        """A model is loaded (False before the first use of a lazily loaded one)."""
        return self._predictor is not None

    @property
    def classes(self) -> tuple[str, ...]:
        return self._require().classes

    @property
    def families(self) -> tuple[str, ...]:
        return self._require().families

    @property
    def version(self) -> str:
        return self._predictor.version if self._predictor is not None else ""

    def _require(self) -> GenrePredictor:
        predictor = self.predictor()
        if predictor is None:
            raise ModelNotReady("The genre model isn't available right now.")
        return predictor

    def guess_sync(
        self,
        features: Mapping[str, Any] | None,
        *,
        artists: Sequence[str] | str | None = None,
        title: str | None = None,
        labels: Sequence[str] = (),
    ) -> GenreGuess:
        """Blocking form of `guess` (for CLIs and worker threads)."""
        predictor = self._require()
        if features is None or any(features.get(name) is None for name in ANALYSIS_VALUES):
            raise NoFeatures("This track has no audio features, so there's no genre guess.")
        artists = _names(artists)
        title = title.strip() if title and title.strip() else None
        try:
            prediction = predictor.predict_one(features, artists=artists, title=title)
            audio: Prediction | None = None
            if prediction.head not in (HEAD_AUDIO, ANALYSIS_HEAD) and not labels:
                # A song outside the catalogue named by its artist or title: the card also says what
                # the sound alone suggests ("k-pop (from the artist) · sounds like dance-pop 41 %").
                audio = predictor.predict_one(features, audio_only=True)
        except NoHead as exc:  # the nine analysis values, and an artefact trained before the analysis head
            raise NoGenreHead(NOTE_NO_ANALYSIS_HEAD) from exc
        except FeatureError as exc:
            raise InvalidInput(f"The track's audio features look wrong ({exc}).") from exc
        return to_guess(prediction, predictor.version, audio=audio, labels=labels)

    async def guess(
        self,
        features: Mapping[str, Any] | None,
        *,
        artists: Sequence[str] | str | None = None,
        title: str | None = None,
        labels: Sequence[str] = (),
    ) -> GenreGuess:
        """The genre of a song from its audio features, and — when given — its artists and title (the
        model's metadata heads; `GenreGuess.head` says which answered) and its catalogue labels (then
        the card names those). The 12 audio features, or the nine of an excerpt's analysis (the
        analysis head). Raises NoFeatures (none / incomplete), InvalidInput (bad values),
        NoGenreHead (the nine values, a model trained before the analysis head), ModelNotReady."""
        return await asyncio.to_thread(self.guess_sync, features, artists=artists, title=title, labels=labels)

    async def guess_track(self, track: TrackInfo) -> GenreGuess:
        """The guess for a track from `genre_inputs` and `genre_context` (NoFeatures when it has none)."""
        return await self.guess(genre_inputs(track), **genre_context(track))

    async def guess_tracks(self, tracks: Sequence[TrackInfo]) -> list[GenreGuess | None]:
        """A guess per track (None where there is none: no features, no model), in one worker thread."""
        return await asyncio.to_thread(self._guess_many, list(tracks))

    def _guess_many(self, tracks: list[TrackInfo]) -> list[GenreGuess | None]:
        out: list[GenreGuess | None] = []
        for track in tracks:
            inputs = genre_inputs(track)
            try:
                out.append(self.guess_sync(inputs, **genre_context(track)) if inputs is not None else None)
            except EncoreError as exc:
                log.debug("no genre guess for track %s: %s", track.id, exc.code)
                out.append(None)
        return out

    def proba_matrix_sync(self, matrix: np.ndarray) -> np.ndarray:
        predictor = self._require()
        try:
            return predictor.predict_proba(matrix)
        except FeatureError as exc:
            raise InvalidInput(str(exc)) from exc

    async def proba_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """(n, 12) AUDIO_FEATURES or (n, 14) RAW_INPUTS rows → (n, len(classes)) probabilities."""
        return await asyncio.to_thread(self.proba_matrix_sync, matrix)


# What the analysis head reads (`ml.features.ANALYSIS_INPUTS`): the nine values ReccoBeats' analysis of a
# 30-second excerpt gives, then duration and explicit when known.
ANALYSIS_HEAD_INPUTS: tuple[str, ...] = ANALYSIS_INPUTS
NOTE_NO_ANALYSIS_HEAD = (
    "This song's sound was measured from a 30-second excerpt, which gives nine audio values but no key, "
    "mode or time signature. The genre model in use was trained before it could read those, so there's "
    "no genre guess from its sound; similar tracks still come from the nine values."
)


def _known(name: str, value: float | bool | None) -> float | bool | None:
    """Duration / explicit as the analysis head reads them: None (unknown) when missing or outside the
    model's range (a Deezer duration of 0 means "not known", not a zero-length song)."""
    if value is None:
        return None
    low, high = FEATURE_RANGES[name]
    return value if low <= float(value) <= high else None


class _Guesses(Protocol):
    async def guess(
        self,
        features: Mapping[str, Any],
        *,
        artists: Sequence[str] | str | None = None,
        title: str | None = None,
        labels: Sequence[str] = (),
    ) -> GenreGuess: ...


async def guess_from_analysis(
    genre: _Guesses | None,
    features: Mapping[str, float],
    *,
    duration_ms: int | None = None,
    explicit: bool | None = None,
    artists: Sequence[str] | str | None = None,
    title: str | None = None,
    labels: Sequence[str] = (),
) -> GenreGuess:
    """The genre of a song known by the nine analysis values (`ANALYSIS_HEAD_INPUTS`), from the model's
    analysis head ("analysis"; with the song's artists and title the metadata heads blend in, as
    "analysis+artist[+title]"). Every caller (track cards, the analysis of sent audio) goes through it.

    Raises ModelNotReady (no model), NoGenreHead with `NOTE_NO_ANALYSIS_HEAD` (a model trained before
    the analysis head: filling in key, mode and time signature would pass an invented guess off as the
    model's), NoFeatures (one of the nine missing), InvalidInput (a value out of range)."""
    if genre is None:
        raise ModelNotReady("The genre model isn't available right now.")
    inputs: dict[str, Any] = {name: features.get(name) for name in ANALYSIS_VALUES}
    inputs["duration_ms"] = _known("duration_ms", duration_ms)
    inputs["explicit"] = _known("explicit", explicit)
    return await genre.guess(inputs, artists=artists, title=title, labels=labels)


def to_guess(
    prediction: Prediction, version: str, *, audio: Prediction | None = None, labels: Sequence[str] = ()
) -> GenreGuess:
    """`audio`: the audio-only answer for the same song, when the metadata heads answered."""
    return GenreGuess(
        genre=prediction.genre,
        probability=prediction.probability,
        top=prediction.top,
        family=prediction.family,
        family_probability=prediction.family_probability,
        family_top=prediction.family_top,
        model_version=version,
        head=prediction.head,
        evidence=prediction.evidence,
        artists_known=prediction.artists_known,
        audio_top=audio.top if audio is not None else (),
        labels=tuple(labels),
    )
