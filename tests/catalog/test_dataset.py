"""Getting the datasets: mirror copy, resumable download, schema check (all on 127.0.0.1)."""

from __future__ import annotations

import gzip
import io
import os
import sys
from pathlib import Path

import pytest

from bot.cli import progress_bars
from ml.pipeline.datasets import (
    CATALOG,
    DATASETS,
    SEED,
    DatasetError,
    check_schema,
    read_dataset,
)
from services.datasets import download_dataset, ensure_datasets
from tests.catalog.conftest import (
    CATALOG_HEADER,
    SEED_HEADER,
    SMALL_CATALOG,
    SMALL_SEED,
    SMALL_SPECS,
    FileServer,
    catalog_rows,
    csv_bytes,
    gz,
    seed_rows,
)

MIRROR = Path(__file__).resolve().parents[3] / "shared" / "data"


def catalog_gz(n: int = 120) -> bytes:
    return gz(csv_bytes(CATALOG_HEADER, catalog_rows(n)))


def seed_csv(n: int = 80) -> bytes:
    return csv_bytes(SEED_HEADER, seed_rows(n))


class RecordedSleeps(list[float]):
    """Stands in for asyncio.sleep: records the waits between attempts (no wall clock in tests)."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)


async def test_download_both_and_keep_them(file_server: FileServer, tmp_path: Path) -> None:
    file_server.files = {"seed.csv": seed_csv(), "catalog.csv.gz": catalog_gz()}
    urls = {SEED: file_server.url("seed.csv"), CATALOG: file_server.url("catalog.csv.gz")}
    raw = tmp_path / "raw"

    paths = await ensure_datasets(raw, mirror=None, urls=urls, specs=SMALL_SPECS)

    assert paths == {SEED: raw / SMALL_SEED.filename, CATALOG: raw / SMALL_CATALOG.filename}
    assert paths[SEED].read_bytes() == file_server.files["seed.csv"]
    assert paths[CATALOG].read_bytes() == file_server.files["catalog.csv.gz"]
    assert not list(raw.glob("*.part"))
    # A second run finds valid files in place and asks the server for nothing.
    before = len(file_server.requests)
    await ensure_datasets(raw, mirror=None, urls=urls, specs=SMALL_SPECS)
    assert len(file_server.requests) == before


async def test_resumes_after_a_cut_connection(file_server: FileServer, tmp_path: Path) -> None:
    data = catalog_gz(300)
    file_server.files["c.gz"] = data
    file_server.cut_once["c.gz"] = len(data) // 3
    target = tmp_path / SMALL_CATALOG.filename

    await download_dataset(file_server.url("c.gz"), target, SMALL_CATALOG, sleep=RecordedSleeps())

    assert target.read_bytes() == data
    assert file_server.requests == [("c.gz", None), ("c.gz", f"bytes={len(data) // 3}-")]


async def test_resumes_a_part_file_left_by_an_earlier_run(file_server: FileServer, tmp_path: Path) -> None:
    data = seed_csv(100)
    file_server.files["s.csv"] = data
    target = tmp_path / SMALL_SEED.filename
    target.with_name(target.name + ".part").write_bytes(data[:1000])

    await download_dataset(file_server.url("s.csv"), target, SMALL_SEED)

    assert target.read_bytes() == data
    assert file_server.requests == [("s.csv", "bytes=1000-")]


async def test_a_server_ignoring_range_restarts_the_file(file_server: FileServer, tmp_path: Path) -> None:
    data = seed_csv(100)
    file_server.files["s.csv"] = data
    file_server.ignore_range.add("s.csv")
    target = tmp_path / SMALL_SEED.filename
    target.with_name(target.name + ".part").write_bytes(b"garbage that must not stay in front")

    await download_dataset(file_server.url("s.csv"), target, SMALL_SEED)

    assert target.read_bytes() == data


async def test_a_complete_part_file_is_finished_without_refetching(file_server: FileServer, tmp_path: Path) -> None:
    data = seed_csv(100)
    file_server.files["s.csv"] = data
    target = tmp_path / SMALL_SEED.filename
    target.with_name(target.name + ".part").write_bytes(data)

    await download_dataset(file_server.url("s.csv"), target, SMALL_SEED)

    assert target.read_bytes() == data
    assert file_server.requests == [("s.csv", f"bytes={len(data)}-")]  # answered 416


async def test_404_is_a_clear_error(file_server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"seed_6genre_train\.csv: .*/missing\.csv answered HTTP 404"):
        await ensure_datasets(
            tmp_path,
            mirror=None,
            urls={SEED: file_server.url("missing.csv")},
            specs=SMALL_SPECS,
            only=(SEED,),
        )
    assert len(file_server.requests) == 1  # a 404 is not retried
    assert not (tmp_path / SMALL_SEED.filename).exists()


async def test_server_errors_are_retried_then_reported(file_server: FileServer, tmp_path: Path) -> None:
    file_server.status["s.csv"] = 503
    slept = RecordedSleeps()
    with pytest.raises(DatasetError, match="failed after 3 attempts"):
        await download_dataset(file_server.url("s.csv"), tmp_path / "x.csv", SMALL_SEED, attempts=3, sleep=slept)
    assert len(file_server.requests) == 3
    # Jittered exponential backoff from retry_delay (1 s): half to all of 1 s, then of 2 s.
    assert len(slept) == 2 and 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0


async def test_retry_after_is_honoured_up_to_a_cap(file_server: FileServer, tmp_path: Path) -> None:
    data = seed_csv(100)
    file_server.files["s.csv"] = data
    file_server.failures["s.csv"] = [(503, {"Retry-After": "7"}), (429, {"Retry-After": "3"})]
    slept = RecordedSleeps()
    target = tmp_path / SMALL_SEED.filename
    await download_dataset(file_server.url("s.csv"), target, SMALL_SEED, sleep=slept)
    assert target.read_bytes() == data and slept == [7.0, 3.0]

    file_server.failures["s.csv"] = [(503, {"Retry-After": "86400"})]
    slept.clear()
    with pytest.raises(DatasetError, match="asks to wait 86400s"):
        await download_dataset(file_server.url("s.csv"), tmp_path / "y.csv", SMALL_SEED, sleep=slept)
    assert slept == [] and file_server.requests[-1] == ("s.csv", None)


async def test_a_truncated_file_is_refused(file_server: FileServer, tmp_path: Path) -> None:
    file_server.files["s.csv"] = seed_csv(20)  # complete transfer, but too few rows
    target = tmp_path / SMALL_SEED.filename
    with pytest.raises(DatasetError, match=r"seed_6genre_train\.csv: refused: .*only 20 rows, at least 50"):
        await download_dataset(file_server.url("s.csv"), target, SMALL_SEED)
    assert not target.exists()
    assert not target.with_name(target.name + ".part").exists()  # the next run starts afresh


async def test_a_file_cut_mid_line_is_refused(file_server: FileServer, tmp_path: Path) -> None:
    data = seed_csv(100)
    file_server.files["s.csv"] = data[: len(data) - 40]  # the last row loses its last columns
    with pytest.raises(DatasetError, match=r"empty or non-numeric value.*truncated or corrupt"):
        await download_dataset(file_server.url("s.csv"), tmp_path / SMALL_SEED.filename, SMALL_SEED)


async def test_a_truncated_gzip_is_refused(file_server: FileServer, tmp_path: Path) -> None:
    data = catalog_gz(200)
    file_server.files["c.gz"] = data[: len(data) // 2]
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        await download_dataset(file_server.url("c.gz"), tmp_path / SMALL_CATALOG.filename, SMALL_CATALOG)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<!doctype html><html><body>Rate limited</body></html>\n" * 60, "missing columns track_id"),
        (csv_bytes(("id", "name", "score"), [[i, f"x{i}", i / 3] for i in range(100)]), "not the expected dataset"),
        (bytes(range(256)) * 50, "cannot be read|not a readable CSV|missing columns"),
    ],
    ids=["html", "other-csv", "binary"],
)
async def test_a_foreign_file_is_refused(file_server: FileServer, tmp_path: Path, body: bytes, message: str) -> None:
    file_server.files["c.gz"] = body
    with pytest.raises(DatasetError, match=message):
        await download_dataset(file_server.url("c.gz"), tmp_path / SMALL_CATALOG.filename, SMALL_CATALOG)
    assert not (tmp_path / SMALL_CATALOG.filename).exists()


async def test_hugging_face_format_is_normalised(file_server: FileServer, tmp_path: Path) -> None:
    """The HF original is a plain CSV with a leading unnamed index column: stored gzip, index dropped."""
    rows = catalog_rows(120)
    file_server.files["dataset.csv"] = csv_bytes(CATALOG_HEADER, rows, index_column=True)
    target = tmp_path / SMALL_CATALOG.filename

    await download_dataset(file_server.url("dataset.csv"), target, SMALL_CATALOG)

    assert gzip.decompress(target.read_bytes()) == csv_bytes(CATALOG_HEADER, rows)
    frame = read_dataset(target)
    assert tuple(frame.columns) == CATALOG_HEADER
    assert len(frame) == 120


def test_read_dataset_accepts_plain_and_gzip_whatever_the_name(tmp_path: Path) -> None:
    plain = tmp_path / "a.csv.gz"
    plain.write_bytes(csv_bytes(CATALOG_HEADER, catalog_rows(60), index_column=True))
    packed = tmp_path / "b.csv"
    packed.write_bytes(catalog_gz(60))
    assert tuple(read_dataset(plain).columns) == tuple(read_dataset(packed).columns) == CATALOG_HEADER


async def test_copies_from_the_mirror(tmp_path: Path, file_server: FileServer) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / SMALL_SEED.filename).write_bytes(seed_csv())
    (mirror / SMALL_CATALOG.filename).write_bytes(catalog_gz())
    os.chmod(mirror / SMALL_SEED.filename, 0o444)
    raw = tmp_path / "data" / "raw"
    urls = {SEED: file_server.url("never"), CATALOG: file_server.url("never")}

    paths = await ensure_datasets(raw, mirror=mirror, urls=urls, specs=SMALL_SPECS)

    for name, spec in SMALL_SPECS.items():
        assert paths[name].read_bytes() == (mirror / spec.filename).read_bytes()
    assert os.access(paths[SEED], os.W_OK)  # the mirror's read-only mode is not copied
    assert file_server.requests == []


async def test_a_mirror_without_the_file_falls_back_to_download(tmp_path: Path, file_server: FileServer) -> None:
    file_server.files["s.csv"] = seed_csv()
    (tmp_path / "mirror").mkdir()
    paths = await ensure_datasets(
        tmp_path / "raw",
        mirror=tmp_path / "mirror",
        urls={SEED: file_server.url("s.csv")},
        specs=SMALL_SPECS,
        only=(SEED,),
    )
    assert paths[SEED].read_bytes() == file_server.files["s.csv"]


async def test_a_broken_mirror_file_is_an_error(tmp_path: Path, file_server: FileServer) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / SMALL_SEED.filename).write_bytes(seed_csv(10))
    with pytest.raises(DatasetError, match=r"mirror copy is unusable: seed_6genre_train\.csv: only 10 rows"):
        await ensure_datasets(
            tmp_path / "raw",
            mirror=mirror,
            urls={SEED: file_server.url("s.csv")},
            specs=SMALL_SPECS,
            only=(SEED,),
        )
    assert file_server.requests == []


async def test_an_invalid_file_in_place_is_fetched_again(tmp_path: Path, file_server: FileServer) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / SMALL_SEED.filename).write_bytes(seed_csv(10))
    file_server.files["s.csv"] = seed_csv()
    paths = await ensure_datasets(
        raw, mirror=None, urls={SEED: file_server.url("s.csv")}, specs=SMALL_SPECS, only=(SEED,)
    )
    assert paths[SEED].read_bytes() == file_server.files["s.csv"]


def test_schema_check_names_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "seed.csv"
    path.write_bytes(csv_bytes(SEED_HEADER[:-2], [r[:-2] for r in seed_rows(60)]))
    with pytest.raises(DatasetError, match=r"seed\.csv: missing columns tempo, time_signature"):
        check_schema(path, SMALL_SEED)


def test_schema_check_refuses_non_boolean_explicit(tmp_path: Path) -> None:
    rows = seed_rows(60)
    rows[5][3] = "maybe"
    path = tmp_path / "seed.csv"
    path.write_bytes(csv_bytes(SEED_HEADER, rows))
    with pytest.raises(DatasetError, match="'explicit' must hold True/False, found 'maybe' at data row 6"):
        check_schema(path, SMALL_SEED)


def test_schema_check_reads_explicit_as_training_and_import_do(tmp_path: Path) -> None:
    """The check accepts exactly what `ml.features.parse_bool` reads (yes/no, any case included)."""
    rows = seed_rows(60)
    rows[1][3], rows[2][3], rows[3][3] = "yes", "NO", " True "
    path = tmp_path / "seed.csv"
    path.write_bytes(csv_bytes(SEED_HEADER, rows))
    check_schema(path, SMALL_SEED)


def test_schema_check_limits_rows_without_names(tmp_path: Path) -> None:
    rows = catalog_rows(60)
    for row in rows[:2]:
        row[1] = row[3] = ""
    path = tmp_path / "c.csv.gz"
    path.write_bytes(gz(csv_bytes(CATALOG_HEADER, rows)))
    with pytest.raises(DatasetError, match="2 rows lack artists/album/name"):
        check_schema(path, SMALL_CATALOG)


@pytest.mark.skipif(not MIRROR.is_dir(), reason="the shared data mirror is not here")
@pytest.mark.parametrize(("name", "rows"), [(SEED, 17_947), (CATALOG, 91_049)])
def test_the_real_mirror_files_pass(name: str, rows: int) -> None:
    report = check_schema(MIRROR / DATASETS[name].filename, DATASETS[name])
    assert report.rows == rows


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_progress_bar_on_a_terminal(
    file_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_server.files["s.csv"] = seed_csv(100)
    terminal = _Tty()
    monkeypatch.setattr(sys, "stderr", terminal)
    target = tmp_path / SMALL_SEED.filename
    await download_dataset(file_server.url("s.csv"), target, SMALL_SEED, progress=progress_bars())
    assert "seed_6genre_train.csv" in terminal.getvalue()
    # … and none when asked not to.
    terminal.seek(0)
    terminal.truncate()
    target.unlink()
    await download_dataset(file_server.url("s.csv"), target, SMALL_SEED)
    assert terminal.getvalue() == ""
