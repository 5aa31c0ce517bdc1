"""What a card says about a song's genre, decided once for every place that shows it.

The chat card, the inline result and the web page all call `genre_verdict` on the same
`GenreGuess` (made from the same inputs, `services.genre.genre_inputs`), so a song reads the
same everywhere. `GenreNames` turns the model's and the catalogue's tags ("hard-rock",
"jazz/blues/soul") into readable names per language, from `genre_names.toml` next to this module.

How sure the card sounds follows the probabilities, which are calibrated (a 0.3 means right about
three times in ten):

- SURE: the fine genre has at least `SURE_AT` → "Genre: Hard rock (62 %), Rock".
- FAMILY: the fine genre is unsure but its family has at least `FAMILY_AT` → the family is the
  headline, the closest fine genres follow with their numbers ("Rock (71 %): hard rock 24 %, …").
- UNSURE: neither → "Genre not clear; most likely:" and the top guesses. Nothing is called certain.

Where the genre comes from (`GenreVerdict.source`, issue 14) is decided here too:

- CATALOGUE: the song is in the catalogue → its own labels ("Metal · Hard rock (catalogue)").
- ARTIST: a song outside it by an artist the catalogue knows → the model's answer with the artist's
  evidence, and what the sound alone suggests ("K-pop (from the artist) · sounds like dance-pop 41 %").
- TITLE: no artist known, but the title's or the name's words and script moved the answer.
- AUDIO: the sound alone, with its confidence.

`GenreVerdict.excerpt` says the sound was known from a 30-second excerpt's audio analysis (the model's
analysis head): the card says so with the confidence.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import overload

from services.dto import GenreGuess, GenreSource

NAMES_FILE = Path(__file__).with_name("genre_names.toml")
DEFAULT_LANGUAGE = "en"
SURE_AT = 0.5
FAMILY_AT = 0.5
OPTIONS = 3  # fine genres listed when the headline is a family or nothing is clear
LABELS = 3  # catalogue labels named on a card


class GenreConfidence(enum.StrEnum):
    SURE = "sure"
    FAMILY = "family"
    UNSURE = "unsure"


@dataclass(frozen=True, slots=True)
class GenreVerdict:
    confidence: GenreConfidence
    headline: str  # the tag to name first: the fine genre (SURE, UNSURE) or the family (FAMILY)
    probability: float  # of the headline
    family: str
    family_probability: float
    options: tuple[tuple[str, float], ...]  # fine genres with probabilities, best first
    source: GenreSource = GenreSource.AUDIO
    labels: tuple[str, ...] = ()  # CATALOGUE: the song's own labels, at most LABELS
    sounds_like: tuple[str, float] | None = None  # ARTIST: the sound alone's best genre
    excerpt: bool = False  # the sound was known from a 30-second excerpt's analysis (the analysis head)

    @property
    def headline_is_family(self) -> bool:
        return self.confidence is GenreConfidence.FAMILY


@overload
def genre_verdict(guess: GenreGuess, labels: Sequence[str] = ()) -> GenreVerdict: ...


@overload
def genre_verdict(guess: None, labels: Sequence[str] = ()) -> GenreVerdict | None: ...


def genre_verdict(guess: GenreGuess | None, labels: Sequence[str] = ()) -> GenreVerdict | None:
    """The one rule for what a genre guess says (chat card, inline result, web page).

    A guess carries the song's catalogue labels itself (`GenreGuess.labels`); `labels` count only
    when there is no guess (no model right now): a catalogue song still names its genre then."""
    if guess is None:
        if not labels:
            return None
        names = tuple(labels[:LABELS])
        return GenreVerdict(
            confidence=GenreConfidence.SURE,
            headline=names[0],
            probability=1.0,
            family="",
            family_probability=0.0,
            options=(),
            source=GenreSource.CATALOGUE,
            labels=names,
        )
    options = tuple(guess.top[:OPTIONS]) or ((guess.genre, guess.probability),)
    if guess.probability >= SURE_AT:
        confidence, headline, probability = GenreConfidence.SURE, guess.genre, guess.probability
    elif guess.family_probability >= FAMILY_AT:
        confidence, headline, probability = GenreConfidence.FAMILY, guess.family, guess.family_probability
    else:
        confidence, headline, probability = GenreConfidence.UNSURE, guess.genre, guess.probability
    source = guess.source
    return GenreVerdict(
        confidence=confidence,
        headline=headline,
        probability=probability,
        family=guess.family,
        family_probability=guess.family_probability,
        options=options,
        source=source,
        labels=tuple(guess.labels[:LABELS]) if source is GenreSource.CATALOGUE else (),
        sounds_like=guess.audio_top[0] if source is GenreSource.ARTIST and guess.audio_top else None,
        excerpt=guess.excerpt,
    )


class GenreNames:
    """Readable names of genre tags and families, per language (English when a language lacks one)."""

    def __init__(
        self,
        genres: Mapping[str, Mapping[str, str]],
        families: Mapping[str, Mapping[str, str]],
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._genres = {lang: dict(names) for lang, names in genres.items()}
        self._families = {lang: dict(names) for lang, names in families.items()}
        self._aliases = dict(aliases or {})

    @classmethod
    def load(cls, path: Path = NAMES_FILE) -> GenreNames:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        languages = [k for k in data if k != "aliases"]
        return cls(
            {lang: data[lang].get("genres", {}) for lang in languages},
            {lang: data[lang].get("families", {}) for lang in languages},
            data.get("aliases", {}),
        )

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._genres)

    def genre(self, tag: str, language: str | None = None) -> str:
        """A fine genre (or dataset label) by name; a family tag is named too, as a last resort."""
        key = self._aliases.get(tag, tag)
        for lang in (language or DEFAULT_LANGUAGE, DEFAULT_LANGUAGE):
            name = self._genres.get(lang, {}).get(key) or self._families.get(lang, {}).get(key)
            if name:
                return name
        return _fallback(tag)

    def family(self, tag: str, language: str | None = None) -> str:
        for lang in (language or DEFAULT_LANGUAGE, DEFAULT_LANGUAGE):
            name = self._families.get(lang, {}).get(tag)
            if name:
                return name
        return self.genre(tag, language)

    def known(self, language: str) -> Mapping[str, str]:
        return MappingProxyType(self._genres.get(language, {}))

    def known_families(self, language: str) -> Mapping[str, str]:
        return MappingProxyType(self._families.get(language, {}))


def _fallback(tag: str) -> str:
    """A tag nobody named yet ("neo-soul" → "Neo soul"): still readable, never raw."""
    words = tag.replace("_", " ").replace("-", " ").replace("/", " / ").split()
    text = " ".join(words)
    return text[:1].upper() + text[1:] if text else tag


@lru_cache(maxsize=1)
def genre_names() -> GenreNames:
    """The names in `genre_names.toml`, read once (a small file; the first call reads it)."""
    return GenreNames.load()
