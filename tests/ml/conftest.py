"""Tiny generated datasets (same columns as the real files); `tests/conftest.py` trains a model on them
once per session (`tiny_data_dir`, `trained_models`: every test package can use it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.features import AUDIO_FEATURES

SEED_GENRES = ("hip_hop", "kpop", "metal", "indian", "classical", "blues")
CATALOG_GENRES = ("rock", "metal", "techno", "house", "jazz", "salsa")


def _features(rng: np.random.Generator, genre_index: int, n: int) -> dict[str, np.ndarray]:
    centre = genre_index / 6
    clip = lambda x: np.clip(x, 0.0, 1.0)  # noqa: E731
    return {
        "danceability": clip(rng.normal(centre, 0.08, n)),
        "energy": clip(rng.normal(1 - centre, 0.08, n)),
        "key": rng.integers(0, 12, n).astype(float),
        "loudness": np.clip(rng.normal(-5 - 10 * centre, 1.5, n), -60, 0),
        "mode": rng.integers(0, 2, n).astype(float),
        "speechiness": clip(rng.normal(0.05 + 0.2 * (genre_index == 0), 0.03, n)),
        "acousticness": clip(rng.normal(centre, 0.1, n)),
        "instrumentalness": clip(rng.normal(0.1 * genre_index, 0.05, n)),
        "liveness": clip(rng.normal(0.2, 0.05, n)),
        "valence": clip(rng.normal(0.5, 0.2, n)),
        "tempo": np.clip(rng.normal(90 + 10 * genre_index, 8, n), 40, 220),
        "time_signature": np.full(n, 4.0),
    }


def make_seed_frame(per_genre: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for gi, genre in enumerate(SEED_GENRES):
        cols = _features(rng, gi, per_genre)
        frame = pd.DataFrame(cols)
        frame.insert(0, "track_id", [f"s{gi}_{i}" for i in range(per_genre)])
        frame.insert(1, "genre_track", genre)
        frame.insert(2, "duration_ms", rng.integers(120_000, 400_000, per_genre).astype(float))
        frame.insert(3, "explicit", rng.random(per_genre) < 0.2 * (gi == 0) + 0.02)
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True)
    # duplicates: the same recording under another id (same feature vector)
    dup = out.iloc[:10].copy()
    dup["track_id"] = [f"dup{i}" for i in range(10)]
    return pd.concat([out, dup], ignore_index=True)[
        ["track_id", "genre_track", "duration_ms", "explicit", *AUDIO_FEATURES]
    ]


def make_catalog_frame(per_genre: int = 60, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for gi, genre in enumerate(CATALOG_GENRES):
        frame = pd.DataFrame(_features(rng, gi, per_genre))
        frame.insert(0, "track_id", [f"c{gi}_{i}" for i in range(per_genre)])
        frame.insert(1, "artists", [f"Artist {gi}-{i % 7}" for i in range(per_genre)])
        frame.insert(2, "album_name", "Album")
        frame.insert(3, "track_name", [f"Song {gi}-{i}" for i in range(per_genre)])
        frame.insert(4, "popularity", rng.integers(0, 100, per_genre))
        frame.insert(5, "duration_ms", rng.integers(120_000, 400_000, per_genre))
        frame.insert(6, "explicit", rng.random(per_genre) < 0.1)
        frame["track_genre"] = genre
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True)
    # one track listed under a second genre (same id, same features)
    extra = out.iloc[[0, 1, 2]].copy()
    extra["track_genre"] = "metal"
    return pd.concat([out, extra], ignore_index=True)
