"""The fake Bot API's wait helpers are event-based: they wake on recorded changes, never poll with sleeps."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.types import Message

from tests.fakes.telegram import FakeTelegram, WaitTimeout
from tests.fakes_tests.conftest import ANN


async def test_wait_for_wakes_on_the_call_it_waits_for(bot: Bot, telegram: FakeTelegram) -> None:
    mark = telegram.mark()
    waiter = asyncio.create_task(telegram.wait_for("sendMessage", lambda c: c.params["text"] == "second", after=mark))
    await bot.send_message(ANN["id"], "first")
    await asyncio.sleep(0)  # let the waiter see the first call (a yield, not a wait)
    assert not waiter.done()
    await bot.send_message(ANN["id"], "second")
    call = await waiter
    assert call.result["text"] == "second" and call.ok

    old = await telegram.wait_for("sendMessage", after=mark)  # already recorded: returns at once
    assert old.params["text"] == "first"
    failed = telegram.wait_for("sendMessage", after=mark, ok=False, within=0.2)
    with pytest.raises(TimeoutError):  # WaitTimeout is a TimeoutError (and an AssertionError) as before
        await failed


async def test_an_idle_wait_checks_once_per_change_not_in_a_loop(telegram: FakeTelegram) -> None:
    """Evidence of event-based waiting: while nothing changes, the condition is not re-evaluated."""
    checks = 0

    def check() -> bool:
        nonlocal checks
        checks += 1
        return False

    with pytest.raises(WaitTimeout) as gave_up:
        await telegram.wait_until(check, within=0.3, what="something that never happens")
    assert checks == 2  # once at the start, once when the guard expired
    assert "something that never happens" in str(gave_up.value)

    checks = 0
    waiter = asyncio.create_task(telegram.wait_until(lambda: check() or len(telegram.updates) >= 3))
    for i in range(3):
        await asyncio.sleep(0)
        telegram.send_text(ANN, f"message {i}")
    assert await waiter
    assert checks <= 4  # the first look, then at most one per queued update


async def test_wait_for_sent_and_timeout_diagnostics(bot: Bot, telegram: FakeTelegram) -> None:
    mark = telegram.mark()
    await bot.send_message(ANN["id"], "to Ann")
    await bot.send_message(ANN["id"] + 1, "to someone else")
    message = await telegram.wait_for_sent(ANN, after=mark)
    assert message["text"] == "to Ann"
    with pytest.raises(WaitTimeout) as gave_up:
        await telegram.wait_for("sendAudio", after=mark, within=0.2)
    assert "sendMessage(ok 'to Ann')" in str(gave_up.value)  # the message lists what did happen


async def test_long_polling_returns_as_soon_as_an_update_arrives(bot: Bot, telegram: FakeTelegram) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=20))  # would block 20 s without an update
    await telegram.wait_until(lambda: telegram.waiting_polls, what="the long poll to arrive")
    telegram.send_text(ANN, "hello")
    updates = await asyncio.wait_for(poll, 10)  # a hang guard only
    assert [u.message.text for u in updates if u.message] == ["hello"]


async def test_closing_the_server_wakes_waiters(telegram: FakeTelegram) -> None:
    waiter = asyncio.create_task(telegram.wait_for("sendMessage"))
    await asyncio.sleep(0)
    await telegram.close()
    with pytest.raises(WaitTimeout, match="server closed"):
        await waiter


async def test_wait_idle_replaces_sleeping_until_nothing_else_arrives(bot: Bot, telegram: FakeTelegram) -> None:
    """A real Dispatcher polling the fake: once wait_idle returns, every reply is recorded, with no sleep."""
    router = Router()
    handled = asyncio.Event()

    @router.message()
    async def echo(message: Message) -> None:
        await handled.wait()  # held until the test lets go, so the replies come late
        await message.answer(f"echo {message.text}")
        await message.answer("and one more")

    dp = Dispatcher()
    dp.include_router(router)
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=1)
    )
    try:
        mark = telegram.mark()
        last = [telegram.send_text(ANN, f"m{i}") for i in range(3)][-1]
        await telegram.wait_delivered(last)
        assert telegram.calls_of("sendMessage") == []
        handled.set()
        await telegram.wait_idle(last, lambda: dp._handle_update_tasks)
        texts = [c.params["text"] for c in telegram.calls[mark:] if c.method == "sendMessage"]
        assert sorted(texts) == sorted([f"echo m{i}" for i in range(3)] + ["and one more"] * 3)
    finally:
        await dp.stop_polling()
        await polling
