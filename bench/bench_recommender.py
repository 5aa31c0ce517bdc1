"""Benchmark the recommender on the full 114-genre catalogue.

    .venv/bin/python bench/bench_recommender.py [--csv PATH] [--seeds 500] [--sessions 1000]

Builds `ml.recsys.index.CatalogIndex` from the dataset folded to one row per song, then for
the same seeds times:

- Encore: 10 recommendations with every filter on (the seed, 60 shown and 20 skipped tracks
  excluded, the seed's song keys, the artist window over 9 recent tracks, MMR, skip
  neighbourhoods pushed down), query building included — for catalogue seeds and for unseen
  seeds given only as audio features (their genre estimated from neighbours);
- the original method: the seed's genre, then the ten nearest tracks of that genre by unscaled
  Euclidean distance — as the seed project did it (a pandas filter per request) and with the
  genre subsets precomputed in numpy (the fastest form of that method);

and prints p50/p99 against the 1 ms target with the ratios now/target, then the memory that 1,000 live
radio sessions (the in-process state RadioService caches: taste vector, shown and skipped
lists after 60 steps) take, measured with tracemalloc, and the size of the persisted taste JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import catalog_csv
from bench.live import table
from ml.recsys.evaluation import fold_frame, load_dataset
from ml.recsys.index import CatalogIndex
from ml.recsys.scaling import RAW_COLUMNS
from services.radio import LiveRadio

TARGET_MS = 1.0  # issue 15: p99 ≤ 1 ms for 10 results with all filters (was 5 ms)
BEST_OF = 5


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=None, help="114-genre CSV (default: data/raw, ../shared/data)")
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    args.csv = args.csv or catalog_csv()

    started = time.perf_counter()
    frame = fold_frame(load_dataset(args.csv))
    loaded = time.perf_counter()
    index = CatalogIndex.from_frame(frame)
    built = time.perf_counter()
    # As `serve` does once its indices are loaded (main.settle_heap): the index's objects out of the
    # cyclic collector's sight, so a full collection does not walk them in the middle of a search.
    gc.collect()
    gc.freeze()
    n = len(index)
    print(f"catalogue: {n} songs ({args.csv.name}); load+fold {loaded - started:.1f} s, index {built - loaded:.1f} s")
    print(
        f"embedding: {index.audio.shape[1]} audio dims (float32) + sparse genre block "
        f"{index.genre.shape[1]} classes, {index.genre.nnz} non-zeros; "
        f"{(index.audio.nbytes + index.genre.data.nbytes) / 2**20:.1f} MiB"
    )

    rng = np.random.default_rng(args.seed)
    seeds = rng.choice(n, size=args.seeds, replace=False)
    shown = [rng.choice(n, size=60, replace=False) for _ in seeds]
    skipped = [rng.choice(n, size=20, replace=False) for _ in seeds]

    def encore(i: int, seed: int) -> int:
        query = index.query_for(seed)
        exclude = {seed, *shown[i].tolist(), *skipped[i].tolist()}
        hits = index.search(
            query,
            10,
            exclude=exclude,
            exclude_keys=index.keys_for(index.artists[seed], index.names[seed]),
            recent=shown[i][-9:].tolist(),
            diversity=0.3,
            avoid=skipped[i][-10:].tolist(),
        )
        return len(hits)

    def encore_unseen(i: int, seed: int) -> int:
        query = index.query_for_raw(index.raw[seed : seed + 1])  # genre from neighbours, as for a new track
        return len(index.search(query, 10, exclude={seed, *shown[i].tolist()}, diversity=0.3))

    # The original method, as the seed project wrote it: filter the frame by genre, distances, 10 nearest.
    genre = frame["track_genre"].to_numpy()
    feats = frame[list(RAW_COLUMNS)].to_numpy(dtype=np.float64)
    seed_genre = [genre[s] for s in seeds]

    def original_pandas(i: int, seed: int) -> int:
        subset = frame[frame["track_genre"] == seed_genre[i]]
        d = np.linalg.norm(subset[list(RAW_COLUMNS)].to_numpy(dtype=np.float64) - feats[seed], axis=1)
        near = subset.index.to_numpy()[np.argsort(d)[:10]]
        rng.choice(near)  # the original played one of the ten at random
        return len(near)

    by_genre = {g: np.flatnonzero(genre == g) for g in np.unique(genre)}

    def original_numpy(i: int, seed: int) -> int:
        rows = by_genre[seed_genre[i]]
        d = np.linalg.norm(feats[rows] - feats[seed], axis=1)
        return len(rows[np.argpartition(d, 10)[:10]])

    results: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    best: dict[str, list[float]] = {}
    for name, fn in (
        ("Encore, catalogue seed, all filters", encore),
        ("Encore, unseen seed (features only)", encore_unseen),
        ("original method (pandas, as in the seed project)", original_pandas),
        ("original method (numpy, genre subsets precomputed)", original_numpy),
    ):
        for i, s in enumerate(seeds[:20]):  # warm-up
            fn(i, int(s))
        times, cpu_times = [], []
        for i, s in enumerate(seeds):
            c0, t0 = time.thread_time(), time.perf_counter()
            got = fn(i, int(s))
            times.append((time.perf_counter() - t0) * 1000)
            cpu_times.append((time.thread_time() - c0) * 1000)
            assert got == 10, (name, got)
        results[name] = times
        cpu[name] = cpu_times
        # Four more passes: each seed's fastest of the five is the code's own cost, without the
        # host's hiccups (a shared 2-core VM puts a few 1-2 ms stalls into any 500 timings).
        fastest = list(times)
        for _ in range(BEST_OF - 1):
            for i, s in enumerate(seeds):
                t0 = time.perf_counter()
                fn(i, int(s))
                fastest[i] = min(fastest[i], (time.perf_counter() - t0) * 1000)
        best[name] = fastest

    encore_p50 = pct(results["Encore, catalogue seed, all filters"], 50)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n10 recommendations, {args.seeds} seeds, in-process; {os.cpu_count()} CPUs, load average {load}")
    print("wall = elapsed time; cpu = this thread's CPU time (what the code costs without the host's contention)")
    print(f"best of {BEST_OF} = each seed's fastest of {BEST_OF} passes (the code's cost without the host's stalls)")
    print(
        f"| method | p50 ms | p99 ms | mean ms | cpu p50 ms | cpu p99 ms | best of {BEST_OF} p50 / p99 ms | "
        f"p99 target | p99 / target | cpu p99 / target | best-of-{BEST_OF} p99 / target | p50 × Encore |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, times in results.items():
        ours = name.startswith("Encore, catalogue")  # the target is for this row
        target = f"≤ {TARGET_MS:g} ms" if ours else "—"
        ratio = f"{pct(times, 99) / TARGET_MS:.2f}" if ours else "—"
        cpu_ratio = f"{pct(cpu[name], 99) / TARGET_MS:.2f}" if ours else "—"
        best_ratio = f"{pct(best[name], 99) / TARGET_MS:.2f}" if ours else "—"
        print(
            f"| {name} | {pct(times, 50):.2f} | {pct(times, 99):.2f} | {statistics.fmean(times):.2f} | "
            f"{pct(cpu[name], 50):.2f} | {pct(cpu[name], 99):.2f} | "
            f"{pct(best[name], 50):.2f} / {pct(best[name], 99):.2f} | {target} | {ratio} | {cpu_ratio} | "
            f"{best_ratio} | {pct(times, 50) / encore_p50:.2f}× |"
        )

    ours = "Encore, catalogue seed, all filters"

    def p99_row(label: str, values: list[float]) -> tuple[str, str, str, str]:
        p99 = pct(values, 99)
        return (f"{ours}: p99 ms ({label})", f"{p99:.2f}", f"≤ {TARGET_MS:g}", f"{p99 / TARGET_MS:.2f}")

    print()
    print(table([p99_row("wall", results[ours]), p99_row("CPU", cpu[ours]), p99_row(f"best of {BEST_OF}", best[ours])]))

    # Memory of live radio sessions: the state RadioService keeps per radio.
    queries = [index.query_for(int(s)) for s in seeds]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    live = {}
    for k in range(args.sessions):
        q = queries[k % len(queries)]
        live[k] = LiveRadio(
            signature=index.signature(),
            position=60,
            query=q.moved(queries[(k + 1) % len(queries)], 0.5),
            shown=rng.choice(n, size=60, replace=False).tolist(),
            skipped=rng.choice(n, size=20, replace=False).tolist(),
        )
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename"))
    taste = {"signature": index.signature(), "query": queries[0].to_json(), "seed_query": queries[0].to_json()}
    print(
        f"\nmemory: {args.sessions} live radio sessions (60 shown, 20 skipped each) = {used / 2**20:.2f} MiB "
        f"({used / args.sessions / 1024:.1f} KiB each); persisted taste JSON ≈ {len(json.dumps(taste))} bytes per radio"
    )
    print(f"index arrays resident once for all sessions: {index_bytes(index) / 2**20:.1f} MiB")
    return 0


def index_bytes(index: CatalogIndex) -> int:
    arrays = [index.audio, index.audio_norm, index.raw, index.popularity, index.popularity_pct, index.ids]
    arrays += [index.song_keys, index.recording_keys, index.has_genre]
    total = sum(a.nbytes for a in arrays)
    total += index.genre.data.nbytes + index.genre.indices.nbytes + index.genre.indptr.nbytes
    total += index.labels.data.nbytes + index.labels.indices.nbytes + index.labels.indptr.nbytes
    return total


if __name__ == "__main__":
    sys.exit(main())
