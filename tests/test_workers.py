"""HTTP_WORKERS: several processes serve the HTTP app on one port and stop together."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from aiohttp import ClientSession, TCPConnector

from tests.api.test_api import FEATURES
from tests.serving import Served, start_serve

ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found.update(int(c) for c in task.read_text().split())
    return found


def _command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def _answering_pids(port: int, want: int, tries: int = 400) -> set[int]:
    """Process ids seen in /healthz answers, each on a fresh connection (the kernel picks a listener
    per connection), until `want` distinct ones answered (every listener is already up)."""
    pids: set[int] = set()
    async with ClientSession(connector=TCPConnector(force_close=True)) as http:
        for _ in range(tries):
            if len(pids) >= want:
                break
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
                body = await resp.json()
                assert body["status"] == "ok" and body["database"] == "ok"
                pids.add(int(resp.headers["X-Encore-Pid"]))
    return pids


async def _up(served: Served, workers: int) -> None:
    """Until the primary and each worker listen (each logs so)."""

    def serving(messages: list[str]) -> int:
        return sum(m.startswith("HTTP worker") and m.endswith(" serving") for m in messages)

    await served.ready()
    await served.wait_until(lambda messages: serving(messages) >= workers - 1)


async def _stop(served: Served) -> list[str]:
    stderr = await served.stop()
    assert served.proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    return served.messages


async def test_two_workers_share_the_port_and_stop_cleanly_on_sigint(tmp_path: Path) -> None:
    served = await start_serve(tmp_path, workers=2)
    proc = served.proc
    try:
        await _up(served, 2)
        pids = await _answering_pids(served.port, want=2)
        workers = _children(proc.pid)
    finally:
        messages = await _stop(served)
    assert len(pids) == 2 and proc.pid in pids, messages
    assert pids - {proc.pid} <= workers
    assert any(m.startswith("started 1 HTTP worker") for m in messages)
    assert any(m.startswith("HTTP worker") and m.endswith("stopped") for m in messages)
    assert not any("unexpectedly" in m or "killing" in m for m in messages)
    assert messages[-1] == "stopped"
    assert not [pid for pid in workers if _alive(pid)], "a worker outlived the primary"


async def test_a_dead_worker_is_logged_and_the_primary_keeps_serving(tmp_path: Path) -> None:
    served = await start_serve(tmp_path, workers=2)
    proc = served.proc
    try:
        await _up(served, 2)
        pids = await _answering_pids(served.port, want=2)
        (worker,) = pids - {proc.pid}
        os.kill(worker, signal.SIGKILL)
        await served.wait_for_log(lambda m: f"HTTP worker {worker} exited unexpectedly" in m)
        assert await _answering_pids(served.port, want=2, tries=50) == {proc.pid}  # the survivor answers all
    finally:
        messages = await _stop(served)
    assert any(f"HTTP worker {worker} exited unexpectedly" in m for m in messages), messages
    assert messages[-1] == "stopped"


async def test_a_forked_worker_shares_the_primary_and_answers_genres_alike(
    tmp_path: Path, trained_models: Path
) -> None:
    """The extra process is a fork of the primary (same command line, not a fresh `serve-http-worker`
    interpreter) and guesses genres with the same model as the primary: genre answers on fresh
    connections (the kernel picks a process for each) until both processes' /healthz name the model
    (the worker loads it on its first genre answer), and every answer is the same."""
    features = FEATURES  # the API tests' song
    served = await start_serve(tmp_path, workers=2, extra_env={"MODEL_DIR": str(trained_models)})
    proc = served.proc
    answers: list[object] = []
    versions: dict[int, object] = {}
    try:
        await _up(served, 2)
        url = f"http://127.0.0.1:{served.port}"
        async with ClientSession(connector=TCPConnector(force_close=True)) as http:
            for _ in range(400):
                if len(versions) >= 2 and all(versions.values()):
                    break
                async with http.post(f"{url}/api/v1/genre", json=features) as resp:
                    assert resp.status == 200, await resp.text()
                    answers.append(await resp.json())
                async with http.get(f"{url}/healthz") as resp:
                    versions[int(resp.headers["X-Encore-Pid"])] = (await resp.json()).get("model_version")
        (worker,) = set(versions) - {proc.pid}
        command_lines = {pid: _command_line(pid) for pid in (proc.pid, worker)}
    finally:
        messages = await _stop(served)
    assert command_lines[worker] == command_lines[proc.pid], command_lines
    assert any(m.startswith("started 1 HTTP worker process(es) by fork") for m in messages)
    assert versions[worker] and versions[worker] == versions[proc.pid], versions
    assert all(a == answers[0] for a in answers), answers
