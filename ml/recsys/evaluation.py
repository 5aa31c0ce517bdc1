"""Offline evaluation of the recommender against the original method and a random baseline.

Seeds are tracks the index never saw: the catalogue model's held-out groups when
`<models>/catalog/holdout.json` exists, otherwise a deterministic sample of song groups (every
row sharing a song key or an identical feature vector with a seed is removed from the
catalogue). A disjoint validation sample picks Encore's weights; the table reports test seeds.

The original method (the seed project): predict the seed's genre, take the ten nearest tracks of
that genre by unscaled Euclidean distance over the raw features (duration in ms included).
The random baseline: ten random tracks of the predicted genre. All three methods get the same
genre prediction: the catalogue model when it is there, otherwise a distance-weighted 30-NN
vote over catalogue labels in Encore's scaled audio space (a stand-in, named in the report).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data import duplicate_groups
from ml.features import AUDIO_FEATURES
from ml.pipeline.datasets import read_dataset
from ml.recsys.index import CatalogIndex, EngineWeights
from ml.recsys.scaling import RAW_COLUMNS
from ml.text import recording_key, song_key

log = logging.getLogger(__name__)

DATASET = "spotify_tracks_114genre_train.csv.gz"
K = 10
MIN_ARTISTS = 8.0  # weight selection keeps lists with at least this many distinct artists per 10
# ... and a catalogue coverage of at least this share of the random-within-genre baseline's on the same
# seeds: the genre score favours tracks carrying many labels, and past some weight the same few of them
# come back for every seed.
MIN_COVERAGE_SHARE = 0.75
ENCORE = "Encore (diversity 0.3)"


def load_dataset(path: Path) -> pd.DataFrame:
    frame = read_dataset(path)
    frame["artists"] = frame["artists"].fillna("").astype(str)
    frame["track_name"] = frame["track_name"].fillna("").astype(str)
    return frame


def fold_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per recording, folded as the catalogue import folds (`ml.data.duplicate_groups`): the
    most popular row of each group that has a named row, with every genre and id of the group."""
    frame = frame.copy()
    frame["group"] = duplicate_groups(frame)
    frame["song_key"] = [song_key(a, t) for a, t in zip(frame["artists"], frame["track_name"], strict=True)]
    genres = frame.groupby("group")["track_genre"].agg(lambda g: tuple(sorted(set(g))))
    ids = frame.groupby("group")["track_id"].agg(lambda t: tuple(sorted(set(t))))
    named = frame[(frame["artists"].str.strip() != "") & (frame["song_key"] != "")]
    named = named.sort_values(["popularity", "track_id"], ascending=[False, True], kind="stable")
    folded = named.drop_duplicates("group").copy()
    folded["genres"] = folded["group"].map(genres)
    folded["all_ids"] = folded["group"].map(ids)
    folded = folded.sort_values("track_id", kind="stable").reset_index(drop=True)
    folded["id"] = np.arange(1, len(folded) + 1)
    folded["feature_key"] = [
        hashlib.blake2b(np.round(r, 6).tobytes(), digest_size=8).hexdigest()
        for r in folded[list(AUDIO_FEATURES)].to_numpy(dtype=np.float64)
    ]
    return folded


def _stable_fraction(text: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{salt}:{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class Split:
    catalog: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    note: str


def split_seeds(
    folded: pd.DataFrame, *, holdout_ids: set[str] | None = None, n_test: int = 1000, n_validation: int = 500
) -> Split:
    """Hold seed songs out of the catalogue (with every row sharing their feature vector)."""
    if holdout_ids:
        # Test AND validation seeds both come from the model's held-out groups: a song the model was
        # fitted on gets near-certain genre probabilities, which would make the weight choice chase
        # memorised labels instead of real predictions.
        is_held = folded["all_ids"].map(lambda ids: any(i in holdout_ids for i in ids))
        pool = folded[is_held]
        order = pool["song_key"].map(lambda k: _stable_fraction(k, "pick")).sort_values(kind="stable").index
        test = folded.loc[order[:n_test]]
        validation = folded.loc[order[n_test : n_test + n_validation]]
        note = (
            f"seeds: {len(test)} test and {len(validation)} validation songs, both from the catalogue "
            "model's held-out tracks (holdout.json)"
        )
        rest = folded[~is_held]
        val_idx = validation.index[:0]
    else:
        r = folded["song_key"].map(lambda k: _stable_fraction(k, "encore-recs-eval"))
        order = r.sort_values(kind="stable").index
        test = folded.loc[order[:n_test]]
        rest = folded.drop(index=order[:n_test])
        note = (
            f"seeds: a deterministic sample of {len(test)} songs (blake2b of the song key; "
            "no holdout.json from the catalogue model was found)"
        )
        r = rest["song_key"].map(lambda k: _stable_fraction(k, "encore-recs-validation"))
        val_idx = r.sort_values(kind="stable").index[:n_validation]
        validation = rest.loc[val_idx]
    held = set(test["feature_key"]) | set(validation["feature_key"])
    catalog = rest.drop(index=val_idx)
    catalog = catalog[~catalog["feature_key"].isin(held)].reset_index(drop=True)
    return Split(catalog, validation.reset_index(drop=True), test.reset_index(drop=True), note)


# -- methods ------------------------------------------------------------------------------------

Method = Callable[[int], list[int]]  # seed row → catalogue positions


@dataclass
class EvalContext:
    index: CatalogIndex
    seeds: pd.DataFrame
    seed_raw: np.ndarray
    seed_genre: list[str]  # predicted genre per seed (for the baselines)
    seed_proba: np.ndarray | None  # model probabilities per seed, in index.classes order
    genre_rows: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        members: dict[str, list[int]] = {}
        for i, gs in enumerate(self.index.genres):
            for g in gs:
                members.setdefault(g, []).append(i)
        self.genre_rows = {g: np.asarray(v, dtype=np.int64) for g, v in members.items()}

    def seed_keys(self, i: int) -> set[int]:
        return self.index.keys_for(self.seeds.at[i, "artists"], self.seeds.at[i, "track_name"])


def predicted_genres(index: CatalogIndex, seed_raw: np.ndarray, proba: np.ndarray | None) -> list[str]:
    if proba is not None:
        return [index.classes[int(j)] for j in np.argmax(proba, axis=1)]
    out = []
    for row in index.embed_audio(seed_raw):
        dist = index.genre_distribution(row)
        out.append(index.classes[int(np.argmax(dist))])
    return out


def encore_method(ctx: EvalContext, diversity: float = 0.3) -> Method:
    def run(i: int) -> list[int]:
        proba = None if ctx.seed_proba is None else ctx.seed_proba[i]
        query = ctx.index.query_for_raw(ctx.seed_raw[i : i + 1], proba=proba)
        hits = ctx.index.search(
            query, K, exclude_keys=ctx.seed_keys(i), diversity=diversity, seed_artists=ctx.seeds.at[i, "artists"]
        )
        return [h.position for h in hits]

    return run


def original_method(ctx: EvalContext) -> Method:
    """Ten nearest of the predicted genre, unscaled Euclidean over the raw features (+ duration)."""
    raw = np.nan_to_num(ctx.index.raw, nan=0.0)

    def run(i: int) -> list[int]:
        rows = ctx.genre_rows.get(ctx.seed_genre[i], np.arange(len(ctx.index)))
        d = np.linalg.norm(raw[rows] - np.nan_to_num(ctx.seed_raw[i], nan=0.0), axis=1)
        k = min(K, rows.size)
        near = rows[np.argpartition(d, k - 1)[:k]]
        return sorted(near.tolist(), key=lambda p: float(np.linalg.norm(raw[p] - ctx.seed_raw[i])))

    return run


def random_method(ctx: EvalContext, seed: int = 7) -> Method:
    def run(i: int) -> list[int]:
        rows = ctx.genre_rows.get(ctx.seed_genre[i], np.arange(len(ctx.index)))
        rng = np.random.default_rng([seed, i])
        return rng.choice(rows, size=min(K, rows.size), replace=False).tolist()

    return run


# -- metrics ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    precision: float  # genre precision@10, tracks by the seed's artists count as misses
    precision_plain: float  # the same without the artist filter
    unique_artists: float  # distinct main artists per list of 10
    duplicate_rate: float  # share of items repeating the seed's or an earlier item's song
    coverage: float  # share of the catalogue recommended at least once
    diversity: float  # mean pairwise distance inside a list (z-scaled audio features)
    popularity_pct: float  # mean catalogue popularity percentile of recommended tracks (0.5 = neutral)
    popularity: float  # mean popularity (0–100) of recommended tracks
    cap_violations: int  # lists where one artist has more than 2 tracks
    ms_per_seed: float
    per_seed: tuple[float, ...] = field(default=(), repr=False, compare=False)  # precision per seed
    # share of the 10 in one of the seed's genre families (tracks by the seed's artists count as
    # misses); nan without a family map
    family_precision: float = float("nan")
    per_seed_family: tuple[float, ...] = field(default=(), repr=False, compare=False)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(a − b) over the same seeds, resampled with replacement."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(rounds, diff.size))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def evaluate(ctx: EvalContext, method: Method, family_of: Mapping[str, str] | None = None) -> Metrics:
    index = ctx.index
    fam: list[float] = []
    unweighted = index.scaler.transform(index.raw).astype(np.float32)
    seen: set[int] = set()
    prec, prec_plain, uniq, dups, divs, pops, pcts = [], [], [], [], [], [], []
    violations = 0
    started = time.perf_counter()
    lists = [method(i) for i in range(len(ctx.seeds))]
    elapsed = time.perf_counter() - started
    for i, recs in enumerate(lists):
        seed_genres = set(ctx.seeds.at[i, "genres"])
        seed_artists = {a.strip().casefold() for a in ctx.seeds.at[i, "artists"].split(";") if a.strip()}
        hits = hits_plain = 0
        keys = {song_key(ctx.seeds.at[i, "artists"], ctx.seeds.at[i, "track_name"])}
        rkeys = {recording_key(ctx.seeds.at[i, "artists"], ctx.seeds.at[i, "track_name"])}
        dup = 0
        artist_count: dict[str, int] = {}
        seed_families = {family_of.get(g, g) for g in seed_genres} if family_of is not None else set()
        fam_hits = 0
        for p in recs:
            artists = {a.strip().casefold() for a in index.artists[p].split(";") if a.strip()}
            if family_of is not None and not artists & seed_artists:
                fam_hits += bool(seed_families & {family_of.get(g, g) for g in index.genres[p]})
            for a in artists:
                artist_count[a] = artist_count.get(a, 0) + 1
            on_genre = bool(seed_genres & set(index.genres[p]))
            hits_plain += on_genre
            hits += on_genre and not (artists & seed_artists)
            sk = song_key(index.artists[p], index.names[p])
            rk = recording_key(index.artists[p], index.names[p])
            if sk in keys or rk in rkeys:
                dup += 1
            keys.add(sk)
            rkeys.add(rk)
        violations += any(c > 2 for c in artist_count.values())
        prec.append(hits / K)
        fam.append(fam_hits / K)
        prec_plain.append(hits_plain / K)
        uniq.append(len({index.artists[p].split(";")[0].strip().casefold() for p in recs}))
        dups.append(dup / max(len(recs), 1))
        seen.update(recs)
        if len(recs) > 1:
            v = unweighted[recs]
            d = np.linalg.norm(v[:, None, :] - v[None, :, :], axis=2)
            divs.append(float(d.sum() / (len(recs) * (len(recs) - 1))))
        pcts.extend(index.popularity_pct[recs].tolist())
        pops.extend(index.popularity[recs].tolist())
    return Metrics(
        precision=float(np.mean(prec)),
        precision_plain=float(np.mean(prec_plain)),
        unique_artists=float(np.mean(uniq)),
        duplicate_rate=float(np.mean(dups)),
        coverage=len(seen) / len(index),
        diversity=float(np.mean(divs)) if divs else 0.0,
        popularity_pct=float(np.mean(pcts)) if pcts else 0.0,
        popularity=float(np.mean(pops)) if pops else 0.0,
        cap_violations=int(violations),
        ms_per_seed=1000 * elapsed / max(len(lists), 1),
        per_seed=tuple(prec),
        family_precision=float(np.mean(fam)) if family_of is not None and fam else float("nan"),
        per_seed_family=tuple(fam) if family_of is not None else (),
    )


# -- weight selection and the report ---------------------------------------------------------------

FLAT = EngineWeights().with_(features={c: 1.0 for c in EngineWeights().features})


def weight_grid(has_model: bool) -> list[tuple[str, EngineWeights]]:
    """The earlier engine (Hellinger genre similarity, labels mixed half and half with the model's
    probabilities, genre 6) and its neighbours for reference, then the shared-genre score."""
    hellinger = EngineWeights(genre_metric="hellinger", genre=6.0, label_mix=0.5)
    grid: list[tuple[str, EngineWeights]] = [
        ("audio only (genre 0)", hellinger.with_(genre=0.0)),
        ("flat features, audio only", FLAT.with_(genre=0.0)),
        ("hellinger, genre 3, labels 0.5", hellinger.with_(genre=3.0)),
        ("hellinger, genre 6, labels 0.5 (the earlier engine)", hellinger),
    ]
    if has_model:
        grid += [
            (f"hellinger, genre {g:g}, labels {m:g}", hellinger.with_(genre=g, label_mix=m))
            for g, m in ((6.0, 0.75), (6.0, 1.0), (12.0, 1.0))
        ]
    for genre in (4.0, 8.0, 12.0, 16.0):
        for damping in (0.0, 0.25, 0.5):
            for mix in (0.75, 1.0) if has_model else (1.0,):
                grid.append(
                    (
                        f"match, genre {genre:g}, labels {mix:g}, damping {damping:g}",
                        EngineWeights(genre=genre, label_mix=mix, label_damping=damping),
                    )
                )
    return grid


@dataclass
class Report:
    markdown: str
    chosen: str
    weights: EngineWeights
    results: dict[str, Metrics]
    settings: dict[str, SettingResult] = field(default_factory=dict)  # how the seeds were given → results


def _context(
    index: CatalogIndex, seeds: pd.DataFrame, proba_fn: Callable[[pd.DataFrame], np.ndarray] | None
) -> EvalContext:
    seed_raw = seeds[list(RAW_COLUMNS)].to_numpy(dtype=np.float64)
    proba = proba_fn(seeds) if proba_fn is not None else None
    return EvalContext(index, seeds, seed_raw, predicted_genres(index, seed_raw, proba), proba)


SeedSetting = Callable[[pd.DataFrame], Callable[[pd.DataFrame], np.ndarray]]
"""How seeds given some other way get their genre distribution: given the evaluation catalogue (the
evidence a seed's artists may be looked up in), a function from seed rows to probabilities."""
FEATURES_ONLY = "features only"


@dataclass
class SettingResult:
    """One way of giving the seeds (`FEATURES_ONLY`, or e.g. "with artists and title") on the test seeds."""

    results: dict[str, Metrics]
    chosen: str  # Encore's weights picked on validation for this setting
    seed_accuracy: float  # the seed's top genre is one of its labels
    known: tuple[bool, ...]  # per test seed: an artist has songs in the evaluation catalogue


def _pick_weights(
    base: CatalogIndex,
    cat_proba: np.ndarray | None,
    proba_classes: Sequence[str],
    validation: pd.DataFrame,
    seed_fn: Callable[[pd.DataFrame], np.ndarray] | None,
    progress: Callable[[str], None],
    setting: str,
) -> tuple[list[tuple[str, EngineWeights, Metrics]], str, EngineWeights, float]:
    """The most genre-precise weights on the validation seeds whose lists keep 8+ distinct artists in 10
    and enough catalogue coverage: (every weight's metrics, the chosen label and weights, the coverage floor)."""
    tuning: list[tuple[str, EngineWeights, Metrics]] = []
    for label, weights in weight_grid(cat_proba is not None):
        index = base.with_weights(weights, cat_proba, proba_classes)
        ctx_v = _context(index, validation, seed_fn)
        m = evaluate(ctx_v, encore_method(ctx_v, 0.3))
        tuning.append((label, weights, m))
        progress(
            f"validation ({setting}) {label}: precision {m.precision:.3f}, artists {m.unique_artists:.2f}, "
            f"coverage {m.coverage:.3f}"
        )
    ctx_r = _context(base, validation, seed_fn)
    min_coverage = MIN_COVERAGE_SHARE * evaluate(ctx_r, random_method(ctx_r)).coverage
    varied = [t for t in tuning if t[2].unique_artists >= MIN_ARTISTS and t[2].coverage >= min_coverage] or tuning
    label, weights, _ = max(varied, key=lambda t: (round(t[2].precision, 3), t[2].unique_artists))
    return tuning, label, weights, min_coverage


def _fixed(proba: np.ndarray) -> Callable[[pd.DataFrame], np.ndarray]:
    """A proba_fn returning probabilities computed once (the seeds' metadata blend is not cheap)."""
    return lambda _frame: proba


def _seed_accuracy(ctx: EvalContext) -> float:
    return float(np.mean([g in set(gs) for g, gs in zip(ctx.seed_genre, ctx.seeds["genres"], strict=True)]))


def _known_artists(catalog: pd.DataFrame, seeds: pd.DataFrame) -> tuple[bool, ...]:
    from ml.evidence import artist_keys

    known = {k for a in catalog["artists"] for k in artist_keys(a)}
    return tuple(any(k in known for k in artist_keys(a)) for a in seeds["artists"])


def run_evaluation(
    dataset: Path,
    *,
    holdout: Path | None = None,
    proba_fn: Callable[[pd.DataFrame], np.ndarray] | None = None,
    proba_classes: Sequence[str] | None = None,
    n_test: int = 1000,
    n_validation: int = 500,
    progress: Callable[[str], None] = lambda _m: None,
    seed_settings: Mapping[str, SeedSetting] | None = None,
    family_of: Mapping[str, str] | None = None,
) -> Report:
    """Evaluate Encore (weights picked on validation seeds), the original method and random-in-genre.

    Seeds are given as audio features only (the catalogue model's audio probabilities), and, for each of
    `seed_settings` (needs `proba_fn`), some other way — e.g. with their artists and title, whose evidence
    is counted over the evaluation catalogue only. Each setting is scored for every method with the
    product's weights (those chosen for features only: the product has one index) and with the weights
    the validation seeds pick for it. `family_of` adds the genre-family agreement column."""
    started = time.perf_counter()
    folded = fold_frame(load_dataset(dataset))
    holdout_ids = set(json.loads(holdout.read_text())) if holdout and holdout.exists() else None
    split = split_seeds(folded, holdout_ids=holdout_ids, n_test=n_test, n_validation=n_validation)
    progress(f"catalogue {len(split.catalog)} songs, {len(split.validation)} validation / {len(split.test)} test seeds")
    cat_proba = None
    if proba_fn is not None:
        cat_proba = proba_fn(split.catalog)
    base = CatalogIndex.from_frame(split.catalog, weights=EngineWeights(genre=0.0))
    if proba_classes is None:
        proba_classes = base.classes

    tuning, label, weights, min_coverage = _pick_weights(
        base, cat_proba, proba_classes, split.validation, proba_fn, progress, FEATURES_ONLY
    )
    index = base.with_weights(weights, cat_proba, proba_classes)
    ctx = _context(index, split.test, proba_fn)
    results = {
        ENCORE: evaluate(ctx, encore_method(ctx, 0.3), family_of),
        "Encore (diversity 0, familiar)": evaluate(ctx, encore_method(ctx, 0.0), family_of),
        "Encore (diversity 0.7, new)": evaluate(ctx, encore_method(ctx, 0.7), family_of),
        "Original (genre → 10 nearest, unscaled)": evaluate(ctx, original_method(ctx), family_of),
        "Random within genre": evaluate(ctx, random_method(ctx), family_of),
    }
    genre_source = "the catalogue model" if proba_fn is not None else "a 30-NN label vote (no catalogue model found)"
    accuracy = _seed_accuracy(ctx)
    known = _known_artists(split.catalog, split.test)
    settings = {FEATURES_ONLY: SettingResult(results, label, accuracy, known)}
    for name, factory in (seed_settings or {}).items() if cat_proba is not None else ():
        seed_fn = factory(split.catalog)
        p_val, p_test = seed_fn(split.validation), seed_fn(split.test)
        _t, label_s, weights_s, _c = _pick_weights(
            base, cat_proba, proba_classes, split.validation, _fixed(p_val), progress, name
        )
        ctx_p = _context(index, split.test, _fixed(p_test))
        ctx_s = _context(base.with_weights(weights_s, cat_proba, proba_classes), split.test, _fixed(p_test))
        settings[name] = SettingResult(
            {
                ENCORE: evaluate(ctx_p, encore_method(ctx_p, 0.3), family_of),
                f"{ENCORE}, weights picked for this setting": evaluate(ctx_s, encore_method(ctx_s, 0.3), family_of),
                "Original (genre → 10 nearest, unscaled)": evaluate(ctx_p, original_method(ctx_p), family_of),
                "Random within genre": evaluate(ctx_p, random_method(ctx_p), family_of),
            },
            label_s,
            _seed_accuracy(ctx_p),
            known,
        )
        progress(f"{name}: genre P@10 {settings[name].results[ENCORE].precision:.3f} (product weights)")
    md = _markdown(
        split, results, tuning, label, genre_source, accuracy, min_coverage, time.perf_counter() - started, dataset
    )
    if len(settings) > 1:
        md += _settings_markdown(settings, family_of is not None)
    return Report(md, label, weights, results, settings)


def _settings_markdown(settings: Mapping[str, SettingResult], families: bool) -> str:
    """How the seeds were given: every method per setting, paired differences against features only."""
    base = settings[FEATURES_ONLY]
    known = np.asarray(base.known, dtype=bool)
    lines = [
        "",
        "## Seeds given as features only, and with their artists and title",
        "",
        "The same test seeds, given two ways. *Features only*: the genre model's audio probabilities (the "
        "table above). *With artists and title*: `ml.seeds.seed_distribution`, the product's call for a seed "
        "outside the catalogue (the genre model's metadata heads, `GenrePredictor.predict_distribution`), "
        "with evidence tables counted over this evaluation's catalogue only, so a seed's own labels never "
        "reach it. Encore runs with the product's weights (one index: those picked for features only); "
        "the row 'weights picked for this setting' shows what the validation seeds would pick for it. "
        f"Test seeds with an artist that has songs in the evaluation catalogue: {known.mean():.1%}.",
        "",
        "| seeds given | method | genre P@10 (artist filter) | genre P@10 (no filter) | family P@10 | "
        "unique artists /10 | duplicate-song rate | coverage | lists breaking the artist cap | "
        "seed top genre right | weights |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting, res in settings.items():
        for name, m in res.results.items():
            weights = (
                res.chosen if name.endswith("this setting") or (setting == FEATURES_ONLY and name == ENCORE) else ""
            )
            if setting == FEATURES_ONLY and name != ENCORE and name.startswith("Encore"):
                continue  # the dial's ends: in the table above
            fam = f"{m.family_precision:.3f}" if families else "–"
            lines.append(
                f"| {setting} | {name} | {m.precision:.3f} | {m.precision_plain:.3f} | {fam} | "
                f"{m.unique_artists:.2f} | {m.duplicate_rate:.3f} | {m.coverage:.3f} | {m.cap_violations} | "
                f"{res.seed_accuracy:.3f} | {weights} |"
            )
    lines.append("")
    for setting, res in settings.items():
        if setting == FEATURES_ONLY:
            continue
        for name, m in res.results.items():
            ref = base.results.get(ENCORE if name.startswith(ENCORE) else name)
            if ref is None:
                continue
            lo, hi = paired_bootstrap(m.per_seed, ref.per_seed)
            against = "" if name in base.results else f" (against {ENCORE}, features only)"
            line = (
                f"- {name}, {setting} − features only{against}: genre P@10 {m.precision - ref.precision:+.3f} "
                f"(95% paired bootstrap interval: {lo:+.3f} … {hi:+.3f})"
            )
            if families:
                flo, fhi = paired_bootstrap(m.per_seed_family, ref.per_seed_family)
                line += f"; family P@10 {m.family_precision - ref.family_precision:+.3f} ({flo:+.3f} … {fhi:+.3f})"
            lines.append(line)
        if families:
            lines += ["", _unknown_artists_line(setting, res, base, known)]
    lines += [
        "",
        "Family P@10: the share of the 10 in one of the seed's genre families (the model's family map; "
        "tracks by the seed's artists count as misses) — coarser than the 114 labels the engine ranks by, "
        "so a list that moves to a neighbouring genre of the same family still counts. It reuses the same "
        "labels one level up: not an independent source (the issue's independent check is run apart).",
    ]
    return "\n".join(lines) + "\n"


def _unknown_artists_line(setting: str, res: SettingResult, base: SettingResult, known: np.ndarray) -> str:
    """Encore on the seeds whose artists have no song in the evaluation catalogue (left out of the
    evidence: their lists cannot echo the artist's labels) against the others."""
    out = []
    for label, mask in (
        ("no artist with songs in the evaluation catalogue (artists left out of the evidence)", ~known),
        ("an artist with songs there", known),
    ):
        if not mask.any():
            out.append(f"{label}: no seeds")
            continue
        m, ref = res.results[ENCORE], base.results[ENCORE]
        a = np.asarray(m.per_seed_family)[mask]
        b = np.asarray(ref.per_seed_family)[mask]
        lo, hi = paired_bootstrap(a.tolist(), b.tolist())
        out.append(
            f"{label} ({int(mask.sum())} seeds): family P@10 {a.mean():.3f} {setting} vs {b.mean():.3f} features "
            f"only ({a.mean() - b.mean():+.3f}, {lo:+.3f} … {hi:+.3f})"
        )
    return "- Encore, by the seed's artists — " + "; ".join(out)


def _markdown(
    split: Split,
    results: dict[str, Metrics],
    tuning: list[tuple[str, EngineWeights, Metrics]],
    chosen: str,
    genre_source: str,
    accuracy: float,
    min_coverage: float,
    seconds: float,
    dataset: Path,
) -> str:
    lines = [
        "# Recommender evaluation",
        "",
        "Generated by `python main.py evaluate-recs` (ml/recsys/evaluation.py).",
        "",
        f"- data: `{dataset.name}` folded to one row per recording (the catalogue import's rule); "
        f"catalogue {len(split.catalog)} songs",
        f"- {split.note}; the validation songs picked the weights",
        "- seeds are embedded from their audio features only (the catalogue never saw them)",
        f"- predicted genre for the original method and the random baseline: {genre_source}; "
        f"it is one of the seed's labels for {accuracy:.1%} of seeds",
        f"- Encore weights chosen on validation: **{chosen}** (the best genre P@10 among weights keeping "
        f"≥ {MIN_ARTISTS:g} distinct artists per 10 and a catalogue coverage ≥ {min_coverage:.3f}, "
        f"{MIN_COVERAGE_SHARE:g}× the random-within-genre baseline's on the validation seeds)",
        f"- run time {seconds:.0f} s",
        "",
        "| method | genre P@10 (artist filter) | genre P@10 (no filter) | unique artists /10 | "
        "duplicate-song rate | coverage | intra-list diversity | popularity pct | mean popularity | "
        "lists breaking the artist cap | ms/seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in results.items():
        lines.append(
            f"| {name} | {m.precision:.3f} | {m.precision_plain:.3f} | {m.unique_artists:.2f} | "
            f"{m.duplicate_rate:.3f} | {m.coverage:.3f} | {m.diversity:.2f} | {m.popularity_pct:.3f} | "
            f"{m.popularity:.1f} | {m.cap_violations} | {m.ms_per_seed:.2f} |"
        )
    encore = results.get(ENCORE)
    if encore is not None:
        lines.append("")
        for name, m in results.items():
            if name.startswith("Encore"):
                continue
            lo, hi = paired_bootstrap(encore.per_seed, m.per_seed)
            lines.append(
                f"- {ENCORE} − {name}: genre P@10 {encore.precision - m.precision:+.3f} "
                f"(95% paired bootstrap interval over the seeds: {lo:+.3f} … {hi:+.3f})"
            )
    lines += [
        "",
        "Definitions: genre P@10 = share of the 10 recommendations sharing a genre label with the seed, "
        'where tracks by any of the seed\'s artists count as misses (the "no filter" column counts them); '
        "unique artists = distinct main artists among the 10; duplicate-song rate = share of recommendations "
        "repeating the seed's or an earlier recommendation's song (same song key, or same main artist and "
        "title without bracketed/dashed suffixes); coverage = share of the catalogue recommended for at "
        "least one seed; intra-list diversity = mean pairwise Euclidean distance of the 10 tracks in "
        "z/rank-scaled audio features (same space for every method); popularity pct = mean popularity "
        "percentile in the catalogue (0.5 = no bias).",
        "",
        "## Weight selection (validation seeds, Encore at diversity 0.3)",
        "",
        "| weights | genre P@10 | unique artists /10 | coverage | diversity |",
        "|---|---|---|---|---|",
    ]
    for label, _w, m in tuning:
        lines.append(f"| {label} | {m.precision:.3f} | {m.unique_artists:.2f} | {m.coverage:.3f} | {m.diversity:.2f} |")
    return "\n".join(lines) + "\n"
