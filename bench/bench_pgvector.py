"""What pgvector in the catalogue's PostgreSQL would give the recommender at a million songs.

    .venv/bin/python bench/bench_pgvector.py [--size 1000000] [--seeds 300] [--ef 40,100,200]
        [--url postgresql://postgres@127.0.0.1:5432/test] [--space audio|full]

Needs the `vector` extension in the server (Debian: `apt-get install postgresql-15-pgvector`);
without it, it says so and exits 0 (it is not part of what `make bench` must measure).

The same synthetic catalogue as bench/bench_scale.py (the dataset tiled, audio jittered), embedded
as the engine does; each song's audio vector (the 14 weighted, scaled columns: what the in-process
HNSW graph holds, ml/recsys/ann.py) becomes one `vector(14)`, so that `ORDER BY embedding <-> q
LIMIT 10` is the audio-nearest ten (`--space full`: the engine's whole distance made euclidean,
`ml.recsys.ann.Space`, 14 + classes + 1 dims, to see the genre islands there). In a scratch
database (`ann_bench_<random>`, dropped at the end): COPY, an HNSW index (`vector_l2_ops`, m 16,
ef_construction 64), its build time and size, then per `hnsw.ef_search` the wall time of one
query round trip (p50/p99) and recall@10 against the exact nearest ten (numpy over the same
vectors).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_scale import tiled
from bench.common import catalog_csv
from bench.live import table
from ml.recsys.ann import Space
from ml.recsys.evaluation import fold_frame, load_dataset
from ml.recsys.index import CatalogIndex, EngineWeights

DEFAULT_URL = os.environ.get("PGVECTOR_BENCH_URL", "postgresql://postgres@127.0.0.1:5432/test")


def catalogue(size: int, full: bool) -> tuple[CatalogIndex, Space, np.ndarray]:
    """The synthetic catalogue's index and its vectors: audio only, or (`full`) in the engine's
    euclidean space (exact genre code: one code dimension per class)."""
    base = fold_frame(load_dataset(catalog_csv()))
    frame = tiled(base, size, np.random.default_rng(5))
    index = CatalogIndex.from_frame(frame, weights=EngineWeights(ann_min_songs=size + 1))  # no graph
    genre = index.genre if index.genre_on and full else None
    space = Space.fit(genre, index.weights.genre, dims=len(index.classes))
    step = 65_536
    blocks = [
        space.points(index.audio[lo : lo + step], None if genre is None else genre[lo : lo + step])
        for lo in range(0, size, step)
    ]
    return index, space, np.vstack(blocks)


def literal(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.5g}" for x in v.tolist()) + "]"


async def run(args: argparse.Namespace) -> int:
    import asyncpg

    url = args.url
    admin = await asyncpg.connect(url)
    available = await admin.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
    if not available:
        await admin.close()
        print("pgvector is not installed in this PostgreSQL (the `vector` extension is not available):")
        print("install it (Debian: apt-get install postgresql-15-pgvector) and run this again; skipped.")
        return 0
    name = f"ann_bench_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    rows: list[tuple[str, str, str, str]] = []
    try:
        conn = await asyncpg.connect(url.rsplit("/", 1)[0] + "/" + name)
        try:
            await conn.execute("CREATE EXTENSION vector")
            started = time.perf_counter()
            index, space, points = catalogue(args.size, args.space == "full")
            print(
                f"{len(points):,} vectors of {points.shape[1]} dims in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            dims = points.shape[1]
            await conn.execute(f"CREATE TABLE song_vec (id integer PRIMARY KEY, embedding vector({dims}))")
            started = time.perf_counter()
            step = 50_000
            for lo in range(0, len(points), step):
                buf = io.BytesIO()
                for i, v in enumerate(points[lo : lo + step], start=lo):
                    buf.write(f"{i}\t{literal(v)}\n".encode())
                buf.seek(0)
                await conn.copy_to_table("song_vec", source=buf, columns=["id", "embedding"], format="text")
            copy_s = time.perf_counter() - started
            await conn.execute("SET maintenance_work_mem = '2GB'")
            await conn.execute("SET max_parallel_maintenance_workers = 1")
            started = time.perf_counter()
            await conn.execute(
                "CREATE INDEX song_vec_hnsw ON song_vec USING hnsw (embedding vector_l2_ops) "
                "WITH (m = 16, ef_construction = 64)"
            )
            build_s = time.perf_counter() - started
            table_mib = await conn.fetchval("SELECT pg_relation_size('song_vec')") / 2**20
            index_mib = await conn.fetchval("SELECT pg_relation_size('song_vec_hnsw')") / 2**20
            rows.append((f"{len(points):,} vectors: COPY s", f"{copy_s:.0f}", "—", "—"))
            rows.append(("HNSW build s (m 16, ef_construction 64)", f"{build_s:.0f}", "—", "—"))
            rows.append(
                ("table MiB (per 100k songs)", f"{table_mib:.0f} ({table_mib / len(points) * 1e5:.1f})", "—", "—")
            )
            rows.append(
                ("HNSW index MiB (per 100k songs)", f"{index_mib:.0f} ({index_mib / len(points) * 1e5:.1f})", "—", "—")
            )

            rng = np.random.default_rng(7)
            seeds = rng.choice(len(points), args.seeds, replace=False).tolist()
            queries = [
                space.query_point(*index.query_parts(index.query_for(s))) if args.space == "full" else index.audio[s]
                for s in seeds
            ]
            norms = np.einsum("ij,ij->i", points, points)
            exact = []
            for q in queries:
                d2 = norms - 2.0 * (points @ q)
                exact.append(set(np.argpartition(d2, 10)[:10].tolist()))
            stmt = await conn.prepare("SELECT id FROM song_vec ORDER BY embedding <-> $1::vector LIMIT 10")
            for ef in (int(e) for e in args.ef.split(",")):
                await conn.execute(f"SET hnsw.ef_search = {ef}")
                for q in queries[:20]:
                    await stmt.fetch(literal(q))
                times, recall = [], []
                for q, want in zip(queries, exact, strict=True):
                    t0 = time.perf_counter()
                    got = await stmt.fetch(literal(q))
                    times.append((time.perf_counter() - t0) * 1000)
                    recall.append(len({r["id"] for r in got} & want) / 10)
                p50, p99 = float(np.percentile(times, 50)), float(np.percentile(times, 99))
                rows.append(
                    (f"k=10, ef_search {ef}: query wall p99 ms (p50 {p50:.2f})", f"{p99:.2f}", "≤ 5", f"{p99 / 5:.2f}")
                )
                rows.append(
                    (
                        f"k=10, ef_search {ef}: recall@10 vs exact",
                        f"{np.mean(recall):.3f}",
                        "≥ 0.95",
                        f"{np.mean(recall) / 0.95:.2f}",
                    )
                )
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\npgvector HNSW on the engine's vectors; {os.cpu_count()} CPUs, load average {load}")
    print(table(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=300)
    parser.add_argument("--ef", default="40,100,200")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--space", choices=("audio", "full"), default="audio")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except OSError as exc:
        print(f"PostgreSQL not reachable at {args.url} ({exc}); skipped.")
        return 0


if __name__ == "__main__":
    sys.exit(main())
