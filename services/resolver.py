"""Input parsing: what did the user send? Pure functions, no I/O.

`parse_input` recognises free text ("artist - title", "title by artist", any order, any script),
Spotify track links (open.spotify.com/track/…, with `intl-xx/` segments and query strings),
Spotify URIs (`spotify:track:…`), bare 22-character Spotify ids, YouTube / YouTube Music
video links, Deezer track links (deezer.com/track/…, with language segments like `/en/`) and
Deezer short links (deezer.page.link, link.deezer.com/s/…; `DeezerClient.resolve_short_link`
follows them). Album, playlist, artist, podcast and other links get a specific, friendly message.
It never raises: whatever the text, the answer is a `ParsedInput`.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

MAX_QUERY_CHARS = 500
MAX_URL_CHARS = 2048

SPOTIFY_ID_RE = re.compile(r"^[0-9A-Za-z]{22}$")
YOUTUBE_ID_RE = re.compile(r"^[0-9A-Za-z_-]{11}$")
DEEZER_ID_RE = re.compile(r"^[0-9]{1,19}$")
DEEZER_MAX_ID = 2**63 - 1  # the `tracks.deezer_id` column is a BigInteger
DEEZER_SHORT_HOSTS = frozenset({"deezer.page.link", "dzr.page.link", "link.deezer.com"})

# A URL anywhere in the text: with a scheme, or one of the hosts we know written without one.
_URL_RE = re.compile(
    r"(?:https?://[^\s<>\"']+)"
    r"|(?:(?<![\w.])(?:(?:open|play)\.spotify\.com|spotify\.link|(?:www\.|m\.|music\.)?youtube\.com|youtu\.be"
    r"|(?:www\.)?deezer\.com|deezer\.page\.link|dzr\.page\.link|link\.deezer\.com)"
    r"/[^\s<>\"']*)",
    re.IGNORECASE,
)
_URI_RE = re.compile(r"\bspotify:([A-Za-z]+)(?::([A-Za-z0-9]+))?(?::([A-Za-z]+):([A-Za-z0-9]+))?", re.IGNORECASE)
_INTL_RE = re.compile(r"^intl-[a-z]{2}(?:-[a-z]{2})?$", re.IGNORECASE)
_DEEZER_LANG_RE = re.compile(r"^[a-z]{2}(?:-[a-z]{2})?$", re.IGNORECASE)
_DEEZER_SHORT_CODE_RE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")

# "artist - title" separators (hyphen, en and em dash, surrounded by spaces) and "title by artist".
_DASH_RE = re.compile(r"\s+[-–—]+\s+|\s*[–—]\s*")
_BY_RE = re.compile(r"\s+by\s+", re.IGNORECASE)
_QUOTES = "\"'«»“”„‘’`"

# Noise in YouTube video titles: "(Official Video)", "[Lyrics]", "| Remastered", "ft. X" …
_TITLE_NOISE_RE = re.compile(
    r"[\(\[](?:[^\)\]]*?(?:official|video|audio|lyric|lyrics|visuali[sz]er|hd|hq|4k|mv|m/v|remaster(?:ed)?|live"
    r"|explicit|clean|color coded|music)[^\)\]]*)[\)\]]",
    re.IGNORECASE,
)
_FEAT_RE = re.compile(r"\s+(?:ft\.?|feat\.?|featuring)\s+[^\-\(\[|]+", re.IGNORECASE)


class InputKind(enum.StrEnum):
    TEXT = "text"
    SPOTIFY_TRACK = "spotify_track"
    YOUTUBE_VIDEO = "youtube_video"
    DEEZER_TRACK = "deezer_track"
    DEEZER_SHORT = "deezer_short"  # a short link that redirects; resolved by the Deezer client
    UNSUPPORTED = "unsupported"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class ParsedInput:
    kind: InputKind
    query: str | None = None  # TEXT: the cleaned search text
    artist: str | None = None  # TEXT: a hint when the text looked like "artist - title"
    title: str | None = None
    spotify_id: str | None = None  # SPOTIFY_TRACK
    video_id: str | None = None  # YOUTUBE_VIDEO
    deezer_id: int | None = None  # DEEZER_TRACK
    short_url: str | None = None  # DEEZER_SHORT: the link, normalised to https://<host>/<path>
    unsupported: str | None = None  # UNSUPPORTED: album, playlist, artist, podcast, episode, link …
    message: str | None = None  # UNSUPPORTED / INVALID: what to tell the user


_SPOTIFY_KIND_MESSAGES = {
    "album": "That's a Spotify album link. Send me a link to one track from it, or its artist and title.",
    "playlist": "That's a Spotify playlist link. Send me a link to one track from it, or its artist and title.",
    "artist": 'That\'s a Spotify artist page. Send me one of their tracks (a link or "artist - title").',
    "show": 'That\'s a podcast. I recommend music: send me a song link or "artist - title".',
    "episode": 'That\'s a podcast episode. I recommend music: send me a song link or "artist - title".',
    "audiobook": 'That\'s an audiobook. I recommend music: send me a song link or "artist - title".',
    "chapter": 'That\'s an audiobook chapter. I recommend music: send me a song link or "artist - title".',
    "user": 'That\'s a Spotify profile. Send me a track link or "artist - title".',
    "collection": 'That\'s a Spotify library page. Send me a track link or "artist - title".',
    "genre": 'That\'s a Spotify genre page. Send me a track link or "artist - title".',
    "concert": 'That\'s a Spotify concert page. Send me a track link or "artist - title".',
}
_SPOTIFY_KIND_NAMES = {"show": "podcast", "episode": "podcast", "chapter": "audiobook"}

MSG_EMPTY = 'Send me a song: "artist - title", a Spotify or Deezer track link, or a YouTube link.'
MSG_TOO_LONG = (
    f"That's too long for a song search (more than {MAX_QUERY_CHARS} characters). Send just the artist and title."
)
MSG_NO_WORDS = 'I couldn\'t find any words to search for. Send "artist - title" or a track link.'
MSG_BAD_SPOTIFY_ID = "That Spotify link has no valid track id. Copy the link again with Share → Copy link."
MSG_SPOTIFY_SHORT = (
    "That's a Spotify short link (spotify.link), which I can't open. Open it and send the full "
    'open.spotify.com/track/… link, or "artist - title".'
)
MSG_SPOTIFY_OTHER = 'I can\'t read that Spotify page. Send a track link (open.spotify.com/track/…) or "artist - title".'
MSG_YT_PLAYLIST = 'That\'s a YouTube playlist. Send me a link to one video from it, or "artist - title".'
MSG_YT_CHANNEL = 'That\'s a YouTube channel. Send me one of its videos, or "artist - title".'
MSG_YT_ALBUM = 'That\'s a YouTube Music album. Send me one song from it, or "artist - title".'
MSG_YT_OTHER = 'I can\'t read that YouTube page. Send a video link (youtube.com/watch?v=…) or "artist - title".'
MSG_OTHER_LINK = (
    "I can only read Spotify track links, Deezer track links and YouTube / YouTube Music video links. "
    'Send one of those, or "artist - title".'
)
_DEEZER_KIND_MESSAGES = {
    "album": "That's a Deezer album link. Send me a link to one track from it, or its artist and title.",
    "playlist": "That's a Deezer playlist link. Send me a link to one track from it, or its artist and title.",
    "artist": 'That\'s a Deezer artist page. Send me one of their tracks (a link or "artist - title").',
    "show": 'That\'s a podcast. I recommend music: send me a song link or "artist - title".',
    "episode": 'That\'s a podcast episode. I recommend music: send me a song link or "artist - title".',
    "profile": 'That\'s a Deezer profile. Send me a track link or "artist - title".',
    "radio": 'That\'s a Deezer radio or mix. Send me a link to one track, or "artist - title".',
    "mixes": 'That\'s a Deezer radio or mix. Send me a link to one track, or "artist - title".',
}
_DEEZER_KIND_NAMES = {"show": "podcast", "episode": "podcast", "profile": "user", "mixes": "radio"}
MSG_BAD_DEEZER_ID = "That Deezer link has no valid track id. Copy the link again with Share → Copy link."
MSG_DEEZER_OTHER = 'I can\'t read that Deezer page. Send a track link (deezer.com/track/…) or "artist - title".'


def _invalid(message: str) -> ParsedInput:
    return ParsedInput(InputKind.INVALID, message=message)


def _unsupported(what: str, message: str) -> ParsedInput:
    return ParsedInput(InputKind.UNSUPPORTED, unsupported=what, message=message)


def parse_input(text: str) -> ParsedInput:
    """Classify what a user sent. Never raises."""
    if not isinstance(text, str):
        return _invalid(MSG_EMPTY)
    cleaned = _clean(text)
    if not cleaned:
        return _invalid(MSG_EMPTY)

    uri = _URI_RE.search(cleaned)
    if uri:
        return _parse_uri(uri)

    url = _URL_RE.search(cleaned[: MAX_URL_CHARS * 4])
    if url:
        return _parse_url(url.group(0)[:MAX_URL_CHARS])

    if len(cleaned) > MAX_QUERY_CHARS:
        return _invalid(MSG_TOO_LONG)

    if SPOTIFY_ID_RE.match(cleaned) and _looks_like_id(cleaned):
        return ParsedInput(InputKind.SPOTIFY_TRACK, spotify_id=cleaned)

    return _parse_text(cleaned)


def _clean(text: str) -> str:
    # Drop control and format characters (zero-width spaces, bidi marks), fold whitespace.
    chars = []
    for ch in text[: MAX_QUERY_CHARS * 40]:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Cs", "Co", "Cn"):
            chars.append(" " if ch in "\t\n\r\x0b\x0c" else "")
        else:
            chars.append(ch)
    return " ".join("".join(chars).split())


def _looks_like_id(token: str) -> bool:
    """A bare 22-character base62 token is an id unless it reads like a word (ids mix digits/case)."""
    has_digit = any(c.isdigit() for c in token)
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    return has_digit or (has_upper and has_lower)


def _parse_uri(match: re.Match[str]) -> ParsedInput:
    kind = match.group(1).lower()
    ident = match.group(2)
    if kind == "user" and match.group(3):  # spotify:user:<name>:playlist:<id>
        kind = match.group(3).lower()
        ident = match.group(4)
    if kind == "track":
        if ident and SPOTIFY_ID_RE.match(ident):
            return ParsedInput(InputKind.SPOTIFY_TRACK, spotify_id=ident)
        return _invalid(MSG_BAD_SPOTIFY_ID)
    return _spotify_unsupported(kind)


def _spotify_unsupported(kind: str) -> ParsedInput:
    message = _SPOTIFY_KIND_MESSAGES.get(kind, MSG_SPOTIFY_OTHER)
    return _unsupported(_SPOTIFY_KIND_NAMES.get(kind, kind if kind in _SPOTIFY_KIND_MESSAGES else "link"), message)


def _parse_url(raw: str) -> ParsedInput:
    raw = raw.rstrip(".,;:!?)]}>»")
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        host = (parts.hostname or "").lower()
    except ValueError:
        return _unsupported("link", MSG_OTHER_LINK)
    if host.startswith("www."):
        host = host[4:]
    segments = [s for s in parts.path.split("/") if s]
    try:
        query = parse_qs(parts.query)
    except ValueError:
        query = {}

    if host in ("open.spotify.com", "play.spotify.com"):
        segments = [s for s in segments if not _INTL_RE.match(s) and s.lower() != "embed"]
        if segments and segments[0].lower() == "user" and len(segments) >= 4:
            segments = segments[2:]  # /user/<name>/playlist/<id>
        if not segments:
            return _unsupported("link", MSG_SPOTIFY_OTHER)
        kind = segments[0].lower()
        if kind == "track":
            ident = segments[1] if len(segments) > 1 else ""
            if SPOTIFY_ID_RE.match(ident):
                return ParsedInput(InputKind.SPOTIFY_TRACK, spotify_id=ident)
            return _invalid(MSG_BAD_SPOTIFY_ID)
        return _spotify_unsupported(kind)
    if host in DEEZER_SHORT_HOSTS:
        return _parse_deezer_short(host, segments)
    if host == "deezer.com" or host.endswith(".deezer.com"):
        return _parse_deezer(segments)

    if host in ("spotify.link", "spotify.app.link"):
        return _unsupported("short_link", MSG_SPOTIFY_SHORT)
    if host.endswith("spotify.com"):
        return _unsupported("link", MSG_SPOTIFY_OTHER)

    if host == "youtu.be":
        ident = segments[0] if segments else ""
        if YOUTUBE_ID_RE.match(ident):
            return ParsedInput(InputKind.YOUTUBE_VIDEO, video_id=ident)
        return _unsupported("link", MSG_YT_OTHER)
    if host in ("youtube.com", "m.youtube.com", "music.youtube.com", "youtube-nocookie.com"):
        return _parse_youtube(segments, query)

    return _unsupported("link", MSG_OTHER_LINK)


def _parse_deezer(segments: list[str]) -> ParsedInput:
    """www.deezer.com/[<lang>/]<kind>/<id>: `/track/3135556`, `/en/track/…`, `/us/album/…`."""
    if segments and _DEEZER_LANG_RE.match(segments[0]) and segments[0].lower() not in _DEEZER_KIND_MESSAGES:
        segments = segments[1:]
    if not segments:
        return _unsupported("link", MSG_DEEZER_OTHER)
    kind = segments[0].lower()
    if kind == "track":
        ident = segments[1] if len(segments) > 1 else ""
        if DEEZER_ID_RE.match(ident) and 0 < int(ident) <= DEEZER_MAX_ID:
            return ParsedInput(InputKind.DEEZER_TRACK, deezer_id=int(ident))
        return _invalid(MSG_BAD_DEEZER_ID)
    if kind in _DEEZER_KIND_MESSAGES:
        return _unsupported(_DEEZER_KIND_NAMES.get(kind, kind), _DEEZER_KIND_MESSAGES[kind])
    return _unsupported("link", MSG_DEEZER_OTHER)


def _parse_deezer_short(host: str, segments: list[str]) -> ParsedInput:
    """deezer.page.link/<code>, dzr.page.link/<code>, link.deezer.com/s/<code>."""
    prefix = ["s"] if host == "link.deezer.com" else []
    if segments[: len(prefix)] != prefix or len(segments) != len(prefix) + 1:
        return _unsupported("link", MSG_DEEZER_OTHER)
    code = segments[-1]
    if not _DEEZER_SHORT_CODE_RE.match(code):
        return _unsupported("link", MSG_DEEZER_OTHER)
    return ParsedInput(InputKind.DEEZER_SHORT, short_url="/".join([f"https://{host}", *prefix, code]))


def _parse_youtube(segments: list[str], query: dict[str, list[str]]) -> ParsedInput:
    first = segments[0].lower() if segments else ""
    if first == "watch" or (not segments and "v" in query):
        ident = (query.get("v") or [""])[0]
        if YOUTUBE_ID_RE.match(ident):
            return ParsedInput(InputKind.YOUTUBE_VIDEO, video_id=ident)
        if "list" in query:
            return _unsupported("playlist", MSG_YT_PLAYLIST)
        return _unsupported("link", MSG_YT_OTHER)
    if first in ("shorts", "embed", "live", "v", "e") and len(segments) > 1:
        if YOUTUBE_ID_RE.match(segments[1]):
            return ParsedInput(InputKind.YOUTUBE_VIDEO, video_id=segments[1])
        return _unsupported("link", MSG_YT_OTHER)
    if first == "playlist":
        ident = (query.get("list") or [""])[0]
        if ident.startswith("OLAK5uy_"):  # YouTube Music albums are playlists with this prefix
            return _unsupported("album", MSG_YT_ALBUM)
        return _unsupported("playlist", MSG_YT_PLAYLIST)
    if first == "browse" and len(segments) > 1 and segments[1].startswith("MPREb"):
        return _unsupported("album", MSG_YT_ALBUM)
    if first in ("channel", "c", "user") or first.startswith("@") or first == "browse":
        return _unsupported("artist", MSG_YT_CHANNEL)
    return _unsupported("link", MSG_YT_OTHER)


def _parse_text(cleaned: str) -> ParsedInput:
    text = cleaned.strip(_QUOTES + " ")
    if not any(ch.isalnum() for ch in text):
        return _invalid(MSG_NO_WORDS)
    artist = title = None
    parts = [p.strip(_QUOTES + " ") for p in _DASH_RE.split(text, maxsplit=1)]
    if len(parts) == 2 and all(parts):
        artist, title = parts
    else:
        by = _BY_RE.split(text)
        if len(by) == 2 and all(p.strip() for p in by):
            title, artist = (p.strip(_QUOTES + " ") for p in by)
    query = " ".join(p for p in (artist, title) if p) if artist and title else text
    return ParsedInput(InputKind.TEXT, query=query, artist=artist, title=title)


def clean_video_title(title: str, channel: str | None = None) -> str:
    """A search text from a YouTube video title: noise like "(Official Video)" removed.

    YouTube Music's auto-generated "Artist - Topic" channels title videos with the song alone,
    so the channel name supplies the artist.
    """
    text = _TITLE_NOISE_RE.sub(" ", title or "")
    text = _FEAT_RE.sub(" ", text)
    text = text.replace("|", " ").replace('"', " ")
    text = " ".join(text.split())
    if channel and channel.endswith(" - Topic"):
        artist = channel[: -len(" - Topic")].strip()
        if artist and artist.casefold() not in text.casefold():
            text = f"{artist} - {text}"
    return text[:MAX_QUERY_CHARS]
