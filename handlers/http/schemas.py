"""Request bodies of the JSON API: pydantic models, strict, each field in its documented range."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from handlers.http.params import MAX_ID
from services.dto import ANALYSIS_VALUES, AUDIO_FEATURES, FEATURE_RANGES, WHOLE_FEATURES


def _whole(value: float) -> float:
    if not float(value).is_integer():
        raise ValueError("must be a whole number")
    return float(value)


def _feature(name: str) -> Any:
    """A field for audio feature `name`, in its range from the one table (services.dto.FEATURE_RANGES)."""
    low, high = FEATURE_RANGES[name]
    number = Whole if name in WHOLE_FEATURES else Annotated[float, Field(strict=True, allow_inf_nan=False)]
    return Annotated[number, Field(ge=low, le=high)]


Whole = Annotated[float, Field(strict=True, allow_inf_nan=False), AfterValidator(_whole)]

# Spotify-style audio features, each in its documented range (the same ranges the genre model checks).
# Key, mode and time signature may be left out: short of all three, the nine values an analysis of an excerpt
# gives (the model's analysis head answers). Duration and the explicit flag, when given, let the
# full head answer; the artists and title let the metadata heads answer (the guess's `head` says).
_OPTIONAL = frozenset(AUDIO_FEATURES) - frozenset(ANALYSIS_VALUES)
_AUDIO_FIELDS: dict[str, Any] = {
    name: ((_feature(name) | None, None) if name in _OPTIONAL else (_feature(name), ...)) for name in AUDIO_FEATURES
}
Artist = Annotated[str, Field(strict=True, min_length=1, max_length=200, pattern=r"\S")]
AudioFeatures = create_model(
    "AudioFeatures",
    __config__=ConfigDict(extra="forbid", strict=True),
    **_AUDIO_FIELDS,
    duration_ms=(_feature("duration_ms") | None, None),
    explicit=(bool | None, None),
    artists=(Annotated[list[Artist], Field(min_length=1, max_length=20)] | None, None),
    title=(Annotated[str, Field(strict=True, min_length=1, max_length=300, pattern=r"\S")] | None, None),
)


TrackId = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]


class RadioStart(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    track_id: TrackId
    diversity: Annotated[float | None, Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)] = None


class RadioFeedback(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    track_id: TrackId
    action: Literal["like", "skip", "next"]


# A playlist name: 1–100 characters with something visible; the service makes it one line (control
# characters and runs of spaces become one space) and refuses a name with nothing left (422).
PlaylistName = Annotated[str, Field(strict=True, min_length=1, max_length=100, pattern=r"\S")]


class PlaylistCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: PlaylistName


class PlaylistRename(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: PlaylistName


class PlaylistTrack(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    track_id: TrackId


class PlaylistMove(BaseModel):
    """Move a song to `position` (1-based); with `version`, only if the playlist is still at it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    track_id: TrackId
    position: Annotated[int, Field(strict=True, ge=1, le=100_000)]
    version: Annotated[int | None, Field(default=None, ge=0, le=2**31 - 1)] = None


class PlaylistRadio(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    diversity: Annotated[float | None, Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)] = None
