"""Text keys shared by everything that folds or matches songs: the catalogue import, training groups,
the recommender and search. One definition each, so that every part folds the same way."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_BRACKETS = re.compile(r"[\(\[].*?[\)\]]")
_DASH_SUFFIX = re.compile(r"\s+-\s+.*$")


def normalize(text: object) -> str:
    """Lower-case, strip accents, keep letters and digits of any script, single spaces ("" for non-text)."""
    if not isinstance(text, str) or not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", stripped.casefold()).strip()


def split_artists(artists: object) -> tuple[str, ...]:
    """The datasets' ';'-separated artists, trimmed, empty parts dropped."""
    if not isinstance(artists, str):
        return ()
    return tuple(a.strip() for a in artists.split(";") if a.strip())


def song_key(artists: object, name: object) -> str:
    """Equal for the same song by the same artists, whatever their order, case and accents.

    A title of symbols only ("+", "△") keeps its symbols; "" when there is no title at all (rows
    without one are not the same song as each other).
    """
    title = normalize(name) or (" ".join(name.casefold().split()) if isinstance(name, str) else "")
    if not title:
        return ""
    parts = sorted(normalize(a) for a in split_artists(artists))
    return " ; ".join(p for p in parts if p) + " - " + title


def fold_key(artists: object, name: object) -> str | None:
    """The song key duplicate rows fold on (training groups, the catalogue import): None for a row
    without artists or without a title, which is the same song as no other row."""
    if not (isinstance(artists, str) and artists.strip()):
        return None
    return song_key(artists, name) or None


def recording_key(artists: object, name: object) -> str:
    """A looser key than `song_key`: main artist + title without "(Remastered)", "- Live" …

    Two tracks with the same key are treated as the same song in one list of recommendations.
    """
    main = normalize((split_artists(artists) or ("",))[0])
    title = name if isinstance(name, str) else ""
    return f"{main} - {normalize(_DASH_SUFFIX.sub('', _BRACKETS.sub('', title))) or normalize(title)}"
