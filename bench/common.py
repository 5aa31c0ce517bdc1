"""Helpers shared by the benchmarks."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOG_FILE = "spotify_tracks_114genre_train.csv.gz"


def catalog_csv() -> Path:
    """The 114-genre dataset: the data folder's copy (`make data`), else the shared mirror."""
    for candidate in (ROOT / "data" / "raw" / CATALOG_FILE, ROOT.parent / "shared" / "data" / CATALOG_FILE):
        if candidate.exists():
            return candidate
    raise SystemExit(f"{CATALOG_FILE} not found: run `make data` first")
