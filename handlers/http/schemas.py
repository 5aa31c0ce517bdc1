"""Request bodies of the JSON API: pydantic models, strict, each field in its documented range."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from handlers.http.params import MAX_ID
from services.dto import AUDIO_FEATURES, FEATURE_RANGES, WHOLE_FEATURES


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
AudioFeatures = create_model(
    "AudioFeatures",
    __config__=ConfigDict(extra="forbid", strict=True),
    **{name: (_feature(name), ...) for name in AUDIO_FEATURES},
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
