"""Start `main.py serve` as a real process for the lifecycle tests, and follow its JSON log lines.

Waits are event-based: a test waits for the log line that says something happened ("HTTP server on …",
"… exited unexpectedly"), never for a while in the hope it did.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WAIT = 120.0  # seconds: only a hang guard (the server starts in seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A running `main.py serve` and every log line it wrote so far (stderr, JSON)."""

    proc: asyncio.subprocess.Process
    port: int
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[str]:
        return [json.loads(line)["message"] for line in self.lines if line.startswith("{")]

    async def wait_until(self, check: Callable[[list[str]], bool], *, within: float = WAIT) -> None:
        """Read log lines until `check(messages so far)` holds (it may hold already)."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(within):
            while not check(self.messages):
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"the server ended before the awaited line; log: {self.lines[-20:]}")
                self.lines.append(raw.decode())

    async def wait_for_log(self, predicate: Callable[[str], bool], *, within: float = WAIT) -> None:
        """Until a log message satisfies `predicate`."""
        await self.wait_until(lambda messages: any(predicate(m) for m in messages), within=within)

    async def ready(self) -> None:
        """Until the HTTP server listens (it logs so once the site is started)."""
        await self.wait_for_log(lambda m: m.startswith("HTTP server on "))

    async def stop(self, sig: int = signal.SIGINT) -> str:
        """Send `sig`, wait for the exit, and return all stderr."""
        self.proc.send_signal(sig)
        _, rest = await asyncio.wait_for(self.proc.communicate(), timeout=WAIT)
        self.lines.extend(rest.decode().splitlines(keepends=True))
        return "".join(self.lines)


async def start_serve(tmp_path: Path, *, workers: int = 1, extra_env: dict[str, str] | None = None) -> Served:
    """`main.py serve` on a free port with a fresh data folder, no bot token, JSON logs on stderr."""
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path / "data"),
        "HTTP_PORT": str(port),
        "HTTP_WORKERS": str(workers),
        "LOG_FORMAT": "json",
        "TELEGRAM_BOT_TOKEN": "",
        **(extra_env or {}),
    }
    env.pop("DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "main.py"),
        "serve",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return Served(proc, port)
