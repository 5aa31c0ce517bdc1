from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bot.cli import CliContext
from bot.config import Settings
from handlers.cli import ml as cli_ml
from main import model_service
from tests.ml.conftest import make_catalog_frame, make_seed_frame


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_ml.register(parser.add_subparsers())
    return parser.parse_args(argv)


def _cli(settings: Settings) -> CliContext:
    async def no_services() -> Any:
        raise AssertionError("train and predict need no services")

    return CliContext(settings, no_services, models=model_service(settings))


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
    trained_models: Path, tiny_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracks = make_catalog_frame().head(5)
    tracks.loc[3, "tempo"] = None
    tracks.to_csv(tmp_path / "tracks.csv", index=False)
    args = _parse(["predict", "--input", str(tmp_path / "tracks.csv"), "--output", str(tmp_path / "o.csv")])
    assert args.handler(args, _cli(Settings(data_dir=tiny_data_dir, model_dir=trained_models))) == 2
    assert "tempo" in caplog.text
    assert not (tmp_path / "o.csv").exists()


def test_train_if_missing_skips_existing(
    trained_models: Path, tiny_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse(["train", "--quick", "--if-missing"])
    assert args.zoo is False
    assert args.handler(args, _cli(Settings(data_dir=tiny_data_dir, model_dir=trained_models))) == 0
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("columns", "audio_only", "heads"),
    [
        (["artists", "track_name"], False, {"audio+artist+title"}),
        (["artists"], False, {"audio+artist"}),
        ([], False, {"audio"}),
        (["artists", "track_name"], True, {"audio"}),
    ],
)
def test_predict_uses_artist_and_title_columns(
    trained_models: Path, tiny_data_dir: Path, tmp_path: Path, columns: list[str], audio_only: bool, heads: set[str]
) -> None:
    tracks = make_catalog_frame().sample(30, random_state=0).drop(columns=["track_genre", "album_name"])
    tracks = tracks.drop(columns=[c for c in ("artists", "track_name") if c not in columns])
    tracks.to_csv(tmp_path / "tracks.csv", index=False)
    argv = ["predict", "--input", str(tmp_path / "tracks.csv"), "--output", str(tmp_path / "out.csv")]
    args = _parse(argv + (["--audio-only"] if audio_only else []))
    assert args.handler(args, _cli(Settings(data_dir=tiny_data_dir, model_dir=trained_models))) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert set(out["head"]) == heads
    assert out["evidence"].notna().all()
    if heads == {"audio+artist+title"}:
        # every generated artist files all its songs under one genre: the artist head knows it
        truth = make_catalog_frame().set_index("track_id")["track_genre"]
        assert (out["track_genre"] == out["track_id"].map(truth.groupby(level=0).first())).mean() > 0.9


def test_train_threads_cap_reaches_every_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.training import zoo

    assert _parse(["train", "--threads", "1"]).threads == 1
    assert _parse(["train", "--seed-only"]).seed_only and not _parse(["train"]).seed_only
    monkeypatch.setattr(zoo, "_thread_cap", None)  # restored after the test
    zoo.set_thread_cap(1)
    assert zoo.thread_cap() == 1
    assert zoo.make_model("catboost", {"iterations": 5}, 0).get_params()["thread_count"] == 1
    assert zoo.make_model("random_forest", {}, 0).n_jobs == 1
    zoo.set_thread_cap(None)
    assert zoo.make_model("random_forest", {}, 0).n_jobs == zoo.THREADS["random_forest"]


def test_predict_reads_its_input_as_the_datasets_are_read(
    trained_models: Path, tiny_data_dir: Path, tmp_path: Path
) -> None:
    """One CSV reader (ml.pipeline.datasets.read_dataset): only an empty cell is missing, so a track id
    or a name "NA" / "None" stays text and an id keeps its leading zeros."""
    tracks = make_catalog_frame().head(4).drop(columns=["track_genre"])
    tracks["track_id"] = ["NA", "null", "None", "0042"]
    tracks["artists"] = ["NA", "None", "", "Nirvana"]
    tracks.to_csv(tmp_path / "tracks.csv", index=False)
    args = _parse(["predict", "--input", str(tmp_path / "tracks.csv"), "--output", str(tmp_path / "out.csv")])
    assert args.handler(args, _cli(Settings(data_dir=tiny_data_dir, model_dir=trained_models))) == 0
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False, dtype=str)
    assert list(out["track_id"]) == ["NA", "null", "None", "0042"]
