"""User-visible text: jinja2 templates in `bot/telegram/templates/<language>/`, rendered for Telegram's HTML.

One Environment with autoescape on (titles, artists and queries are user data), `trim_blocks` and
`lstrip_blocks`. Every rendered message is kept within Telegram's 4,096-character limit.

Language rules come from Babel (CLDR data): plural categories (`{{ n|plural(one="трек", few="трека",
many="треков") }}` picks the form Russian needs for n; English has one/other), percentages
("22 %" in Russian, "22%" in English) and time-zone city names. Babel is used rather than gettext
catalogues because each language has its own templates; only the rules are needed, not translation files.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiogram.types import LinkPreviewOptions
from babel import Locale
from babel.core import UnknownLocaleError
from babel.dates import get_timezone_location
from babel.numbers import format_decimal, format_percent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from services.dto import TrackInfo
from services.genre_labels import genre_names
from services.schedule import UTC_ZONE, utc_offset
from services.users import SUPPORTED_LANGUAGES

TEMPLATES_DIR = Path(__file__).parent / "templates"
DEFAULT_LANGUAGE = "en"
MESSAGE_LIMIT = 4096  # characters after entity parsing, as Telegram counts them (UTF-16 code units)
CALLBACK_TEXT_LIMIT = 200
BUTTON_TEXT_LIMIT = 48

_TAG = re.compile(r"<[^>]*>")


def visible_length(text: str) -> int:
    """How long Telegram considers an HTML message: tags dropped, entities decoded, UTF-16 units."""
    plain = html.unescape(_TAG.sub("", text))
    return len(plain.encode("utf-16-le")) // 2


def fit(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` when it fits; otherwise its plain text, cut at a line end and escaped again."""
    if visible_length(text) <= limit:
        return text
    plain = html.unescape(_TAG.sub("", text))
    budget = limit - 1
    cut = plain.encode("utf-16-le")[: budget * 2].decode("utf-16-le", errors="ignore")
    if "\n" in cut[len(cut) // 2 :]:
        cut = cut[: cut.rindex("\n")]
    return html.escape(cut.rstrip(), quote=False) + "…"


def clip(value: object, limit: int = 200) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def percent(value: float, language: str = DEFAULT_LANGUAGE) -> str:
    """A probability as people write it in `language`: "22%" (English), "22 %" (Russian)."""
    return str(format_percent(round(float(value), 2), locale=language_of(language)))


def megabytes(size: int | float, language: str = DEFAULT_LANGUAGE) -> str:
    """A file size in MB as people write it in `language`: "20.5" (English), "20,5" (Russian)."""
    return str(format_decimal(round(float(size) / 1_048_576, 1), format="0.#", locale=language_of(language)))


def language_of(code: str | None) -> str:
    return code if code in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


@lru_cache(maxsize=8)
def _locale(language: str) -> Locale:
    return Locale.parse(language_of(language))


def plural_category(n: int | float, language: str) -> str:
    """CLDR's plural category of `n` in `language`: one / few / many / other (Russian: 1 трек,
    2 трека, 5 треков, 21 трек; English: 1 track, 2 tracks)."""
    return str(_locale(language).plural_form(n))


def plural(n: int | float, language: str, forms: Mapping[str, str]) -> str:
    """The word form for `n`. Every category the language uses must be given (a missing one raises,
    so a template cannot silently say "1 tracks"); "other" covers fractions."""
    category = plural_category(n, language)
    if category in forms:
        return forms[category]
    if category == "other" and "many" in forms:
        return forms["many"]
    raise KeyError(f"plural form {category!r} missing for {n} in {language}: {sorted(forms)}")


def duration(ms: int | float | None) -> str:
    """3:45, or 1:02:03 for an hour or more; empty when unknown."""
    if ms is None or ms <= 0:
        return ""
    seconds = round(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def lower_first(name: str) -> str:
    """A name inside a sentence: "Hard rock" → "hard rock", "Рок" → "рок"; "EDM", "R&B", "K-pop" stay."""
    if len(name) > 1 and name[0].isupper() and name[1].islower():
        return name[0].lower() + name[1:]
    return name


def clock(hour: int, minute: int = 0) -> str:
    return f"{hour:02d}:{minute:02d}"


def zone_name(zone: str, language: str, now: datetime | None = None) -> str:
    """A time zone as a person reads it: "Moscow (UTC+3)", "Москва (UTC+3)", "UTC"."""
    offset = utc_offset(zone, now or datetime.now(UTC))
    if zone == UTC_ZONE:
        return "UTC"
    try:
        city = str(get_timezone_location(zone, locale=language_of(language), return_city=True))
    except (LookupError, UnknownLocaleError):
        city = zone.rsplit("/", 1)[-1].replace("_", " ")
    return f"{city} ({_offset(offset)})"


def _offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "−"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{mins:02d}" if mins else "")


def cover_preview(track: TrackInfo | None) -> LinkPreviewOptions:
    """The cover as a small link preview beside the text when a provider has one; no preview otherwise.

    A preview (rather than a photo with a caption) keeps the card one text message: up to 4,096
    characters instead of a caption's 1,024, and editable in place by the radio."""
    url = track.cover_url if track is not None else None
    if url and url.startswith("https://") and len(url) <= 2048:
        return LinkPreviewOptions(url=url, prefer_small_media=True, show_above_text=False)
    return LinkPreviewOptions(is_disabled=True)


# Why a recommendation was made: the services say it in English; these keys name it per language.
REASON_KEYS = {
    "similar sound": "reason_similar",
    "liked by people who liked this": "reason_colikes",
    "from your likes": "reason_your_likes",
    "popular right now": "reason_popular",
    "popular in genres you searched": "reason_popular_genres",
    "popular on Encore": "reason_popular",
}


class Labels:
    """Short strings (buttons, alerts, command descriptions) from `<language>/labels.html`."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = {k: str(v) for k, v in values.items() if not k.startswith("_")}

    def __call__(self, key: str, **params: object) -> str:
        text = self._values[key]
        return text.format(**params) if params else text

    def __contains__(self, key: str) -> bool:
        return key in self._values


class Texts:
    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        self._env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=StrictUndefined,
            keep_trailing_newline=False,
            # The templates ship with the code and never change while it runs: no stat() per render.
            auto_reload=False,
        )
        self._env.filters["clip"] = clip
        self._env.filters["duration"] = duration
        self._env.filters["clock"] = clock
        self._env.filters["pct"] = _in_language(percent)
        self._env.filters["mb"] = _in_language(megabytes)
        self._env.filters["plural"] = _plural_filter
        self._env.filters["genre"] = _in_language(lambda tag, lang: genre_names().genre(tag, lang))
        self._env.filters["family"] = _in_language(lambda tag, lang: genre_names().family(tag, lang))
        self._env.filters["zone"] = _in_language(lambda zone, lang: zone_name(zone, lang))
        self._env.filters["reason"] = _reason_filter
        self._env.filters["lower_first"] = lower_first
        self._labels: dict[str, Labels] = {}

    def render(self, language: str | None, template_name: str, /, **context: Any) -> str:
        lang = language_of(language)
        template = self._env.get_template(f"{lang}/{template_name}.html")
        return fit(template.render(lang=lang, _labels=self.labels(lang), **context).strip())

    def plain(self, language: str | None, template_name: str, /, **context: Any) -> str:
        """The same template as plain text (for fields Telegram does not parse: inline descriptions)."""
        return html.unescape(_TAG.sub("", self.render(language, template_name, **context)))

    def labels(self, language: str | None) -> Labels:
        lang = language_of(language)
        if lang not in self._labels:
            module = self._env.get_template(f"{lang}/labels.html").make_module()
            self._labels[lang] = Labels({k: getattr(module, k) for k in dir(module) if not k.startswith("_")})
        return self._labels[lang]


def _in_language(function: Any) -> Any:
    """A filter that also gets the language of the template being rendered (`lang` in its context)."""

    @pass_context
    def apply(context: Context, value: Any) -> Any:
        return function(value, context.get("lang", DEFAULT_LANGUAGE))

    return apply


@pass_context
def _plural_filter(context: Context, n: int | float, **forms: str) -> str:
    return plural(n, context.get("lang", DEFAULT_LANGUAGE), forms)


@pass_context
def _reason_filter(context: Context, reason: str | None) -> str:
    """A recommendation's reason in the template's language; unknown reasons only in English."""
    if not reason:
        return ""
    lang = context.get("lang", DEFAULT_LANGUAGE)
    key = REASON_KEYS.get(reason)
    labels: Labels | None = context.get("_labels")
    if key is not None and labels is not None and key in labels:
        return labels(key)
    return reason if lang == DEFAULT_LANGUAGE else ""
