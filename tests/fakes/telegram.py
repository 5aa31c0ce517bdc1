"""A fake Telegram Bot API server for end-to-end tests, strict where the real one is.

It answers `/bot{token}/{method}` on 127.0.0.1 with the real wire format: form-encoded, JSON or
multipart requests whose nested fields are JSON-encoded, `{"ok": true, "result": …}` answers and
long-polling `getUpdates` with offset and `allowed_updates` semantics. Files live in the server:
`getFile` gives a `file_path` and `GET /file/bot{token}/{file_path}` serves the bytes.

Every call is checked against the official spec (`tests/fakes/data/bot-api-spec.json`, a copy of
shared/telegram/bot-api-spec.json) and refused as Telegram would, with Telegram's own wording
(taken from tdlib/telegram-bot-api and tdlib's HTML parser): HTTP 400 and
`{"ok": false, "error_code": 400, "description": "Bad Request: …"}`, 401/404 for a wrong token, 403
for a user who blocked the bot, 413 for an upload over 50 MB. Where the fake is stricter than
Telegram (an unknown parameter or field, a bare `&` in HTML, a button with two actions, …) the
description ends with "(the fake is stricter than Telegram here)", so that a failure says which.

What tests use (a `FakeTelegram` called `telegram`; `user = tg_user(…)`):

    mark = telegram.mark()                                   # index of the next recorded call
    telegram.send_text(user, "daft punk")                    # the user sends …
    telegram.send_audio(user, mp3_bytes_or_path, performer="Daft Punk", title="One More Time")
    telegram.send_voice(user, ogg) / send_video_note(user, mp4) / send_document(user, data, file_name=…)
    telegram.press(user, message, data) / inline(user, query) / choose_inline(user, result_id, query)
    call = await telegram.wait_for("sendMessage", predicate, after=mark)   # event-based, 30 s guard
    message = await telegram.wait_for_sent(user, lambda m: "audio" in m, after=mark)
    telegram.sent_media[-1].data / .file_name / .caption …  # what the bot uploaded
    telegram.add_file(data, kind="audio") / serve_url(url, data, content_type)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import mimetypes
import re
import secrets
import string
import struct
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

T = TypeVar("T")

SPEC_PATH = Path(__file__).resolve().parent / "data" / "bot-api-spec.json"
TOKEN = "123456789:AAFakeTokenForEncoreTestsOnly_000000000"
BOT_USER = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "Encore",
    "username": "encore_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": True,
}

MiB = 1024 * 1024
MESSAGE_LIMIT = 4096  # UTF-16 code units of visible text
CAPTION_LIMIT = 1024
CALLBACK_ANSWER_LIMIT = 200
DOWNLOAD_LIMIT = 20 * MiB  # getFile refuses bigger files
UPLOAD_LIMIT = 50 * MiB  # multipart uploads: 413 above this
PHOTO_UPLOAD_LIMIT = 10 * MiB
URL_PHOTO_LIMIT = 5 * MiB  # what Telegram fetches from an HTTP URL
URL_FILE_LIMIT = 20 * MiB
INLINE_RESULTS_LIMIT = 50
DEFAULT_WAIT = 30.0  # a guard against hangs, never a speed requirement
STRICTER = " (the fake is stricter than Telegram here)"

MEDIA_KINDS = ("audio", "voice", "video_note", "document", "photo")
SEND_METHODS = ("sendMessage", "sendAudio", "sendVoice", "sendVideoNote", "sendDocument", "sendPhoto")
# Prefixes of real file_ids (the base64 of tdlib's file type), so that ids look like Telegram's.
_FILE_ID_PREFIX = {
    "photo": "AgACAgIAAxkBAAI",
    "voice": "AwACAgIAAxkBAAI",
    "document": "BQACAgIAAxkBAAI",
    "audio": "CQACAgIAAxkBAAI",
    "video_note": "DQACAgIAAxkBAAI",
    "thumbnail": "AAMCAgADGQEAAg",
}
_FILE_DIRS = {
    "photo": "photos",
    "voice": "voice",
    "document": "documents",
    "audio": "music",
    "video_note": "video_notes",
    "thumbnail": "thumbnails",
}
_MIME_TYPES = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/x-wav",
    ".flac": "audio/flac",
    ".aiff": "audio/x-aiff",
    ".mp4": "video/mp4",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".csv": "text/csv",
    ".json": "application/json",
    ".jspf": "application/json",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".txt": "text/plain",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
# What Telegram accepts when it fetches a file from an HTTP URL, by the kind being sent.
_URL_TYPES = {
    "audio": ("audio/mpeg", "audio/mp3", "audio/mp4", "audio/x-m4a", "audio/m4a"),
    "voice": ("audio/ogg",),
    "document": ("application/pdf", "application/zip", "image/gif"),
    "photo": ("image/jpeg", "image/png", "image/gif", "image/webp"),
    "video_note": ("video/mp4",),
}
# A file of one kind may be re-sent by file_id only as a compatible kind ("type of file mismatch").
_COMPATIBLE = {
    "audio": {"audio"},
    "voice": {"voice"},
    "video_note": {"video_note"},
    "photo": {"photo"},
    "document": {"document", "audio", "voice", "video_note"},
}
_CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
# Update kinds delivered when allowed_updates is empty or was never given.
_NOT_BY_DEFAULT = {"chat_member", "message_reaction", "message_reaction_count"}


class BadRequest(Exception):
    """A refusal: `description` and `code` are what the server answers."""

    def __init__(self, description: str, code: int = 400) -> None:
        super().__init__(description)
        self.description = description
        self.code = code


class WaitTimeout(AssertionError, TimeoutError):
    """A wait helper gave up: what was awaited never happened (the message lists what did).

    An AssertionError, so that pytest reports it as a failed expectation, and a TimeoutError, as before.
    """


def bad_request(detail: str) -> str:
    """Telegram's top-level wording: "Bad Request: " and the detail's first letter lowered (not CONSTANTS)."""
    if len(detail) >= 2 and (detail[1] == "_" or detail[1].isupper()):
        return f"Bad Request: {detail}"
    return f"Bad Request: {detail[:1].lower()}{detail[1:]}"


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# --- Telegram's HTML parse mode (a port of tdlib's parse_html) ---------------------------------------------------

# Telegram's HTML subset: tag → the attributes it reads (others it ignores; the fake refuses them when strict).
HTML_TAGS: dict[str, set[str]] = {
    "a": {"href"},
    "b": set(),
    "strong": set(),
    "i": set(),
    "em": set(),
    "s": set(),
    "strike": set(),
    "del": set(),
    "u": set(),
    "ins": set(),
    "tg-spoiler": set(),
    "tg-emoji": {"emoji-id"},
    "span": {"class"},
    "pre": set(),
    "code": {"class"},
    "blockquote": {"expandable"},
}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPACE = " \t\r\n\v\0"
_NAME_TOKEN = set(string.ascii_letters + string.digits + ".-")


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8", "surrogatepass"))


def _decode_entity(text: str, pos: int) -> tuple[str, int] | None:
    """The character an HTML entity at `pos` stands for and where it ends, or None (then `&` is literal)."""
    n = len(text)
    end = pos + 1
    if end < n and text[end] == "#":
        end += 1
        digits, base = string.digits, 10
        if end < n and text[end] == "x":
            end += 1
            digits, base = string.hexdigits, 16
        start = end
        while end < n and text[end] in digits:
            end += 1
        code = int(text[start:end], base) if end > start else 0
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return None
        char = chr(code)
    else:
        while end < n and text[end].isascii() and text[end].isalpha():
            end += 1
        char_or_none = NAMED_ENTITIES.get(text[pos + 1 : end])
        if char_or_none is None:
            return None
        char = char_or_none
    if end < n and text[end] == ";":
        end += 1
    return char, end


def link_problem(url: str) -> str | None:
    """Why Telegram would refuse `url` in a button or an entity, or None when it is a usable link."""
    scheme_match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", url)
    if scheme_match and scheme_match.group(1).lower() in ("tg", "ton"):
        return None if len(url) > scheme_match.end() else "Wrong URL"
    if scheme_match and url[scheme_match.end() : scheme_match.end() + 2] == "//":
        if scheme_match.group(1).lower() not in ("http", "https"):
            return "Unsupported URL protocol"
    elif scheme_match and not re.match(r"[A-Za-z0-9.-]+:\d", url):
        return "Unsupported URL protocol"
    else:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "Wrong port number specified in the URL"
    if not host:
        return "URL host is empty"
    if re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", host):
        return None
    labels = host.split(".")
    if len(labels) < 2 or not all(labels) or labels[-1].isdigit():  # "localhost", "not-a-url": no dot
        return "Wrong HTTP URL"
    return None


def parse_html(text: str, *, strict: bool = True) -> str:
    """Telegram's HTML parse mode: the visible text, or BadRequest worded as Telegram words it.

    `strict` (the default) also refuses what Telegram silently tolerates but a bot should not send: a `&`
    that starts no entity, an unknown entity such as `&nbsp;`, attributes Telegram ignores, `<a>` without
    a usable href.
    """

    def fail(detail: str) -> BadRequest:
        return BadRequest(f"Bad Request: can't parse entities: {detail}")

    def at(k: int) -> str:
        return text[k] if k < n else "\0"

    n = len(text)
    out: list[str] = []
    stack: list[tuple[str, str, int, int]] = []  # tag, argument, len(out) at its start, where it began
    bad_surrogate = False
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_entity(text, i)
            if decoded is not None:
                char, i = decoded
                out.append(char)
                bad_surrogate = bad_surrogate or 0xD800 <= ord(char) <= 0xDFFF
                continue
            if strict:
                raise fail(
                    f'"&" that starts no HTML entity at byte offset {_byte_offset(text, i)}; escape it as "&amp;"'
                    + STRICTER
                )
        if c != "<":
            out.append(c)
            i += 1
            continue

        begin = i
        i += 1
        if at(i) != "/":  # a start tag
            while at(i) not in _SPACE and at(i) != ">":
                i += 1
            if i >= n:
                raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
            tag = text[begin + 1 : i].lower()
            if tag not in HTML_TAGS:
                raise fail(f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
            argument = ""
            attributes: list[str] = []
            while at(i) != ">":
                while i < n and at(i) in _SPACE:
                    i += 1
                if at(i) == ">":
                    break
                name_begin = i
                while at(i) not in _SPACE and at(i) not in "=>/\"'":
                    i += 1
                name = text[name_begin:i]
                if not name:
                    raise fail(f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(text, begin)}')
                attributes.append(name)
                while i < n and at(i) in _SPACE:
                    i += 1
                if at(i) != "=":
                    if i >= n:
                        raise fail(f'Unclosed start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
                    if tag == "blockquote" and name == "expandable":
                        argument = "1"
                    continue
                i += 1
                while i < n and at(i) in _SPACE:
                    i += 1
                if i >= n:
                    raise fail(f'Unclosed start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
                if at(i) not in "'\"":
                    token_begin = i
                    while i < n and text[i] in _NAME_TOKEN:
                        i += 1
                    value = text[token_begin:i].lower()
                    if at(i) not in _SPACE and at(i) != ">":
                        raise fail(f"Unexpected end of name token at byte offset {_byte_offset(text, token_begin)}")
                else:
                    quote = text[i]
                    i += 1
                    chars: list[str] = []
                    while i < n and text[i] != quote:
                        if text[i] == "&" and (decoded := _decode_entity(text, i)) is not None:
                            chars.append(decoded[0])
                            i = decoded[1]
                            continue
                        chars.append(text[i])
                        i += 1
                    if i < n:
                        i += 1
                    value = "".join(chars)
                if i >= n:
                    raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
                if tag == "a" and name == "href":
                    argument = value
                elif tag == "code" and name == "class" and value.startswith("language-"):
                    argument = value[9:]
                elif tag == "span" and name == "class" and value.startswith("tg-"):
                    argument = value[3:]
                elif tag == "tg-emoji" and name == "emoji-id":
                    argument = value
                elif tag == "blockquote" and name == "expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise fail(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, begin)}')
            if strict:
                unknown = [a for a in attributes if a not in HTML_TAGS[tag]]
                if unknown:
                    raise fail(
                        f'attribute "{unknown[0]}" of the tag "{tag}" at byte offset {_byte_offset(text, begin)} '
                        "is ignored by Telegram" + STRICTER
                    )
            stack.append((tag, argument, len(out), begin))
            i += 1  # past '>'
            continue

        # an end tag
        if not stack:
            raise fail(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
        while at(i) not in _SPACE and at(i) != ">":
            i += 1
        end_name = text[begin + 2 : i].lower()
        while i < n and at(i) in _SPACE:
            i += 1
        if at(i) != ">":
            raise fail(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
        tag, argument, start, tag_begin = stack[-1]
        if end_name and end_name != tag:
            raise fail(
                f'Unmatched end tag at byte offset {_byte_offset(text, begin)}, expected "</{tag}>", '
                f'found "</{end_name}>"'
            )
        content = "".join(out[start:])
        if content and tag == "tg-emoji":
            emoji_id = int(argument) if re.fullmatch(r"-?\d{1,19}", argument) else 0
            if emoji_id == 0 or not -(2**63) <= emoji_id < 2**63:
                raise fail("Invalid custom emoji identifier specified")
        if strict and tag == "a":
            href = argument or content
            problem = link_problem(href) if href else "URL host is empty"
            if problem is not None:
                raise fail(
                    f"<a> at byte offset {_byte_offset(text, tag_begin)} has no usable href ({problem}): Telegram "
                    "would drop the link" + STRICTER
                )
        stack.pop()
        i += 1
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    if bad_surrogate:
        raise fail(
            "Text contains invalid Unicode characters after decoding HTML entities, check for unmatched surrogate "
            "code units"
        )
    return "".join(out)


def visible_text(text: str, parse_mode: str | None, *, strict: bool = True) -> str:
    if not parse_mode:
        return text
    mode = parse_mode.lower()
    if mode == "html":
        return parse_html(text, strict=strict)
    if mode in ("markdown", "markdownv2"):
        raise BadRequest(f"Bad Request: parse_mode {parse_mode} is not implemented by the fake; use HTML")
    raise BadRequest("Bad Request: unsupported parse_mode")


def check_message_text(text: str, parse_mode: str | None, what: str = "message text", *, strict: bool = True) -> str:
    """The visible text of a message, or BadRequest: empty, too long (4096 UTF-16 units) or bad HTML."""
    if text == "":
        raise BadRequest(f"Bad Request: {what} is empty")
    plain = visible_text(text, parse_mode, strict=strict).strip()
    if not plain:
        raise BadRequest("Bad Request: text must be non-empty")
    if utf16_len(plain) > MESSAGE_LIMIT:
        raise BadRequest("Bad Request: message is too long")
    return plain


def check_caption(caption: str, parse_mode: str | None, *, strict: bool = True) -> str:
    """The visible caption (0–1024 UTF-16 units after entity parsing), or BadRequest."""
    plain = visible_text(caption, parse_mode, strict=strict).strip()
    if utf16_len(plain) > CAPTION_LIMIT:
        raise BadRequest("Bad Request: message caption is too long")
    return plain


def check_entities(text: str, entities: list[dict[str, Any]]) -> None:
    """Explicit MessageEntity lists: a known type, inside the text (UTF-16 offsets), text_link with a usable URL."""
    allowed = {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
    size = utf16_len(text)
    for entity in entities:
        if entity["type"] not in allowed:
            raise BadRequest("Bad Request: can't parse MessageEntity: Unsupported type specified")
        offset, length = entity["offset"], entity["length"]
        if offset < 0:
            raise BadRequest(f"Bad Request: receive an entity with incorrect offset {offset}")
        if offset > size:
            raise BadRequest(f"Bad Request: entity begins after the end of the text at UTF-16 offset {offset}")
        if offset + length > size:
            raise BadRequest(
                f"Bad Request: entity beginning at UTF-16 offset {offset} ends after the end of the text at UTF-16 "
                f"offset {offset + length}"
            )
        if entity["type"] == "text_link":
            if "url" not in entity:
                raise BadRequest("Bad Request: can't parse MessageEntity: Can't find field \"url\"")
            problem = link_problem(entity["url"]) if entity["url"] else "URL host is empty"
            if problem:
                raise BadRequest(f"Bad Request: entity URL '{entity['url']}' is invalid: {problem}")


# --- files ---------------------------------------------------------------------------------------------------------


@dataclass
class UploadedFile:
    """A multipart file part as the server received it."""

    name: str  # the part's name ("audio", or the attach:// name)
    filename: str | None
    content_type: str | None  # the part's Content-Type header (aiogram sends application/octet-stream)
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:  # keep recorded calls readable
        return f"UploadedFile({self.name!r}, filename={self.filename!r}, {self.size} bytes)"


@dataclass
class FakeFile:
    """A file stored on the server: what a user sent, what the bot uploaded, or what a test registered."""

    file_id: str
    file_unique_id: str
    kind: str  # audio | voice | video_note | document | photo | thumbnail
    size: int
    data: bytes | None = None  # None: read from `source` when downloaded
    source: Path | None = None
    mime_type: str | None = None
    file_name: str | None = None
    width: int | None = None  # photos and thumbnails
    height: int | None = None
    file_path: str | None = None  # given by getFile

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.source is not None
        return self.source.read_bytes()


@dataclass
class SentMedia:
    """A file message the bot sent (sendAudio, sendVoice, sendDocument, sendPhoto, sendVideoNote)."""

    method: str
    chat_id: int
    message: dict[str, Any]  # as stored in the chat history (edits apply)
    kind: str
    file: FakeFile
    source: str  # "upload" | "url" | "file_id"
    url: str | None = None
    upload: UploadedFile | None = None
    caption: str | None = None  # visible text
    params: dict[str, Any] = field(default_factory=dict)  # the decoded call
    thumbnail: FakeFile | None = None
    thumbnail_ignored: str | None = None  # why Telegram would drop the thumbnail that was passed

    @property
    def data(self) -> bytes:
        return self.file.read()

    @property
    def file_name(self) -> str | None:
        return self.file.file_name

    @property
    def content_type(self) -> str | None:
        """The upload's Content-Type header (or the URL's), not what Telegram derives (see `mime_type`)."""
        if self.upload is not None:
            return self.upload.content_type
        return self.file.mime_type if self.source == "url" else None

    @property
    def mime_type(self) -> str | None:
        return self.file.mime_type

    @property
    def performer(self) -> str | None:
        return self.params.get("performer")

    @property
    def title(self) -> str | None:
        return self.params.get("title")

    @property
    def duration(self) -> int | None:
        return self.params.get("duration")


@dataclass
class _StoredMedia:
    file: FakeFile
    source: str  # "upload" | "url" | "file_id"
    obj: Any  # the Audio / Document / … object for the Message (a PhotoSize list for photos)
    url: str | None = None
    upload: UploadedFile | None = None
    thumbnail: FakeFile | None = None
    thumbnail_ignored: str | None = None


@dataclass
class Download:
    path: str
    file_id: str
    at: float = field(default_factory=time.monotonic)


def guess_mime_type(file_name: str | None, fallback: str | None = None) -> str | None:
    if file_name:
        suffix = Path(file_name).suffix.lower()
        if suffix in _MIME_TYPES:
            return _MIME_TYPES[suffix]
        guessed, _ = mimetypes.guess_type(file_name)
        if guessed:
            return guessed
    return fallback


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF, JPEG or WebP (VP8X), or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01, 0xFF) or 0xD0 <= marker <= 0xD7:
                i += 1 if marker == 0xFF else 2
                continue
            (segment,) = struct.unpack(">H", data[i + 2 : i + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            i += 2 + segment
    return None


def make_png(width: int = 1, height: int = 1) -> bytes:
    """A valid grey PNG of the given size (for photo and thumbnail tests)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def make_jpeg(width: int = 1, height: int = 1, size: int = 0) -> bytes:
    """JPEG markers with the given dimensions (enough for Telegram's size checks; not a decodable image)."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    body = b"\xff\xd8" + sof + b"\xff\xd9"
    return body + b"\x00" * max(0, size - len(body))


async def read_input_files(files: dict[str, Any], bot: Any) -> dict[str, UploadedFile]:
    """aiogram InputFiles (as a session's `prepare_value` collects them) → what the server would receive."""
    uploads: dict[str, UploadedFile] = {}
    for key, input_file in files.items():
        chunks = [chunk async for chunk in input_file.read(bot)]
        uploads[key] = UploadedFile(key, input_file.filename or key, "application/octet-stream", b"".join(chunks))
    return uploads


# --- the spec validator --------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A detail in tdlib's words ("Can't find field \\"x\\""), prefixed by each enclosing object that Telegram names."""


_TD_TYPES = {"String": "String", "Integer": "Number", "Float": "Number", "Boolean": "Boolean", "True": "Boolean"}
# Objects whose errors Telegram prefixes ("Can't parse inline keyboard button: …"); exact names, then prefixes.
_CONTEXTS = {
    "InlineKeyboardButton": "Can't parse inline keyboard button",
    "KeyboardButton": "Can't parse keyboard button",
    "InlineQueryResultsButton": "Can't parse inline query results button",
    "MessageEntity": "Can't parse MessageEntity",
    "BotCommand": "Can't parse BotCommand",
}
_CONTEXT_PREFIXES = {
    "InlineQueryResult": "Can't parse inline query result",
    "BotCommandScope": "Can't parse BotCommandScope",
    "InputMedia": "Can't parse InputMedia",
}
_JSON_ERRORS = {
    "reply_markup": "Can't parse reply keyboard markup JSON object",
    "reply_parameters": "Can't parse reply parameters JSON object",
    "results": "Can't parse JSON encoded inline query results",
    "link_preview_options": "Can't parse link preview options JSON object",
    "commands": "Can't parse commands JSON object",
    "scope": "Can't parse BotCommandScope JSON object",
    "button": "Can't parse inline query results button JSON object",
    "media": "Can't parse InputMedia JSON object",
    "entities": "Can't parse entities JSON object",
    "caption_entities": "Can't parse entities JSON object",
}
_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_MEDIA_PARAMS = {"audio", "voice", "document", "photo", "video", "animation", "video_note", "sticker"}


def _field_name(path: str) -> str:
    return re.sub(r"\[\d+\]", "", path).rsplit(".", 1)[-1]


def _context(type_name: str) -> str | None:
    if type_name in _CONTEXTS:
        return _CONTEXTS[type_name]
    for prefix, context in _CONTEXT_PREFIXES.items():
        if type_name.startswith(prefix) and type_name != "InlineQueryResultsButton":
            return context
    return None


def _resolve_nested(value: Any, files: dict[str, UploadedFile], used: set[str]) -> Any:
    """attach:// strings inside JSON values (InputMedia) → the uploaded file parts they name."""
    if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
        used.add(value[9:])
        return files[value[9:]]
    if isinstance(value, dict):
        return {k: _resolve_nested(v, files, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_nested(v, files, used) for v in value]
    return value


class SpecValidator:
    """Checks decoded Bot API calls against the machine-readable spec, refusing in Telegram's words."""

    def __init__(self, spec: dict[str, Any] | None = None, *, strict_html: bool = True) -> None:
        self.spec = spec or load_spec()
        self.methods = {name.lower(): m for name, m in self.spec["methods"].items()}
        self.types = self.spec["types"]
        self.strict_html = strict_html

    def method(self, name: str) -> dict[str, Any]:
        method = self.methods.get(name.lower())
        if method is None:
            raise BadRequest("Not Found: method not found", code=404)
        return method

    def decode_call(
        self,
        name: str,
        raw: dict[str, Any],
        files: dict[str, UploadedFile] | None = None,
        *,
        upload_limit: int = UPLOAD_LIMIT,
    ) -> dict[str, Any]:
        """Wire params (strings, JSON-encoded nested values) and file parts → checked Python values.

        An InputFile parameter becomes an `UploadedFile` when it is `attach://<part>` or a part named like the
        parameter; an `attach://` that names no part stays a string (Telegram then says there is no file).
        """
        method = self.method(name)
        fields = {f["name"]: f for f in method.get("fields", [])}
        files = dict(files or {})
        raw = dict(raw)
        total = sum(f.size for f in files.values())
        if total > upload_limit:
            raise BadRequest("Request Entity Too Large", code=413)
        for fname, spec in fields.items():
            if fname not in raw and fname in files and "InputFile" in spec["types"]:
                raw[fname] = files[fname]
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise BadRequest(f'Bad Request: unknown parameter "{unknown[0]}" for method {method["name"]}' + STRICTER)
        used = {f for f, v in raw.items() if isinstance(v, UploadedFile)}
        decoded: dict[str, Any] = {}
        for fname, spec in fields.items():
            if fname not in raw:
                if spec["required"]:
                    raise BadRequest(self._missing(method["name"], fname))
                continue
            value = self._decode_wire(raw[fname], spec["types"], fname)
            if isinstance(value, str) and value.startswith("attach://") and "InputFile" in spec["types"]:
                if value[9:] in files:
                    used.add(value[9:])
                    value = files[value[9:]]
            elif isinstance(value, dict | list):
                value = _resolve_nested(value, files, used)
            decoded[fname] = value
        unused = sorted(set(files) - used)
        if unused:
            raise BadRequest(f'Bad Request: the file part "{unused[0]}" is not used by any parameter' + STRICTER)
        return decoded

    @staticmethod
    def _missing(method: str, fname: str) -> str:
        if fname in _MEDIA_PARAMS and method.startswith("send"):
            return f"Bad Request: there is no {fname.replace('_', ' ')} in the request"
        if fname == "chat_id":
            return "Bad Request: chat_id is empty"
        if fname == "text" and method in ("sendMessage", "editMessageText"):
            return "Bad Request: message text is empty"
        if fname in ("callback_query_id", "inline_query_id"):
            return "Bad Request: query is too old and response timeout expired or query ID is invalid"
        if fname == "file_id":
            return "Bad Request: invalid file_id"
        return f'Bad Request: parameter "{fname}" is required'

    def _decode_wire(self, value: Any, types: list[str], path: str) -> Any:
        if isinstance(value, UploadedFile):
            if "InputFile" in types:
                return value
            raise BadRequest(f'Bad Request: field "{path}" must be a string, not a file' + STRICTER)
        if not isinstance(value, str):
            raise BadRequest(f'Bad Request: field "{path}" must be a string' + STRICTER)
        errors = []
        for type_name in types:
            try:
                return self._decode_scalar(value, type_name, path)
            except BadRequest as exc:
                errors.append(exc)
        raise errors[0]

    def _decode_scalar(self, value: str, type_name: str, path: str) -> Any:
        if type_name == "String":
            return value
        if type_name == "Integer":
            if re.fullmatch(r"-?\d+", value.strip()):
                return int(value)
            raise BadRequest(f'Bad Request: field "{path}" must be of type Number' + STRICTER)
        if type_name == "Float":
            try:
                return float(value)
            except ValueError:
                raise BadRequest(f'Bad Request: field "{path}" must be of type Number' + STRICTER) from None
        if type_name == "Boolean":
            if value.lower() in ("true", "1"):
                return True
            if value.lower() in ("false", "0"):
                return False
            raise BadRequest(f'Bad Request: field "{path}" must be of type Boolean' + STRICTER)
        if type_name == "InputFile":
            if value.startswith("attach://"):
                return value
            raise BadRequest(f'Bad Request: field "{path}" must be an InputFile')
        try:
            obj = json.loads(value)
        except json.JSONDecodeError:
            raise BadRequest(bad_request(_JSON_ERRORS.get(path, f"Can't parse {path} JSON object"))) from None
        self.check_value(obj, type_name, path)
        return obj

    def check_value(self, value: Any, type_name: str, path: str = "value") -> None:
        """Refuse `value` unless it is a valid `type_name` (BadRequest worded as Telegram's top level)."""
        try:
            self._check(value, type_name, path)
        except _Invalid as exc:
            raise BadRequest(bad_request(str(exc))) from None

    def _check(self, value: Any, type_name: str, path: str) -> None:
        if type_name.startswith("Array of "):
            inner = type_name[len("Array of ") :]
            if not isinstance(value, list):
                raise _Invalid(f'Field "{_field_name(path)}" must be of type Array')
            if inner == "InlineQueryResult" and len(value) > INLINE_RESULTS_LIMIT:
                raise _Invalid("Too many inline query results specified")
            if inner.startswith("Array of ") and any(not isinstance(row, list) for row in value):
                name = _field_name(path)
                owner = " of the InlineKeyboardMarkup" if name == "inline_keyboard" else ""
                raise _Invalid(f'Field "{name}"{owner} must be an Array of Arrays')
            for i, item in enumerate(value):
                self._check(item, inner, f"{path}[{i}]")
            return
        scalar_ok: dict[str, Callable[[Any], bool]] = {
            "String": lambda v: isinstance(v, str),
            "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "Boolean": lambda v: isinstance(v, bool),
            "True": lambda v: v is True,
            "InputFile": lambda v: isinstance(v, str | UploadedFile),
        }
        if type_name in scalar_ok:
            if not scalar_ok[type_name](value):
                td_type = _TD_TYPES.get(type_name, type_name)
                raise _Invalid(f'Field "{_field_name(path)}" must be of type {td_type}')
            return
        spec = self.types.get(type_name)
        if spec is None:
            raise _Invalid(f"unknown type {type_name} at {path}")
        if spec.get("subtypes"):
            self._check_union(value, type_name, spec["subtypes"], path)
            return
        if not isinstance(value, dict):
            raise _Invalid(f"{type_name} must be an Object")
        context = _context(type_name)
        try:
            self._check_object(value, type_name, spec, path)
        except _Invalid as exc:
            if context is None:
                raise
            raise _Invalid(f"{context}: {exc}") from None

    def _check_object(self, value: dict[str, Any], type_name: str, spec: dict[str, Any], path: str) -> None:
        fields = {f["name"]: f for f in spec.get("fields", [])}
        if type_name.startswith("InlineQueryResult") and "type" in fields and "type" in value:
            expected = self._result_type(type_name)
            if expected and value["type"] != expected:
                raise _Invalid(f'type "{value["type"]}" is unsupported for the inline query result')
        for fname, fspec in fields.items():
            if fname not in value:
                if fspec["required"]:
                    raise _Invalid(f'Can\'t find field "{fname}"')
                continue
            self._check_any(value[fname], fspec["types"], f"{path}.{fname}")
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise _Invalid(f'unknown field "{unknown[0]}" in {type_name} at {path}{STRICTER}')
        self._check_limits(value, type_name, path)

    def _check_any(self, value: Any, types: list[str], path: str) -> None:
        if len(types) == 1:
            self._check(value, types[0], path)
            return
        errors: list[tuple[int, Exception]] = []
        for option in types:
            try:
                self._check(value, option, path)
                return
            except (_Invalid, BadRequest) as exc:
                errors.append((self._distance(value, option), exc))
        raise min(errors, key=lambda e: e[0])[1]

    def _distance(self, value: Any, type_name: str) -> int:
        """How far `value` is from looking like a `type_name` (to report the error of the closest option)."""
        spec = self.types.get(type_name)
        if spec is None or not isinstance(value, dict):
            return 0 if type_name in ("String", "Integer", "Float", "Boolean") else 1000
        names = {f["name"] for f in spec.get("fields", [])}
        required = {f["name"] for f in spec.get("fields", []) if f["required"]}
        return 10 * len(set(value) - names) + len(required - set(value))

    @cache  # noqa: B019 - one validator per spec, few types
    def _result_type(self, type_name: str) -> str | None:
        fields = {f["name"]: f for f in self.types[type_name].get("fields", [])}
        description = fields.get("type", {}).get("description", "")
        if isinstance(description, list):
            description = " ".join(description)
        found = re.search(r"must be (\w+)", description)
        return found.group(1) if found else None

    def _check_union(self, value: Any, type_name: str, subtypes: list[str], path: str) -> None:
        candidates = list(subtypes)
        if type_name == "InlineQueryResult":
            if not isinstance(value, dict):
                raise _Invalid("Inline query result must be an object")
            if "type" not in value:
                raise _Invalid("Can't parse inline query result: Can't find field \"type\"")
            candidates = [s for s in subtypes if self._result_type(s) == str(value["type"]).lower()]
            if not candidates:
                raise _Invalid(
                    f'Can\'t parse inline query result: type "{value["type"]}" is unsupported for the inline query '
                    "result"
                )
        errors: list[tuple[int, Exception]] = []
        for sub in candidates:
            try:
                self._check(value, sub, path)
                return
            except (_Invalid, BadRequest) as exc:
                errors.append((self._distance(value, sub), exc))
        raise min(errors, key=lambda e: e[0])[1]

    def _check_limits(self, value: dict[str, Any], type_name: str, path: str) -> None:
        if type_name == "InlineKeyboardButton":
            self._check_button(value)
        elif type_name == "InputTextMessageContent":
            check_message_text(value["message_text"], value.get("parse_mode"), strict=self.strict_html)
            if "entities" in value:
                check_entities(value["message_text"], value["entities"])
        elif type_name == "LinkPreviewOptions":
            if value.get("url") is not None and link_problem(value["url"]):
                raise BadRequest("Bad Request: WEBPAGE_URL_INVALID")
        elif type_name.startswith("InlineQueryResult") and type_name != "InlineQueryResultsButton":
            if not 1 <= len(str(value["id"]).encode()) <= 64:
                raise BadRequest("Bad Request: RESULT_ID_INVALID")
            if "caption" in value:
                check_caption(value["caption"], value.get("parse_mode"), strict=self.strict_html)
        elif type_name == "InlineQueryResultsButton":
            kinds = [k for k in ("web_app", "start_parameter") if k in value]
            if len(kinds) != 1:
                raise _Invalid("InlineQueryResultsButton must have exactly one optional field")
            if "start_parameter" in value and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value["start_parameter"]):
                raise BadRequest("Bad Request: START_PARAM_INVALID")
            if "web_app" in value and not value["web_app"]["url"].lower().startswith("https://"):
                raise BadRequest(
                    f"Bad Request: inline query results button Web App URL '{value['web_app']['url']}' is invalid: "
                    "Only HTTPS links are allowed"
                )
        elif type_name == "BotCommand" and (
            not re.fullmatch(r"[a-z0-9_]{1,32}", value["command"]) or not 1 <= len(value["description"]) <= 256
        ):
            raise BadRequest("Bad Request: BOT_COMMAND_INVALID")

    @staticmethod
    def _check_button(value: dict[str, Any]) -> None:
        if not value["text"]:
            raise BadRequest("Bad Request: BUTTON_TEXT_INVALID")
        actions = [a for a in _BUTTON_ACTIONS if a in value and not (a in ("url", "callback_data") and not value[a])]
        if not actions:
            raise _Invalid("Text buttons are unallowed in the inline keyboard")
        if len(actions) > 1:
            raise _Invalid(f"a button needs exactly one action, got {', '.join(actions)} (Telegram uses the first)")
        action = actions[0]
        if action == "callback_data" and not 1 <= len(value["callback_data"].encode()) <= 64:
            raise BadRequest("Bad Request: BUTTON_DATA_INVALID")
        if action == "url" and (problem := link_problem(value["url"])):
            raise BadRequest(f"Bad Request: inline keyboard button URL '{value['url']}' is invalid: {problem}")
        if action == "web_app" and not value["web_app"]["url"].lower().startswith("https://"):
            raise BadRequest(
                f"Bad Request: inline keyboard button Web App URL '{value['web_app']['url']}' is invalid: Only HTTPS "
                "links are allowed"
            )
        if action in ("pay", "callback_game"):
            raise BadRequest("Bad Request: BUTTON_TYPE_INVALID")
        if action == "copy_text" and not 1 <= len(value["copy_text"]["text"]) <= 256:
            raise BadRequest("Bad Request: BUTTON_COPY_TEXT_INVALID")


# --- the server ----------------------------------------------------------------------------------------------------


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    ok: bool
    result: Any = None
    error: str | None = None
    at: float = field(default_factory=time.monotonic)
    code: int = 200


def tg_user(user_id: int, first_name: str = "Ann", language_code: str | None = "en", **extra: Any) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": first_name, **extra}
    if language_code:
        user["language_code"] = language_code
    return user


def _update_kind(update: dict[str, Any]) -> str:
    return next(k for k in update if k != "update_id")


class FakeTelegram:
    """The server's state: queued updates, chats, files, pending queries and the recorded calls."""

    def __init__(
        self,
        token: str = TOKEN,
        *,
        validator: SpecValidator | None = None,
        strict_html: bool = True,
        upload_limit: int = UPLOAD_LIMIT,
        download_limit: int = DOWNLOAD_LIMIT,
    ) -> None:
        self.token = token
        self.validator = validator or SpecValidator(strict_html=strict_html)
        self.strict_html = self.validator.strict_html
        self.upload_limit = upload_limit
        self.download_limit = download_limit
        self.calls: list[ApiCall] = []
        self.updates: list[dict[str, Any]] = []  # queued, not yet confirmed by a getUpdates offset
        self.confirmed_offset = 0  # the highest getUpdates offset seen
        self.allowed_updates: list[str] | None = None
        self.dropped_updates: list[dict[str, Any]] = []  # not in allowed_updates: Telegram never delivers them
        self.blocked: set[int] = set()
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.callback_queries: dict[str, bool] = {}  # id → answered
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.inline_queries: dict[str, bool] = {}
        self.inline_answers: dict[str, dict[str, Any]] = {}
        self.webhook: dict[str, Any] | None = None
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.files: dict[str, FakeFile] = {}
        self.file_paths: dict[str, FakeFile] = {}
        self.sent_media: list[SentMedia] = []
        self.deleted: list[dict[str, Any]] = []  # messages removed by deleteMessage
        self.downloads: list[Download] = []
        self.remote: dict[str, tuple[bytes, str]] = {}  # URL → (content, content type) Telegram would fetch
        self.fetched_urls: list[str] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._query_ids = itertools.count(1000)
        self._file_numbers = itertools.count(1)
        self._changed_event = asyncio.Event()
        self._closed = False
        self.waiting_polls = 0  # getUpdates requests waiting for an update right now
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    # --- running -------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.upload_limit + MiB)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        return app

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        self._closed = True
        self._changed()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # --- waiting (event-based: every recorded change wakes the waiters) --------------------------
    def _changed(self) -> None:
        event, self._changed_event = self._changed_event, asyncio.Event()
        event.set()

    async def wait_until(self, check: Callable[[], T | None], *, within: float = DEFAULT_WAIT, what: str = "") -> T:
        """The first truthy value of `check()`, re-evaluated on every change of the server's state.

        `within` only guards against a hang; on expiry it raises WaitTimeout listing the recent calls.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            event = self._changed_event  # taken before checking, so no change can slip between
            found = check()
            if found:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closed:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

        def describe(call: ApiCall) -> str:
            text = call.params.get("text") or call.params.get("caption") or ""
            detail = f" {str(text)[:40]!r}" if isinstance(text, str) and text else ""
            return f"{call.method}({'ok' if call.ok else call.error}{detail})"

        recent = [describe(c) for c in self.calls[-15:] if c.method.lower() != "getupdates"]
        state = "server closed" if self._closed else f"after {within:g} s"
        raise WaitTimeout(f"gave up waiting for {what or 'a condition'} ({state}); last calls: {recent}")

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        after: int = 0,
        within: float = DEFAULT_WAIT,
        ok: bool | None = None,
    ) -> ApiCall:
        """The first call of `method` (recorded at index ≥ `after`) that matches `predicate` (and `ok`, if given)."""

        def find() -> ApiCall | None:
            for call in self.calls[after:]:
                if (
                    call.method.lower() == method.lower()
                    and (ok is None or call.ok == ok)
                    and (predicate is None or predicate(call))
                ):
                    return call
            return None

        return await self.wait_until(find, within=within, what=f"{method} after call #{after}")

    async def wait_for_sent(
        self,
        chat: int | dict[str, Any],
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        after: int = 0,
        within: float = DEFAULT_WAIT,
    ) -> dict[str, Any]:
        """The first message the bot sent to `chat` (a user dict or a chat id) after `after`, as it stands now."""
        chat_id = chat["id"] if isinstance(chat, dict) else int(chat)

        def find() -> dict[str, Any] | None:
            for call in self.calls[after:]:
                if call.ok and call.method in SEND_METHODS and call.result["chat"]["id"] == chat_id:
                    message = self.messages.get((chat_id, call.result["message_id"]), call.result)
                    if predicate is None or predicate(message):
                        return message
            return None

        return await self.wait_until(find, within=within, what=f"a message to chat {chat_id} after call #{after}")

    async def wait_for_download(self, file_id: str, *, within: float = DEFAULT_WAIT) -> Download:
        def find() -> Download | None:
            return next((d for d in self.downloads if d.file_id == file_id), None)

        return await self.wait_until(find, within=within, what=f"a download of {file_id}")

    async def wait_delivered(self, update: dict[str, Any], *, within: float = DEFAULT_WAIT) -> None:
        """Until the bot has confirmed `update` (a later getUpdates offset passed it): it was taken, not handled."""
        await self.wait_until(
            lambda: self.confirmed_offset > update["update_id"], within=within, what=f"update {update['update_id']}"
        )

    async def wait_idle(
        self,
        last_update: dict[str, Any],
        handler_tasks: Callable[[], Iterable[asyncio.Task[Any]]],
        *,
        within: float = DEFAULT_WAIT,
    ) -> None:
        """Until the bot has taken `last_update` and every handler it started has finished.

        For asserting that nothing else will be sent, instead of sleeping: `handler_tasks` gives the bot's
        running update tasks, e.g. `lambda: runtime.dispatcher._handle_update_tasks` (aiogram polling).
        """
        await self.wait_delivered(last_update, within=within)
        async with asyncio.timeout(within):
            while pending := [t for t in handler_tasks() if not t.done()]:
                await asyncio.wait(pending)

    def mark(self) -> int:
        """The index of the next recorded call (pass it as `after=`)."""
        return len(self.calls)

    def calls_of(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def _record(self, call: ApiCall) -> None:
        self.calls.append(call)
        self._changed()

    # --- updates from users ----------------------------------------------------------------------
    def enqueue(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **update}
        self.validator.check_value(update, "Update", "update")  # the fake's own shapes must match the spec
        self.updates.append(update)
        self._changed()
        return update

    def _user_message(self, user: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat = {"id": user["id"], "type": "private", "first_name": user.get("first_name", "")}
        message = {
            "message_id": self._next_message_id(user["id"]),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            **{k: v for k, v in content.items() if v is not None},
        }
        self.messages[(chat["id"], message["message_id"])] = message
        return message

    def message_update(self, user: dict[str, Any], text: str) -> dict[str, Any]:
        entities = None
        if text.startswith("/"):
            entities = [{"type": "bot_command", "offset": 0, "length": utf16_len(text.split()[0])}]
        return {"message": self._user_message(user, text=text, entities=entities)}

    def send_text(self, user: dict[str, Any], text: str) -> dict[str, Any]:
        return self.enqueue(self.message_update(user, text))

    def add_file(
        self,
        data: bytes | PathLike[str],
        *,
        kind: str = "document",
        mime_type: str | None = None,
        file_name: str | None = None,
        size: int | None = None,
    ) -> FakeFile:
        """Store a file on the server (bytes, or a path read when downloaded); `size` may claim more than is stored."""
        if kind not in _FILE_ID_PREFIX:
            raise ValueError(f"unknown file kind {kind!r}")
        token = secrets.token_urlsafe(24)
        content: bytes | None
        source: Path | None
        if isinstance(data, bytes | bytearray):
            content, source, real_size = bytes(data), None, len(data)
            head = content[:65536]
        else:
            content, source = None, Path(data)
            real_size = source.stat().st_size
            file_name = file_name or source.name
            with source.open("rb") as fh:
                head = fh.read(65536)
        dims = image_size(head) if kind in ("photo", "thumbnail") else None
        file = FakeFile(
            file_id=_FILE_ID_PREFIX[kind] + token,
            file_unique_id="AgAD" + token[:12],
            kind=kind,
            size=real_size if size is None else size,
            data=content,
            source=source,
            mime_type=mime_type or (guess_mime_type(file_name) if kind not in ("photo", "thumbnail") else None),
            file_name=file_name,
            width=dims[0] if dims else None,
            height=dims[1] if dims else None,
        )
        self.files[file.file_id] = file
        return file

    def file_bytes(self, file_id: str) -> bytes:
        return self.files[file_id].read()

    def serve_url(self, url: str, data: bytes, content_type: str) -> None:
        """Content Telegram would fetch from `url` when a bot sends a file by URL (127.0.0.1 URLs are fetched live)."""
        self.remote[url] = (data, content_type)

    def expire_file_paths(self) -> None:
        """Every file_path given by getFile stops working (Telegram keeps them at least an hour)."""
        for file in self.file_paths.values():
            file.file_path = None
        self.file_paths.clear()

    def _file_object(self, file: FakeFile, **fields: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {"file_id": file.file_id, "file_unique_id": file.file_unique_id, **fields}
        obj["file_size"] = file.size
        return {k: v for k, v in obj.items() if v is not None}

    def audio_message_update(
        self,
        user: dict[str, Any],
        data: bytes | PathLike[str],
        *,
        duration: int = 30,
        performer: str | None = None,
        title: str | None = None,
        file_name: str | None = "audio.mp3",
        mime_type: str | None = None,
        size: int | None = None,
        caption: str | None = None,
    ) -> dict[str, Any]:
        """An update: `user` sends an audio file (Audio: duration, performer, title, file_name, mime_type, size)."""
        file = self.add_file(data, kind="audio", file_name=file_name, mime_type=mime_type, size=size)
        audio = self._file_object(
            file,
            duration=duration,
            performer=performer,
            title=title,
            file_name=file.file_name,
            mime_type=file.mime_type or "audio/mpeg",
        )
        return {"message": self._user_message(user, audio=audio, caption=caption)}

    def send_audio(self, user: dict[str, Any], data: bytes | PathLike[str], **kwargs: Any) -> dict[str, Any]:
        """`user` sends the bot an audio file (see audio_message_update); the queued update."""
        return self.enqueue(self.audio_message_update(user, data, **kwargs))

    def voice_message_update(
        self,
        user: dict[str, Any],
        data: bytes | PathLike[str],
        *,
        duration: int = 5,
        mime_type: str = "audio/ogg",
        size: int | None = None,
        caption: str | None = None,
    ) -> dict[str, Any]:
        """An update: `user` sends a voice message (Voice: duration, mime_type, size)."""
        file = self.add_file(data, kind="voice", mime_type=mime_type, size=size)
        voice = self._file_object(file, duration=duration, mime_type=mime_type)
        return {"message": self._user_message(user, voice=voice, caption=caption)}

    def send_voice(self, user: dict[str, Any], data: bytes | PathLike[str], **kwargs: Any) -> dict[str, Any]:
        return self.enqueue(self.voice_message_update(user, data, **kwargs))

    def video_note_update(
        self,
        user: dict[str, Any],
        data: bytes | PathLike[str],
        *,
        duration: int = 10,
        length: int = 240,
        size: int | None = None,
    ) -> dict[str, Any]:
        """An update: `user` sends a round video note (VideoNote: length, duration, size; always MPEG-4)."""
        file = self.add_file(data, kind="video_note", mime_type="video/mp4", size=size)
        note = self._file_object(file, length=length, duration=duration)
        return {"message": self._user_message(user, video_note=note)}

    def send_video_note(self, user: dict[str, Any], data: bytes | PathLike[str], **kwargs: Any) -> dict[str, Any]:
        return self.enqueue(self.video_note_update(user, data, **kwargs))

    def document_update(
        self,
        user: dict[str, Any],
        data: bytes | PathLike[str],
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        size: int | None = None,
        caption: str | None = None,
    ) -> dict[str, Any]:
        """An update: `user` sends a file as a document (Document: file_name, mime_type, size)."""
        file = self.add_file(data, kind="document", file_name=file_name, mime_type=mime_type, size=size)
        document = self._file_object(file, file_name=file.file_name, mime_type=file.mime_type)
        return {"message": self._user_message(user, document=document, caption=caption)}

    def send_document(self, user: dict[str, Any], data: bytes | PathLike[str], **kwargs: Any) -> dict[str, Any]:
        return self.enqueue(self.document_update(user, data, **kwargs))

    def photo_update(
        self, user: dict[str, Any], data: bytes | PathLike[str], *, caption: str | None = None
    ) -> dict[str, Any]:
        """An update: `user` sends a picture as a photo (PhotoSize list)."""
        file = self.add_file(data, kind="photo")
        if file.width is None or file.height is None:
            raise ValueError("photo_update needs PNG, GIF, JPEG or WebP bytes")
        sizes = [self._file_object(file, width=file.width, height=file.height)]
        return {"message": self._user_message(user, photo=sizes, caption=caption)}

    def send_photo(self, user: dict[str, Any], data: bytes | PathLike[str], **kwargs: Any) -> dict[str, Any]:
        return self.enqueue(self.photo_update(user, data, **kwargs))

    def callback_update(self, user: dict[str, Any], message: dict[str, Any], data: str) -> dict[str, Any]:
        query_id = str(next(self._query_ids))
        self.callback_queries[query_id] = False
        current = self.messages.get((message["chat"]["id"], message["message_id"]), message)
        return {
            "callback_query": {
                "id": query_id,
                "from": user,
                "message": current,
                "chat_instance": str(message["chat"]["id"]),
                "data": data,
            }
        }

    def press(self, user: dict[str, Any], message: dict[str, Any], data: str) -> dict[str, Any]:
        return self.enqueue(self.callback_update(user, message, data))

    def inline_update(self, user: dict[str, Any], query: str, offset: str = "") -> dict[str, Any]:
        query_id = str(next(self._query_ids))
        self.inline_queries[query_id] = False
        return {"inline_query": {"id": query_id, "from": user, "query": query, "offset": offset}}

    def inline(self, user: dict[str, Any], query: str, offset: str = "") -> dict[str, Any]:
        return self.enqueue(self.inline_update(user, query, offset))

    def choose_inline(self, user: dict[str, Any], result_id: str, query: str) -> dict[str, Any]:
        """The user sent inline result `result_id` (reported when inline feedback is on)."""
        return self.enqueue({"chosen_inline_result": {"result_id": result_id, "from": user, "query": query}})

    # --- reading the state -----------------------------------------------------------------------
    def history(self, chat: int | dict[str, Any]) -> list[dict[str, Any]]:
        """Every message in the chat, both ways, oldest first, as it stands now (edits applied)."""
        chat_id = chat["id"] if isinstance(chat, dict) else int(chat)
        return [m for (c, _), m in sorted(self.messages.items()) if c == chat_id]

    def sent_to(self, chat: int | dict[str, Any]) -> list[dict[str, Any]]:
        """The bot's messages in the chat, oldest first."""
        return [m for m in self.history(chat) if m.get("from", {}).get("id") == BOT_USER["id"]]

    @staticmethod
    def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
        markup = message.get("reply_markup") or {}
        return [b for row in markup.get("inline_keyboard", []) for b in row]

    @classmethod
    def button(cls, message: dict[str, Any], text_part: str) -> str:
        """The callback_data of the button labelled `text_part` (or else the first that contains it)."""
        buttons = [b for b in cls.buttons(message) if "callback_data" in b]
        for b in [b for b in buttons if b["text"] == text_part] + [b for b in buttons if text_part in b["text"]]:
            return b["callback_data"]
        raise AssertionError(f"no button with {text_part!r} in {[b['text'] for b in cls.buttons(message)]}")

    # --- the HTTP side -------------------------------------------------------------------------
    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _token_refusal(self, token: str) -> BadRequest | None:
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
            return BadRequest("Not Found", code=404)
        if token != self.token:
            return BadRequest("Unauthorized", code=401)
        return None

    @staticmethod
    def _refusal(exc: BadRequest) -> web.Response:
        return web.json_response({"ok": False, "error_code": exc.code, "description": exc.description}, status=exc.code)

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
        raw: dict[str, Any] = dict(request.query)
        files: dict[str, UploadedFile] = {}
        if request.content_type == "application/json":
            body = await request.json()
            raw.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items() if v is not None})
        elif request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            received = 0
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                    continue
                if part.filename is None:
                    raw[part.name] = await part.text()
                    continue
                chunks: list[bytes] = []
                while chunk := await part.read_chunk(256 * 1024):
                    received += len(chunk)
                    if received <= self.upload_limit:  # over the limit: read on, keep nothing
                        chunks.append(chunk)
                files[part.name] = UploadedFile(
                    part.name, part.filename, part.headers.get(aiohttp.hdrs.CONTENT_TYPE), b"".join(chunks)
                )
            if received > self.upload_limit:
                raise BadRequest("Request Entity Too Large", code=413)
        elif request.can_read_body:
            form = await request.post()
            raw.update({k: v for k, v in form.items() if isinstance(v, str)})
        return raw, files

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw: dict[str, Any] = {}
        try:
            refusal = self._token_refusal(request.match_info["token"])
            if refusal is not None:
                raise refusal
            raw, files = await self._read_params(request)
            params = self.validator.decode_call(method, raw, files, upload_limit=self.upload_limit)
            name = self.validator.method(method)["name"]
            result = await self._dispatch(name, params)
        except BadRequest as exc:
            self._record(ApiCall(method, raw, ok=False, error=exc.description, code=exc.code))
            return self._refusal(exc)
        if name != "getUpdates" or result:
            self._record(ApiCall(name, params, ok=True, result=result))
        return web.json_response({"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        refusal = self._token_refusal(request.match_info["token"])
        file = self.file_paths.get(path)
        if refusal is None and file is None:
            refusal = BadRequest("Not Found", code=404)
        if refusal is not None:
            self._record(ApiCall("download", {"path": path}, ok=False, error=refusal.description, code=refusal.code))
            return self._refusal(refusal)
        assert file is not None
        self.downloads.append(Download(path, file.file_id))
        self._record(ApiCall("download", {"path": path, "file_id": file.file_id}, ok=True))
        if file.data is None and file.source is not None:
            return web.FileResponse(file.source, headers={"Content-Type": "application/octet-stream"})
        return web.Response(body=file.read(), content_type="application/octet-stream")

    def download_bytes(self, url: str) -> bytes:
        """What `GET url` (a /file/bot<token>/<path> URL) answers, for the in-process recording session."""
        match = re.search(r"/file/bot([^/]+)/(.+)$", urlsplit(url).path)
        file = self.file_paths.get(match.group(2)) if match and match.group(1) == self.token else None
        if file is None:
            raise FileNotFoundError(url)
        self.downloads.append(Download(match.group(2), file.file_id))  # type: ignore[union-attr]
        self._changed()
        return file.read()

    async def _dispatch(self, name: str, params: dict[str, Any]) -> Any:
        handler = getattr(self, f"_api_{name}", None)
        if handler is not None:
            return await handler(params)
        return True

    async def _api_getMe(self, params: dict[str, Any]) -> Any:
        return BOT_USER

    def _allowed(self, update: dict[str, Any]) -> bool:
        kind = _update_kind(update)
        if not self.allowed_updates:
            return kind not in _NOT_BY_DEFAULT
        return kind in self.allowed_updates

    def _deliverable(self) -> list[dict[str, Any]]:
        kept = []
        for update in self.updates:
            if self._allowed(update):
                kept.append(update)
            else:
                self.dropped_updates.append(update)
        self.updates = kept
        return kept

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        if self.webhook is not None:
            raise BadRequest(
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
                "webhook first",
                code=409,
            )
        offset = params.get("offset")
        if offset is not None and offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            if offset > self.confirmed_offset:
                self.confirmed_offset = offset
                self._changed()
        if "allowed_updates" in params:
            self.allowed_updates = list(params["allowed_updates"])
        limit = max(1, min(100, params.get("limit", 100)))
        timeout = max(0, params.get("timeout", 0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not self._deliverable() and timeout > 0:
            self.waiting_polls += 1
            self._changed()
            try:
                while not self._deliverable() and not self._closed:
                    event = self._changed_event
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        await asyncio.wait_for(event.wait(), remaining)
                    except TimeoutError:
                        break
            finally:
                self.waiting_polls -= 1
        return self.updates[:limit]

    async def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = params
        if "allowed_updates" in params:
            self.allowed_updates = list(params["allowed_updates"])
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self.updates.clear()
        return True

    async def _api_getWebhookInfo(self, params: dict[str, Any]) -> Any:
        return {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }

    async def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        scope = json.dumps(params.get("scope", {"type": "default"}), sort_keys=True)
        self.commands[(scope, params.get("language_code", ""))] = params["commands"]
        return True

    async def _api_sendChatAction(self, params: dict[str, Any]) -> Any:
        self._check_chat(params["chat_id"])
        if params["action"] not in _CHAT_ACTIONS:
            raise BadRequest("Bad Request: wrong parameter action in request")
        return True

    def _check_chat(self, chat_id: int | str) -> int:
        try:
            chat = int(chat_id)
        except ValueError:
            raise BadRequest("Bad Request: chat not found") from None
        if chat in self.blocked:
            raise BadRequest("Forbidden: bot was blocked by the user", code=403)
        return chat

    def _bot_message(self, chat_id: int, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            **{k: v for k, v in content.items() if v is not None},
        }
        reply = params.get("reply_parameters")
        if reply:
            reply_chat = reply.get("chat_id", chat_id)
            target = (
                self.messages.get((int(reply_chat), reply["message_id"]))
                if str(reply_chat).lstrip("-").isdigit()
                else None
            )
            if target is None and not reply.get("allow_sending_without_reply"):
                raise BadRequest("Bad Request: message to be replied not found")
            if target is not None:
                message["reply_to_message"] = {k: v for k, v in target.items() if k != "reply_to_message"}
        markup = params.get("reply_markup")
        if markup and "inline_keyboard" in markup:  # other keyboards never show in the Message
            message["reply_markup"] = markup
        self.messages[(chat_id, message["message_id"])] = message
        return message

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        chat_id = self._check_chat(params["chat_id"])
        plain = check_message_text(params["text"], params.get("parse_mode"), strict=self.strict_html)
        if "entities" in params and not params.get("parse_mode"):
            check_entities(params["text"], params["entities"])
        return self._bot_message(chat_id, params, text=plain, link_preview_options=params.get("link_preview_options"))

    def _existing(self, params: dict[str, Any]) -> dict[str, Any]:
        if "inline_message_id" in params:
            raise BadRequest("Bad Request: MESSAGE_ID_INVALID")
        if "chat_id" not in params or "message_id" not in params:
            raise BadRequest("Bad Request: chat_id and message_id are required")
        key = (self._check_chat(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None or message.get("from", {}).get("id") != BOT_USER["id"]:
            raise BadRequest("Bad Request: message to edit not found")
        return message

    @staticmethod
    def _not_modified() -> BadRequest:
        return BadRequest(
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the "
            "same as a current content and reply markup of the message"
        )

    @staticmethod
    def _apply_markup(message: dict[str, Any], markup: dict[str, Any] | None) -> None:
        if markup is None or "inline_keyboard" not in markup:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup

    async def _api_editMessageText(self, params: dict[str, Any]) -> Any:
        message = self._existing(params)
        plain = check_message_text(params["text"], params.get("parse_mode"), strict=self.strict_html)
        if "text" not in message:
            raise BadRequest("Bad Request: there is no text in the message to edit")
        markup = params.get("reply_markup")
        if plain == message["text"] and markup == message.get("reply_markup"):
            raise self._not_modified()
        message["text"] = plain
        message["edit_date"] = int(time.time())
        self._apply_markup(message, markup)
        return message

    async def _api_deleteMessage(self, params: dict[str, Any]) -> Any:
        """A private chat: the bot may delete any message there (the fake ignores the 48-hour limit)."""
        key = (self._check_chat(params["chat_id"]), int(params["message_id"]))
        message = self.messages.pop(key, None)
        if message is None:
            raise BadRequest("Bad Request: message to delete not found")
        self.deleted.append(message)
        return True

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        message = self._existing(params)
        markup = params.get("reply_markup")
        if markup == message.get("reply_markup"):
            raise BadRequest("Bad Request: message is not modified")
        self._apply_markup(message, markup)
        message["edit_date"] = int(time.time())
        return message

    async def _api_editMessageCaption(self, params: dict[str, Any]) -> Any:
        message = self._existing(params)
        if not any(kind in message for kind in MEDIA_KINDS):
            raise BadRequest("Bad Request: there is no caption in the message to edit")
        caption = check_caption(params.get("caption", ""), params.get("parse_mode"), strict=self.strict_html)
        markup = params.get("reply_markup")
        if caption == message.get("caption", "") and markup == message.get("reply_markup"):
            raise self._not_modified()
        if caption:
            message["caption"] = caption
        else:
            message.pop("caption", None)
        message["edit_date"] = int(time.time())
        self._apply_markup(message, markup)
        return message

    async def _api_editMessageMedia(self, params: dict[str, Any]) -> Any:
        message = self._existing(params)
        old_kind = next((kind for kind in MEDIA_KINDS if kind in message), None)
        if old_kind is None:
            raise BadRequest("Bad Request: there is no media in the message to edit")
        media = params["media"]
        kind = media["type"]
        if kind not in ("audio", "document", "photo"):
            raise BadRequest(f"Bad Request: the fake cannot edit media into {kind!r}" + STRICTER)
        caption = check_caption(media.get("caption", ""), media.get("parse_mode"), strict=self.strict_html)
        sent = await self._store_media("editMessageMedia", kind, media["media"], media)
        if sent.source == "file_id" and message.get(old_kind, {}) == sent.obj and caption == message.get("caption", ""):
            raise self._not_modified()
        message.pop(old_kind)
        message[kind] = sent.obj
        if caption:
            message["caption"] = caption
        else:
            message.pop("caption", None)
        message["edit_date"] = int(time.time())
        self._apply_markup(message, params.get("reply_markup"))
        self.sent_media.append(
            SentMedia(
                "editMessageMedia",
                message["chat"]["id"],
                message,
                kind,
                sent.file,
                sent.source,
                url=sent.url,
                upload=sent.upload,
                caption=caption or None,
                params=media,
                thumbnail=sent.thumbnail,
                thumbnail_ignored=sent.thumbnail_ignored,
            )
        )
        return message

    # --- files: getFile and sending media ------------------------------------------------------
    async def _api_getFile(self, params: dict[str, Any]) -> Any:
        file = self.files.get(params["file_id"])
        if file is None:
            raise BadRequest("Bad Request: invalid file_id")
        if file.size > self.download_limit:
            raise BadRequest("Bad Request: file is too big")
        if file.file_path is None:
            suffix = Path(file.file_name or "").suffix.lower() or {
                "audio": ".mp3",
                "voice": ".oga",
                "video_note": ".mp4",
                "photo": ".jpg",
                "thumbnail": ".jpg",
            }.get(file.kind, "")
            file.file_path = f"{_FILE_DIRS[file.kind]}/file_{next(self._file_numbers)}{suffix}"
            self.file_paths[file.file_path] = file
        return {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "file_size": file.size,
            "file_path": file.file_path,
        }

    async def _fetch(self, url: str, kind: str) -> tuple[bytes, str]:
        """What Telegram would download from `url`: registered content, or a live fetch from 127.0.0.1."""
        self.fetched_urls.append(url)
        if url in self.remote:
            data, content_type = self.remote[url]
        elif urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEFAULT_WAIT)) as session,
                    session.get(url) as response,
                ):
                    if response.status != 200:
                        raise BadRequest("Bad Request: failed to get HTTP URL content")
                    data = await response.read()
                    content_type = response.content_type
            except aiohttp.ClientError:
                raise BadRequest("Bad Request: failed to get HTTP URL content") from None
        else:
            raise BadRequest("Bad Request: failed to get HTTP URL content")
        if len(data) > (URL_PHOTO_LIMIT if kind == "photo" else URL_FILE_LIMIT):
            raise BadRequest("Bad Request: failed to get HTTP URL content")
        if content_type.split(";")[0].strip().lower() not in _URL_TYPES[kind]:
            raise BadRequest("Bad Request: wrong type of the web page content")
        return data, content_type.split(";")[0].strip().lower()

    async def _store_media(self, method: str, kind: str, given: Any, params: dict[str, Any]) -> _StoredMedia:
        """The file a send/edit call names (upload, URL or file_id), stored, with its object for the Message."""
        what = kind.replace("_", " ")
        upload: UploadedFile | None = None
        url: str | None = None
        if isinstance(given, UploadedFile):
            upload, source = given, "upload"
            if kind == "photo" and upload.size > PHOTO_UPLOAD_LIMIT:
                raise BadRequest("Bad Request: PHOTO_SAVE_FILE_INVALID")
            file = self.add_file(upload.data, kind=kind, file_name=upload.filename)
        elif not isinstance(given, str) or given.startswith("attach://") or not given:
            raise BadRequest(f"Bad Request: there is no {what} in the request")
        elif re.match(r"https?://", given, re.IGNORECASE):
            url, source = given, "url"
            data, content_type = await self._fetch(given, kind)
            name = Path(urlsplit(given).path).name or None
            file = self.add_file(data, kind=kind, file_name=name, mime_type=content_type if kind != "photo" else None)
        else:
            source = "file_id"
            known = self.files.get(given)
            if known is None or "://" in given:
                raise BadRequest("Bad Request: wrong file identifier/HTTP URL specified")
            if known.kind not in _COMPATIBLE[kind]:
                raise BadRequest("Bad Request: type of file mismatch")
            file = known
        if kind == "photo":
            if file.width is None or file.height is None:
                raise BadRequest("Bad Request: IMAGE_PROCESS_FAILED")
            if file.width + file.height > 10000 or max(file.width, file.height) > 20 * min(file.width, file.height):
                raise BadRequest("Bad Request: PHOTO_INVALID_DIMENSIONS")

        thumbnail, ignored = None, None
        thumb = params.get("thumbnail")
        if isinstance(thumb, UploadedFile):
            dims = image_size(thumb.data)
            if not thumb.data.startswith(b"\xff\xd8"):
                ignored = "not a JPEG"
            elif thumb.size >= 200 * 1024:
                ignored = "200 kB or more"
            elif dims is None or max(dims) > 320:
                ignored = "wider or higher than 320 px"
            else:
                thumbnail = self.add_file(thumb.data, kind="thumbnail", file_name=thumb.filename)
        elif thumb is not None:
            ignored = "not uploaded as a file (Telegram ignores a thumbnail URL or file_id)"

        thumb_obj = self._file_object(thumbnail, width=thumbnail.width, height=thumbnail.height) if thumbnail else None
        if kind == "audio":
            obj: Any = self._file_object(
                file,
                duration=params.get("duration", 0),
                performer=params.get("performer"),
                title=params.get("title"),
                file_name=file.file_name,
                mime_type=file.mime_type,
                thumbnail=thumb_obj,
            )
        elif kind == "voice":
            obj = self._file_object(file, duration=params.get("duration", 0), mime_type=file.mime_type or "audio/ogg")
        elif kind == "video_note":
            obj = self._file_object(
                file, length=params.get("length", 240), duration=params.get("duration", 0), thumbnail=thumb_obj
            )
        elif kind == "document":
            obj = self._file_object(file, file_name=file.file_name, mime_type=file.mime_type, thumbnail=thumb_obj)
        else:
            obj = [self._file_object(file, width=file.width, height=file.height)]
        return _StoredMedia(file, source, obj, url, upload, thumbnail, ignored)

    async def _send_media(self, method: str, kind: str, params: dict[str, Any]) -> Any:
        chat_id = self._check_chat(params["chat_id"])
        caption = check_caption(params.get("caption", ""), params.get("parse_mode"), strict=self.strict_html)
        if "caption_entities" in params and not params.get("parse_mode"):
            check_entities(params.get("caption", ""), params["caption_entities"])
        stored = await self._store_media(method, kind, params[kind], params)
        message = self._bot_message(chat_id, params, **{kind: stored.obj}, caption=caption or None)
        self.sent_media.append(
            SentMedia(
                method,
                chat_id,
                message,
                kind,
                stored.file,
                stored.source,
                url=stored.url,
                upload=stored.upload,
                caption=caption or None,
                params=params,
                thumbnail=stored.thumbnail,
                thumbnail_ignored=stored.thumbnail_ignored,
            )
        )
        return message

    async def _api_sendAudio(self, params: dict[str, Any]) -> Any:
        return await self._send_media("sendAudio", "audio", params)

    async def _api_sendVoice(self, params: dict[str, Any]) -> Any:
        return await self._send_media("sendVoice", "voice", params)

    async def _api_sendVideoNote(self, params: dict[str, Any]) -> Any:
        return await self._send_media("sendVideoNote", "video_note", params)

    async def _api_sendDocument(self, params: dict[str, Any]) -> Any:
        return await self._send_media("sendDocument", "document", params)

    async def _api_sendPhoto(self, params: dict[str, Any]) -> Any:
        return await self._send_media("sendPhoto", "photo", params)

    # --- queries ------------------------------------------------------------------------------
    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        query_id = params["callback_query_id"]
        if self.callback_queries.get(query_id, True):
            raise BadRequest("Bad Request: query is too old and response timeout expired or query ID is invalid")
        if len(params.get("text", "")) > CALLBACK_ANSWER_LIMIT:
            raise BadRequest("Bad Request: MESSAGE_TOO_LONG")
        url = params.get("url")
        if url is not None and not re.match(
            rf"https?://(t\.me|telegram\.me)/{BOT_USER['username']}\?start=[A-Za-z0-9_-]{{1,64}}$", url
        ):
            raise BadRequest("Bad Request: URL_INVALID")
        self.callback_queries[query_id] = True
        self.callback_answers[query_id] = params
        return True

    def _check_inline_result(self, result: dict[str, Any]) -> None:
        """What the spec cannot say: URLs Telegram fetches, and cached file ids that must exist."""
        for key in ("audio_url", "voice_url", "document_url", "photo_url", "thumbnail_url"):
            url = result.get(key)
            if url is None:
                continue
            if key != "thumbnail_url" and "." not in url:  # Telegram takes a dot-less string for a file_id
                raise BadRequest("Bad Request: wrong file identifier/HTTP URL specified")
            if not re.match(r"https?://", url, re.IGNORECASE) or link_problem(url):
                raise BadRequest("Bad Request: WEBDOCUMENT_URL_INVALID")
        for key, kind in (
            ("audio_file_id", "audio"),
            ("voice_file_id", "voice"),
            ("document_file_id", "document"),
            ("photo_file_id", "photo"),
        ):
            if key in result:
                known = self.files.get(result[key])
                if known is None:
                    raise BadRequest("Bad Request: wrong file identifier/HTTP URL specified")
                if known.kind not in _COMPATIBLE[kind]:
                    raise BadRequest("Bad Request: type of file mismatch")
        if result["type"] == "article" and not result["title"].strip():
            raise BadRequest("Bad Request: RESULT_TITLE_EMPTY")

    async def _api_answerInlineQuery(self, params: dict[str, Any]) -> Any:
        query_id = params["inline_query_id"]
        if self.inline_queries.get(query_id, True):
            raise BadRequest("Bad Request: query is too old and response timeout expired or query ID is invalid")
        results = params["results"]
        ids = [r["id"] for r in results]
        if len(set(ids)) != len(ids):
            raise BadRequest("Bad Request: RESULT_ID_DUPLICATE")
        for result in results:
            self._check_inline_result(result)
        if len(params.get("next_offset", "").encode()) > 64:
            raise BadRequest("Bad Request: NEXT_OFFSET_INVALID")
        if params.get("cache_time", 0) < 0:
            raise BadRequest("Bad Request: CACHE_TIME_INVALID" + STRICTER)
        self.inline_queries[query_id] = True
        self.inline_answers[query_id] = params
        return True
