"""Text normalisation shared by catalog folding and search: case, accents and punctuation folded."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalize(text: str | None) -> str:
    """Lower-case, strip accents, keep letters and digits of any script, single spaces."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", stripped.casefold()).strip()


def song_key(artists: str | None, name: str | None) -> str:
    """A key equal for the same song by the same artists, whatever the order of the artists."""
    artist_part = " ; ".join(sorted(normalize(a) for a in (artists or "").split(";") if a.strip()))
    return f"{artist_part} - {normalize(name)}"
