"""When a daily pick arrives: the person's time zone and the time they typed, read as their local time.

    parse_pick_time("9am")    → PickTime(9, 0)      parse_pick_time("21:30") → PickTime(21, 30)
    parse_pick_time("9")      → PickTime(9, 0)      parse_pick_time("12am")  → PickTime(0, 0)
    default_timezone("ru")    → "Europe/Moscow"     parse_timezone("europe/berlin") → "Europe/Berlin"

Time zones are IANA names checked with `zoneinfo`. `ZONES` is the short list /settings offers;
any other IANA zone is accepted where a person types one.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from services.errors import InvalidInput

UTC_ZONE = "UTC"
DEFAULT_TIMEZONES = {"ru": "Europe/Moscow", "en": UTC_ZONE}
# Offered in /settings, west to east: Russia's zones and a few of the world's big ones.
ZONES: tuple[str, ...] = (
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Europe/Samara",
    "Asia/Dubai",
    "Asia/Yekaterinburg",
    "Asia/Almaty",
    "Asia/Omsk",
    "Asia/Novosibirsk",
    "Asia/Krasnoyarsk",
    "Asia/Irkutsk",
    "Asia/Shanghai",
    "Asia/Yakutsk",
    "Asia/Tokyo",
    "Asia/Vladivostok",
    "Asia/Magadan",
    "Asia/Kamchatka",
)

_TIME = re.compile(
    r"""^\s*
    (?P<hour>\d{1,2})
    (?:\s*[:.h]\s*(?P<minute>\d{2}))?
    \s*(?P<half>a\.?m\.?|p\.?m\.?|h)?
    \s*$""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class PickTime:
    hour: int
    minute: int = 0

    @property
    def minutes(self) -> int:
        return self.hour * 60 + self.minute


def parse_pick_time(text: str) -> PickTime:
    """A time of day as people type it: 9, 09, 9am, 9 pm, 12am, 21:30, 9.30, 21h, 9:30pm.

    Raises InvalidInput for anything else (25, 9:75, 13pm, "morning")."""
    match = _TIME.match(text or "")
    if match is None:
        raise InvalidInput(f"not a time of day: {text!r}")
    hour = int(match.group("hour"))
    minute = int(match.group("minute") or 0)
    half = (match.group("half") or "").lower().replace(".", "")
    if half in ("am", "pm"):
        if not 1 <= hour <= 12:
            raise InvalidInput(f"not a 12-hour time: {text!r}")
        hour = hour % 12 + (12 if half == "pm" else 0)
    if not 0 <= hour <= 23 or not 0 <= minute <= 59:
        raise InvalidInput(f"not a time of day: {text!r}")
    return PickTime(hour, minute)


@lru_cache(maxsize=1)
def _available() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def parse_timezone(text: str) -> str:
    """An IANA time zone name, in its canonical spelling ("europe/moscow" → "Europe/Moscow")."""
    name = (text or "").strip().replace(" ", "_")
    canonical = _available().get(name.lower())
    if canonical is None:
        if name.upper() in ("UTC", "GMT", "Z"):
            return UTC_ZONE
        raise InvalidInput(f"unknown time zone: {text!r}")
    return canonical


def is_timezone(name: str) -> bool:
    try:
        return parse_timezone(name) == name
    except InvalidInput:
        return False


def default_timezone(language: str | None) -> str:
    """The zone a new user starts with, from their language (changeable in /settings)."""
    return DEFAULT_TIMEZONES.get((language or "").split("-")[0].lower(), UTC_ZONE)


def local_now(zone: str, now: datetime) -> datetime:
    """`now` (aware) as wall-clock time in `zone`; UTC for a zone this system does not know."""
    try:
        tz: zoneinfo.ZoneInfo = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo(UTC_ZONE)
    return now.astimezone(tz)


def local_day_and_minute(zone: str, now: datetime) -> tuple[date, int]:
    """The local date in `zone` and the minutes since its local midnight."""
    local = local_now(zone, now)
    return local.date(), local.hour * 60 + local.minute


def utc_offset(zone: str, now: datetime) -> timedelta:
    return local_now(zone, now).utcoffset() or timedelta(0)
