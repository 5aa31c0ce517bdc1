"""Radio feedback under concurrency: the real `main.py serve` answering 👍 / 👎 / next from many radios.

    .venv/bin/python bench/bench_radio.py [--radios 32] [--duration 30] [--warmup 5] [--workers 1]

The server is the product (bench/live.py: a copy of the set-up database, the product's model, no
providers). The client runs in this process on the same cores: `--radios` radios are started over
POST /api/v1/radio from popular seeds, then each answers its current track as fast as it can
(POST /api/v1/radio/{id}/feedback, actions like, skip, next, next in turn) for `--duration` seconds.
A radio that reaches its end is started again.

Prints answers/s, p50/p99 latency of an answer, 409s (must be 0: each radio has one client), errors,
the largest event-loop stall the server saw (encore_event_loop_lag_max_seconds), and the server's
RSS. Targets (issue #11): >= 400 answers/s with 32 radios, p99 <= 100 ms, no stall over 50 ms.

`--workers N` serves with `HTTP_WORKERS=N` (N processes on one port): CPU and RSS are then summed
over the processes, and the loop-stall figures are those of whichever process answered /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.live import DATA, Server, cpu_seconds, every_process_answers, percentile, table

TARGET_PER_SECOND = 400.0
TARGET_P99_MS = 100.0
TARGET_STALL_MS = 50.0
ACTIONS = ("like", "skip", "next", "next")


def popular_seeds(n: int = 500) -> list[int]:
    with sqlite3.connect(DATA / "encore.db") as db:
        rows = db.execute(
            "SELECT id FROM tracks WHERE danceability IS NOT NULL ORDER BY popularity DESC, id LIMIT ?", (n,)
        ).fetchall()
    return [int(r[0]) for r in rows]


class Load:
    def __init__(self, url: str, seeds: list[int]) -> None:
        self.url = url
        self.seeds = seeds
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.starts = 0
        self.measuring = False

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    async def start(self, http: aiohttp.ClientSession, rng: random.Random) -> tuple[str, int] | None:
        async with http.post(f"{self.url}/api/v1/radio", json={"track_id": rng.choice(self.seeds)}) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 201:
                self.errors.append(f"start: {resp.status} {body}")
                return None
        self.starts += 1
        return (body["radio_id"], body["track"]["id"]) if body.get("track") else None

    async def radio(self, http: aiohttp.ClientSession, number: int, until: float) -> None:
        rng = random.Random(number)
        current = await self.start(http, rng)
        actions = itertools.cycle(ACTIONS[number % len(ACTIONS) :] + ACTIONS[: number % len(ACTIONS)])
        while time.perf_counter() < until:
            if current is None:
                current = await self.start(http, rng)
                continue
            radio_id, track_id = current
            began = time.perf_counter()
            try:
                async with http.post(
                    f"{self.url}/api/v1/radio/{radio_id}/feedback",
                    json={"track_id": track_id, "action": next(actions)},
                ) as resp:
                    body = await resp.json(content_type=None)
            except aiohttp.ClientError as exc:
                self.errors.append(f"feedback: {exc!r}")
                continue
            took = time.perf_counter() - began
            if self.measuring:
                self.latencies.append(took)
                self.count(resp.status)
            state = body if resp.status == 200 else body.get("radio", {})
            track = state.get("track")
            current = (radio_id, track["id"]) if track and not state.get("stopped") else None
            if resp.status not in (200, 409):
                self.errors.append(f"feedback: {resp.status} {body}")


async def run(args: argparse.Namespace) -> int:
    seeds = popular_seeds()
    with tempfile.TemporaryDirectory(prefix="encore-bench-radio-") as tmp:
        env = {"HTTP_WORKERS": str(args.workers)} if args.workers > 1 else {}
        server = await Server(Path(tmp), env=env).start()
        # Every process listening before the clients connect (else the first takes every connection).
        await every_process_answers(server.url, args.workers)
        try:
            connector = aiohttp.TCPConnector(limit=args.radios)
            async with aiohttp.ClientSession(connector=connector) as http:
                load = Load(server.url, seeds)
                began = time.perf_counter()
                warm_until = began + args.warmup
                until = warm_until + args.duration
                tasks = [asyncio.create_task(load.radio(http, n, until)) for n in range(args.radios)]
                await asyncio.sleep(args.warmup)
                before = await server.metrics()
                load.measuring = True
                rss_start = server.rss_mib()
                measured_from = time.perf_counter()
                cpu_from = cpu_seconds(server.pid), time.process_time()
                await asyncio.gather(*tasks)
                seconds = time.perf_counter() - measured_from
                server_cpu = cpu_seconds(server.pid) - cpu_from[0]
                client_cpu = time.process_time() - cpu_from[1]
                after = await server.metrics()
                rss_end = server.rss_mib()
        finally:
            code = await server.stop()
    answers = len(load.latencies)
    per_second = answers / seconds
    p50, p99 = percentile(load.latencies, 0.50) * 1000, percentile(load.latencies, 0.99) * 1000
    stall_ms = after.get("encore_event_loop_lag_max_seconds", float("nan")) * 1000
    over = after.get('encore_event_loop_lag_seconds_bucket{le="0.05"}', 0.0)
    total = after.get("encore_event_loop_lag_seconds_count", 0.0)
    over_before = before.get("encore_event_loop_lag_seconds_count", 0.0) - before.get(
        'encore_event_loop_lag_seconds_bucket{le="0.05"}', 0.0
    )
    stalls = (total - over) - over_before  # looks at the loop that found it held > 50 ms, while measured
    conflicts = load.statuses.get(409, 0)
    print(
        f"radio feedback · {args.radios} radios, {seconds:.0f} s after {args.warmup} s warm-up, "
        f"{load.starts} radios started, {args.workers} server process{'es' if args.workers > 1 else ''}, "
        f"server exit {code}"
    )
    rate = f"{per_second / TARGET_PER_SECOND:.2f}"
    stall_ratio = f"{stall_ms / TARGET_STALL_MS:.2f}"
    rows = [
        ("answers/s", f"{per_second:,.0f}", f">= {TARGET_PER_SECOND:.0f}", rate),
        ("p50 (ms)", f"{p50:.1f}", "—", "—"),
        ("p99 (ms)", f"{p99:.1f}", f"<= {TARGET_P99_MS:.0f}", f"{p99 / TARGET_P99_MS:.2f}"),
        ("largest loop stall, whole run (ms)", f"{stall_ms:.0f}", f"<= {TARGET_STALL_MS:.0f}", stall_ratio),
        ("loop stalls > 50 ms while measured", f"{stalls:.0f}", "0", "—"),
        ("409 answers (one client per radio)", str(conflicts), "0", "—"),
        ("errors", str(len(load.errors)), "0", "—"),
        ("server CPU per answer (ms)", f"{server_cpu / max(answers, 1) * 1000:.2f}", "—", "—"),
        ("client CPU per answer (ms)", f"{client_cpu / max(answers, 1) * 1000:.2f}", "—", "—"),
        ("server RSS start → end (MiB)", f"{rss_start:.0f} → {rss_end:.0f}", "—", "—"),
    ]
    print(table(rows))
    for line in load.errors[:5]:
        print("  error:", line)
    for line in list(server.problems)[-10:]:
        print("  server:", line)
    ok = per_second >= TARGET_PER_SECOND and p99 <= TARGET_P99_MS and not load.errors and conflicts == 0
    print(f"targets: {'met' if ok else 'NOT met'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--radios", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1, help="HTTP_WORKERS for the server (1: one process)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
