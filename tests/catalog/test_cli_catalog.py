"""`main.py data` and `main.py import-catalog`, called the way main.py calls them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bot.config import Settings
from handlers.cli import catalog as cli_catalog
from ml.pipeline.datasets import DATASETS
from tests.catalog.conftest import (
    CATALOG_HEADER,
    SEED_HEADER,
    SMALL_CATALOG,
    SMALL_SEED,
    SMALL_SPECS,
    catalog_rows,
    csv_bytes,
    gz,
    seed_rows,
)

MIRROR = Path(__file__).resolve().parents[3] / "shared" / "data"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_catalog.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def settings_for(tmp_path: Path, mirror: Path | None = None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'data' / 'encore.db'}",
        encore_data_mirror=mirror,
    )


async def run(argv: list[str], settings: Settings) -> int:
    """As `python main.py …` runs a command: schema first when it needs one, services from main's composition."""
    import main

    return await main.run_command(main.build_parser().parse_args(argv), settings)


async def test_import_catalog_creates_the_schema_and_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = catalog_rows(80)
    rows.append([rows[0][0], *rows[0][1:-1], "second-genre"])
    path = tmp_path / "c.csv.gz"
    path.write_bytes(gz(csv_bytes(CATALOG_HEADER, rows)))
    settings = settings_for(tmp_path)

    assert await run(["import-catalog", "--file", str(path), "--no-progress"], settings) == 0
    first = capsys.readouterr().out
    assert await run(["import-catalog", "--file", str(path), "--no-progress"], settings) == 0
    second = capsys.readouterr().out

    assert "read 81 rows" in first and "80 tracks inserted" in first and "81 genre labels added" in first
    assert "0 tracks inserted, 0 updated, 0 aliases and 0 genre labels added" in second


async def test_import_catalog_with_a_missing_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    code = await run(["import-catalog", "--file", str(tmp_path / "nope.csv"), "--no-progress"], settings_for(tmp_path))
    assert code == 1
    assert "nope.csv does not exist" in caplog.text


async def test_data_reports_a_broken_mirror(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / DATASETS["seed"].filename).write_text("track_id,genre_track\nx,metal\n")
    code = await run(["data", "--mirror", str(mirror), "--no-progress"], settings_for(tmp_path))
    assert code == 1
    assert "the mirror copy is unusable: seed_6genre_train.csv: missing columns" in caplog.text


@pytest.mark.skipif(not MIRROR.is_dir(), reason="the shared data mirror is not here")
async def test_data_copies_the_real_mirror(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(tmp_path, mirror=MIRROR)
    assert await run(["data", "--no-progress"], settings) == 0
    for spec in DATASETS.values():
        assert (settings.data_dir / "raw" / spec.filename).read_bytes() == (MIRROR / spec.filename).read_bytes()
    assert "catalog: " in capsys.readouterr().out


def test_mirror_precedence(tmp_path: Path) -> None:
    from main import data_mirror

    assert data_mirror(settings_for(tmp_path, mirror=tmp_path / "m")) == tmp_path / "m"
    expected = MIRROR.resolve() if MIRROR.is_dir() else None
    assert data_mirror(settings_for(tmp_path)) == expected


def test_subcommands_are_registered() -> None:
    args = parse(["data", "--download"])
    assert args.handler is cli_catalog.cmd_data and args.download and args.mirror is None
    args = parse(["import-catalog"])
    assert args.handler is cli_catalog.cmd_import_catalog and args.file is None


async def test_setup_catalog_fetches_and_imports_once(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / SMALL_SEED.filename).write_bytes(csv_bytes(SEED_HEADER, seed_rows(60)))
    (mirror / SMALL_CATALOG.filename).write_bytes(gz(csv_bytes(CATALOG_HEADER, catalog_rows(70))))
    settings = settings_for(tmp_path, mirror=mirror)
    from db.engine import create_engine, create_session_factory
    from db.migrate import upgrade_to_head
    from services.data import DataService

    await upgrade_to_head(settings.db_url)
    engine = create_engine(settings.db_url)
    data = DataService(create_session_factory(engine), settings.data_dir / "raw", mirror=mirror, specs=SMALL_SPECS)
    try:
        first = await data.setup()
        second = await data.setup()
    finally:
        await engine.dispose()

    assert first is not None and first.tracks_inserted == 70
    assert second is None  # the catalog is there: nothing to do
    assert (settings.data_dir / "raw" / SMALL_SEED.filename).is_file()
