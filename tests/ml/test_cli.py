from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bot.cli import CliContext
from bot.config import Settings
from handlers.cli import ml as cli_ml
from tests.ml.conftest import make_catalog_frame, make_seed_frame


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_ml.register(parser.add_subparsers())
    return parser.parse_args(argv)


def _cli(settings: Settings) -> CliContext:
    async def no_services() -> Any:
        raise AssertionError("train and predict need no services")

    return CliContext(settings, no_services)


@pytest.mark.parametrize(
    ("task", "label", "make"),
    [("catalog", "track_genre", make_catalog_frame), ("seed6", "genre_track", make_seed_frame)],
)
def test_predict_writes_dataset_columns(
    trained_models: Path, tiny_data_dir: Path, tmp_path: Path, task: str, label: str, make
) -> None:  # type: ignore[no-untyped-def]
    tracks = make().head(20).drop(columns=["track_genre", "genre_track"], errors="ignore")
    tracks.to_csv(tmp_path / "tracks.csv", index=False)
    args = _parse(
        ["predict", "--input", str(tmp_path / "tracks.csv"), "--output", str(tmp_path / "out.csv"), "--model", task]
    )
    settings = Settings(data_dir=tiny_data_dir, model_dir=trained_models)
    assert args.handler(args, _cli(settings)) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 20
    assert {"track_id", label, "probability", "top1", "top2", "top3", "top_genres"} <= set(out.columns)
    assert (out[label] == out["top1"]).all()


def test_predict_refuses_bad_rows(
    trained_models: Path, tiny_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tracks = make_catalog_frame().head(5)
    tracks.loc[3, "tempo"] = None
    tracks.to_csv(tmp_path / "tracks.csv", index=False)
    args = _parse(["predict", "--input", str(tmp_path / "tracks.csv"), "--output", str(tmp_path / "o.csv")])
    assert args.handler(args, _cli(Settings(data_dir=tiny_data_dir, model_dir=trained_models))) == 2
    assert "tempo" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_train_if_missing_skips_existing(
    trained_models: Path, tiny_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse(["train", "--quick", "--if-missing"])
    assert args.zoo is False
    assert args.handler(args, _cli(Settings(data_dir=tiny_data_dir, model_dir=trained_models))) == 0
    assert "nothing to do" in capsys.readouterr().out
