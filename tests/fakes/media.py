"""Media files as people send them, generated on the spot with PyAV: tones, noise, tags, video notes.

Signals are float32 arrays shaped (channels, samples) in [-1, 1]. Nothing here is clever about
audio; the point is real containers and codecs (LAME MP3 with ID3, Opus in Ogg, AAC in MP4 with an
H.264 picture, FLAC, WAV), plus the cheap tricks that make hours-long files in milliseconds.
"""

from __future__ import annotations

import io
import os
import struct
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

Target = str | os.PathLike[str] | BinaryIO


def tone(seconds: float, rate: int, hz: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def stepped_tone(seconds: float, rate: int, step_seconds: float = 5.0, amplitude: float = 0.3) -> np.ndarray:
    """A tone that rises by 100 Hz every `step_seconds`: 300 Hz, 400 Hz, … (so time can be read back)."""
    t = np.arange(round(seconds * rate)) / rate
    hz = step_hz(t, step_seconds)
    phase = 2 * np.pi * np.cumsum(hz) / rate
    return (amplitude * np.sin(phase)).astype(np.float32)


def step_hz(t: float | np.ndarray, step_seconds: float = 5.0) -> np.ndarray:
    return np.asarray(300.0 + 100.0 * np.floor(np.asarray(t) / step_seconds))


def noise(seconds: float, rate: int, amplitude: float, seed: int = 0) -> np.ndarray:
    return (amplitude * np.random.default_rng(seed).standard_normal(round(seconds * rate))).astype(np.float32)


def channels(mono: np.ndarray, count: int) -> np.ndarray:
    return np.ascontiguousarray(np.tile(mono, (count, 1)))


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency of a mono excerpt (Hann window, resolution rate / len)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def encode(
    target: Target,
    signal: np.ndarray,
    rate: int,
    *,
    codec: str,
    format: str,
    tags: Mapping[str, str] | None = None,
    bit_rate: int | None = None,
    with_video: bool = False,
    options: Mapping[str, str] | None = None,
) -> None:
    """Encode `signal` (channels, samples) into `target`; with `with_video`, add a 64×64 H.264 picture track."""
    count = signal.shape[0]
    layout = {1: "mono", 2: "stereo"}[count]
    with av.open(target, mode="w", format=format, options=dict(options or {})) as out:
        out.metadata.update(dict(tags or {}))
        audio = out.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(audio, av.AudioStream)
        if bit_rate:
            audio.bit_rate = bit_rate
        video = None
        if with_video:
            video = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
            video.width = video.height = 64
            video.pix_fmt = "yuv420p"
        step = 4096
        for begin in range(0, signal.shape[1], step):
            chunk = np.ascontiguousarray(signal[:, begin : begin + step], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = begin
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
        if video is not None:
            for index in range(round(signal.shape[1] / rate * 25)):
                picture = np.full((64, 64, 3), index % 256, dtype=np.uint8)
                image = av.VideoFrame.from_ndarray(picture, format="rgb24")
                image.pts = index
                out.mux(video.encode(image))
            out.mux(video.encode(None))


def mp3(target: Target, signal: np.ndarray, rate: int = 44_100, **kwargs: object) -> None:
    encode(target, signal, rate, codec="libmp3lame", format="mp3", **kwargs)  # type: ignore[arg-type]


def voice_ogg(target: Target, signal: np.ndarray, bit_rate: int = 32_000) -> None:
    """A Telegram voice message: mono Opus at 48 kHz in Ogg, no tags."""
    encode(target, signal, 48_000, codec="libopus", format="ogg", bit_rate=bit_rate)


def video_note(target: Target, signal: np.ndarray, rate: int = 44_100) -> None:
    """A Telegram video note: MP4 with H.264 video and AAC audio."""
    encode(target, signal, rate, codec="aac", format="mp4", with_video=True)


def video_without_sound(target: Target, seconds: float) -> None:
    with av.open(target, mode="w", format="mp4") as out:
        video = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        for index in range(round(seconds * 25)):
            image = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), dtype=np.uint8), format="rgb24")
            image.pts = index
            out.mux(video.encode(image))
        out.mux(video.encode(None))


def wav(target: str | os.PathLike[str], signal: np.ndarray, rate: int) -> None:
    """16-bit PCM WAV written with the standard library (an independent writer)."""
    pcm = np.clip(np.rint(signal.T * 32767), -32768, 32767).astype("<i2")
    with wave.open(os.fspath(target), "wb") as out:
        out.setnchannels(signal.shape[0])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())


def sparse_wav(path: Path, seconds: float, rate: int, inserts: Mapping[float, np.ndarray] | None = None) -> None:
    """A mono 16-bit WAV of `seconds`, silent except for `inserts` ({start second: mono signal}).

    The silence is a hole in a sparse file, so a 2-hour WAV costs a header and no disk or CPU.
    """
    frames = round(seconds * rate)
    size = frames * 2
    header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header += b"data" + struct.pack("<I", size)
    with open(path, "wb") as out:
        out.write(header)
        for start, signal in (inserts or {}).items():
            out.seek(len(header) + round(start * rate) * 2)
            out.write(np.clip(np.rint(signal * 32767), -32768, 32767).astype("<i2").tobytes())
        out.truncate(len(header) + size)


def long_mp3(path: Path, seconds: float, seed_seconds: float = 8.0, rate: int = 8_000, bit_rate: int = 8_000) -> None:
    """A CBR MP3 of `seconds`, made by repeating the frames of a short encoded tone (no Xing header, no ID3).

    FFmpeg then estimates the duration from the size and the bit rate, as it does for such files.
    """
    seed = io.BytesIO()
    encode(
        seed,
        channels(tone(seed_seconds, rate, 440.0), 1),
        rate,
        codec="libmp3lame",
        format="mp3",
        bit_rate=bit_rate,
        options={"write_xing": "0", "id3v2_version": "0"},
    )
    frames = seed.getvalue()
    copies = int(seconds // seed_seconds)
    with open(path, "wb") as out:
        for _ in range(copies):
            out.write(frames)


class _Unseekable(io.RawIOBase):
    """A write-only sink, so that muxers cannot go back to write durations or indexes."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.buffer.extend(data)
        return len(data)


def streamed_webm(path: Path, signal: np.ndarray) -> None:
    """WebM/Opus written as a live stream: no duration in the header, no cues."""
    sink = _Unseekable()
    encode(sink, signal, 48_000, codec="libopus", format="webm")  # type: ignore[arg-type]
    path.write_bytes(bytes(sink.buffer))


def id3v23(title: str, artist: str, album: str) -> bytes:
    """An ID3v2.3 tag with UTF-16 text frames, as taggers write them (built by hand, not by FFmpeg)."""

    def frame(name: bytes, text: str) -> bytes:
        body = b"\x01" + text.encode("utf-16")  # encoding byte 1 = UTF-16 with BOM
        return name + struct.pack(">I", len(body)) + b"\x00\x00" + body

    frames = frame(b"TIT2", title) + frame(b"TPE1", artist) + frame(b"TALB", album)
    size = len(frames)
    synchsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + synchsafe + frames


def png() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="image2pipe") as out:
        stream = out.add_stream("png")
        stream.width = stream.height = 16
        stream.pix_fmt = "rgb24"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), dtype=np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    return buffer.getvalue()
