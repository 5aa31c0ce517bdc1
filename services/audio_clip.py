"""A song someone sent, made into a short clip an audio-analysis provider accepts.

Input is whatever a Telegram user (or the web upload form) hands over: an audio file (MP3, M4A/AAC,
OGG/Opus or Vorbis, FLAC, WAV, AIFF, WMA …), a voice message (OGG/Opus), a video note (MP4: H.264 video
+ AAC audio) or a document that claims an audio type. Two blocking entry points, meant to be called by
the service layer through `asyncio.to_thread`:

- `probe_audio(source)` reads the container only: format, codec, duration, sample rate, channels and the
  title / artist / album tags (ID3, Vorbis comments, MP4 atoms: FFmpeg's demuxers read them all).
- `make_clip(source, options)` takes `clip_seconds` (30 s) from the middle of the song (the whole file
  when it is shorter), downmixed to mono and resampled, and encodes it as WAV (default) or MP3.

Only the excerpt is decoded: the demuxer seeks to the middle, decoding stops once the excerpt is
complete, and samples before the excerpt are dropped as they arrive, so CPU and memory depend on the
clip length, not on the file length (the `decoded_seconds` field of the result says how much was
decoded). Whatever cannot be analysed is refused with an `AudioRejected` subclass from
`services.audio_errors`, whose `message` can be shown to the sender as it is.

PyAV (FFmpeg's libraries, bundled in its wheels) does the demuxing, decoding, resampling and MP3
encoding; no system ffmpeg is needed.
"""

from __future__ import annotations

import io
import logging
import math
import os
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import BinaryIO, Literal

import av
import av.container
import av.stream
import numpy as np

from services.audio_errors import (
    AudioTooLong,
    AudioTooShort,
    CorruptAudio,
    NoAudioStream,
    NotAudio,
    SilentAudio,
)

log = logging.getLogger(__name__)

AudioSource = str | os.PathLike[str] | BinaryIO
ClipFormat = Literal["wav", "mp3"]
Sniffed = Literal["audio", "other", "unknown"]

# FFmpeg demuxer names we accept (a demuxer's name may list several: "mov,mp4,m4a,3gp,3g2,mj2").
# Anything else (image2, png_pipe, bin, tty, …) is not a song, whatever FFmpeg managed to open.
MEDIA_CONTAINERS = frozenset(
    {
        "mp3", "ogg", "mov", "mp4", "m4a", "3gp", "wav", "w64", "flac", "aac", "aiff", "matroska",
        "webm", "asf", "amr", "caf", "ac3", "eac3", "wv", "avi",
    }
)  # fmt: skip

AUDIO_EXTENSIONS = frozenset(
    {
        ".mp3", ".m4a", ".m4b", ".aac", ".ogg", ".oga", ".opus", ".flac", ".wav", ".wave", ".aif", ".aiff",
        ".aifc", ".wma", ".mka", ".amr", ".caf", ".wv", ".ac3",
        ".mp4", ".m4v", ".mov", ".webm", ".mkv",  # videos: their sound track is what we listen to
    }
)  # fmt: skip
VIDEO_MIME_TYPES = frozenset({"video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/ogg"})
# audio/* types that are not sound: note lists and playlists.
NOT_SOUND_MIME_TYPES = frozenset(
    {"audio/midi", "audio/mid", "audio/x-midi", "audio/sp-midi", "audio/mpegurl", "audio/x-mpegurl", "audio/x-scpls"}
)
GENERIC_MIME_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/ogg"})

TAG_KEYS = {
    "title": ("title",),
    "artist": ("artist", "performer", "album_artist", "albumartist"),
    "album": ("album",),
}
MAX_TAG_LENGTH = 300
MAX_DECODE_ERRORS = 50  # packets that fail to decode before we give up on a file that yields nothing


@dataclass(frozen=True, slots=True)
class AudioTags:
    """Title, artist and album as the file's tags give them (None when absent or blank)."""

    title: str | None = None
    artist: str | None = None
    album: str | None = None

    @property
    def names_a_song(self) -> bool:
        """Both title and artist are there: enough to look the song up by name."""
        return bool(self.title and self.artist)


@dataclass(frozen=True, slots=True)
class AudioInfo:
    container: str  # FFmpeg demuxer name, e.g. "mp3", "ogg", "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # decoder name, e.g. "mp3float", "opus", "aac"
    duration: float  # seconds
    sample_rate: int
    channels: int
    bit_rate: int | None
    has_video: bool
    tags: AudioTags


@dataclass(frozen=True, slots=True)
class ClipOptions:
    """How to cut and encode the clip, and what to refuse.

    The defaults fit ReccoBeats' analysis (`POST /v1/analysis/audio-features`: MP3 / OGG-Vorbis / AIFF /
    WAV, at most 5 MB, about 30 s analysed): 30 s of mono 16-bit WAV at 44.1 kHz is 2.6 MB.
    A file longer than `max_seconds` (20 min) is refused as a mix, a concert or a podcast: songs that long
    are very rare, and the middle 30 s of a DJ mix describe one track of it, not what was sent.
    """

    clip_seconds: float = 30.0
    min_seconds: float = 5.0
    max_seconds: float = 20 * 60.0
    sample_rate: int = 44_100
    format: ClipFormat = "wav"
    mp3_bit_rate: int = 128_000
    max_clip_bytes: int = 5 * 1024 * 1024
    # Silent when the excerpt's RMS or its peak is below these (dB relative to full scale).
    silence_rms_dbfs: float = -60.0
    silence_peak_dbfs: float = -50.0

    def __post_init__(self) -> None:
        if not 0 < self.min_seconds <= self.clip_seconds <= self.max_seconds:
            raise ValueError("need 0 < min_seconds <= clip_seconds <= max_seconds")
        if not 8_000 <= self.sample_rate <= 48_000:
            raise ValueError("sample_rate must be between 8,000 and 48,000 Hz")
        if self.format not in ("wav", "mp3"):
            raise ValueError(f"unknown clip format {self.format!r}")
        if self.estimated_bytes > self.max_clip_bytes:
            raise ValueError(f"a {self.clip_seconds:g}-s {self.format} clip would exceed {self.max_clip_bytes} bytes")

    @property
    def estimated_bytes(self) -> int:
        """Upper bound of the encoded clip's size."""
        if self.format == "wav":
            return 44 + 2 * math.ceil(self.clip_seconds * self.sample_rate)
        return math.ceil(self.clip_seconds * self.mp3_bit_rate / 8) + 8 * 1024  # frames + padding, Xing frame


@dataclass(frozen=True, slots=True)
class AudioClip:
    data: bytes = field(repr=False)
    format: ClipFormat
    mime_type: str
    filename: str
    sample_rate: int
    start: float  # where the excerpt starts in the source, seconds
    duration: float  # seconds of audio in `data`
    rms_dbfs: float
    peak_dbfs: float
    decoded_seconds: float  # how much of the source was decoded to make the clip
    source: AudioInfo


def looks_like_audio(mime_type: str | None, file_name: str | None = None) -> bool:
    """Whether a file with this MIME type (as Telegram reports it) and name is worth trying to decode.

    Any audio/* type except MIDI and playlists, common video containers (their sound track is
    analysed), and, when the type says nothing (`application/octet-stream`, missing), a known audio or
    video file extension. A type that names something else (`image/png`) wins over the extension.
    """
    mime = (mime_type or "").split(";", 1)[0].strip().lower()
    if mime.startswith("audio/"):
        return mime not in NOT_SOUND_MIME_TYPES
    if mime in VIDEO_MIME_TYPES:
        return True
    if mime not in GENERIC_MIME_TYPES:
        return False
    return bool(file_name) and PurePath(file_name or "").suffix.lower() in AUDIO_EXTENSIONS


def probe_audio(source: AudioSource) -> AudioInfo:
    """Container facts and tags, without decoding any audio. Raises an `AudioRejected` subclass."""
    with _open_media(source) as (container, stream, _sniffed):
        return _info(container, stream, duration_cap=None)


def make_clip(source: AudioSource, options: ClipOptions | None = None) -> AudioClip:
    """The middle `options.clip_seconds` of the song, mono, resampled and encoded.

    `source` is a path or a seekable binary stream (read from its start). Raises `NotAudio`,
    `NoAudioStream`, `CorruptAudio`, `AudioTooShort`, `AudioTooLong` or `SilentAudio`.
    """
    opts = options or ClipOptions()
    with _open_media(source) as (container, stream, sniffed):
        measured = _declared_duration(container, stream) is None
        info = _info(container, stream, duration_cap=opts.max_seconds + 1)
        if info.duration <= 0:  # no header says it and no packet carries a timestamp
            raise CorruptAudio() if sniffed == "audio" else NotAudio()
        if info.duration < opts.min_seconds:
            raise AudioTooShort(info.duration, opts.min_seconds)
        if info.duration > opts.max_seconds:
            raise AudioTooLong(info.duration, opts.max_seconds)
        length = min(opts.clip_seconds, info.duration)
        offset = (info.duration - length) / 2
        if not measured:
            window = _decode_window(container, stream, offset, length, opts.sample_rate)
    if measured:  # measuring demuxed the whole stream, and not every demuxer can seek back: open it afresh
        with _open_media(source) as (container, stream, _):
            window = _decode_window(container, stream, offset, length, opts.sample_rate)
    if window.frames == 0:
        log.info("no audio frame decoded (%d packets failed)", window.errors)
        raise CorruptAudio() if sniffed == "audio" else NotAudio()
    kept = len(window.samples) / opts.sample_rate
    if kept < max(opts.min_seconds, length / 2):
        # The container promised `length` seconds from `offset`, but the data ends early.
        log.info(
            "excerpt cut short: %.1f s of %.1f s from %.1f s (%d failed packets)", kept, length, offset, window.errors
        )
        raise CorruptAudio()
    rms_dbfs, peak_dbfs = _levels(window.samples)
    if rms_dbfs < opts.silence_rms_dbfs or peak_dbfs < opts.silence_peak_dbfs:
        raise SilentAudio(rms_dbfs, peak_dbfs)
    data = _encode_wav(window.samples, opts.sample_rate) if opts.format == "wav" else _encode_mp3(window.samples, opts)
    return AudioClip(
        data=data,
        format=opts.format,
        mime_type="audio/wav" if opts.format == "wav" else "audio/mpeg",
        filename=f"clip.{opts.format}",
        sample_rate=opts.sample_rate,
        start=offset,
        duration=kept,
        rms_dbfs=rms_dbfs,
        peak_dbfs=peak_dbfs,
        decoded_seconds=window.decoded_seconds,
        source=info,
    )


# --- opening and probing -----------------------------------------------------------------------------


def sniff(head: bytes) -> Sniffed:
    """What the first bytes of a file say: a known audio/video container, a known other kind, or nothing."""
    if head[:3] == b"ID3" or head[:4] in (b"OggS", b"fLaC", b"caff", b"wvpk", b"\x1aE\xdf\xa3") or head[:5] == b"#!AMR":
        return "audio"
    if head[:4] in (b"RIFF", b"RF64", b"BW64"):
        return "audio" if head[8:12] in (b"WAVE", b"AVI ") else "other"  # RIFF/WEBP is a picture
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio"
    if head[4:8] == b"ftyp":  # ISO media: MP4, M4A, MOV, 3GP … but also HEIF/AVIF pictures
        return "other" if head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis") else "audio"
    if head[:8] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11":  # ASF (WMA)
        return "audio"
    if head[:2] == b"\x0b\x77":  # AC-3
        return "audio"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MPEG audio / ADTS frame sync
        return "audio"
    others = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"PK\x03\x04", b"7z\xbc\xaf", b"Rar!", b"\x7fELF")
    if head.startswith(others) or head[:4] in (b"II*\x00", b"MM\x00*"):
        return "other"
    return "unknown"


@contextmanager
def _open_media(source: AudioSource) -> Iterator[tuple[av.container.InputContainer, av.AudioStream, Sniffed]]:
    """Open `source` with FFmpeg and pick its audio stream, or raise the matching refusal."""
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        with open(path, "rb") as handle:  # a missing file is the caller's bug, not the sender's: OSError
            head = handle.read(16)
        target: str | BinaryIO = path
    else:
        target = source
        target.seek(0)
        head = target.read(16)
        target.seek(0)
    sniffed = sniff(head)
    if sniffed == "other":
        raise NotAudio()
    try:
        container = av.open(target, mode="r", metadata_errors="replace")
    except av.error.FFmpegError as exc:
        log.info("FFmpeg cannot open the file (%s): %s", sniffed, exc)
        raise CorruptAudio() if sniffed == "audio" else NotAudio() from None
    try:
        if not set(container.format.name.split(",")) & MEDIA_CONTAINERS:
            log.info("not a media container: %s", container.format.name)
            raise NotAudio()
        streams = container.streams
        if not streams.audio:
            if streams.video:
                raise NoAudioStream()
            raise CorruptAudio() if sniffed == "audio" else NotAudio()
        stream = streams.best("audio") or streams.audio[0]
        assert isinstance(stream, av.AudioStream)
        stream.codec_context.thread_count = 1
        yield container, stream, sniffed
    finally:
        container.close()


def _info(container: av.container.InputContainer, stream: av.AudioStream, duration_cap: float | None) -> AudioInfo:
    duration = _declared_duration(container, stream)
    if duration is None:
        duration = _demuxed_duration(container, stream, duration_cap)
    codec = stream.codec_context
    return AudioInfo(
        container=container.format.name,
        codec=codec.name,
        duration=duration,
        sample_rate=int(codec.sample_rate or 0),
        channels=int(codec.layout.nb_channels if codec.layout else codec.channels),
        bit_rate=int(codec.bit_rate or container.bit_rate or 0) or None,
        has_video=bool(container.streams.video),
        tags=_tags(container, stream),
    )


def _declared_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    if stream.duration is not None and stream.duration > 0 and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def _demuxed_duration(container: av.container.InputContainer, stream: av.AudioStream, cap: float | None) -> float:
    """Duration from packet timestamps, for streams whose header does not say it (no decoding).

    Stops past `cap` seconds. Leaves the container at the end of what it read.
    """
    end = 0.0
    base = stream.time_base
    for packet in container.demux(stream):
        if packet.pts is None or base is None:
            continue
        end = max(end, float((packet.pts + (packet.duration or 0)) * base))
        if cap is not None and end > cap:
            break
    return end


def _tags(container: av.container.InputContainer, stream: av.stream.Stream) -> AudioTags:
    # Ogg keeps Vorbis comments on the stream; ID3 and MP4 atoms are container-level. Keys are
    # case-insensitive (Vorbis comments are often upper-case).
    merged = {k.lower(): v for k, v in stream.metadata.items()}
    merged.update({k.lower(): v for k, v in container.metadata.items()})

    def first(keys: tuple[str, ...]) -> str | None:
        for key in keys:
            value = " ".join(str(merged.get(key, "")).replace("\x00", " ").split())
            if value:
                return value[:MAX_TAG_LENGTH]
        return None

    return AudioTags(**{name: first(keys) for name, keys in TAG_KEYS.items()})


# --- decoding the excerpt ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Window:
    samples: np.ndarray  # mono float32 at the target rate
    frames: int  # decoded frames
    errors: int  # packets that failed to decode
    decoded_seconds: float


def _decode_window(
    container: av.container.InputContainer, stream: av.AudioStream, offset: float, length: float, rate: int
) -> _Window:
    """Decode [offset, offset + length) seconds of `stream` into mono float32 at `rate` Hz.

    Seeks to the start, then keeps only what falls inside the window as frames arrive, so memory
    holds at most the window whatever the seek precision.
    """
    base = stream.time_base
    origin = float(stream.start_time * base) if stream.start_time is not None and base else 0.0
    start = origin + offset
    need = round(length * rate)
    if offset > 0 and base:
        try:
            container.seek(int(start / base), stream=stream, backward=True)
        except av.error.FFmpegError as exc:  # decode from where we are and drop what precedes the window
            log.info("seek to %.1f s failed: %s", start, exc)
    resampler = av.AudioResampler(format="fltp", rate=rate)  # keeps the layout: we downmix ourselves
    buffer = np.empty(need, dtype=np.float32)  # the only buffer that grows with the clip
    have = 0
    at: float | None = None  # source time of the next resampled sample
    frames = errors = 0
    decoded = 0.0

    def keep(out: av.AudioFrame) -> None:
        nonlocal at, have
        assert at is not None
        block = out.to_ndarray()
        mono = block.mean(axis=0, dtype=np.float32) if block.shape[0] > 1 else block[0]
        skip = max(0, round((start - at) * rate))
        at += mono.shape[0] / rate
        if skip < mono.shape[0] and have < need:
            piece = mono[skip : skip + need - have]
            buffer[have : have + piece.shape[0]] = piece
            have += piece.shape[0]

    for packet in container.demux(stream):
        try:
            decoded_frames = packet.decode()
        except av.error.FFmpegError as exc:
            errors += 1
            log.debug("packet failed to decode: %s", exc)
            if frames == 0 and errors >= MAX_DECODE_ERRORS:
                break
            continue
        for frame in decoded_frames:
            frames += 1
            decoded += frame.samples / (frame.sample_rate or rate)
            if at is None:
                at = float(frame.time) if frame.time is not None else start
            for out in resampler.resample(frame):
                keep(out)
        if have >= need:
            break
    else:
        if at is not None:
            for out in resampler.resample(None):
                keep(out)
    samples = buffer[:have]
    return _Window(samples=samples, frames=frames, errors=errors, decoded_seconds=decoded)


def _levels(samples: np.ndarray) -> tuple[float, float]:
    """RMS and peak of the excerpt in dBFS (-200 for digital silence)."""
    energy = 0.0
    for begin in range(0, len(samples), ENCODE_BLOCK):  # float64 sums without a float64 copy of the clip
        block = samples[begin : begin + ENCODE_BLOCK].astype(np.float64)
        energy += float(np.sum(block * block))  # not np.dot: BLAS threads would spin on a busy machine
    rms = math.sqrt(energy / max(len(samples), 1))
    peak = float(max(samples.max(), -samples.min())) if len(samples) else 0.0
    return _dbfs(rms), _dbfs(peak)


def _dbfs(value: float) -> float:
    return 20 * math.log10(value) if value > 1e-10 else -200.0


# --- encoding ------------------------------------------------------------------------------------------


ENCODE_BLOCK = 1152 * 16  # samples converted to 16-bit at a time (a multiple of MP3's frame size)


def _pcm16_blocks(samples: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first sample, 16-bit block) pairs: converting block by block keeps no second copy of the clip."""
    for begin in range(0, len(samples), ENCODE_BLOCK):
        scaled = np.multiply(samples[begin : begin + ENCODE_BLOCK], np.float32(32767.0))
        np.rint(scaled, out=scaled)
        np.clip(scaled, -32768, 32767, out=scaled)
        yield begin, scaled.astype("<i2")


def _encode_wav(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        for _, block in _pcm16_blocks(samples):
            out.writeframesraw(block.tobytes())
    return buffer.getvalue()


def _encode_mp3(samples: np.ndarray, opts: ClipOptions) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=opts.sample_rate, layout="mono")
        stream.bit_rate = opts.mp3_bit_rate
        for begin, block in _pcm16_blocks(samples):
            frame = av.AudioFrame.from_ndarray(block[np.newaxis, :], format="s16", layout="mono")
            frame.sample_rate = opts.sample_rate
            frame.pts = begin
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()
