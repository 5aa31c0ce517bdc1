"""Generated dataset files and a local HTTP server that can cut, ignore ranges or 404."""

from __future__ import annotations

import csv
import gzip
import io
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from db.models import AUDIO_FEATURE_COLUMNS
from ml.pipeline.datasets import DatasetSpec

CATALOG_HEADER = (
    "track_id",
    "artists",
    "album_name",
    "track_name",
    "popularity",
    "duration_ms",
    "explicit",
    *AUDIO_FEATURE_COLUMNS,
    "track_genre",
)
SEED_HEADER = ("track_id", "genre_track", "duration_ms", "explicit", *AUDIO_FEATURE_COLUMNS)

SMALL_CATALOG = DatasetSpec(
    filename="spotify_tracks_114genre_train.csv.gz",
    label_column="track_genre",
    text_columns=("artists", "album_name", "track_name"),
    numeric_columns=("popularity", "duration_ms", *AUDIO_FEATURE_COLUMNS),
    bool_columns=("explicit",),
    min_rows=50,
    max_rows=500,
    compress=True,
    nullable_text=1,
)
SMALL_SEED = DatasetSpec(
    filename="seed_6genre_train.csv",
    label_column="genre_track",
    text_columns=(),
    numeric_columns=("duration_ms", *AUDIO_FEATURE_COLUMNS),
    bool_columns=("explicit",),
    min_rows=50,
    max_rows=500,
    compress=False,
)
SMALL_SPECS = {"seed": SMALL_SEED, "catalog": SMALL_CATALOG}


def spotify_id(n: int) -> str:
    return f"{n:022d}"


def features(rng: random.Random) -> list[Any]:
    return [
        round(rng.random(), 3),
        round(rng.random(), 3),
        rng.randrange(12),
        round(-rng.random() * 20, 3),
        rng.randrange(2),
        round(rng.random(), 4),
        round(rng.random(), 4),
        round(rng.random(), 6),
        round(rng.random(), 3),
        round(rng.random(), 3),
        round(60 + rng.random() * 120, 3),
        4,
    ]


def catalog_rows(n: int, seed: int = 1) -> list[list[Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append(
            [
                spotify_id(i),
                f"Artist {i}",
                f"Album {i}",
                f"Song {i}",
                rng.randrange(100),
                rng.randrange(60_000, 400_000),
                rng.random() < 0.2,
                *features(rng),
                rng.choice(["rock", "pop", "jazz", "k-pop"]),
            ]
        )
    return rows


def seed_rows(n: int, seed: int = 2) -> list[list[Any]]:
    rng = random.Random(seed)
    return [
        [
            spotify_id(10_000 + i),
            rng.choice(["metal", "kpop", "blues"]),
            float(rng.randrange(60_000, 400_000)),
            rng.random() < 0.2,
            *(float(v) for v in features(rng)),
        ]
        for i in range(n)
    ]


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]], *, index_column: bool = False) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["", *header] if index_column else header)
    for i, row in enumerate(rows):
        writer.writerow([i, *row] if index_column else row)
    return buf.getvalue().encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@dataclass
class FileServer:
    """Serves `files[path]`; honours Range unless told not to; can cut a response once."""

    files: dict[str, bytes] = field(default_factory=dict)
    ignore_range: set[str] = field(default_factory=set)
    cut_once: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before the cut
    status: dict[str, int] = field(default_factory=dict)  # path -> forced status (404, 500 …)
    # path -> (status, headers) answered first, one per request, before the file is served
    failures: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    base_url: str = ""

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        range_header = request.headers.get("Range")
        self.requests.append((path, range_header))
        if path in self.status:
            return web.Response(status=self.status[path], text="nope")
        if self.failures.get(path):
            status, headers = self.failures[path].pop(0)
            return web.Response(status=status, headers=headers, text="later")
        if path not in self.files:
            raise web.HTTPNotFound()
        data = self.files[path]
        start = 0
        status = 200
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and path not in self.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            status = 206
        body = data[start:]
        resp = web.StreamResponse(status=status)
        resp.content_length = len(body)
        resp.content_type = "text/csv"
        if status == 206:
            resp.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await resp.prepare(request)
        cut = self.cut_once.pop(path, None)
        if cut is not None:
            await resp.write(body[:cut])
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write(body)
        await resp.write_eof()
        return resp


@pytest.fixture
async def file_server(
    aiohttp_server: Callable[[web.Application], Awaitable[Any]],
) -> FileServer:
    server = FileServer()
    app = web.Application()
    app.router.add_get("/{path:.+}", server.handle)
    running = await aiohttp_server(app)
    server.base_url = str(running.make_url("")).rstrip("/")
    return server
