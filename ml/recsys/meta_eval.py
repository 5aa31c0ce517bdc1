"""Prototype measurement for issue 14 §2: radio seeds outside the catalogue, given with their artists.

    python -m ml.recsys.meta_eval [--data data/raw/spotify_tracks_114genre_train.csv.gz]
        [--model data/models/catalog] [--out docs/recs-meta-prototype.md]

Same seeds, catalogue, engine, weight grid and selection rule as `ml.recsys.evaluation.run_evaluation`
(seeds = the catalogue model's held-out songs, removed from the catalogue with every row sharing their
feature vector). The only change is where a seed's genre distribution comes from:

  * "audio only": the genre model's audio probabilities (today's evaluation);
  * "artists": `seed_distribution(..., use_title=False)`, i.e. `GenrePredictor.predict_distribution(
    matrix, artists=seeds.artists, titles=None, blend=catalogue_blend(...))` — the model's "audio+artist"
    head, whose artist evidence is counted over the evaluation catalogue only, so a seed's own labels
    never reach it (in the product: the same call without `blend=`, the artefact's tables);
  * "artists + title": the same with the "audio+artist+title" head.

Catalogue tracks keep their audio probabilities (the engine ranks them by their labels anyway). Each
setting picks its own weights on the validation seeds, then is scored once on the test seeds. Nothing in
the recommender changes; this only measures (the engine is moving to ml/recsys/).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ml.evidence import CountTable, artist_keys, artist_name_tokens, title_tokens
from ml.meta import MetadataBlend
from ml.predictor import GenrePredictor, routed_proba
from ml.recsys.evaluation import (
    ENCORE,
    MIN_ARTISTS,
    MIN_COVERAGE_SHARE,
    Metrics,
    SeedSetting,
    _context,
    encore_method,
    evaluate,
    fold_frame,
    load_dataset,
    original_method,
    paired_bootstrap,
    random_method,
    split_seeds,
    weight_grid,
)
from ml.recsys.index import CatalogIndex, EngineWeights
from ml.seeds import seed_distribution as seeds_distribution

SETTINGS = ("audio only", "artists", "artists + title")


def catalogue_blend(predictor: GenrePredictor, catalog: pd.DataFrame) -> MetadataBlend:
    """The artefact's fitted blend heads over evidence tables counted on `catalog` alone.

    One count per (song, genre label) of the folded catalogue, as the training tables count rows.
    """
    if predictor.blend is None:
        raise ValueError("the catalogue model has no metadata heads (retrain it)")
    artists, names, labels = [], [], []
    classes = set(predictor.classes)
    for a, t, genres in zip(catalog["artists"], catalog["track_name"], catalog["genres"], strict=True):
        keys, ntok, ttok = artist_keys(a), artist_name_tokens(a), title_tokens(t)
        for g in genres:
            if g in classes:
                artists.append(keys)
                names.append(ntok + ttok)
                labels.append(g)
    return MetadataBlend(
        predictor.classes,
        CountTable.build(artists, labels, predictor.classes),
        CountTable.build(names, labels, predictor.classes),
        predictor.blend.config,
        predictor.blend.family_matrix,
    )


def model_matrix(predictor: GenrePredictor, frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack(
        [
            frame[c].to_numpy(dtype=np.float64) if c in frame else np.full(len(frame), np.nan)
            for c in predictor.raw_inputs
        ]
    )


def seed_distribution(
    predictor: GenrePredictor, blend: MetadataBlend, seeds: pd.DataFrame, *, use_artists: bool, use_title: bool
) -> tuple[np.ndarray, list[str]]:
    """(n, classes) genre distribution per seed and the head that produced it: the product's
    `ml.seeds.seed_distribution` over the evaluation catalogue's evidence tables (`blend`)."""
    matrix = model_matrix(predictor, seeds)
    if not use_artists and not use_title:
        return routed_proba(predictor, matrix), ["audio"] * len(seeds)
    return seeds_distribution(
        predictor,
        matrix,
        artists=seeds["artists"].tolist() if use_artists else None,
        titles=seeds["track_name"].tolist() if use_title else None,
        blend=blend,
    )


WITH_ARTISTS = "with artists and title"


def artist_settings(predictor: GenrePredictor) -> dict[str, SeedSetting]:
    """The seed setting `ml.recsys.evaluation.run_evaluation` (`main.py evaluate-recs`) adds to features
    only: seeds given with their artists and title, evidence counted over the evaluation catalogue.
    Empty when the model has no metadata heads."""
    if predictor.blend is None:
        return {}

    def factory(catalog: pd.DataFrame) -> Callable[[pd.DataFrame], np.ndarray]:
        blend = catalogue_blend(predictor, catalog)
        return lambda seeds: seed_distribution(predictor, blend, seeds, use_artists=True, use_title=True)[0]

    return {WITH_ARTISTS: factory}


def _fixed(proba: np.ndarray) -> Callable[[pd.DataFrame], np.ndarray]:
    """A proba_fn for `rec_eval._context` that returns probabilities computed beforehand."""
    return lambda _frame: proba


def run(dataset: Path, model_dir: Path, n_test: int = 1000, n_validation: int = 500) -> str:
    started = time.perf_counter()
    predictor = GenrePredictor.load(model_dir)
    folded = fold_frame(load_dataset(dataset))
    holdout = set(json.loads((model_dir / "holdout.json").read_text()))
    split = split_seeds(folded, holdout_ids=holdout, n_test=n_test, n_validation=n_validation)
    cat_proba = routed_proba(predictor, model_matrix(predictor, split.catalog))
    base = CatalogIndex.from_frame(split.catalog, weights=EngineWeights(genre=0.0))
    blend = catalogue_blend(predictor, split.catalog)
    known = [bool(blend.artists.known(artist_keys(a))) for a in split.test["artists"]]
    rows: dict[str, dict[str, Metrics]] = {}
    chosen: dict[str, str] = {}
    seed_acc: dict[str, float] = {}
    for setting in SETTINGS:
        use_artists = setting != "audio only"
        use_title = setting == "artists + title"
        p_val, _ = seed_distribution(predictor, blend, split.validation, use_artists=use_artists, use_title=use_title)
        p_test, heads = seed_distribution(predictor, blend, split.test, use_artists=use_artists, use_title=use_title)
        tuning = []
        for label, weights in weight_grid(True):
            index = base.with_weights(weights, cat_proba, predictor.classes)
            ctx_v = _context(index, split.validation, _fixed(p_val))
            tuning.append((label, weights, evaluate(ctx_v, encore_method(ctx_v, 0.3))))
        ctx_r = _context(base, split.validation, _fixed(p_val))
        min_coverage = MIN_COVERAGE_SHARE * evaluate(ctx_r, random_method(ctx_r)).coverage
        varied = [t for t in tuning if t[2].unique_artists >= MIN_ARTISTS and t[2].coverage >= min_coverage] or tuning
        label, weights, _ = max(varied, key=lambda t: (round(t[2].precision, 3), t[2].unique_artists))
        chosen[setting] = label
        index = base.with_weights(weights, cat_proba, predictor.classes)
        ctx = _context(index, split.test, _fixed(p_test))
        seed_acc[setting] = float(
            np.mean([g in set(gs) for g, gs in zip(ctx.seed_genre, ctx.seeds["genres"], strict=True)])
        )
        rows[setting] = {
            ENCORE: evaluate(ctx, encore_method(ctx, 0.3)),
            "Original (genre → 10 nearest, unscaled)": evaluate(ctx, original_method(ctx)),
            "Random within genre": evaluate(ctx, random_method(ctx)),
        }
        print(
            f"{setting}: heads {pd.Series(heads).value_counts().to_dict()}, weights {label}, "
            f"P@10 {rows[setting][ENCORE].precision:.3f}"
        )
    return _markdown(
        split.note,
        rows,
        chosen,
        seed_acc,
        float(np.mean(known)),
        predictor.version,
        time.perf_counter() - started,
        len(split.catalog),
    )


def _markdown(
    note: str,
    rows: dict[str, dict[str, Metrics]],
    chosen: dict[str, str],
    seed_acc: dict[str, float],
    known: float,
    version: str,
    seconds: float,
    n_catalog: int,
) -> str:
    lines = [
        "# Radio seeds with their artists (issue 14 §2, prototype measurement)",
        "",
        "Generated by `python -m ml.recsys.meta_eval` (see its docstring for the protocol).",
        "",
        f"- model {version}; catalogue {n_catalog} songs; {note}",
        f"- test seeds whose artists have songs in the evaluation catalogue: {known:.1%}",
        f"- run time {seconds:.0f} s",
        "",
        "| seed genre distribution | method | genre P@10 (artist filter) | genre P@10 (no filter) | "
        "unique artists /10 | duplicate-song rate | coverage | lists breaking the artist cap | "
        "seed top-1 genre right | weights (validation) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting, methods in rows.items():
        for name, m in methods.items():
            lines.append(
                f"| {setting} | {name} | {m.precision:.3f} | {m.precision_plain:.3f} | {m.unique_artists:.2f} | "
                f"{m.duplicate_rate:.3f} | {m.coverage:.3f} | {m.cap_violations} | {seed_acc[setting]:.3f} | "
                f"{chosen[setting] if name == ENCORE else ''} |"
            )
    lines.append("")
    base = rows["audio only"][ENCORE]
    for setting in SETTINGS[1:]:
        m = rows[setting][ENCORE]
        lo, hi = paired_bootstrap(m.per_seed, base.per_seed)
        lines.append(
            f"- {ENCORE}, {setting} − audio only: genre P@10 {m.precision - base.precision:+.3f} "
            f"(95% paired bootstrap interval over the test seeds: {lo:+.3f} … {hi:+.3f})"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("data/raw/spotify_tracks_114genre_train.csv.gz"))
    parser.add_argument("--model", type=Path, default=Path("data/models/catalog"))
    parser.add_argument("--out", type=Path, default=Path("docs/recs-meta-prototype.md"))
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--validation", type=int, default=500)
    args = parser.parse_args(argv)
    md = run(args.data, args.model, args.seeds, args.validation)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
