"""Text normalisation for search and matching; the definitions live in `ml.text` (one for every layer)."""

from __future__ import annotations

from ml.text import normalize, song_key

__all__ = ["normalize", "song_key"]
