"""User-visible text: jinja2 templates in `bot/telegram/templates/<language>/`, rendered for Telegram's HTML.

One Environment with autoescape on (titles, artists and queries are user data), `trim_blocks` and
`lstrip_blocks`. Every rendered message is kept within Telegram's 4,096-character limit.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

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


def percent(value: float) -> str:
    return f"{round(value * 100)}%"


def language_of(code: str | None) -> str:
    return code if code in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


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
        )
        self._env.filters["clip"] = clip
        self._env.filters["pct"] = percent
        self._labels: dict[str, Labels] = {}

    def render(self, language: str | None, template_name: str, /, **context: Any) -> str:
        template = self._env.get_template(f"{language_of(language)}/{template_name}.html")
        return fit(template.render(**context).strip())

    def labels(self, language: str | None) -> Labels:
        lang = language_of(language)
        if lang not in self._labels:
            module = self._env.get_template(f"{lang}/labels.html").make_module()
            self._labels[lang] = Labels({k: getattr(module, k) for k in dir(module) if not k.startswith("_")})
        return self._labels[lang]
