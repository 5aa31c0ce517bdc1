"""Why a sent song cannot be analysed. Each `message` is safe to show the person who sent it.

They subclass `InvalidInput`, so the web layer already answers them with 422 and the `code` below.
Kept apart from `services.audio_clip` so that delivery code can catch them without importing PyAV.
"""

from __future__ import annotations

from services.errors import InvalidInput


class AudioRejected(InvalidInput):
    """Base of every refusal of a sent audio file."""

    code = "audio_rejected"
    default_message = "I couldn't listen to this file."

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.default_message)


class NotAudio(AudioRejected):
    """A picture, a document, random bytes: nothing an audio decoder can read."""

    code = "not_audio"
    default_message = (
        "This file doesn't look like audio. Send a song as an audio file, a voice message or a video note."
    )


class AudioTooLarge(AudioRejected):
    """Bigger than Encore takes (Telegram's bots can download at most 20 MB, the web the same)."""

    code = "audio_too_large"

    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        self.max_bytes = max_bytes
        super().__init__(
            f"This file is {size / 1_048_576:.1f} MB; I can listen to files of up to {max_bytes / 1_048_576:g} MB. "
            "Send a shorter or more compressed recording."
        )


class CorruptAudio(AudioRejected):
    """It claims to be audio, but it is damaged or cut short."""

    code = "corrupt_audio"
    default_message = (
        "This audio file seems damaged or cut short, so I couldn't listen to it. Try sending another copy."
    )


class NoAudioStream(AudioRejected):
    """A video (or other media container) without any sound track."""

    code = "no_audio_stream"
    default_message = "This video has no sound, so there is nothing for me to listen to."


class AudioTooShort(AudioRejected):
    code = "audio_too_short"

    def __init__(self, seconds: float, min_seconds: float) -> None:
        self.seconds = seconds
        self.min_seconds = min_seconds
        super().__init__(
            f"This recording is only {seconds:.1f} s long. "
            f"I need at least {min_seconds:g} seconds of music to tell what it sounds like."
        )


class AudioTooLong(AudioRejected):
    """Longer than any single song should be: a DJ mix, a concert, a podcast."""

    code = "audio_too_long"

    def __init__(self, seconds: float, max_seconds: float) -> None:
        self.seconds = seconds
        self.max_seconds = max_seconds
        super().__init__(
            f"This is {_minutes(seconds)} long, which looks like a mix or a podcast rather than one song. "
            f"Send a single song of up to {_minutes(max_seconds)}."
        )


class SilentAudio(AudioRejected):
    code = "silent_audio"

    def __init__(self, rms_dbfs: float, peak_dbfs: float) -> None:
        self.rms_dbfs = rms_dbfs
        self.peak_dbfs = peak_dbfs
        super().__init__("I could only hear silence in this recording. Try a louder recording of the song.")


def _minutes(seconds: float) -> str:
    if seconds >= 3600:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{round(seconds / 60)} min"
