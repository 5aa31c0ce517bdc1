"""Start `main.py serve` as a real process for the lifecycle tests."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_serve(tmp_path: Path, *, workers: int = 1) -> tuple[asyncio.subprocess.Process, int]:
    """`main.py serve` on a free port with a fresh data folder, no bot token, JSON logs on stderr."""
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path / "data"),
        "HTTP_PORT": str(port),
        "HTTP_WORKERS": str(workers),
        "LOG_FORMAT": "json",
        "TELEGRAM_BOT_TOKEN": "",
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
    return proc, port
