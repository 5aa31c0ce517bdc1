"""Songs sent as audio: an audio file, a voice message, a round video note, or a document.

The refusals that cost nothing come first, from what Telegram says about the file (its size against
the Bot API's 20 MB download limit and the analysis limit, its type); then the file is downloaded
(`getFile`, then `/file/bot<token>/<path>`) into a temporary directory that is always removed, and
`services.analysis` listens to it while the chat shows "typing". The answer is the song's card when
its tags named a song Encore found, otherwise "this sounds like …" with the similar tracks and
▶ Start radio from it. Every refusal is worded per language from its `code`.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import aiohttp
from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramNetworkError
from aiogram.types import Message

from bot.telegram.filters import AudioMessage
from bot.telegram.keyboards import analysis_keyboard
from bot.telegram.texts import Texts
from handlers.telegram.common import chat_action, send_card
from services.analysis import DEFAULT_NAME
from services.audio_errors import AudioRejected, AudioTooLarge, AudioTooLong, AudioTooShort
from services.dto import UserInfo
from services.errors import AnalysisRateLimited, AudioNotAnalysable, ProviderUnavailable
from services.genre_labels import genre_verdict

if TYPE_CHECKING:
    from services.analysis import AnalysisResult
    from services.protocols import Analysis

log = logging.getLogger(__name__)

BOT_API_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files
DOWNLOAD_TIMEOUT = 60  # seconds for one file of up to 20 MB
TEMP_PREFIX = "encore-tg-"
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")
_KIND_SUFFIX = {"audio": ".mp3", "voice": ".ogg", "video_note": ".mp4", "document": ""}


@dataclass(frozen=True, slots=True)
class SentAudio:
    """What Telegram tells about a sent file before it is downloaded."""

    kind: str  # audio | voice | video_note | document
    file_id: str
    size: int | None
    file_name: str | None = None
    mime_type: str | None = None
    title: str | None = None
    performer: str | None = None

    @property
    def suffix(self) -> str:
        """A safe file name suffix for the temporary copy (PyAV reads the content, not the name)."""
        suffix = PurePath(self.file_name or "").suffix.lower()
        return suffix if _SUFFIX.match(suffix) else _KIND_SUFFIX[self.kind]


class DownloadFailed(Exception):
    """Telegram did not hand the file over (network trouble, a refused file path)."""

    code = "download_failed"


def sent_audio(message: Message) -> SentAudio | None:
    if message.audio is not None:
        audio = message.audio
        return SentAudio(
            "audio",
            audio.file_id,
            audio.file_size,
            audio.file_name,
            audio.mime_type,
            title=audio.title,
            performer=audio.performer,
        )
    if message.voice is not None:
        voice = message.voice
        return SentAudio("voice", voice.file_id, voice.file_size, None, voice.mime_type or "audio/ogg")
    if message.video_note is not None:
        note = message.video_note
        return SentAudio("video_note", note.file_id, note.file_size, None, "video/mp4")  # always MPEG-4
    if message.document is not None:
        doc = message.document
        return SentAudio("document", doc.file_id, doc.file_size, doc.file_name, doc.mime_type)
    return None


_NO_DETAILS: dict[str, Any] = {
    "size": None,
    "max_bytes": BOT_API_DOWNLOAD_LIMIT,
    "seconds": 0.0,
    "min_seconds": 0.0,
    "max_seconds": 0.0,
    "wait": 0.0,
    "reason": None,
}


def refusal_context(exc: Exception) -> dict[str, Any]:
    """What `audio_refused.html` needs to word a refusal in the person's language (never the
    services' English message)."""
    context: dict[str, Any] = {"code": getattr(exc, "code", "audio_rejected"), **_NO_DETAILS}
    if isinstance(exc, AudioTooLarge):
        context.update(size=exc.size or None, max_bytes=exc.max_bytes)
    elif isinstance(exc, AudioTooShort):
        context.update(seconds=exc.seconds, min_seconds=exc.min_seconds)
    elif isinstance(exc, AudioTooLong):
        context.update(seconds=exc.seconds, max_seconds=exc.max_seconds)
    elif isinstance(exc, AnalysisRateLimited):
        context.update(wait=max(0.0, exc.retry_after))
    elif isinstance(exc, AudioNotAnalysable):
        context.update(reason=exc.reason)
    return context


async def download(bot: Bot, sent: SentAudio, destination: Path, limit: int) -> None:
    """getFile, then the file streamed to `destination`. A file Telegram will not hand to bots
    (over 20 MB) is `AudioTooLarge`; anything else that goes wrong is `DownloadFailed`."""
    try:
        file = await bot.get_file(sent.file_id)
    except TelegramBadRequest as exc:
        if "too big" in exc.message.lower():
            raise AudioTooLarge(sent.size or 0, limit) from exc
        raise DownloadFailed(exc.message) from exc
    except (TelegramAPIError, TelegramNetworkError) as exc:
        raise DownloadFailed(type(exc).__name__) from None
    if not file.file_path:
        raise AudioTooLarge(file.file_size or sent.size or 0, limit)
    if file.file_size is not None and file.file_size > limit:
        raise AudioTooLarge(file.file_size, limit)
    try:
        await bot.download_file(file.file_path, destination=destination, timeout=DOWNLOAD_TIMEOUT)
    except (TelegramAPIError, TelegramNetworkError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        # Only the error's type: a download URL carries the bot's token, which is never logged.
        raise DownloadFailed(type(exc).__name__) from None


async def analyse_sent(
    bot: Bot, message: Message, sent: SentAudio, user: UserInfo, analysis: Analysis
) -> AnalysisResult:
    """Checks, download into a temporary directory (removed whatever happens), analysis."""
    limit = min(BOT_API_DOWNLOAD_LIMIT, analysis.max_bytes)
    if sent.size is not None and sent.size > BOT_API_DOWNLOAD_LIMIT:
        raise AudioTooLarge(sent.size, BOT_API_DOWNLOAD_LIMIT)
    analysis.precheck(size=sent.size, file_name=sent.file_name, mime_type=sent.mime_type)
    async with chat_action(bot, message.chat.id, "typing"):
        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as folder:
            path = Path(folder) / f"sent{sent.suffix}"
            await download(bot, sent, path, limit)
            return await analysis.analyse(
                path,
                identity=f"tg:{user.id}",
                file_name=sent.file_name,
                mime_type=sent.mime_type,
                title=sent.title,
                performer=sent.performer,
                user_id=user.id,
            )


async def on_audio(message: Message, bot: Bot, user: UserInfo, texts: Texts, analysis: Analysis | None) -> None:
    sent = sent_audio(message)
    if sent is None:  # the filter lets only files through
        return
    if analysis is None:
        await message.answer(texts.render(user.language, "audio_refused", code="analysis_off", **_NO_DETAILS))
        return
    try:
        result = await analyse_sent(bot, message, sent, user, analysis)
    except (AudioRejected, AudioNotAnalysable, AnalysisRateLimited, ProviderUnavailable, DownloadFailed) as exc:
        log.info("sent %s from user %s refused: %s", sent.kind, user.id, getattr(exc, "code", exc))
        await message.answer(texts.render(user.language, "audio_refused", **refusal_context(exc)))
        return
    await answer_result(message, texts, user, result)


async def answer_result(message: Message, texts: Texts, user: UserInfo, result: AnalysisResult) -> None:
    card = result.card
    if result.kind == "known":
        await send_card(message, texts, user, card, from_tags=True)
        return
    no_genre = None
    if card.genre is None:
        no_genre = "model" if card.track.features_complete else "analysis"
    await message.answer(
        texts.render(
            user.language,
            "audio",
            track=card.track,
            name=None if card.track.name == DEFAULT_NAME else card.track.name,  # the service's English default
            verdict=genre_verdict(card.genre, card.track.genres),
            no_genre=no_genre,
            similar=list(result.similar),
        ),
        reply_markup=analysis_keyboard(card.track.id, result.similar, texts.labels(user.language)),
    )


def create_router() -> Router:
    """A new router with this module's handlers (a Router belongs to one Dispatcher only)."""
    router = Router(name=__name__)
    router.message.register(on_audio, AudioMessage())
    return router
