"""services.audio_clip on real files made with PyAV: probing, the middle excerpt, and every refusal."""

from __future__ import annotations

import io
import os
import wave
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from services import audio_errors
from services.audio_clip import AudioClip, ClipOptions, looks_like_audio, make_clip, probe_audio, sniff
from services.errors import InvalidInput
from tests.fakes import media

RATE = 44_100
FIVE_MB = 5 * 1024 * 1024
TAGS = {"title": "One More Time", "artist": "Daft Punk", "album": "Discovery"}


def decode_clip(clip: AudioClip) -> tuple[np.ndarray, int, str]:
    """Decode the clip's bytes with FFmpeg, independently of how they were made."""
    with av.open(io.BytesIO(clip.data), mode="r") as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.layout.nb_channels == 1
        frames = list(container.decode(stream))
        samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames]).astype(np.float32)
        if frames[0].format.name.startswith("s16"):
            samples /= 32768
        return samples, stream.codec_context.sample_rate, container.format.name


def pcm_from_wav(clip: AudioClip) -> np.ndarray:
    with wave.open(io.BytesIO(clip.data)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (1, 2, clip.sample_rate)
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2").astype(np.float32) / 32768


def hz_at(samples: np.ndarray, rate: int, second: float, span: float = 0.1) -> float:
    begin = round(second * rate)
    return media.dominant_hz(samples[begin : begin + round(span * rate)], rate)


@pytest.fixture(scope="module")
def song_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s of stereo 44.1 kHz MP3 with ID3 tags; the tone rises 100 Hz every 5 s."""
    path = tmp_path_factory.mktemp("song") / "song.mp3"
    media.mp3(path, media.channels(media.stepped_tone(60, RATE), 2), RATE, tags=TAGS, bit_rate=192_000)
    return path


# --- probing and tags ---------------------------------------------------------------------------------


def test_probe_reads_mp3_facts_and_id3_tags(song_mp3: Path) -> None:
    info = probe_audio(song_mp3)
    assert info.container == "mp3" and info.codec.startswith("mp3")
    assert info.duration == pytest.approx(60, abs=0.1)
    assert (info.sample_rate, info.channels, info.has_video) == (RATE, 2, False)
    assert info.bit_rate == 192_000
    assert (info.tags.title, info.tags.artist, info.tags.album) == ("One More Time", "Daft Punk", "Discovery")
    assert info.tags.names_a_song


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("song.m4a", lambda p, s: media.encode(p, s, RATE, codec="aac", format="ipod", tags=TAGS)),
        ("song.flac", lambda p, s: media.encode(p, s, RATE, codec="flac", format="flac", tags=TAGS)),
        ("song.opus", lambda p, s: media.encode(p, s, 48_000, codec="libopus", format="ogg", tags=TAGS)),
    ],
    ids=["mp4-atoms", "flac-vorbis-comments", "ogg-opus-vorbis-comments"],
)
def test_tags_from_every_tagging_scheme(tmp_path: Path, name: str, write: Callable[[Path, np.ndarray], None]) -> None:
    path = tmp_path / name
    write(path, media.channels(media.tone(6, RATE, 440), 2))
    tags = probe_audio(path).tags
    assert (tags.title, tags.artist, tags.album) == ("One More Time", "Daft Punk", "Discovery")
    assert make_clip(path).source.tags == tags


def test_id3v23_utf16_tags_written_by_another_tool(tmp_path: Path) -> None:
    bare = io.BytesIO()
    media.mp3(bare, media.channels(media.tone(6, RATE, 440), 1), RATE, options={"id3v2_version": "0"})
    assert not bare.getvalue().startswith(b"ID3")
    path = tmp_path / "tagged.mp3"
    path.write_bytes(media.id3v23("Café del Mar", "Björk", "Homogenic") + bare.getvalue())
    tags = probe_audio(path).tags
    assert (tags.title, tags.artist, tags.album) == ("Café del Mar", "Björk", "Homogenic")


def test_voice_message_has_no_tags(tmp_path: Path) -> None:
    path = tmp_path / "voice.ogg"
    media.voice_ogg(path, media.channels(media.tone(20, 48_000, 300) + media.noise(20, 48_000, 0.05), 1))
    info = probe_audio(path)
    assert (info.container, info.codec, info.sample_rate, info.channels) == ("ogg", "opus", 48_000, 1)
    assert (info.tags.title, info.tags.artist, info.tags.album) == (None, None, None)
    assert not info.tags.names_a_song
    clip = make_clip(path)
    samples = pcm_from_wav(clip)
    assert clip.start == 0.0  # shorter than 30 s: the whole message
    assert clip.duration == pytest.approx(20, abs=0.05)
    assert len(samples) == round(clip.duration * RATE)
    assert hz_at(samples, RATE, 10, span=1.0) == pytest.approx(300, abs=2)


def test_video_note_is_listened_to_through_its_sound_track(tmp_path: Path) -> None:
    path = tmp_path / "note.mp4"
    media.video_note(path, media.channels(media.tone(12, RATE, 550), 1))
    info = probe_audio(path)
    assert info.has_video and info.codec == "aac" and "mp4" in info.container.split(",")
    clip = make_clip(path)
    samples, rate, _ = decode_clip(clip)
    assert clip.duration == pytest.approx(12, abs=0.05)
    assert hz_at(samples, rate, 6, span=1.0) == pytest.approx(550, abs=2)


# --- the excerpt --------------------------------------------------------------------------------------


def test_clip_is_the_middle_30_seconds(song_mp3: Path) -> None:
    clip = make_clip(song_mp3)
    assert (clip.format, clip.mime_type, clip.filename, clip.sample_rate) == ("wav", "audio/wav", "clip.wav", RATE)
    assert clip.start == pytest.approx(15, abs=0.1)
    samples = pcm_from_wav(clip)
    assert len(samples) == 30 * RATE and clip.duration == 30.0
    assert len(clip.data) < FIVE_MB
    # The source's tone is 300 + 100·⌊t/5⌋ Hz: the clip starts at t = 15 s (600 Hz), steps to 700 Hz
    # at t = 20 s (5 s into the clip) and ends in 1,100 Hz (t = 40–45 s).
    assert hz_at(samples, RATE, 0.0) == pytest.approx(600, abs=10)
    assert hz_at(samples, RATE, 4.85) == pytest.approx(600, abs=10)
    assert hz_at(samples, RATE, 5.05) == pytest.approx(700, abs=10)
    assert hz_at(samples, RATE, 29.9) == pytest.approx(1100, abs=10)
    assert clip.decoded_seconds < 32  # seeked: did not decode the first 15 s
    assert -20 < clip.rms_dbfs < -5 and -15 < clip.peak_dbfs < 0


def full_decode(path: Path, rate: int) -> tuple[np.ndarray, float]:
    """The whole file decoded from its first frame (no seeking), mono at `rate`; and that frame's time."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", rate=rate)
        parts: list[np.ndarray] = []
        first = None
        for frame in container.decode(stream):
            first = frame.time if first is None else first
            parts.extend(out.to_ndarray().mean(axis=0) for out in resampler.resample(frame))
        parts.extend(out.to_ndarray().mean(axis=0) for out in resampler.resample(None))
    return np.concatenate(parts), float(first or 0.0)


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("noise.m4a", lambda p, s: media.encode(p, np.stack([s, s]), RATE, codec="aac", format="ipod")),
        ("noise.ogg", lambda p, s: media.voice_ogg(p, s[np.newaxis, :])),
        ("noise.mp3", lambda p, s: media.mp3(p, np.stack([s, s]), RATE)),
    ],
)
def test_clip_starts_at_the_sample_it_claims(
    tmp_path: Path, name: str, write: Callable[[Path, np.ndarray], None]
) -> None:
    """Seeking lands near the start (AAC: a frame early); the excerpt is cut at the exact sample all the same."""
    path = tmp_path / name
    write(path, media.noise(40, RATE if "ogg" not in name else 48_000, 0.2, seed=3))
    clip = make_clip(path)
    samples = pcm_from_wav(clip)
    reference, first = full_decode(path, RATE)
    expected = round((clip.start + (probe_start(path) - first)) * RATE)
    probe = samples[: RATE // 10]
    lags = range(-300, 301)
    scores = [float(np.dot(probe, reference[expected + lag : expected + lag + len(probe)])) for lag in lags]
    assert lags[int(np.argmax(scores))] == 0


def probe_start(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if stream.start_time is None or stream.time_base is None:
            return 0.0
        return float(stream.start_time * stream.time_base)


def test_clip_from_a_stream_equals_clip_from_a_path(song_mp3: Path) -> None:
    from_path = make_clip(song_mp3)
    stream = io.BytesIO(song_mp3.read_bytes())
    stream.seek(1234)  # read from the start whatever the position
    assert make_clip(stream).data == from_path.data


def test_mp3_clip_and_other_rates(song_mp3: Path) -> None:
    clip = make_clip(song_mp3, ClipOptions(format="mp3", sample_rate=22_050))
    samples, rate, fmt = decode_clip(clip)
    assert (fmt, rate, clip.mime_type, clip.filename) == ("mp3", 22_050, "audio/mpeg", "clip.mp3")
    assert len(clip.data) < 600_000  # 30 s at 128 kbit/s
    assert len(samples) / rate == pytest.approx(30, abs=0.1)  # plus the encoder's priming and padding
    assert hz_at(samples, rate, 15.0, span=1.0) == pytest.approx(900, abs=10)  # t = 30–35 s


def test_wav_at_44k_is_well_under_five_megabytes(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    media.wav(path, media.channels(media.stepped_tone(90, RATE), 2), RATE)
    clip = make_clip(path)
    assert len(clip.data) == 44 + 30 * RATE * 2 < FIVE_MB
    assert clip.start == pytest.approx(30, abs=0.01)
    samples = pcm_from_wav(clip)
    assert hz_at(samples, RATE, 0.0) == pytest.approx(300 + 100 * 6, abs=10)  # t = 30 s


def test_downmix_averages_channels_without_clipping(tmp_path: Path) -> None:
    path = tmp_path / "loud.wav"
    left, right = media.tone(8, RATE, 440, amplitude=0.99), media.tone(8, RATE, 660, amplitude=0.99)
    media.wav(path, np.stack([left, left]), RATE)
    assert make_clip(path).peak_dbfs == pytest.approx(20 * np.log10(0.99), abs=0.1)
    media.wav(path, np.stack([left, right]), RATE)
    samples = pcm_from_wav(make_clip(path))
    spectrum = np.abs(np.fft.rfft(samples[:RATE]))
    assert spectrum[440] > 0.3 * spectrum.max() and spectrum[660] > 0.3 * spectrum.max()  # both are heard


def test_long_song_decodes_only_around_the_middle(tmp_path: Path) -> None:
    """19 minutes (allowed), silent except for a rising tone around the middle: that is what the clip holds."""
    path = tmp_path / "epic.wav"
    rate = 8_000
    middle = 19 * 60 / 2
    media.sparse_wav(path, 19 * 60, rate, {middle - 20: media.stepped_tone(40, rate)})
    clip = make_clip(path)
    assert clip.start == pytest.approx(middle - 15, abs=0.01)
    assert clip.decoded_seconds < 45
    samples = pcm_from_wav(clip)
    assert len(samples) == 30 * RATE
    assert hz_at(samples, RATE, 0.0) == pytest.approx(400, abs=10)  # 5 s into the inserted tone
    assert hz_at(samples, RATE, 29.9) == pytest.approx(900, abs=10)


def test_long_cbr_mp3_without_index_is_seeked_too(tmp_path: Path) -> None:
    path = tmp_path / "long.mp3"
    media.long_mp3(path, 15 * 60)
    clip = make_clip(path)
    assert clip.duration == 30.0
    assert clip.start > 400 and clip.decoded_seconds < 45


def test_duration_missing_from_the_header_is_measured(tmp_path: Path) -> None:
    path = tmp_path / "live.webm"
    media.streamed_webm(path, media.channels(media.stepped_tone(50, 48_000), 1))
    with av.open(str(path)) as container:  # the case under test: nothing declares the duration
        assert container.duration is None and container.streams.audio[0].duration is None
    clip = make_clip(path)
    assert clip.source.duration == pytest.approx(50, abs=0.1)
    assert clip.start == pytest.approx(10, abs=0.1) and clip.duration == 30.0
    assert hz_at(pcm_from_wav(clip), RATE, 0.0) == pytest.approx(500, abs=10)  # t = 10 s


# --- refusals -----------------------------------------------------------------------------------------


def test_two_hour_mix_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "mix.mp3"
    media.long_mp3(path, 2 * 3600)
    assert probe_audio(path).duration > 7100
    with pytest.raises(audio_errors.AudioTooLong) as caught:
        make_clip(path)
    assert caught.value.seconds > 7100 and caught.value.max_seconds == 1200
    assert "mix" in caught.value.message and "2 h" in caught.value.message and "20 min" in caught.value.message

    wav_path = tmp_path / "mix.wav"
    media.sparse_wav(wav_path, 2 * 3600, 8_000)
    with pytest.raises(audio_errors.AudioTooLong):
        make_clip(wav_path)


def test_the_length_limit_is_an_option(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    media.wav(path, media.channels(media.tone(40, 8_000, 440), 1), 8_000)
    with pytest.raises(audio_errors.AudioTooLong):
        make_clip(path, ClipOptions(max_seconds=35))
    assert make_clip(path, ClipOptions(max_seconds=45)).duration == 30.0


def test_too_short(tmp_path: Path) -> None:
    path = tmp_path / "blip.mp3"
    media.mp3(path, media.channels(media.tone(3, RATE, 440), 1), RATE)
    with pytest.raises(audio_errors.AudioTooShort) as caught:
        make_clip(path)
    assert caught.value.seconds == pytest.approx(3, abs=0.1)
    assert "3.0 s" in caught.value.message


@pytest.mark.parametrize(
    "signal",
    [
        np.zeros(10 * RATE, dtype=np.float32),
        media.noise(10, RATE, amplitude=10 ** (-75 / 20)),  # a quiet room's noise floor
    ],
    ids=["digital-silence", "noise-floor"],
)
def test_silence_is_refused(tmp_path: Path, signal: np.ndarray) -> None:
    path = tmp_path / "silence.mp3"
    media.mp3(path, media.channels(signal, 2), RATE)
    with pytest.raises(audio_errors.SilentAudio) as caught:
        make_clip(path)
    assert caught.value.rms_dbfs < -60


def test_quiet_but_real_music_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "quiet.wav"
    media.wav(path, media.channels(media.tone(10, RATE, 440, amplitude=0.02), 1), RATE)  # −34 dBFS peak
    assert make_clip(path).rms_dbfs == pytest.approx(-37, abs=0.5)


def test_truncated_mp3_is_corrupt(song_mp3: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.mp3"
    data = song_mp3.read_bytes()
    path.write_bytes(data[: len(data) // 4])  # the LAME header still says 60 s; the data stops at 15 s
    assert probe_audio(path).duration == pytest.approx(60, abs=0.1)
    with pytest.raises(audio_errors.CorruptAudio):
        make_clip(path)


@pytest.mark.parametrize("faststart", [False, True], ids=["index-at-end", "index-first"])
def test_truncated_mp4_is_corrupt(tmp_path: Path, faststart: bool) -> None:
    whole = tmp_path / "whole.m4a"
    options = {"movflags": "+faststart"} if faststart else {}
    media.encode(whole, media.channels(media.tone(40, RATE, 440), 2), RATE, codec="aac", format="ipod", options=options)
    cut = tmp_path / "cut.m4a"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(audio_errors.CorruptAudio):
        make_clip(cut)


def test_first_bytes_of_an_ogg_are_corrupt_not_foreign(tmp_path: Path) -> None:
    whole = io.BytesIO()
    media.voice_ogg(whole, media.channels(media.tone(8, 48_000, 440), 1))
    with pytest.raises(audio_errors.CorruptAudio):
        make_clip(io.BytesIO(whole.getvalue()[:100]))


def test_picture_renamed_mp3_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "cover.mp3"
    path.write_bytes(media.png())
    for source in (path, io.BytesIO(path.read_bytes())):
        with pytest.raises(audio_errors.NotAudio):
            make_clip(source)
        with pytest.raises(audio_errors.NotAudio):
            probe_audio(source)


@pytest.mark.parametrize("name", ["noise.mp3", "noise.ogg", "noise.bin", "empty.mp3"])
def test_random_bytes_are_not_audio(tmp_path: Path, name: str) -> None:
    rng = np.random.default_rng(7)
    data = b"" if name.startswith("empty") else b"\x00" + rng.bytes(300_000)  # no accidental frame sync
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(audio_errors.NotAudio):
        make_clip(path)
    with pytest.raises(audio_errors.NotAudio):
        make_clip(io.BytesIO(data))


def test_video_without_sound(tmp_path: Path) -> None:
    path = tmp_path / "silent-film.mp4"
    media.video_without_sound(path, 6)
    with pytest.raises(audio_errors.NoAudioStream):
        probe_audio(path)
    with pytest.raises(audio_errors.NoAudioStream):
        make_clip(path)


def test_a_missing_file_is_the_callers_error_not_the_senders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        make_clip(tmp_path / "nope.mp3")


def test_refusals_are_typed_user_safe_and_map_to_422(tmp_path: Path) -> None:
    refusals = [
        audio_errors.NotAudio(),
        audio_errors.CorruptAudio(),
        audio_errors.NoAudioStream(),
        audio_errors.AudioTooShort(2.0, 5.0),
        audio_errors.AudioTooLong(7200.0, 1200.0),
        audio_errors.SilentAudio(-90.0, -80.0),
    ]
    assert len({type(r).code for r in refusals}) == len(refusals)
    for refusal in refusals:
        assert isinstance(refusal, audio_errors.AudioRejected) and isinstance(refusal, InvalidInput)
        assert refusal.message and str(tmp_path) not in refusal.message and "ffmpeg" not in refusal.message.lower()
    assert audio_errors.AudioTooLong(7200.0, 1200.0).message.startswith("This is 2 h long")
    assert "1 h 30 min" in audio_errors.AudioTooLong(5400.0, 1200.0).message


def test_options_that_would_exceed_five_megabytes_are_refused() -> None:
    assert ClipOptions(sample_rate=48_000).estimated_bytes < FIVE_MB
    with pytest.raises(ValueError):
        ClipOptions(clip_seconds=60)  # 5.3 MB of WAV
    assert ClipOptions(clip_seconds=60, format="mp3").estimated_bytes < FIVE_MB
    with pytest.raises(ValueError):
        ClipOptions(min_seconds=40)


# --- what to try --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mime_type", "file_name", "expected"),
    [
        ("audio/mpeg", "song.mp3", True),
        ("audio/ogg", None, True),  # a voice message
        ("audio/x-m4a", "radio.m4a", True),
        ("audio/flac", "a.flac", True),
        ("audio/x-wav; codecs=1", "a.wav", True),
        ("video/mp4", "note.mp4", True),
        ("application/octet-stream", "Track 01.FLAC", True),
        (None, "live.opus", True),
        ("audio/midi", "song.mid", False),
        ("audio/x-mpegurl", "list.m3u", False),
        ("image/png", "cover.mp3", False),
        ("application/pdf", "lyrics.pdf", False),
        ("application/octet-stream", "notes.txt", False),
        (None, None, False),
    ],
)
def test_looks_like_audio(mime_type: str | None, file_name: str | None, expected: bool) -> None:
    assert looks_like_audio(mime_type, file_name) is expected


def test_sniff_knows_containers_and_pictures(song_mp3: Path, tmp_path: Path) -> None:
    assert sniff(song_mp3.read_bytes()[:16]) == "audio"
    assert sniff(media.png()[:16]) == "other"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "other"
    assert sniff(b"\x00\x00\x00\x18ftypheic\x00\x00") == "other"
    assert sniff(b"\x00\x00\x00\x18ftypM4A \x00\x00") == "audio"
    assert sniff(os.urandom(0)) == "unknown"
