"""usearch against hnswlib on the recommender's 1M-song audio block: the measurement behind the choice.

    .venv/bin/pip install hnswlib   # not a dependency of the project: only this comparison uses it
    .venv/bin/python bench/ann_libs.py [--size 1000000] [--k 400]

Not run by `make bench` (its name has no `bench_` prefix). The synthetic catalogue of
bench/bench_scale.py; both graphs with M 16, ef_construction 64, two build threads, float16 vectors
for usearch (as `ml.recsys.ann` keeps them), float32 for hnswlib (its only choice). Prints build
time, file size, query CPU p50/p99 for the k nearest (one thread) and recall@k against numpy.
docs/architecture.md ("Past one machine") quotes it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_scale import tiled
from bench.common import catalog_csv
from ml.recsys.evaluation import fold_frame, load_dataset
from ml.recsys.index import CatalogIndex, EngineWeights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=400)
    args = parser.parse_args(argv)
    try:
        hnswlib = importlib.import_module("hnswlib")
    except ImportError:
        print("hnswlib is not installed (.venv/bin/pip install hnswlib); skipped.")
        return 0
    from usearch.index import Index

    frame = tiled(fold_frame(load_dataset(catalog_csv())), args.size, np.random.default_rng(5))
    index = CatalogIndex.from_frame(frame, weights=EngineWeights(ann_min_songs=args.size + 1))
    audio = np.ascontiguousarray(index.audio, dtype=np.float32)
    n, k = len(audio), args.k
    queries = np.random.default_rng(7).choice(n, 200, replace=False)
    norm = np.einsum("ij,ij->i", audio, audio)
    truth = [set(np.argpartition(norm - 2 * audio @ audio[q], k)[:k].tolist()) for q in queries]

    def report(name: str, build_s: float, search: Callable[[np.ndarray], np.ndarray], size: int) -> None:
        for q in queries[:20]:
            search(audio[q])
        times, recall = [], []
        for q, want in zip(queries, truth, strict=True):
            c0 = time.thread_time()
            got = search(audio[q])
            times.append((time.thread_time() - c0) * 1000)
            recall.append(len(set(np.asarray(got).tolist()) & want) / k)
        print(
            f"{name}: build {build_s:.0f} s wall, k={k} CPU p50 {np.percentile(times, 50):.2f} "
            f"p99 {np.percentile(times, 99):.2f} ms, recall@{k} {np.mean(recall):.4f}, {size / 2**20:.0f} MiB, "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )

    started = time.perf_counter()
    graph = Index(ndim=audio.shape[1], metric="l2sq", dtype="f16", connectivity=16, expansion_add=64)
    graph.add(np.arange(n, dtype=np.uint64), audio, threads=2)
    built = time.perf_counter() - started
    report("usearch f16", built, lambda v: graph.search(v, k, threads=1).keys, len(graph.save() or b""))

    started = time.perf_counter()
    other = hnswlib.Index(space="l2", dim=audio.shape[1])
    other.init_index(max_elements=n, ef_construction=64, M=16)
    other.set_num_threads(2)
    other.add_items(audio, np.arange(n))
    built = time.perf_counter() - started
    other.set_ef(k)
    other.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        other.save_index(f"{tmp}/graph.bin")
        size = os.path.getsize(f"{tmp}/graph.bin")
    report("hnswlib f32", built, lambda v: other.knn_query(v, k)[0][0], size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
