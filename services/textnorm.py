"""Text normalisation shared by catalog folding and search: case, accents and punctuation folded."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from anyascii import anyascii

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


# -- search helpers (additive: `normalize` and `song_key` above are what stored keys are made of) --

_APOSTROPHES = re.compile(r"['’‘`´ʼ]")
_ASCII_JUNK = re.compile(r"[^a-z0-9]+")
# Version marks people do not type: " - Remastered 2011", "(Live)", "[feat. X]", "feat. X".
_DASH_SUFFIX = re.compile(r"\s+[-–—]+\s+.*$")
_BRACKET_SUFFIX = re.compile(r"\s*[\(\[\{][^\(\)\[\]\{\}]*[\)\]\}]\s*$")
_FEAT_SUFFIX = re.compile(r"\s+[\(\[]?(?:feat\.?|ft\.?|featuring)\s+.*$", re.IGNORECASE)


def search_text(text: str | None) -> str:
    """`normalize`, with apostrophes dropped instead of splitting words: "Don't" → "dont"."""
    return normalize(_APOSTROPHES.sub("", text or ""))


@lru_cache(maxsize=1 << 17)
def ascii_word(word: str) -> str:
    """The Latin-letter spelling of one normalised word ("группа" → "gruppa", "ヨルシカ" → "yorushika").

    Any script anyascii knows (Cyrillic, Greek, kana, hangul, Chinese as pinyin …); ASCII words come
    back unchanged, and a word with no spelling (emoji) comes back as "".
    """
    if word.isascii():
        return word
    return _ASCII_JUNK.sub("", anyascii(word).lower())


def transliterate(text: str) -> str:
    """`ascii_word` for every word of a normalised text (words without a spelling stay as they are)."""
    return " ".join(ascii_word(w) or w for w in text.split())


def title_core(name: str | None) -> str:
    """A title without its version marks: "Bohemian Rhapsody - Remastered 2011" → "Bohemian Rhapsody".

    Trailing " - …", trailing bracketed groups and "feat. …" go; a title that is nothing but such
    a mark ("(Intro)") is kept whole.
    """
    text = (name or "").strip()
    while True:
        shorter = _FEAT_SUFFIX.sub("", _BRACKET_SUFFIX.sub("", _DASH_SUFFIX.sub("", text))).strip()
        if not shorter or shorter == text:
            return text
        text = shorter


def title_key(name: str | None) -> str:
    """Equal for versions of one song title (remasters, live takes, covers): `search_text(title_core(name))`."""
    return search_text(title_core(name))
