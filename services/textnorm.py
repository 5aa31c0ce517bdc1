"""Text for search: `normalize` and `song_key` (defined once, in `ml.text`), transliteration, title cores."""

from __future__ import annotations

import re
from functools import lru_cache

from anyascii import anyascii

from ml.text import normalize, song_key

__all__ = ["ascii_word", "normalize", "search_text", "song_key", "title_core", "title_key", "transliterate"]

# -- search helpers (`normalize` and `song_key`, from ml.text, are what stored keys are made of) --

_APOSTROPHES = re.compile(r"['’‘`´ʼ]")
_ASCII_JUNK = re.compile(r"[^a-z0-9]+")
# Version marks people do not type: " - Remastered 2011", "(Live)", "[feat. X]", "feat. X".
_DASH_SUFFIX = re.compile(r"\s+[-–—]+\s+.*$")
_BRACKET_SUFFIX = re.compile(r"\s*[\(\[\{][^\(\)\[\]\{\}]*[\)\]\}]\s*$")
_FEAT_SUFFIX = re.compile(r"\s+[\(\[]?(?:feat\.?|ft\.?|featuring)\s+.*$", re.IGNORECASE)


def search_text(text: str | None) -> str:
    """`normalize`, with apostrophes dropped instead of splitting words: "Don't" → "dont"."""
    return normalize(_APOSTROPHES.sub("", text or ""))


@lru_cache(maxsize=1 << 15)
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
