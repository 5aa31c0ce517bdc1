"""Async filters for the bot's routers.

aiogram runs a bare synchronous filter (a MagicFilter such as `F.text`) in a worker thread
(`asyncio.to_thread`) on every update; under load the updates then queue for the thread pool.
These are plain coroutines instead.
"""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import Message


class SearchText(Filter):
    """Text that is not a command: a song title, "artist — title" or a link."""

    async def __call__(self, message: Message) -> bool:
        text = message.text or ""
        return bool(text) and not text.startswith("/")


class UnknownCommand(Filter):
    async def __call__(self, message: Message) -> bool:
        return (message.text or "").startswith("/")


class AudioMessage(Filter):
    """A voice message, an audio file, a round video note, or a file sent as a document (a song saved
    as a file; a document that is not audio, such as a picture, gets a clear refusal there)."""

    async def __call__(self, message: Message) -> bool:
        return bool(message.voice or message.audio or message.video_note or message.document)
