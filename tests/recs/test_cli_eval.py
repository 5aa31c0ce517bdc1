"""`main.py recommend` / `evaluate-recs` on a small generated dataset file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest

from bot.config import Settings
from handlers.cli.recs import cmd_evaluate, cmd_recommend, register
from ml.features import AUDIO_FEATURES
from services.rec_eval import run_evaluation
from tests.recs.conftest import make_tracks


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    rows = [
        {
            "track_id": t.spotify_id,
            "artists": t.artists,
            "album_name": t.album,
            "track_name": t.name,
            "popularity": t.popularity,
            "duration_ms": t.duration_ms,
            "explicit": False,
            **{c: getattr(t, c) for c in AUDIO_FEATURES},
            "track_genre": t.genres[0].genre,
        }
        for t in make_tracks()
    ]
    path = tmp_path / "raw" / "spotify_tracks_114genre_train.csv.gz"
    path.parent.mkdir()
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


async def test_recommend_one_track_as_json(dataset: Path, tmp_path: Path, capsys) -> None:
    settings = Settings(data_dir=tmp_path)
    code = await cmd_recommend(
        parse(["recommend", "jazz song 3-1", "-n", "4", "--json", "--source", "dataset"]), settings
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seed"]["name"] == "jazz song 3-1"
    assert len(out["recommendations"]) == 4
    assert all(r["genres"] == ["jazz"] for r in out["recommendations"])


async def test_recommend_many_seeds_from_csv(dataset: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(dataset)
    unseen = frame.iloc[200].to_dict()
    unseen.update(track_id="neverseen0000000000000", track_name="New One", artists="Fresh Face")
    seeds = pd.DataFrame(
        [
            {"id": frame.iloc[5]["track_id"]},  # a Spotify id from the catalogue
            {"id": "3"},  # a catalogue id
            unseen,  # a full feature row the catalogue never saw
            {**unseen, "energy": 7.0},  # out of range
            {"id": "nope"},
        ]
    )
    seeds_path = tmp_path / "seeds.csv"
    seeds.to_csv(seeds_path, index=False)
    out_path = tmp_path / "out.jsonl"
    args = parse(["recommend", "--input", str(seeds_path), "--json", "--output", str(out_path), "--source", "dataset"])
    assert await cmd_recommend(args, Settings(data_dir=tmp_path)) == 0
    lines = [json.loads(x) for x in out_path.read_text().splitlines()]
    assert len(lines) == 5
    assert all(len(x["recommendations"]) == 10 for x in lines[:3])
    assert lines[2]["seed"]["from"] == "features"
    assert {r["genres"][0] for r in lines[2]["recommendations"]} == {frame.iloc[200]["track_genre"]}
    assert "energy" in lines[3]["error"] and "error" in lines[4]


def test_evaluation_report(dataset: Path, tmp_path: Path) -> None:
    report = run_evaluation(dataset, n_test=40, n_validation=20)
    assert "| Original (genre → 10 nearest, unscaled) |" in report.markdown
    assert "95% paired bootstrap interval" in report.markdown
    encore = report.results["Encore (diversity 0.3)"]
    original = report.results["Original (genre → 10 nearest, unscaled)"]
    assert encore.cap_violations == 0
    assert encore.precision >= original.precision - 0.05
    assert encore.duplicate_rate == 0.0
    out = tmp_path / "eval.md"
    code = cmd_evaluate(
        parse(["evaluate-recs", "--out", str(out), "--seeds", "30", "--validation", "15"]), Settings(data_dir=tmp_path)
    )
    assert code == 0 and out.read_text().startswith("# Recommender evaluation")


def test_evaluation_with_model_probabilities_and_holdout(dataset: Path, tmp_path: Path) -> None:
    import numpy as np

    frame = pd.read_csv(dataset)
    holdout = tmp_path / "holdout.json"
    holdout.write_text(json.dumps(frame["track_id"].iloc[::9].tolist()))
    classes = ("jazz", "rock", "techno")

    def proba(rows: pd.DataFrame) -> np.ndarray:
        logits = np.stack(
            [
                3 * rows["acousticness"].to_numpy(),
                3 * (rows["energy"] - rows["danceability"]).to_numpy() + 1.5,
                3 * rows["danceability"].to_numpy(),
            ],
            axis=1,
        )
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    report = run_evaluation(dataset, holdout=holdout, proba_fn=proba, proba_classes=classes, n_test=30, n_validation=20)
    assert "held-out tracks (holdout.json)" in report.markdown
    assert "the catalogue model" in report.markdown
    assert report.results["Encore (diversity 0.3)"].cap_violations == 0


def test_with_a_holdout_both_seed_sets_are_held_out_and_disjoint() -> None:
    import pandas as pd

    from services.rec_eval import split_seeds

    n = 200
    folded = pd.DataFrame(
        {
            "all_ids": [(f"id{i}",) for i in range(n)],
            "song_key": [f"artist {i} - song {i}" for i in range(n)],
            "feature_key": [f"f{i}" for i in range(n)],
        }
    )
    holdout = {f"id{i}" for i in range(0, n, 2)}  # the even songs were never fitted
    split = split_seeds(folded, holdout_ids=holdout, n_test=30, n_validation=20)
    test_ids = {ids[0] for ids in split.test["all_ids"]}
    val_ids = {ids[0] for ids in split.validation["all_ids"]}
    assert len(test_ids) == 30 and len(val_ids) == 20
    assert test_ids <= holdout and val_ids <= holdout and not test_ids & val_ids
    assert not {ids[0] for ids in split.catalog["all_ids"]} & holdout


def test_paired_bootstrap_interval() -> None:
    from services.rec_eval import paired_bootstrap

    better = [0.5, 0.6, 0.4, 0.5] * 50
    worse = [0.3, 0.4, 0.3, 0.2] * 50
    lo, hi = paired_bootstrap(better, worse)
    assert 0.0 < lo <= 0.2 <= hi  # the mean difference is 0.5 − 0.3
    lo, hi = paired_bootstrap(worse, worse)
    assert lo == hi == 0.0
