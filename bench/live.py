"""The real product for the load benchmarks: `main.py serve` as its own process on a copy of the set-up data.

`bench_radio` and `bench_soak` drive it over HTTP (and the bot through the fake Bot API server of
tests/fakes/telegram.py) from the benchmark's process, on the same machine. The server gets:

- a copy of the database `main.py setup` made (`make bench` runs setup first), so that the run's
  writes never touch the real one, and of the indices' snapshots it saved (data/index);
- the product's genre model from the data folder (MODEL_DIR);
- no provider keys and no network (Deezer and ReccoBeats off): the bundled catalogue only;
- JSON logs on stderr, read continuously (so the pipe never fills) and counted by level.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
START_WAIT = 300.0  # seconds for the server to build its indices and listen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup_data() -> tuple[Path, Path]:
    """The set-up database and model folder, or exit with what to run."""
    db, models = DATA / "encore.db", DATA / "models"
    if not db.exists() or not any(models.glob("*")):
        raise SystemExit("no set-up data: run `python main.py setup` (or `make run`) first")
    return db, models


def process_tree(pid: int) -> list[int]:
    """The process and its children (`HTTP_WORKERS` processes), from /proc."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(c) for c in task.read_text().split())
        except FileNotFoundError:  # a thread that just ended
            continue
    return found


def rss_mib(pid: int) -> float:
    """RSS of the process and its children, MiB (NaN when the process is gone)."""
    total, seen = 0.0, False
    for one in process_tree(pid):
        try:
            text = Path(f"/proc/{one}/status").read_text()
        except FileNotFoundError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", text)
        total += int(match.group(1)) / 1024 if match else float("nan")
        seen = True
    return total if seen else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process and its children have used so far (/proc/<pid>/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, seen = 0.0, False
    for one in process_tree(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15)
        seen = True
    return total if seen else float("nan")


WORKERS_WAIT = 180.0  # seconds for every HTTP worker to answer


async def every_process_answers(url: str, processes: int) -> None:
    """Until each of `processes` processes has served /healthz (X-Encore-Pid), one fresh connection
    at a time (a worker answers only once its services are built and its indices loaded); exits
    with a message when they have not within `WORKERS_WAIT` seconds."""
    seen: set[str] = set()
    deadline = time.monotonic() + WORKERS_WAIT
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        while len(seen) < processes and time.monotonic() < deadline:
            try:
                async with http.get(f"{url}/healthz") as resp:
                    seen.add(resp.headers.get("X-Encore-Pid", ""))
            except aiohttp.ClientError:
                pass  # not listening yet
            await asyncio.sleep(0.02)
    if len(seen) < processes:
        raise SystemExit(f"only {len(seen)} of {processes} server processes answered")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → {"name{labels}": value} (comments left out)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[key] = float(value)
    return out


@dataclass
class Server:
    """A running `main.py serve` with its own data folder (a copy) and a free port."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: asyncio.subprocess.Process | None = None
    levels: Counter[str] = field(default_factory=Counter)
    problems: deque[str] = field(default_factory=lambda: deque(maxlen=50))  # the last WARNING+ lines
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> Server:
        db, models = setup_data()
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(db, data / "encore.db")
        # The indices' snapshots `main.py setup` saved (the copy of the database still matches them).
        if (DATA / "index").is_dir() and not (data / "index").exists():
            shutil.copytree(DATA / "index", data / "index", symlinks=True)
        self.port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SPOTIFY_", "YOUTUBE_", "TELEGRAM_", "WEBHOOK_", "HTTP_"))
            and k not in ("DATABASE_URL", "REDIS_URL", "API_KEYS")
        }
        env |= {
            "DATA_DIR": str(data),
            "MODEL_DIR": str(models),
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port),
            "HTTP_RATE_LIMIT_PER_MINUTE": str(10**9),  # the limiter runs; the load never exhausts it
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "DEEZER_ENABLED": "false",
            "RECCOBEATS_ENABLED": "false",
            "ENCORE_DATA_MIRROR": "",
            **self.env,
        }
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "main.py"),
            "serve",
            cwd=self.workdir,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read_log())
        async with asyncio.timeout(START_WAIT):
            ready = asyncio.create_task(self._ready.wait())
            await asyncio.wait({ready, asyncio.create_task(self.proc.wait())}, return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                ready.cancel()
                raise SystemExit(f"the server exited before it listened: {list(self.problems)}")
        return self

    async def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            line = raw.decode(errors="replace").strip()
            try:
                record = json.loads(line)
            except ValueError:
                record = {"level": "RAW", "message": line}
            level = str(record.get("level", "RAW")).upper()
            self.levels[level] += 1
            message = str(record.get("message", ""))
            if level in ("WARNING", "ERROR", "CRITICAL", "RAW"):
                self.problems.append(f"{level}: {message[:300]}")
            if message.startswith("HTTP server on "):
                self._ready.set()

    async def metrics(self) -> dict[str, float]:
        """/metrics on a connection of its own (not queued behind the load's)."""
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/metrics") as resp:
            return parse_metrics(await resp.text())

    def rss_mib(self) -> float:
        return rss_mib(self.pid)

    async def stop(self) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc is not None else 0
        self.proc.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(60):
                code = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        if self._reader is not None:
            await self._reader
        return code


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def table(rows: list[tuple[str, str, str, str]]) -> str:
    """| measure | value | target | ratio | as a Markdown table."""
    head = ("measure", "value", "target", "value / target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(lines)
