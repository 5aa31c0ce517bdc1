"""Handler tests through feed_update: radio, /likes, /history, /settings, /subscribe, inline mode."""

from __future__ import annotations

from aiogram import Dispatcher

from bot.telegram.callbacks import RadioAction, RadioCallback
from services.users import UserService
from tests.bot.conftest import Chat
from tests.bot.fakes_services import FakeServices
from tests.fakes.bot import RecordingBot


async def start_radio(chat: Chat, query: str = "Jazz Song 12") -> dict:
    await chat.send(query)
    card = chat.last()
    await chat.press(card, chat.bot.server.button(card, "Start radio"))
    return chat.last()


async def test_radio_presses_edit_one_message(chat: Chat, fakes: FakeServices) -> None:
    radio_msg = await start_radio(chat)
    assert "Radio" in radio_msg["text"]
    radio = fakes.radio.first()
    assert radio.message_id == radio_msg["message_id"]  # attached for later presses
    sent_before = len(chat.bot.calls("sendMessage"))
    for label in ("Like", "Skip", "Next"):
        current = chat.last()
        await chat.press(current, chat.bot.server.button(current, label))
        assert chat.last()["message_id"] == radio_msg["message_id"]
    assert len(chat.bot.calls("sendMessage")) == sent_before  # no flooding
    assert [e[2] for e in fakes.radio.events] == ["like", "skip", "next"]
    assert len(fakes.radio.first().shown) == 4
    current = chat.last()
    await chat.press(current, chat.bot.server.button(current, "Stop"))
    final = chat.last()
    assert "stopped" in final["text"] and "reply_markup" not in final


async def test_radio_like_steers_the_next_track_and_is_stored(chat: Chat, fakes: FakeServices) -> None:
    radio_msg = await start_radio(chat, "Rock Song 3")
    # Skip rock, then like whatever else comes: the next one follows the like.
    await chat.press(radio_msg, chat.bot.server.button(radio_msg, "Skip"))
    after_skip = chat.last()
    assert "Rock" not in after_skip["text"].split("🎵")[1]
    await chat.press(after_skip, chat.bot.server.button(after_skip, "Like"))
    liked_id = fakes.radio.events[-1][1]
    user_likes = next(iter(fakes.feedback.liked.values()))
    assert liked_id in user_likes


async def test_stale_radio_press_is_a_toast_and_not_counted(chat: Chat, fakes: FakeServices) -> None:
    radio_msg = await start_radio(chat)
    old_data = chat.bot.server.button(radio_msg, "Next")
    await chat.press(radio_msg, old_data)
    await chat.press(radio_msg, old_data)  # the same (now old) track again: a double tap
    answer = chat.answers()[-1]
    assert not answer.get("show_alert") and "moved on" in answer["text"]
    assert [e[2] for e in fakes.radio.events] == ["next"]  # counted once


async def test_someone_elses_radio_is_refused(dp: Dispatcher, bot: RecordingBot, fakes: FakeServices) -> None:
    owner, intruder = Chat(dp, bot, 1), Chat(dp, bot, 2)
    radio_msg = await start_radio(owner)
    data = bot.server.button(radio_msg, "Like")
    intruder_msg = dict(radio_msg, chat={"id": 2, "type": "private"})
    await intruder.press(intruder_msg, data)
    answer = intruder.answers()[-1]
    # Someone else's radio is as good as no radio: the press does not even learn that it exists.
    assert answer["show_alert"] is True and "out of date" in answer["text"]
    assert fakes.radio.events == []


async def test_unknown_radio_is_an_alert(chat: Chat) -> None:
    await chat.send("Jazz Song 12")
    await chat.press(chat.last(), RadioCallback(radio_id="x" * 22, track_id=12, action=RadioAction.NEXT).pack())
    assert chat.answers()[-1]["show_alert"] is True


async def test_likes_pages_and_unlike(chat: Chat, fakes: FakeServices) -> None:
    await chat.send("/start")
    user_id = 1  # the first user in a fresh database
    for track_id in range(1, 8):
        await fakes.feedback.like(user_id, track_id)
    await chat.send("/likes")
    listing = chat.last()
    assert "7" in listing["text"] and "(1/2)" in listing["text"]
    await chat.press(listing, chat.bot.server.button(listing, "▶"))
    page2 = chat.last()
    assert page2["message_id"] == listing["message_id"] and "(2/2)" in page2["text"]
    await chat.press(page2, chat.bot.server.button(page2, "✖ 6"))
    assert len(fakes.feedback.liked[user_id]) == 6
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "▶ 6"))
    assert "Radio" in chat.last()["text"]


async def test_empty_likes_and_history(chat: Chat) -> None:
    await chat.send("/likes")
    assert "No likes yet" in chat.last()["text"]
    await chat.send("/history")
    assert "No history yet" in chat.last()["text"]
    await chat.send("/radio")
    assert "Like a track first" in chat.last()["text"]


async def test_history_counts_genres_with_latest_tracks(chat: Chat, fakes: FakeServices) -> None:
    for query in ("Jazz Song 12", "Jazz Song 13", "Techno Song 25"):
        await chat.send(query)
    card = chat.last()
    await chat.press(card, chat.bot.server.button(card, "👍"))
    await chat.send("/history")
    text = chat.last()["text"]
    assert "jazz — 2 (🔎 2 · 👍 0)" in text and "techno — 2 (🔎 1 · 👍 1)" in text
    assert "Jazz Song 13" in text


async def test_radio_command_starts_from_latest_like(chat: Chat, fakes: FakeServices) -> None:
    await chat.send("Techno Song 25")
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "👍"))
    await chat.send("/radio")
    assert "Techno" in chat.last()["text"] and "Radio" in chat.last()["text"]


async def test_settings_language_dial_and_subscription(chat: Chat, container) -> None:
    users: UserService = container.services.users
    await chat.send("/settings")
    panel = chat.last()
    await chat.press(panel, chat.bot.server.button(panel, "Русский"))
    assert "Настройки" in chat.last()["text"]
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "4"))
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "🔔"))
    user = await users.by_telegram_id(chat.user["id"])
    assert user is not None
    assert (user.language, user.diversity, user.subscribed) == ("ru", 1.0, True)
    # Pressing the same dial step twice is "message is not modified": answered, no error.
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "• 4"))
    assert chat.bot.calls("answerCallbackQuery")[-1].get("show_alert") is not True


async def test_subscribe_with_hour_and_unsubscribe(chat: Chat, container) -> None:
    await chat.send("/subscribe 7")
    assert "7:00 UTC" in chat.last()["text"]
    await chat.send("/subscribe 25")
    assert "0 to 23" in chat.last()["text"]
    user = await container.services.users.by_telegram_id(chat.user["id"])
    assert (user.subscribed, user.pick_hour) == (True, 7)
    await chat.send("/unsubscribe")
    user = await container.services.users.by_telegram_id(chat.user["id"])
    assert user.subscribed is False


async def test_inline_search_is_personal_with_links(chat: Chat) -> None:
    await chat.inline("Jazz Song 1")
    answer = chat.bot.calls("answerInlineQuery")[-1]
    assert answer["is_personal"] is True
    results = answer["results"]
    assert 1 <= len(results) <= 10
    first = results[0]
    assert first["input_message_content"]["message_text"].count("https://t.me/encore_test_bot?start=t_") == 1
    assert "jazz" in first["description"]
    urls = [b["url"] for row in first["reply_markup"]["inline_keyboard"] for b in row]
    assert any("open.spotify.com" in u for u in urls) and any(u.startswith("https://t.me/") for u in urls)


async def test_inline_empty_query_shows_recent_likes(chat: Chat, fakes: FakeServices) -> None:
    await chat.inline("")
    empty = chat.bot.calls("answerInlineQuery")[-1]
    assert empty["results"] == [] and empty["button"]["start_parameter"] == "inline"
    user_id = 1
    await fakes.feedback.like(user_id, 3)
    await fakes.feedback.like(user_id, 21)
    await chat.inline("")
    results = chat.bot.calls("answerInlineQuery")[-1]["results"]
    assert [r["id"] for r in results] == ["21", "3"]


async def test_unknown_command_and_sticker(chat: Chat) -> None:
    await chat.send("/whatever")
    assert "How to use Encore" in chat.last()["text"]
