"""The two datasets: what each is, how it is read, and the check it must pass before it is used.

Each dataset lives in ``<raw_dir>/<filename>``:

- ``seed_6genre_train.csv``: the seed project's 6-genre file (plain CSV);
- ``spotify_tracks_114genre_train.csv.gz``: the 114-genre Spotify Tracks dataset (gzip CSV).

A mirror (``ENCORE_DATA_MIRROR``, by default ``../shared/data``) holds the project's training
parts under exactly those names. Without one, the public originals are downloaded (they are the
*full* datasets, rows withheld for the project's evaluation included — see SOURCES.md); bringing
them in is services/datasets.py. `read_dataset` opens either format (plain or gzip, with or
without a leading index column).
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


from ml.features import AUDIO_FEATURES, parse_bool

log = logging.getLogger(__name__)

SEED = "seed"
CATALOG = "catalog"

DEFAULT_URLS: Mapping[str, str] = {
    SEED: (
        "https://raw.githubusercontent.com/Mike-cloud-17/Music_recommendations_system/"
        "212eee8c3b350eed7ecc466714d60c950cee8ef4/data/music_data.csv"
    ),
    CATALOG: "https://huggingface.co/datasets/maharshipandya/spotify-tracks-dataset/resolve/main/dataset.csv",
}

# The 114-genre file's columns in their documented order (SOURCES.md); collected files are written so.
CATALOG_COLUMNS: tuple[str, ...] = (
    "track_id",
    "artists",
    "album_name",
    "track_name",
    "popularity",
    "duration_ms",
    "explicit",
    *AUDIO_FEATURES,
    "track_genre",
)

_GZIP_MAGIC = b"\x1f\x8b"
INDEX_COLUMN = re.compile(r"^(|Unnamed: 0)$")


class DatasetError(ValueError):
    """A dataset file is missing, truncated, foreign or could not be fetched; `message` says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """What a dataset file must look like to be accepted."""

    filename: str
    label_column: str
    text_columns: tuple[str, ...]  # must exist; may hold empty values (see `nullable_text`)
    numeric_columns: tuple[str, ...]  # must parse as numbers, no empty values
    bool_columns: tuple[str, ...]  # True/False
    min_rows: int
    max_rows: int
    compress: bool  # store gzip-compressed
    nullable_text: int = 0  # how many rows may lack a text value (the 114-genre file has one)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return ("track_id", *self.text_columns, self.label_column, *self.numeric_columns, *self.bool_columns)


@dataclass(frozen=True, slots=True)
class SchemaReport:
    path: Path
    rows: int
    columns: tuple[str, ...]


# Row bounds: the mirror's training parts (17,947 / 91,049 rows) up to the full originals
# (22,440 / 114,000 rows). Anything outside is a truncated or foreign file.
DATASETS: Mapping[str, DatasetSpec] = {
    SEED: DatasetSpec(
        filename="seed_6genre_train.csv",
        label_column="genre_track",
        text_columns=(),
        numeric_columns=("duration_ms", *AUDIO_FEATURES),
        bool_columns=("explicit",),
        min_rows=17_947,
        max_rows=22_440,
        compress=False,
    ),
    CATALOG: DatasetSpec(
        filename="spotify_tracks_114genre_train.csv.gz",
        label_column="track_genre",
        text_columns=("artists", "album_name", "track_name"),
        numeric_columns=("popularity", "duration_ms", *AUDIO_FEATURES),
        bool_columns=("explicit",),
        min_rows=91_049,
        max_rows=114_000,
        compress=True,
        nullable_text=5,
    ),
}


def is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def read_dataset(path: Path, **kwargs: Any) -> pd.DataFrame:
    """The one reader of dataset CSVs: plain or gzip (told by content, not name), no index column.

    Text is kept verbatim: only an empty cell is missing ("NA", "None" and "null" are names of
    bands and songs), and track ids stay strings.
    """
    import pandas as pd  # here, not at import: the server never reads a dataset

    compression = "gzip" if is_gzip(path) else None
    options: dict[str, Any] = {"keep_default_na": False, "na_values": [""], "dtype": {"track_id": str}}
    options.update(kwargs)
    frame = pd.read_csv(path, compression=compression, **options)
    if len(frame.columns) and INDEX_COLUMN.match(str(frame.columns[0])):
        frame = frame.drop(columns=frame.columns[0])
    return frame


def check_schema(path: Path, spec: DatasetSpec) -> SchemaReport:
    """Refuse a truncated or foreign file with a `DatasetError` naming the file and the problem."""
    import pandas as pd

    name = path.name
    if not path.is_file():
        raise DatasetError(f"{name}: file not found at {path}")
    if path.stat().st_size == 0:
        raise DatasetError(f"{name}: the file is empty")
    try:
        frame = read_dataset(path, low_memory=False)
    except (EOFError, OSError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{name}: cannot be read, the file looks truncated or corrupt ({exc})") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{name}: not a readable CSV file ({exc})") from exc

    missing = [c for c in spec.required_columns if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{name}: missing columns {', '.join(missing)} — this is not the expected dataset "
            f"(found: {', '.join(map(str, frame.columns[:8]))}{' …' if len(frame.columns) > 8 else ''})"
        )
    rows = len(frame)
    if rows < spec.min_rows:
        raise DatasetError(f"{name}: only {rows:,} rows, at least {spec.min_rows:,} expected — the file is truncated")
    if rows > spec.max_rows:
        raise DatasetError(f"{name}: {rows:,} rows, at most {spec.max_rows:,} expected — a different dataset?")

    for column in spec.numeric_columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = int(values.isna().sum())
        if bad:
            first = int(values.isna().to_numpy().nonzero()[0][0])
            raise DatasetError(
                f"{name}: column {column!r} has {bad} empty or non-numeric value(s), first at data row "
                f"{first + 1:,} of {rows:,} (value {frame[column].iloc[first]!r}) — truncated or corrupt file"
            )
    for column in spec.bool_columns:
        bad_mask = frame[column].map(parse_bool).isna()  # the one yes/no reading (import, training too)
        if bad_mask.any():
            first = int(bad_mask.to_numpy().nonzero()[0][0])
            raise DatasetError(
                f"{name}: column {column!r} must hold True/False, found {frame[column].iloc[first]!r} "
                f"at data row {first + 1:,}"
            )
    for column in ("track_id", spec.label_column):
        empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if empty.any():
            raise DatasetError(f"{name}: column {column!r} is empty in {int(empty.sum())} row(s)")
    if spec.text_columns:
        lacking = int(frame[list(spec.text_columns)].isna().any(axis=1).sum())
        if lacking > spec.nullable_text:
            raise DatasetError(f"{name}: {lacking} rows lack artists/album/name (at most {spec.nullable_text} allowed)")
    return SchemaReport(path=path, rows=rows, columns=tuple(map(str, frame.columns)))


def dataset_paths(raw_dir: Path, specs: Mapping[str, DatasetSpec] = DATASETS) -> dict[str, Path]:
    """Where each dataset lives (whether or not it is there yet)."""
    return {name: raw_dir / spec.filename for name, spec in specs.items()}


def missing_datasets(raw_dir: Path, specs: Mapping[str, DatasetSpec] = DATASETS) -> list[str]:
    return [name for name, path in dataset_paths(raw_dir, specs).items() if not path.is_file()]
