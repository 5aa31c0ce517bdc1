"""HTTP_WORKERS: several processes serve the HTTP app on one port and stop together."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from aiohttp import ClientSession, TCPConnector

from tests.serving import start_serve

ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found.update(int(c) for c in task.read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def _answering_pids(port: int, want: int, seconds: float = 90) -> set[int]:
    """Process ids seen in /healthz answers, each on a fresh connection (the kernel picks a listener
    per connection), until `want` distinct ones answered or the time is up."""
    pids: set[int] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with ClientSession(connector=TCPConnector(force_close=True)) as http:
        while loop.time() < deadline and len(pids) < want:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    assert resp.status == 200
                    body = await resp.json()
                    assert body["status"] == "ok" and body["database"] == "ok"
                    pids.add(int(resp.headers["X-Encore-Pid"]))
            except OSError:
                await asyncio.sleep(0.2)
    return pids


async def _stop(proc: asyncio.subprocess.Process) -> list[str]:
    proc.send_signal(signal.SIGINT)
    _, raw = await asyncio.wait_for(proc.communicate(), timeout=60)
    stderr = raw.decode()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    return [json.loads(line)["message"] for line in stderr.splitlines() if line.startswith("{")]


async def test_two_workers_share_the_port_and_stop_cleanly_on_sigint(tmp_path: Path) -> None:
    proc, port = await start_serve(tmp_path, workers=2)
    try:
        pids = await _answering_pids(port, want=2)
        workers = _children(proc.pid)
    finally:
        messages = await _stop(proc)
    assert len(pids) == 2 and proc.pid in pids, messages
    assert pids - {proc.pid} <= workers
    assert any(m.startswith("started 1 HTTP worker") for m in messages)
    assert any(m.startswith("HTTP worker") and m.endswith("stopped") for m in messages)
    assert not any("unexpectedly" in m or "killing" in m for m in messages)
    assert messages[-1] == "stopped"
    assert not [pid for pid in workers if _alive(pid)], "a worker outlived the primary"


async def test_a_dead_worker_is_logged_and_the_primary_keeps_serving(tmp_path: Path) -> None:
    proc, port = await start_serve(tmp_path, workers=2)
    try:
        pids = await _answering_pids(port, want=2)
        (worker,) = pids - {proc.pid}
        os.kill(worker, signal.SIGKILL)
        await asyncio.sleep(1.5)  # the primary checks its workers twice a second
        assert await _answering_pids(port, want=1, seconds=10) == {proc.pid}
    finally:
        messages = await _stop(proc)
    assert any(f"HTTP worker {worker} exited unexpectedly" in m for m in messages), messages
    assert messages[-1] == "stopped"
