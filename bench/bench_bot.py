"""Benchmark the Telegram bot end to end: updates handled per second against the fake Bot API.

    .venv/bin/python bench/bench_bot.py [--updates 1000] [--users 500] [--rounds 3]

The real aiogram Bot and Dispatcher (our routers, middlewares, templates, the real UserService on
a SQLite file and the in-memory fake services from tests/bot) long-poll the strict fake Bot API
server from tests/fakes/telegram.py over HTTP on 127.0.0.1. The fake server and the load driver
run in a second process (Telegram is not part of the bot), the bot in this one. A burst of
updates is queued at once and each is timed from queueing to the call that completes it:

  search  a text message that resolves to one track → sendMessage with the card
  like    a 👍 press on a card → editMessageReplyMarkup + answerCallbackQuery

It prints updates/s for bursts of `--updates` queued at once (target ≥ 300/s; latency there is
mostly queueing), then p50/p99 latency at a steady offered load (`--steady`, 200/s), and exits 1
below target. With each burst it prints the bot process's CPU time per update (user + system from
/proc, read by the driver: the figure that does not depend on what else runs on the machine) and
the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation

from bench.live import table
from bot.config import Settings, TelegramSettings
from bot.telegram.callbacks import TrackAction, TrackCallback
from bot.telegram.factory import create_bot, create_dispatcher
from db.base import Base
from db.engine import create_engine, create_session_factory
from handlers.telegram import get_routers
from main import settle_heap
from services.container import Services
from tests.fakes.services import fake_services
from tests.fakes.telegram import BOT_USER, TOKEN, FakeTelegram, tg_user

TARGET_PER_SECOND = 300.0
# issue 15: like presses ≥ 600/s, and at a steady 200/s p99 ≤ 50 ms (the exit code still uses the 300/s floor)
ISSUE_TARGETS = {"like rate": 600.0}
STEADY_P99_MS = 50.0


async def build(api_url: str, db_path: Path) -> tuple[Any, Any, Services]:
    engine = create_engine(f"sqlite+aiosqlite:///{db_path}")  # a file, as in production
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = create_session_factory(engine)
    fakes = fake_services()
    settings = Settings(telegram=TelegramSettings(bot_token=TOKEN, api_url=api_url))
    services = fakes.services(engine, sessions, analysis=False)
    services.on_close(engine.dispose)
    bot = create_bot(settings)
    dp = create_dispatcher(services, get_routers(), storage=MemoryStorage(), events_isolation=SimpleEventIsolation())
    return bot, dp, services


def card_message(server: FakeTelegram, user: dict[str, Any], track_id: int) -> dict[str, Any]:
    """A track card as the bot would have sent it earlier (put straight into the fake's state)."""
    chat_id = user["id"]
    message = {
        "message_id": server._next_message_id(chat_id),
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private"},
        "from": BOT_USER,
        "text": "card",
        "reply_markup": {
            "inline_keyboard": [
                [{"text": "👍", "callback_data": TrackCallback(action=TrackAction.LIKE, track_id=track_id).pack()}]
            ]
        },
    }
    server.messages[(chat_id, message["message_id"])] = message
    return message


async def burst(
    server: FakeTelegram, kind: str, users: list[dict[str, Any]], count: int, rate: float | None = None
) -> tuple[float, list[float]]:
    """Queue `count` updates — at once, or `rate` a second; (seconds until the last finished, latencies)."""
    mark = server.mark()
    started: dict[str, float] = {}
    t_start = time.perf_counter()
    for i in range(count):
        if rate:
            delay = t_start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        user = users[i % len(users)]
        if kind == "search":
            update = server.send_text(user, f"Jazz Song {11 + i % 10}")
            started[f"m{user['id']}:{update['message']['message_id']}"] = time.perf_counter()
        else:
            message = card_message(server, user, 1 + i % 30)
            update = server.press(user, message, message["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
            started[update["callback_query"]["id"]] = time.perf_counter()
    t0 = min(started.values())
    done: dict[str, float] = {}
    expected_method = "sendMessage" if kind == "search" else "answerCallbackQuery"
    seen = mark
    pending_by_chat: dict[int, list[str]] = {}
    if kind == "search":
        for key in started:
            chat = int(key[1:].split(":")[0])
            pending_by_chat.setdefault(chat, []).append(key)
    async with asyncio.timeout(120):
        while len(done) < count:
            await asyncio.sleep(0.002)
            calls = server.calls[seen:]
            seen += len(calls)
            for call in calls:
                if call.method != expected_method:
                    continue
                if not call.ok:
                    raise SystemExit(f"the fake server refused {call.method}: {call.error}")
                if kind == "search":
                    key = pending_by_chat[int(call.params["chat_id"])].pop(0)
                else:
                    key = call.params["callback_query_id"]
                done[key] = call.at
    # ApiCall.at is time.monotonic(); perf_counter shares its clock on Linux, but stay safe:
    offset = time.perf_counter() - time.monotonic()
    latencies = [done[k] + offset - started[k] for k in started]
    return max(done.values()) + offset - t0, latencies


def bot_cpu_seconds() -> float:
    """User + system CPU seconds of the bot's process (this driver's parent), from /proc."""
    fields = Path(f"/proc/{os.getppid()}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def keep_log_out_of_gc() -> None:
    """The fake Bot API keeps every call it served (thousands of objects after a burst): its own full
    collections paused this process ~100 ms, and that pause was counted as the bot's latency (the
    p99 at 200/s was 81-101 ms with it, 9-18 ms without)."""
    gc.collect()
    gc.freeze()


async def drive(args: argparse.Namespace, server: FakeTelegram) -> bool:
    """The Telegram side: queue bursts of updates and time the bot's answers."""
    users = [tg_user(100_000 + i, f"user{i}") for i in range(args.users)]
    await burst(server, "search", users, min(50, args.updates))  # warm up: users, templates, getMe
    keep_log_out_of_gc()
    print(
        f"{'scenario':<8} {'updates':>8} {'seconds':>8} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU ms/update':>13}  target"
    )
    ok = True
    summary: list[tuple[str, str, str, str]] = []
    for kind in args.only or ("search", "like"):
        best = 0.0
        all_lat: list[float] = []
        cpu_per_update: list[float] = []
        for _ in range(args.rounds):
            cpu_before = bot_cpu_seconds()
            elapsed, latencies = await burst(server, kind, users, args.updates)
            cpu_per_update.append(1000 * (bot_cpu_seconds() - cpu_before) / args.updates)
            keep_log_out_of_gc()
            rate = args.updates / elapsed
            best = max(best, rate)
            all_lat.extend(latencies)
            print(
                f"{kind:<8} {args.updates:>8} {elapsed:>8.2f} {rate:>10.0f} {pct(latencies, 50) * 1000:>8.1f} "
                f"{pct(latencies, 99) * 1000:>8.1f} {cpu_per_update[-1]:>13.2f}  ≥ {TARGET_PER_SECOND:.0f}/s",
                flush=True,
            )
            await asyncio.sleep(2.1)  # let the per-user throttling windows close
        verdict = "ok" if best >= TARGET_PER_SECOND else "BELOW TARGET"
        print(
            f"{kind:<8} best {best:.0f}/s, p50 {statistics.median(all_lat) * 1000:.1f} ms, "
            f"p99 {pct(all_lat, 99) * 1000:.1f} ms — {verdict}",
            flush=True,
        )
        ok = ok and best >= TARGET_PER_SECOND
        target = ISSUE_TARGETS.get(f"{kind} rate", TARGET_PER_SECOND)
        summary.append(
            (f"{kind}: best burst rate, updates/s", f"{best:.0f}", f"≥ {target:.0f}", f"{best / target:.2f}")
        )
        cpu = statistics.median(cpu_per_update)
        summary.append(
            (
                f"{kind}: bot CPU per update (median of bursts), ms",
                f"{cpu:.2f}",
                f"≤ {1000 / target:.2f}",
                f"{cpu * target / 1000:.2f}",
            )
        )
    print(f"\nlatency at a steady offered load of {args.steady:.0f} updates/s ({args.updates} updates):")
    print(f"{'scenario':<8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind in args.only or ("search", "like"):
        _, latencies = await burst(server, kind, users, args.updates, rate=args.steady)
        print(
            f"{kind:<8} {pct(latencies, 50) * 1000:>8.1f} {pct(latencies, 90) * 1000:>8.1f} "
            f"{pct(latencies, 99) * 1000:>8.1f} {max(latencies) * 1000:>8.1f}",
            flush=True,
        )
        p99 = pct(latencies, 99) * 1000
        summary.append(
            (
                f"{kind}: p99 at {args.steady:.0f}/s, ms",
                f"{p99:.1f}",
                f"≤ {STEADY_P99_MS:g}",
                f"{p99 / STEADY_P99_MS:.2f}",
            )
        )
        await asyncio.sleep(2.1)
    refused = [c for c in server.calls if not c.ok]
    print(f"calls refused by the fake server: {len(refused)}", flush=True)
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    print("\n" + table(summary), flush=True)
    return ok and not refused


def telegram_side(args: argparse.Namespace, conn: Connection) -> None:
    """Child process: the fake Bot API server and the load driver."""

    async def run() -> None:
        server = FakeTelegram()
        await server.start()
        loop = asyncio.get_running_loop()
        conn.send(server.base_url)
        await loop.run_in_executor(None, conn.recv)  # the bot is polling
        try:
            ok = await drive(args, server)
        except BaseException:
            ok = False
            raise
        finally:
            conn.send(ok)
            await loop.run_in_executor(None, conn.recv)  # the bot stopped polling
            await server.close()

    asyncio.run(run())


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    parent, child = multiprocessing.get_context("spawn").Pipe()
    fake = multiprocessing.get_context("spawn").Process(target=telegram_side, args=(args, child), daemon=True)
    fake.start()
    loop = asyncio.get_running_loop()
    base_url = await loop.run_in_executor(None, parent.recv)
    tmp = tempfile.TemporaryDirectory()
    bot, dp, services = await build(base_url, Path(tmp.name) / "bench.db")
    settle_heap()  # as `serve` does once started: what start-up built is kept out of full collections
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=5)
    )
    try:
        parent.send("go")
        ok = await loop.run_in_executor(None, parent.recv)
    finally:
        await dp.stop_polling()
        await polling
        parent.send("stopped")
        await bot.session.close()
        await services.close()
        tmp.cleanup()
        fake.join(timeout=10)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=1000, help="updates per burst")
    parser.add_argument("--users", type=int, default=500, help="distinct users (each stays under the throttle)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steady", type=float, default=200.0, help="offered load for the latency run")
    parser.add_argument("--only", choices=("search", "like"), action="append", help="run only this scenario")
    sys.exit(asyncio.run(main(parser.parse_args())))
