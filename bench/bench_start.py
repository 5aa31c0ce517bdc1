"""Benchmark what a start costs: `main.py serve` from the set-up data to answering, and its memory.

    .venv/bin/python bench/bench_start.py

Runs the real server (bench/live.py: a copy of the set-up database and of the indices' snapshots,
the product's genre model) three times and prints one table with the targets of issue 15:

- start → listening (wall, and the CPU seconds the process used until then: the figure that does
  not depend on what else the machine runs), /healthz answered, and the genre model loaded in the
  background (MODEL_PRELOAD=true, the default);
- idle RSS and PSS (ps's resident set; PSS shares mapped pages between processes) after 5 s, with
  the model and without it (MODEL_PRELOAD=false: loaded on the first genre answer);
- idle RSS again after 300 genre answers (150 track cards: the full head; 150 POST /genre: the
  audio-only head): the model's mapped pages count once they are touched (file-backed, shared);
- with HTTP_WORKERS=2, what the extra process adds (the target, issue 15's "each extra process
  ≤ 150 MB more"): the PSS of both processes against the PSS of one (shared pages split between the
  processes that map them); and its USS (private pages: what the machine gets back if it exits), its
  PSS and its RSS (which also counts every page it shares with the first).
- the snapshots on disk, and the recommender's and search index's size per 100k songs.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.live import DATA, Server, every_process_answers, process_tree, table

START_TARGET_S = 3.0
RSS_TARGET_MIB = 350.0
WORKER_TARGET_MIB = 150.0


def memory(pid: int) -> dict[str, float]:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    fields = {k: int(v) / 1024 for k, v in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}
    return {
        "Rss": fields["Rss"],
        "Pss": fields["Pss"],
        "Uss": fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0),
    }


async def answer_genres(http: aiohttp.ClientSession, url: str, n: int = 150) -> None:
    """n track cards (genre from the full head) and n POST /genre (12 features: the audio-only head)."""
    import random

    rng = random.Random(0)
    features = ("danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness")
    features += ("instrumentalness", "liveness", "valence", "tempo", "time_signature")
    for _ in range(n):
        async with http.get(f"{url}/api/v1/tracks/{rng.randint(1, 60_000)}") as resp:
            await resp.read()
        body = {
            f: float(rng.randint(0, 11) if f == "key" else rng.randint(0, 1) if f == "mode" else 0.5) for f in features
        }
        body |= {"loudness": -rng.uniform(2, 20), "tempo": rng.uniform(60, 180), "time_signature": 4.0}
        body |= {f: rng.random() for f in ("danceability", "energy", "valence", "acousticness", "speechiness")}
        async with http.post(f"{url}/api/v1/genre", json=body) as resp:
            assert resp.status == 200, await resp.text()


def cpu_seconds(pid: int) -> float:
    """The primary's own start CPU (`bench.live.cpu_seconds` adds the workers')."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(env: dict[str, str], workers: int = 1) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), env={**env, "HTTP_WORKERS": str(workers)})
        started = time.perf_counter()
        await server.start()
        listening = time.perf_counter() - started
        cpu = cpu_seconds(server.pid)
        model_at = float("nan")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/healthz") as resp:
                assert resp.status == 200, await resp.text()
            healthy = time.perf_counter() - started
            deadline = time.monotonic() + 120
            while env.get("MODEL_PRELOAD") != "false" and time.monotonic() < deadline:
                async with http.get(f"{server.url}/healthz") as resp:
                    if (await resp.json()).get("model_version"):
                        model_at = time.perf_counter() - started
                        break
                await asyncio.sleep(0.1)
                await every_process_answers(server.url, workers)
            await asyncio.sleep(5.0)  # idle
            out = {"listening": listening, "healthy": healthy, "cpu": cpu, "model": model_at, **memory(server.pid)}
            for i, child in enumerate(process_tree(server.pid)[1:]):
                for key, value in memory(child).items():
                    out[f"worker{i}_{key}"] = value
            if env.get("MODEL_PRELOAD") != "false":
                await answer_genres(http, server.url)
                await asyncio.sleep(2.0)
                out["answered_Rss"] = memory(server.pid)["Rss"]
        await server.stop()
        return out


def snapshot_sizes() -> dict[str, tuple[float, int]]:
    """(MiB on disk, tracks) per snapshot under data/index."""
    import json

    sizes = {}
    for name in ("recommender", "search"):
        folder = DATA / "index" / name
        if (folder / "meta.json").exists():
            meta = json.loads((folder / "meta.json").read_text())
            tracks = int(meta.get("n") or meta.get("tracks") or 0)
            mib = sum(f.stat().st_size for f in folder.resolve().iterdir()) / 2**20
            sizes[name] = (mib, tracks)
    return sizes


async def main() -> int:
    default = await run({})
    lean = await run({"MODEL_PRELOAD": "false"})
    two = await run({"MODEL_PRELOAD": "false"}, workers=2)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"main.py serve on the set-up data; {os.cpu_count()} CPUs, load average {load}")
    rows = [
        ("start → listening, wall s", f"{default['listening']:.2f}", f"≤ {START_TARGET_S:g}"),
        ("start → listening, CPU s of the process", f"{default['cpu']:.2f}", f"≤ {START_TARGET_S:g}"),
        ("start → /healthz 200, wall s", f"{default['healthy']:.2f}", f"≤ {START_TARGET_S:g}"),
        ("start → genre model loaded (background), wall s", f"{default['model']:.2f}", "—"),
        ("idle RSS, model loaded, MiB", f"{default['Rss']:.0f}", f"≤ {RSS_TARGET_MIB:g}"),
        (
            "idle RSS, model loaded, after 300 genre answers, MiB",
            f"{default['answered_Rss']:.0f}",
            f"≤ {RSS_TARGET_MIB:g}",
        ),
        ("idle RSS, model on first use, MiB", f"{lean['Rss']:.0f}", f"≤ {RSS_TARGET_MIB:g}"),
        ("idle PSS, model on first use, MiB", f"{lean['Pss']:.0f}", "—"),
    ]
    if "worker0_Rss" in two:
        # The target is what the extra process adds to the machine: the two processes' PSS against
        # one's (its private pages plus its share of what they share). Its RSS also counts every page
        # it shares with the first (the imports, mapped before the fork): shown, not the target.
        both = two["Pss"] + two["worker0_Pss"]
        added = both - lean["Pss"]
        rows.append(
            (
                "HTTP_WORKERS=2: memory the extra process adds (PSS of both − PSS of one), MiB",
                f"{added:.0f}",
                f"≤ {WORKER_TARGET_MIB:g}",
            )
        )
        rows.append(
            (
                "HTTP_WORKERS=2: extra process USS (private), MiB",
                f"{two['worker0_Uss']:.0f}",
                f"≤ {WORKER_TARGET_MIB:g}",
            )
        )
        rows.append(("HTTP_WORKERS=2: extra process PSS, MiB", f"{two['worker0_Pss']:.0f}", "—"))
        rows.append(
            ("HTTP_WORKERS=2: extra process RSS (shared pages included), MiB", f"{two['worker0_Rss']:.0f}", "—")
        )
        rows.append(("HTTP_WORKERS=2: PSS of both processes, MiB", f"{both:.0f} (one process: {lean['Pss']:.0f})", "—"))
    for name, (mib, tracks) in snapshot_sizes().items():
        per = mib / tracks * 100_000 if tracks else float("nan")
        rows.append((f"{name} snapshot on disk, MiB ({tracks} songs; per 100k songs)", f"{mib:.1f} ({per:.1f})", "—"))

    def ratio(value: str, target: str) -> str:
        if not target.startswith("≤"):
            return "—"
        number = float(value.split()[0])
        return f"{number / float(target[1:]):.2f}"

    print(table([(m, v, t, ratio(v, t)) for m, v, t in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
