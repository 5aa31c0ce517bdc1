"""Export files: CSV (with CSV injection neutralised), JSPF and M3U8; parts under a byte limit; 10,000 songs."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from services.dto import TrackInfo
from services.playlist_export import (
    CSV_COLUMNS,
    TELEGRAM_DOCUMENT_LIMIT,
    ExportRow,
    export_files,
    neutralize,
    rows_for,
    slug,
)
from services.playlists import youtube_play_urls

WHEN = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def track(i: int, **extra: object) -> TrackInfo:
    values: dict[str, object] = {
        "id": i,
        "spotify_id": f"sp{i:020d}",
        "name": f"Song {i}",
        "artists": (f"Artist {i % 13}",),
        "album": f"Album {i % 5}",
        "duration_ms": 200_000 + i,
        "deezer_id": 1000 + i,
        "isrc": f"USRC1{i:07d}",
    }
    values.update(extra)
    return TrackInfo(**values)  # type: ignore[arg-type]


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_csv_has_every_link_and_neutralises_formulas() -> None:
    evil = track(
        1,
        name='=HYPERLINK("http://evil.example","click")',
        artists=("+cmd|' /C calc'!A0", "@SUM(1+1)"),
        album="-2+3",
        spotify_id=None,
    )
    tabbed = track(2, name="\tTAB", artists=("\rCR",), deezer_id=None, isrc=None)
    plain = track(3, name='Quote "me", please', artists=("Sigur Rós",))
    files = export_files("csv", "Mine", rows_for([evil, tabbed, plain], {3: "dQw4w9WgXcQ"}), created=WHEN)
    assert len(files) == 1 and files[0].filename == "encore-Mine.csv" and files[0].tracks == 3
    rows = read_csv(files[0].data)
    assert list(rows[0]) == list(CSV_COLUMNS)
    first, second, third = rows
    assert first["title"] == "'" + evil.name
    assert first["artist"] == "'+cmd|' /C calc'!A0, @SUM(1+1)"
    assert first["album"] == "'-2+3"
    assert first["spotify_url"] == "" and first["deezer_url"] == "https://www.deezer.com/track/1001"
    assert first["isrc"] == "USRC10000001"
    assert first["youtube_url"].startswith("https://www.youtube.com/results?search_query=")
    assert second["title"] == "'\tTAB" and second["artist"] == "'\rCR"
    assert third["title"] == 'Quote "me", please' and third["artist"] == "Sigur Rós"
    assert third["spotify_url"] == "https://open.spotify.com/track/sp00000000000000000003"
    assert third["youtube_url"] == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert third["duration"] == "3:20" and third["position"] == "3"
    for row in rows:  # no cell a spreadsheet would run
        assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in row.values())
    assert neutralize("Normal") == "Normal" and neutralize("-M-") == "'-M-"


def test_jspf_is_valid_json_with_locations_and_isrc() -> None:
    files = export_files(
        "jspf", 'Night "drive"', rows_for([track(1), track(2, isrc=None, album=None)], {}), created=WHEN
    )
    doc = json.loads(files[0].data)
    playlist = doc["playlist"]
    assert playlist["title"] == 'Night "drive"' and playlist["creator"] == "Encore"
    assert playlist["date"] == "2026-11-27T12:00:00+00:00"
    first, second = playlist["track"]
    assert first["title"] == "Song 1" and first["creator"] == "Artist 1" and first["album"] == "Album 1"
    assert first["duration"] == 200_001
    assert first["location"][:2] == [
        "https://open.spotify.com/track/sp00000000000000000001",
        "https://www.deezer.com/track/1001",
    ]
    assert first["extension"]["https://musicbrainz.org/doc/jspf#track"]["additional_metadata"]["isrc"] == "USRC10000001"
    assert "album" not in second and "extension" not in second
    assert files[0].filename == "encore-Night-drive.jspf"


def test_m3u8_keeps_one_entry_per_song_whatever_the_title() -> None:
    sneaky = track(1, name="Song\n#EXTINF:1,Injected\nhttp://evil.example/x.mp3", spotify_id=None, deezer_id=None)
    files = export_files("m3u8", "Line\nbreak", rows_for([sneaky, track(2)], {}), created=WHEN)
    text = files[0].data.decode()
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and lines[1] == "#PLAYLIST:Line break"
    assert sum(line.startswith("#EXTINF") for line in lines) == 2
    assert lines[2] == "#EXTINF:200,Artist 1 - Song #EXTINF:1,Injected http://evil.example/x.mp3"
    assert lines[3].startswith("https://www.youtube.com/results?")  # no Spotify/Deezer id: YouTube
    assert lines[5] == "https://open.spotify.com/track/sp00000000000000000002"
    assert "http://evil.example/x.mp3" not in [line.strip() for line in lines if not line.startswith("#")]


@pytest.mark.parametrize("fmt", ["csv", "jspf", "m3u8"])
def test_ten_thousand_songs_fit_and_split_into_complete_parts(fmt: str) -> None:
    tracks = [track(i, name=f"Song {i} " + "ё" * (i % 40)) for i in range(1, 10_001)]
    rows = rows_for(tracks, {i: f"vid{i:08d}" for i in range(1, 10_001, 2)})
    whole = export_files(fmt, "Big", rows, created=WHEN)
    assert len(whole) == 1 and whole[0].tracks == 10_000
    assert len(whole[0].data) < TELEGRAM_DOCUMENT_LIMIT

    limit = 300_000
    parts = export_files(fmt, "Big", rows, created=WHEN, max_bytes=limit)
    assert len(parts) > 3
    assert all(len(p.data) <= limit for p in parts)
    assert [p.part for p in parts] == list(range(1, len(parts) + 1))
    assert {p.parts for p in parts} == {len(parts)}
    assert parts[0].filename == f"encore-Big-part1of{len(parts)}.{'csv' if fmt == 'csv' else fmt}"
    seen: list[str] = []
    for p in parts:  # every part is a whole file of its format
        if fmt == "csv":
            seen += [r["title"] for r in read_csv(p.data)]
        elif fmt == "jspf":
            doc = json.loads(p.data)
            assert doc["playlist"]["title"] == f"Big (part {p.part}/{len(parts)})"
            seen += [t["title"] for t in doc["playlist"]["track"]]
        else:
            text = p.data.decode()
            assert text.startswith("#EXTM3U\n#PLAYLIST:Big (part")
            seen += [line.split(" - ", 1)[1] for line in text.splitlines() if line.startswith("#EXTINF")]
        assert p.tracks == len(seen) - sum(q.tracks for q in parts[: p.part - 1])
    names = [t.name for t in tracks] if fmt != "m3u8" else [" ".join(t.name.split()) for t in tracks]
    assert seen == names  # each song exactly once, in order
    if fmt == "csv":
        positions = [r["position"] for p in parts for r in read_csv(p.data)]
        assert positions == [str(i) for i in range(1, 10_001)]  # positions continue across parts


def test_limits_and_names() -> None:
    with pytest.raises(ValueError):
        export_files("xlsx", "x", [], created=WHEN)
    with pytest.raises(ValueError):
        export_files("csv", "x", [ExportRow(track(1), "u")], created=WHEN, max_bytes=10)
    empty = export_files("m3u8", "Empty", [], created=WHEN)
    assert len(empty) == 1 and empty[0].tracks == 0 and empty[0].data.startswith(b"#EXTM3U")
    assert (
        slug("Лето 2024!") == "Leto-2024"
        and slug("!!!") == "playlist"
        and slug("🎧") == "headphones"
        and slug("a/../../b") == "a-b"
    )


def test_youtube_links_take_fifty_videos_each() -> None:
    ids = [f"v{i:010d}" for i in range(120)]
    urls = youtube_play_urls(ids)
    assert len(urls) == 3
    assert urls[0] == "https://www.youtube.com/watch_videos?video_ids=" + ",".join(ids[:50])
    assert urls[2].count(",") == 19
    assert youtube_play_urls([]) == ()
    assert youtube_play_urls(["a", "a", "b"]) == ("https://www.youtube.com/watch_videos?video_ids=a,b",)
