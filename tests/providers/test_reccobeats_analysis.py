"""ReccoBeats audio analysis (`POST /v1/analysis/audio-features`) against the fake on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import math
import struct
import wave

import pytest

from services.audio_features import ANALYSIS_FEATURES, MAX_ANALYSIS_BYTES, ReccoBeatsClient, sniff_audio
from services.errors import AudioNotAnalysable, ProviderUnavailable
from tests.fakes.reccobeats import Failure, FakeReccoBeats, analysis_for
from tests.providers.conftest import RecordedSleeps, reccobeats_from_settings


def wav_bytes(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A real WAV file: a 440 Hz tone."""
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def ogg_first_page(codec_header: bytes) -> bytes:
    # "OggS", version, header type (beginning of stream), granule, serial, sequence, CRC, 1 segment.
    header = b"OggS" + bytes([0, 2]) + bytes(8) + b"\x01\x00\x00\x00" + bytes(4) + bytes(4)
    return header + bytes([1, len(codec_header)]) + codec_header + bytes(200)


MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(20_000)
MP3_NO_TAG = b"\xff\xfb\x90\x64" + bytes(20_000)
OGG_VORBIS = ogg_first_page(b"\x01vorbis" + bytes(22))
OGG_OPUS = ogg_first_page(b"OpusHead" + bytes(11))
AIFF = b"FORM" + struct.pack(">I", 4000) + b"AIFF" + bytes(4000)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(1000)
AAC_ADTS = b"\xff\xf1\x50\x80" + bytes(1000)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (MP3, ("audio/mpeg", "mp3")),
        (MP3_NO_TAG, ("audio/mpeg", "mp3")),
        (OGG_VORBIS, ("audio/ogg", "ogg")),
        (AIFF, ("audio/aiff", "aiff")),
        (OGG_OPUS, None),  # Telegram voice messages: must be re-encoded first
        (PNG, None),
        (AAC_ADTS, None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_sniff_audio(data: bytes, expected: tuple[str, str] | None) -> None:
    assert sniff_audio(data) == expected


def test_sniff_a_real_wav() -> None:
    assert sniff_audio(wav_bytes()) == ("audio/wav", "wav")


@pytest.mark.parametrize(("data", "ctype"), [(MP3, "audio/mpeg"), (OGG_VORBIS, "audio/ogg"), (AIFF, "audio/aiff")])
async def test_analysis_wire_format(
    reccobeats: ReccoBeatsClient, fake_reccobeats: FakeReccoBeats, data: bytes, ctype: str
) -> None:
    got = await reccobeats.analyse_audio(data)
    assert tuple(got) == ANALYSIS_FEATURES
    assert dict(got) == analysis_for(data)
    [upload] = fake_reccobeats.uploads
    assert upload["content_type"] == ctype and upload["size"] == len(data)
    assert upload["filename"].startswith("audio.")


async def test_analysis_of_a_real_wav(reccobeats: ReccoBeatsClient, fake_reccobeats: FakeReccoBeats) -> None:
    data = wav_bytes(2.0)
    fake_reccobeats.analysis_answers[hashlib.sha256(data).hexdigest()] = {
        "acousticness": 0.174,
        "danceability": 0.4004,
        "energy": 0.6899,
        "instrumentalness": 0.0309,
        "liveness": 0.1188,
        "loudness": -6.0411,
        "speechiness": 0.0566,
        "tempo": 147.7849,
        "valence": 0.2747,
    }
    got = await reccobeats.analyse_audio(data)
    assert got["tempo"] == pytest.approx(147.7849) and got["loudness"] == pytest.approx(-6.0411)
    assert "key" not in got and "mode" not in got and "time_signature" not in got
    with pytest.raises(TypeError):
        got["tempo"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"ID3" + bytes(MAX_ANALYSIS_BYTES), "too_large"),
        (PNG, "unsupported_format"),
        (OGG_OPUS, "unsupported_format"),
        (AAC_ADTS, "unsupported_format"),
    ],
)
async def test_refused_before_sending(
    reccobeats: ReccoBeatsClient, fake_reccobeats: FakeReccoBeats, data: bytes, reason: str
) -> None:
    with pytest.raises(AudioNotAnalysable) as info:
        await reccobeats.analyse_audio(data)
    assert info.value.reason == reason and info.value.message
    assert fake_reccobeats.calls["analysis"] == 0


async def test_exactly_five_megabytes_is_sent(reccobeats: ReccoBeatsClient, fake_reccobeats: FakeReccoBeats) -> None:
    data = (b"ID3" + bytes(MAX_ANALYSIS_BYTES))[:MAX_ANALYSIS_BYTES]
    got = await reccobeats.analyse_audio(data)
    assert len(got) == 9 and fake_reccobeats.uploads[0]["size"] == MAX_ANALYSIS_BYTES


async def test_the_servers_size_limit_is_a_distinct_error(provider_env: None, fake_reccobeats: FakeReccoBeats) -> None:
    client = reccobeats_from_settings(max_upload_bytes=8 * 1024 * 1024)  # if the local check were laxer
    try:
        with pytest.raises(AudioNotAnalysable) as info:
            await client.analyse_audio(b"ID3" + bytes(MAX_ANALYSIS_BYTES + 10))
        assert info.value.reason == "too_large"
        assert fake_reccobeats.calls["analysis"] == 1 and fake_reccobeats.uploads == []
    finally:
        await client.close()


async def test_a_file_the_provider_rejects(reccobeats: ReccoBeatsClient, fake_reccobeats: FakeReccoBeats) -> None:
    fake_reccobeats.fail("analysis", Failure(400))
    with pytest.raises(AudioNotAnalysable) as info:
        await reccobeats.analyse_audio(MP3)
    assert info.value.reason == "rejected"
    assert fake_reccobeats.calls["analysis"] == 1  # a bad file is not retried


async def test_the_fake_checks_field_name_and_content_type(fake_reccobeats: FakeReccoBeats) -> None:
    """The fake is strict enough to catch a client sending the wrong field or type."""
    import aiohttp

    url = fake_reccobeats.api_url + "analysis/audio-features"
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("file", MP3, filename="a.mp3", content_type="audio/mpeg")
        async with http.post(url, data=form) as resp:
            assert resp.status == 400
        form = aiohttp.FormData()
        form.add_field("audioFile", MP3, filename="a.mp3", content_type="image/png")
        async with http.post(url, data=form) as resp:
            assert resp.status == 415
        form = aiohttp.FormData()
        form.add_field("audioFile", PNG, filename="a.mp3", content_type="audio/mpeg")
        async with http.post(url, data=form) as resp:
            assert resp.status == 400
        async with http.post(url, json={"audioFile": "x"}) as resp:
            assert resp.status == 400
    assert fake_reccobeats.uploads == []


async def test_rate_limits_and_outages(provider_env: None, fake_reccobeats: FakeReccoBeats) -> None:
    slept = RecordedSleeps()
    reccobeats = reccobeats_from_settings(sleep=slept)  # max_retries 2, Retry-After capped at 1 s
    fake_reccobeats.fail("analysis", Failure(429, headers={"Retry-After": "0.2"}), Failure(503))
    assert len(await reccobeats.analyse_audio(MP3)) == 9
    assert fake_reccobeats.calls["analysis"] == 3
    assert slept[0] == 0.2 and 0.25 <= slept[1] <= 0.5  # what the server asked, then backoff (retry 2)

    fake_reccobeats.fail("analysis", Failure(429, headers={"Retry-After": "600"}))
    with pytest.raises(ProviderUnavailable):  # over the cap: no ten-minute wait
        await reccobeats.analyse_audio(MP3)
    assert fake_reccobeats.calls["analysis"] == 4 and len(slept) == 2
    fake_reccobeats.fail("analysis", *[Failure(500)] * 3)
    with pytest.raises(ProviderUnavailable):
        await reccobeats.analyse_audio(MP3)
    assert fake_reccobeats.calls["analysis"] == 7 and len(slept) == 4
    fake_reccobeats.fail("analysis", Failure(200, body={"danceability": 0.5}))
    with pytest.raises(ProviderUnavailable):  # an answer without the nine values: not retried
        await reccobeats.analyse_audio(MP3)
    assert fake_reccobeats.calls["analysis"] == 8
    fake_reccobeats.fail("analysis", Failure(415))
    with pytest.raises(AudioNotAnalysable):  # refused audio: not retried either
        await reccobeats.analyse_audio(MP3)
    assert fake_reccobeats.calls["analysis"] == 9 and len(slept) == 4
    await reccobeats.close()


async def test_timeout_and_refused(provider_env: None, fake_reccobeats: FakeReccoBeats, closed_port: int) -> None:
    slow = reccobeats_from_settings(max_retries=0, analysis_timeout=0.3)
    fake_reccobeats.fail("analysis", Failure(None, delay=2.0))
    try:
        with pytest.raises(ProviderUnavailable):
            await slow.analyse_audio(MP3)
    finally:
        await slow.close()
    refused = reccobeats_from_settings(api_url=f"http://127.0.0.1:{closed_port}/v1/", max_retries=1)
    try:
        with pytest.raises(ProviderUnavailable):
            await refused.analyse_audio(MP3)
        assert refused.calls == 2
    finally:
        await refused.close()
