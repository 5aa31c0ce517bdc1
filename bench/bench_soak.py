"""Soak: ten minutes of mixed load on the real product, over HTTP and through the Telegram bot.

    .venv/bin/python bench/bench_soak.py [--duration 600] [--warmup 60] [--http-clients 8] [--bot-users 12]

The server is `main.py serve` itself (bench/live.py: a copy of the set-up database, the product's
model, no providers) with its Telegram bot polling the fake Bot API server of tests/fakes/telegram.py,
which runs in this process (the strict one: a call the real Bot API would refuse is an error here).

- `--http-clients` clients, each in turn: search (GET /api/v1/tracks/search), similar, genre
  (POST /api/v1/genre), radio start, radio feedback (like / skip / next), with a 20 ms pause between
  requests (a steady load, not a saturation test: that is bench_http and bench_radio).
- `--bot-users` people, each in turn: sends a song's "artist - title", waits for the card (or picks
  the first result), presses 👍 and waits for the answer, then 👍 again to take it back, a second
  between actions (faster people are throttled by the bot, on purpose).

After `--warmup` seconds of the same load (indices, caches and pools filled), it measures for
`--duration` seconds and prints errors (failed requests, 5xx, refused Bot API calls, server log
lines at ERROR: all must be 0), p50/p99 per route, and the server's RSS at the start and the end of
the measured part (growth must stay <= 5 %).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.live import DATA, Server, percentile, table
from bot.telegram.callbacks import TrackAction, TrackCallback
from services.dto import AUDIO_FEATURES
from tests.fakes.telegram import TOKEN, FakeTelegram, tg_user

TARGET_RSS_GROWTH = 0.05


def rss_split(pid: int) -> tuple[float, float]:
    """(RssAnon, RssFile) in MiB: the heap, and the mapped files' pages touched so far (the lean model
    and the index snapshots, shared with other processes and given back under memory pressure)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields.get(k, "0 kB").split()[0]) / 1024 for k in ("RssAnon", "RssFile"))  # type: ignore[return-value]


PAUSE = 0.02  # seconds between two requests of one HTTP client
BOT_PAUSE = 1.0  # seconds between two actions of one person (the bot throttles faster people: 8 per 2 s)
WAIT = 60.0  # seconds for one bot answer before it counts as an error


def catalogue_sample(n: int = 2000) -> list[tuple[int, str, str]]:
    with sqlite3.connect(DATA / "encore.db") as db:
        rows = db.execute(
            "SELECT id, artists, name FROM tracks WHERE danceability IS NOT NULL ORDER BY popularity DESC, id LIMIT ?",
            (n,),
        ).fetchall()
    return [(int(i), str(a), str(t)) for i, a, t in rows]


class Results:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.measuring = False

    def record(self, route: str, seconds: float) -> None:
        if self.measuring:
            self.latency[route].append(seconds)

    def error(self, what: str) -> None:
        if self.measuring:
            self.errors.append(what)


class HttpClient:
    def __init__(self, url: str, http: aiohttp.ClientSession, songs: list[tuple[int, str, str]], results: Results):
        self.url, self.http, self.songs, self.results = url, http, songs, results

    async def call(self, route: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        began = time.perf_counter()
        try:
            async with self.http.request(method, self.url + path, **kwargs) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            self.results.error(f"{route}: {exc!r}")
            return 0, None
        self.results.record(route, time.perf_counter() - began)
        if resp.status >= 500 or resp.status in (400, 404, 422, 429):
            self.results.error(f"{route}: {resp.status} {str(body)[:200]}")
        return resp.status, body

    async def run(self, number: int, until: float) -> None:
        rng = random.Random(number)
        radio: tuple[str, int] | None = None
        step = 0
        while time.perf_counter() < until:
            track_id, artist, title = rng.choice(self.songs)
            kind = step % 5
            step += 1
            if kind == 0:
                query = f"{artist.split(';')[0]} {title}"[:100]
                await self.call("GET search", "GET", "/api/v1/tracks/search", params={"q": query, "limit": "5"})
            elif kind == 1:
                await self.call("GET similar", "GET", f"/api/v1/tracks/{track_id}/similar", params={"limit": "10"})
            elif kind == 2:
                status, card = await self.call("GET track", "GET", f"/api/v1/tracks/{track_id}")
                features = ((card or {}).get("track") or {}).get("features") if status == 200 else None
                if features and all(features.get(name) is not None for name in AUDIO_FEATURES):
                    body = {name: features[name] for name in AUDIO_FEATURES}
                    await self.call("POST genre", "POST", "/api/v1/genre", json=body)
            elif radio is None:
                status, body = await self.call("POST radio", "POST", "/api/v1/radio", json={"track_id": track_id})
                if status == 201 and body.get("track"):
                    radio = (body["radio_id"], body["track"]["id"])
            else:
                radio_id, current = radio
                action = rng.choice(("like", "skip", "next"))
                status, body = await self.call(
                    "POST radio feedback",
                    "POST",
                    f"/api/v1/radio/{radio_id}/feedback",
                    json={"track_id": current, "action": action},
                )
                state = body if status == 200 else (body or {}).get("radio") or {}
                track = state.get("track")
                radio = (radio_id, track["id"]) if track and not state.get("stopped") else None
                if rng.random() < 0.05:
                    radio = None  # people move on: a new radio now and then
            await asyncio.sleep(PAUSE)


def like_button(message: dict[str, Any]) -> str | None:
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if not data or not data.startswith(TrackCallback.__prefix__ + ":"):
                continue
            try:
                parsed = TrackCallback.unpack(data)
            except (TypeError, ValueError):
                continue
            if parsed.action in (TrackAction.LIKE, TrackAction.UNLIKE):
                return data
    return None


class BotUser:
    def __init__(self, telegram: FakeTelegram, songs: list[tuple[int, str, str]], results: Results, number: int):
        self.telegram, self.songs, self.results = telegram, songs, results
        self.user = tg_user(700_000 + number, f"Soak{number}", "en" if number % 2 else "ru")

    def to_me(self, call: Any) -> bool:
        return int(call.params.get("chat_id", 0)) == self.user["id"]

    async def press(self, message: dict[str, Any], data: str) -> dict[str, Any]:
        """Press a button; the answerCallbackQuery that settles it."""
        mark = self.telegram.mark()
        query_id = self.telegram.press(self.user, message, data)["callback_query"]["id"]
        call = await self.telegram.wait_for(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query_id, after=mark, within=WAIT
        )
        return call.params

    async def card(self, text: str) -> dict[str, Any] | None:
        mark = self.telegram.mark()
        began = time.perf_counter()
        self.telegram.send_text(self.user, text)
        sent = await self.telegram.wait_for("sendMessage", self.to_me, after=mark, within=WAIT)
        self.results.record("bot search", time.perf_counter() - began)
        message = sent.result
        if like_button(message) is not None:
            return message
        buttons = [b for b in self.telegram.buttons(message) if b.get("callback_data")]
        if not buttons:
            return None  # "nothing found" is an answer too
        await asyncio.sleep(BOT_PAUSE)
        mark = self.telegram.mark()
        began = time.perf_counter()
        await self.press(message, buttons[0]["callback_data"])
        sent = await self.telegram.wait_for("sendMessage", self.to_me, after=mark, within=WAIT)
        self.results.record("bot open card", time.perf_counter() - began)
        return sent.result

    async def run(self, until: float) -> None:
        rng = random.Random(self.user["id"])
        while time.perf_counter() < until:
            _track_id, artist, title = rng.choice(self.songs)
            try:
                card = await self.card(f"{artist.split(';')[0]} - {title}"[:200])
                data = like_button(card) if card else None
                if card is not None and data is not None:
                    for _ in range(2):  # like, then take it back
                        await asyncio.sleep(BOT_PAUSE)
                        began = time.perf_counter()
                        await self.press(card, data)
                        self.results.record("bot like", time.perf_counter() - began)
                        card = self.telegram.messages.get((self.user["id"], card["message_id"]), card)
                        data = like_button(card) or data
            except TimeoutError as exc:
                self.results.error(f"bot: no answer within {WAIT:.0f} s ({exc})")
            await asyncio.sleep(BOT_PAUSE)


async def run(args: argparse.Namespace) -> int:
    songs = catalogue_sample()
    telegram = FakeTelegram()
    api_url = await telegram.start()
    results = Results()
    with tempfile.TemporaryDirectory(prefix="encore-soak-") as tmp:
        server = Server(Path(tmp), env={"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": api_url})
        await server.start()
        try:
            connector = aiohttp.TCPConnector(limit=args.http_clients + 4)
            async with aiohttp.ClientSession(connector=connector) as http:
                until = time.perf_counter() + args.warmup + args.duration
                clients = [HttpClient(server.url, http, songs, results) for _ in range(args.http_clients)]
                users = [BotUser(telegram, songs, results, n) for n in range(args.bot_users)]
                tasks = [asyncio.create_task(c.run(n, until)) for n, c in enumerate(clients)]
                tasks += [asyncio.create_task(u.run(until)) for u in users]
                await asyncio.sleep(args.warmup)
                errors_before = server.levels["ERROR"] + server.levels["CRITICAL"]
                refused_before = sum(1 for c in telegram.calls if not c.ok)
                results.measuring = True
                rss_start = server.rss_mib()
                split_start = rss_split(server.pid)
                rss_peak = rss_start
                began = time.perf_counter()
                gathering = asyncio.gather(*tasks)
                while not gathering.done():
                    await asyncio.wait({gathering}, timeout=5.0)
                    rss_peak = max(rss_peak, server.rss_mib())
                await gathering
                seconds = time.perf_counter() - began
                rss_end = server.rss_mib()
                split_end = rss_split(server.pid)
                metrics = await server.metrics()
        finally:
            code = await server.stop()
            await telegram.close()
    log_errors = server.levels["ERROR"] + server.levels["CRITICAL"] - errors_before
    refused = sum(1 for c in telegram.calls if not c.ok) - refused_before
    growth = (rss_end - rss_start) / rss_start
    total = sum(len(v) for v in results.latency.values())
    stall_ms = metrics.get("encore_event_loop_lag_max_seconds", float("nan")) * 1000
    print(
        f"soak · {seconds:.0f} s measured after {args.warmup:.0f} s warm-up · {args.http_clients} HTTP clients, "
        f"{args.bot_users} bot users · {total:,} requests and bot actions · server exit {code}"
    )
    rows = [
        (f"{route} p50 / p99 (ms)", f"{percentile(v, 0.5) * 1000:.1f} / {percentile(v, 0.99) * 1000:.1f}", "—", "—")
        for route, v in sorted(results.latency.items())
    ]
    rows += [
        ("requests and bot actions / s", f"{total / seconds:,.0f}", "—", "—"),
        ("failed requests, 5xx, unanswered bot actions", str(len(results.errors)), "0", "—"),
        ("Bot API calls refused", str(refused), "0", "—"),
        ("server log lines at ERROR", str(log_errors), "0", "—"),
        ("largest event-loop stall (ms)", f"{stall_ms:.0f}", "—", "—"),
        ("server RSS start / peak / end (MiB)", f"{rss_start:.0f} / {rss_peak:.0f} / {rss_end:.0f}", "—", "—"),
        (
            "of which anonymous (heap) / file-backed (mapped model, snapshots), start → end (MiB)",
            f"{split_start[0]:.0f} → {split_end[0]:.0f} / {split_start[1]:.0f} → {split_end[1]:.0f}",
            "—",
            "—",
        ),
        ("RSS growth", f"{growth:+.1%}", f"<= {TARGET_RSS_GROWTH:.0%}", f"{max(growth, 0) / TARGET_RSS_GROWTH:.2f}"),
    ]
    print(table(rows))
    for line in results.errors[:10]:
        print("  error:", line)
    for line in list(server.problems)[-10:]:
        print("  server:", line)
    ok = not results.errors and not refused and not log_errors and growth <= TARGET_RSS_GROWTH
    print(f"targets: {'met' if ok else 'NOT met'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--http-clients", type=int, default=8)
    parser.add_argument("--bot-users", type=int, default=12)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
