"""A generated catalogue: 3 genres far apart in audio space, 24 artists each, 5 songs per artist."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Track, TrackGenre, User
from ml.features import AUDIO_FEATURES
from ml.text import song_key

GENRES = {
    "rock": {"energy": 0.85, "acousticness": 0.08, "danceability": 0.45, "loudness": -5.0, "tempo": 140.0},
    "jazz": {"energy": 0.3, "acousticness": 0.8, "danceability": 0.55, "loudness": -14.0, "tempo": 100.0},
    "techno": {"energy": 0.9, "acousticness": 0.01, "danceability": 0.8, "loudness": -7.0, "tempo": 128.0},
}
ARTISTS_PER_GENRE = 24
SONGS_PER_ARTIST = 5


@dataclass
class Catalog:
    tracks: list[Track]
    by_genre: dict[str, list[int]]
    users: list[int]

    def genre_of(self, track_id: int) -> str:
        return next(g for g, ids in self.by_genre.items() if track_id in ids)


def make_tracks(seed: int = 1) -> list[Track]:
    rng = np.random.default_rng(seed)
    tracks: list[Track] = []
    n = 0
    for genre, center in GENRES.items():
        for a in range(ARTISTS_PER_GENRE):
            artist = f"{genre.title()} Artist {a}"
            offset = rng.normal(0, 0.05, size=3)
            for k in range(SONGS_PER_ARTIST):
                n += 1
                feats = {
                    "danceability": center["danceability"] + offset[0] + rng.normal(0, 0.04),
                    "energy": center["energy"] + offset[1] + rng.normal(0, 0.04),
                    "key": float(rng.integers(0, 12)),
                    "loudness": center["loudness"] + rng.normal(0, 1.0),
                    "mode": float(rng.integers(0, 2)),
                    "speechiness": abs(rng.normal(0.05, 0.02)),
                    "acousticness": min(max(center["acousticness"] + offset[2] + rng.normal(0, 0.04), 0.0), 1.0),
                    "instrumentalness": float(rng.uniform(0, 0.3)),
                    "liveness": float(rng.uniform(0.05, 0.3)),
                    "valence": float(rng.uniform(0.2, 0.8)),
                    "tempo": center["tempo"] + rng.normal(0, 5.0),
                    "time_signature": 4.0,
                }
                name = f"{genre} song {a}-{k}"
                tracks.append(
                    Track(
                        spotify_id=f"sp{n:020d}",
                        name=name,
                        artists=artist,
                        album=f"{artist} album",
                        duration_ms=int(rng.integers(150_000, 300_000)),
                        popularity=int(rng.integers(0, 100)),
                        search_key=song_key(artist, name),
                        genres=[TrackGenre(genre=genre)],
                        **{c: float(np.clip(feats[c], -60 if c == "loudness" else 0, 260)) for c in AUDIO_FEATURES},
                    )
                )
    # A second release of the first rock song: another recording key match, never shown with it.
    first = tracks[0]
    tracks.append(
        Track(
            spotify_id="sp_remaster_of_first0",
            name=f"{first.name} - Remastered 2011",
            artists=first.artists,
            duration_ms=first.duration_ms,
            popularity=10,
            search_key=song_key(first.artists, f"{first.name} - Remastered 2011"),
            genres=[TrackGenre(genre="rock")],
            **{c: getattr(first, c) for c in AUDIO_FEATURES},
        )
    )
    return tracks


async def fill_catalog(sessions: async_sessionmaker[AsyncSession], users: int = 3) -> Catalog:
    tracks = make_tracks()
    async with sessions.begin() as s:
        s.add_all(tracks)
        user_rows = [User(telegram_id=1000 + i, first_name=f"U{i}") for i in range(users)]
        s.add_all(user_rows)
        await s.flush()
        by_genre: dict[str, list[int]] = {}
        for t in tracks:
            by_genre.setdefault(t.genres[0].genre, []).append(t.id)
        return Catalog(tracks, by_genre, [u.id for u in user_rows])


@pytest.fixture
async def catalog(sessions: async_sessionmaker[AsyncSession]) -> Catalog:
    return await fill_catalog(sessions)


@pytest.fixture
async def sqlite_catalog(sqlite_sessions: async_sessionmaker[AsyncSession]) -> Catalog:
    return await fill_catalog(sqlite_sessions)
