"""A playlist as files: CSV (spreadsheets), JSPF (the JSON playlist format ListenBrainz uses) and
M3U8 (players), each with the songs' Spotify, Deezer and YouTube links.

Pure functions, no I/O. A long playlist is cut into parts of at most `max_bytes` each (Telegram
takes documents up to 50 MB); every part is a complete file of its format with the header
repeated, and every song is in exactly one part.

Safety: CSV cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a
tab or a carriage return) get a leading apostrophe (OWASP's advice against CSV injection); M3U8
titles lose their line breaks, so a title cannot add a line (an entry) of its own.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from anyascii import anyascii

from services.dto import ExportFile, TrackInfo

FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jspf": ("application/jspf+json", "jspf"),
    "m3u8": ("audio/x-mpegurl; charset=utf-8", "m3u8"),
}
TELEGRAM_DOCUMENT_LIMIT = 50 * 1024 * 1024
PART_BYTES = 45 * 1024 * 1024  # a margin under Telegram's limit for the multipart framing
CSV_COLUMNS = (
    "position",
    "artist",
    "title",
    "album",
    "isrc",
    "duration",
    "spotify_url",
    "deezer_url",
    "youtube_url",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]+")
_TITLE_SLACK = 64  # bytes kept free in each part for " (part 12/34)" in its title
JSPF_EXTENSION = "https://musicbrainz.org/doc/jspf#track"
_JSPF_SEPARATOR = b", "


@dataclass(frozen=True, slots=True)
class ExportRow:
    track: TrackInfo
    youtube_url: str  # the video when known, else a YouTube search


def neutralize(cell: str) -> str:
    """A CSV cell a spreadsheet will show as text, never run as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def one_line(text: str) -> str:
    return " ".join(_LINE_BREAKS.sub(" ", text).split())


def slug(name: str, default: str = "playlist") -> str:
    """A file name part in plain ASCII: "Лето 2024!" → "Leto-2024"."""
    text = re.sub(r"[^A-Za-z0-9]+", "-", anyascii(name)).strip("-")
    return text[:60].strip("-") or default


def youtube_row_url(track: TrackInfo, video_id: str | None) -> str:
    return f"https://www.youtube.com/watch?v={video_id}" if video_id else track.youtube_search_url


def rows_for(tracks: Sequence[TrackInfo], videos: dict[int, str]) -> list[ExportRow]:
    return [ExportRow(t, youtube_row_url(t, videos.get(t.id))) for t in tracks]


def _duration(ms: int | None) -> str:
    if not ms or ms <= 0:
        return ""
    seconds = round(ms / 1000)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _part_title(title: str, part: int, parts: int) -> str:
    return title if parts == 1 else f"{title} (part {part}/{parts})"


def _split(sizes: Sequence[int], budget: int) -> list[range]:
    """Consecutive groups of items whose sizes add up to at most `budget` (an item bigger than the
    budget alone still gets a part of its own)."""
    groups: list[range] = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if i > start and used + size > budget:
            groups.append(range(start, i))
            start, used = i, 0
        used += size
    if sizes:
        groups.append(range(start, len(sizes)))
    return groups or [range(0)]


def _parts(
    items: Sequence[bytes],
    make: Callable[[str, list[bytes]], bytes],
    title: str,
    max_bytes: int,
    separator: int = 0,
) -> list[tuple[bytes, int]]:
    """Render parts: `make(title, items)` wraps the items (`separator` bytes between two of them);
    each part stays within `max_bytes`."""
    overhead = len(make(title + " " * _TITLE_SLACK, []))
    budget = max_bytes - overhead
    if budget <= 0:
        raise ValueError("max_bytes is smaller than an empty file")
    groups = _split([len(b) + separator for b in items], budget)
    return [(make(_part_title(title, n, len(groups)), [items[i] for i in g]), len(g)) for n, g in enumerate(groups, 1)]


# -- CSV ---------------------------------------------------------------------------------------


def _csv_line(values: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([neutralize(v) for v in values])
    return buffer.getvalue().encode("utf-8")


def csv_items(rows: Sequence[ExportRow], start: int = 1) -> list[bytes]:
    """One line per song; `position` counts through the whole playlist (parts continue it)."""
    return [
        _csv_line(
            [
                str(n),
                row.track.artist_line,
                row.track.name,
                row.track.album or "",
                row.track.isrc or "",
                _duration(row.track.duration_ms),
                row.track.spotify_url or "",
                row.track.deezer_url or "",
                row.youtube_url,
            ]
        )
        for n, row in enumerate(rows, start)
    ]


def _csv_make(_title: str, items: list[bytes]) -> bytes:
    # A byte-order mark: spreadsheets then read the file as UTF-8 (names in any script).
    return "\ufeff".encode() + _csv_line(CSV_COLUMNS) + b"".join(items)


# -- JSPF --------------------------------------------------------------------------------------


def jspf_items(rows: Sequence[ExportRow]) -> list[bytes]:
    out = []
    for row in rows:
        t = row.track
        entry: dict[str, object] = {"title": t.name, "creator": t.artist_line}
        if t.album:
            entry["album"] = t.album
        if t.duration_ms:
            entry["duration"] = int(t.duration_ms)
        entry["location"] = [u for u in (t.spotify_url, t.deezer_url, row.youtube_url) if u]
        if t.isrc:
            entry["extension"] = {JSPF_EXTENSION: {"additional_metadata": {"isrc": t.isrc}}}
        out.append(json.dumps(entry, ensure_ascii=False).encode("utf-8"))
    return out


def _jspf_maker(created: datetime) -> Callable[[str, list[bytes]], bytes]:
    def make(title: str, items: list[bytes]) -> bytes:
        meta = {"title": title, "creator": "Encore", "date": created.isoformat(timespec="seconds")}
        head = '{"playlist": ' + json.dumps(meta, ensure_ascii=False)[:-1] + ', "track": ['
        return head.encode("utf-8") + _JSPF_SEPARATOR.join(items) + b"]}}\n"

    return make


# -- M3U8 --------------------------------------------------------------------------------------


def m3u8_items(rows: Sequence[ExportRow]) -> list[bytes]:
    out = []
    for row in rows:
        t = row.track
        seconds = round(t.duration_ms / 1000) if t.duration_ms else -1
        url = t.spotify_url or t.deezer_url or row.youtube_url
        out.append(f"#EXTINF:{seconds},{one_line(t.artist_line)} - {one_line(t.name)}\n{url}\n".encode())
    return out


def _m3u8_make(title: str, items: list[bytes]) -> bytes:
    return f"#EXTM3U\n#PLAYLIST:{one_line(title)}\n".encode() + b"".join(items)


# -- all ----------------------------------------------------------------------------------------


def export_files(
    fmt: str,
    title: str,
    rows: Sequence[ExportRow],
    *,
    created: datetime,
    max_bytes: int = PART_BYTES,
    file_stem: str | None = None,
) -> list[ExportFile]:
    """The playlist in `fmt` ("csv", "jspf" or "m3u8"), in as many parts as `max_bytes` needs."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format: {fmt}")
    content_type, extension = FORMATS[fmt]
    if fmt == "csv":
        rendered = _parts(csv_items(rows), _csv_make, title, max_bytes)
    elif fmt == "jspf":
        rendered = _parts(jspf_items(rows), _jspf_maker(created), title, max_bytes, separator=len(_JSPF_SEPARATOR))
    else:
        rendered = _parts(m3u8_items(rows), _m3u8_make, title, max_bytes)
    stem = f"encore-{file_stem or slug(title)}"
    parts = len(rendered)
    return [
        ExportFile(
            filename=f"{stem}.{extension}" if parts == 1 else f"{stem}-part{n}of{parts}.{extension}",
            content_type=content_type,
            data=data,
            format=fmt,
            part=n,
            parts=parts,
            tracks=count,
        )
        for n, (data, count) in enumerate(rendered, 1)
    ]
