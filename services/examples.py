"""Example searches to show people (/start, "nothing found"): songs that are in the bundled catalogue.

Each example was checked against `spotify_tracks_114genre_train.csv.gz` and opens its card at
once through `TrackService.resolve` with no provider keys (`tests/providers/test_search_quality.py`
checks this on the real catalogue file). Russian examples are typed in Cyrillic even where the
catalogue spells the artist in Latin letters (Kino), which the search's transliteration covers.
"""

from __future__ import annotations

from types import MappingProxyType

DEFAULT_LANGUAGE = "en"

EXAMPLES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "en": ("Queen — Bohemian Rhapsody", "ABBA — Dancing Queen", "Linkin Park — Numb"),
        "ru": ("Кино — Группа крови", "Кино — Звезда по имени Солнце", "Кипелов — Я свободен"),
    }
)


def examples(language: str | None) -> tuple[str, ...]:
    """Every example for a language (its base language for "ru-RU"), English when there are none."""
    base = (language or DEFAULT_LANGUAGE).lower().replace("_", "-").split("-")[0]
    return EXAMPLES.get(base) or EXAMPLES[DEFAULT_LANGUAGE]


def example_query(language: str | None, n: int = 0) -> str:
    """One example for a language; `n` picks another one (wrapping), e.g. to vary it per user."""
    found = examples(language)
    return found[n % len(found)]
