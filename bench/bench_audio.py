"""Cost of turning a sent song into the 30-s clip for audio analysis (a benchmark, not a timed test).

    .venv/bin/python bench/bench_audio.py [--repeat 7]

Generates its inputs first (not timed): a 4-minute stereo 44.1 kHz MP3 at 192 kbit/s with ID3 tags,
a 1-minute Telegram-style voice message (mono Opus at 48 kHz, 32 kbit/s, in Ogg), and a 16-minute
MP3 made by repeating the 4-minute one's frames (same bit rate and layout: memory and CPU must not
grow with the length, since only the middle is decoded).

For each case, `services.audio_clip.make_clip` (probe, seek, decode, downmix, resample, encode) is
run once to warm up, then `--repeat` times, and the table gives:
- CPU seconds of the process per clip (`time.process_time`, all threads), median and max, against
  the 0.5 s target of issue 13;
- peak memory of one run: Python allocations (tracemalloc, which sees numpy's buffers) and the rise
  of the process's peak RSS (which also sees FFmpeg's own buffers; /proc/self/clear_refs resets the
  peak first), against a 32 MB target: about a third of the 4-minute song decoded whole (85 MB);
- the clip's size against ReccoBeats' 5 MB limit.
Ratio is measured / target; below 1 is within budget.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.audio_clip import AudioClip, ClipFormat, ClipOptions, make_clip
from tests.fakes import media

TARGET_CPU_S = 0.5
TARGET_PEAK_MB = 32.0
TARGET_CLIP_MB = 5.0
MB = 1024 * 1024
SONG = "4-min MP3, stereo 44.1 kHz 192 kbit/s"
VOICE = "1-min voice, Opus 48 kHz in Ogg"
LONG = "16-min MP3 (the song ×4)"


def music(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Something with the texture of music: chords that change every 2 s, a beat of noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    roots = rng.choice([110.0, 130.8, 146.8, 164.8, 196.0, 220.0], size=int(seconds // 2) + 1)
    root = roots[(t // 2).astype(int)]
    phase = 2 * np.pi * np.cumsum(root) / rate
    chord = sum(np.sin(phase * ratio) for ratio in (1.0, 1.25, 1.5, 2.0)) / 4
    beat = (np.exp(-((t * 2) % 1) * 30) * rng.standard_normal(t.shape[0])) * 0.3
    return (0.5 * chord + beat).astype(np.float32)


def make_inputs(folder: Path) -> dict[str, Path]:
    tags = {"title": "Benchmark Song", "artist": "Encore", "album": "Bench"}
    song = music(240, 44_100)
    stereo = np.stack([song, np.roll(song, 441)])
    paths = {SONG: folder / "song.mp3", VOICE: folder / "voice.ogg", LONG: folder / "long.mp3"}
    media.mp3(paths[SONG], stereo, 44_100, tags=tags, bit_rate=192_000)
    speech = music(60, 48_000, seed=1) * np.float32(0.5) + media.noise(60, 48_000, 0.02)
    media.voice_ogg(paths[VOICE], speech[np.newaxis, :])
    bare = io.BytesIO()  # no Xing header: repeated copies make one long CBR stream
    media.mp3(bare, stereo, 44_100, bit_rate=192_000, options={"write_xing": "0", "id3v2_version": "0"})
    paths[LONG].write_bytes(bare.getvalue() * 4)
    return paths


def cpu_seconds(run: Callable[[], object], repeat: int) -> list[float]:
    run()  # warm-up: first-use costs of the codecs
    times = []
    for _ in range(repeat):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return times


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def full_decode(path: Path) -> list[np.ndarray]:
    """The naive way, for reference: every frame of the file decoded and kept (float32, all channels)."""
    with av.open(str(path), mode="r") as container:
        return [frame.to_ndarray() for frame in container.decode(container.streams.audio[0])]


def child(path: Path, fmt: ClipFormat, from_memory: bool, reference: bool) -> int:
    """Run once in this fresh process and print its peak memory as JSON (called by `measure_memory`)."""
    options = ClipOptions(format=fmt)
    data = io.BytesIO(path.read_bytes()) if from_memory else None  # the download, already in RAM once

    def run() -> object:
        return full_decode(path) if reference else make_clip(data if data is not None else path, options)

    result: dict[str, float | None] = {"rss_mb": None}
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
        before = _status_kb("VmRSS")
        run()
        result["rss_mb"] = (_status_kb("VmHWM") - before) / 1024
    except (OSError, LookupError):  # not Linux, or clear_refs not allowed
        run()
    tracemalloc.start()
    run()
    result["traced_mb"] = tracemalloc.get_traced_memory()[1] / MB
    tracemalloc.stop()
    print(json.dumps(result))
    return 0


def measure_memory(path: Path, fmt: ClipFormat, from_memory: bool = False, reference: bool = False) -> dict:
    """Peak memory of one run, measured in a fresh interpreter (the allocator of this one is warm)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(path), "--format", fmt]
    command += ["--from-memory"] * from_memory + ["--reference"] * reference
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_case(path: Path, fmt: ClipFormat, from_memory: bool, repeat: int) -> list[tuple[str, float, float | None]]:
    options = ClipOptions(format=fmt)
    data = path.read_bytes() if from_memory else b""

    def run() -> AudioClip:
        return make_clip(io.BytesIO(data) if from_memory else path, options)

    times = cpu_seconds(run, repeat)
    clip = run()
    memory = measure_memory(path, fmt, from_memory)
    rows: list[tuple[str, float, float | None]] = [
        (f"CPU s per clip, median of {repeat}", statistics.median(times), TARGET_CPU_S),
        (f"CPU s per clip, max of {repeat}", max(times), TARGET_CPU_S),
        ("peak MB, Python allocations (tracemalloc)", memory["traced_mb"], TARGET_PEAK_MB),
    ]
    if memory["rss_mb"] is not None:
        rows.append(("peak MB, process RSS rise", memory["rss_mb"], TARGET_PEAK_MB))
    clip_note = f"{clip.format}, {clip.duration:.1f} s, decoded {clip.decoded_seconds:.1f} s"
    rows.append((f"clip MB ({clip_note})", len(clip.data) / MB, TARGET_CLIP_MB))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--format", choices=("wav", "mp3"), default="wav", help=argparse.SUPPRESS)
    parser.add_argument("--from-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return child(args.child, args.format, args.from_memory, args.reference)
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as folder:
        inputs = make_inputs(Path(folder))
        song = inputs[SONG]
        cases: list[tuple[str, Path, ClipFormat, bool]] = [
            (f"{name} → WAV", path, "wav", False) for name, path in inputs.items()
        ]
        cases.append((f"{SONG} → MP3 128 kbit/s", song, "mp3", False))
        cases.append((f"{SONG}, from memory (BytesIO) → WAV", song, "wav", True))
        print("| input | measure | value | target | ratio |")
        print("|---|---|---|---|---|")
        for label, path, fmt, from_memory in cases:
            size = path.stat().st_size / MB
            for measure, value, target in bench_case(path, fmt, from_memory, args.repeat):
                ratio = f"{value / target:.2f}" if target else ""
                print(f"| {label} ({size:.1f} MB) | {measure} | {value:.3f} | {target or ''} | {ratio} |")
        reference = measure_memory(song, "wav", reference=True)
        for measure, value in (("tracemalloc", reference["traced_mb"]), ("process RSS rise", reference["rss_mb"])):
            if value is not None:
                print(f"| {SONG}: whole file decoded, for reference | peak MB, {measure} | {value:.3f} | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
