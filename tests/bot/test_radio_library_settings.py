"""Handler tests through feed_update: radio, /likes, /history, /settings, /subscribe, inline mode."""

from __future__ import annotations

import dataclasses

from aiogram import Dispatcher

from bot.telegram.callbacks import RadioAction, RadioCallback
from services.users import UserService
from tests.bot.conftest import Chat
from tests.fakes.bot import RecordingBot
from tests.fakes.services import FakeServices, make_track
from tests.fakes.telegram import parse_html


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
    old_data = chat.bot.server.button(radio_msg, "Like")
    await chat.press(radio_msg, old_data)
    await chat.press(radio_msg, old_data)  # the same (now old) track again: a double tap
    answer = chat.answers()[-1]
    assert not answer.get("show_alert") and "moved on" in answer["text"]
    assert [e[2] for e in fakes.radio.events] == ["like"]  # counted once


async def test_a_stale_like_on_a_stopped_radio_says_it_is_over(chat: Chat, fakes: FakeServices) -> None:
    radio_msg = await start_radio(chat)
    like = chat.bot.server.button(radio_msg, "Like")
    await chat.press(radio_msg, chat.bot.server.button(radio_msg, "Stop"))
    await chat.press(radio_msg, like)  # a 👍 still on screen somewhere (another device, a slow client)
    answer = chat.answers()[-1]
    assert "radio is over" in answer["text"] and "not counted" in answer["text"]
    assert "Liked" not in answer["text"]
    assert fakes.feedback.liked.get(1, []) == [] and fakes.radio.events == []


async def test_someone_elses_radio_is_refused(dp: Dispatcher, bot: RecordingBot, fakes: FakeServices) -> None:
    owner, intruder = Chat(dp, bot, 1), Chat(dp, bot, 2)
    radio_msg = await start_radio(owner)
    data = bot.server.button(radio_msg, "Like")
    intruder_msg = dict(radio_msg, chat={"id": 2, "type": "private"})
    await intruder.press(intruder_msg, data)
    answer = intruder.answers()[-1]
    # Someone else's radio is as good as no radio: the press does not even learn that it exists.
    assert answer.get("show_alert") is not True and "out of date" in answer["text"]
    assert fakes.radio.events == []


async def test_unknown_radio_is_an_alert(chat: Chat) -> None:
    await chat.send("Jazz Song 12")
    await chat.press(chat.last(), RadioCallback(radio_id="x" * 22, track_id=12, action=RadioAction.NEXT).pack())
    assert chat.answers()[-1].get("show_alert") is not True and "out of date" in chat.answers()[-1]["text"]


async def test_likes_pages_and_unlike(chat: Chat, fakes: FakeServices) -> None:
    await chat.send("/start")
    user_id = 1  # the first user in a fresh database
    for track_id in range(1, 8):
        await fakes.feedback.like(user_id, track_id)
    await chat.send("/likes")
    listing = chat.last()
    assert "Your likes — 7 tracks:" in listing["text"] and "1/2" not in listing["text"]
    assert "1 / 2" in [b["text"] for b in chat.bot.server.buttons(listing)]
    await chat.press(listing, chat.bot.server.button(listing, "▶"))
    page2 = chat.last()
    assert page2["message_id"] == listing["message_id"] and "2 / 2" in [
        b["text"] for b in chat.bot.server.buttons(page2)
    ]
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
    assert "Jazz — 2 searches\n" in text and "Techno — 1 search, 1 like\n" in text
    assert "Jazz Song 13 — Jazz Band 1" in text


async def test_radio_command_starts_from_latest_like(chat: Chat, fakes: FakeServices) -> None:
    await chat.send("Techno Song 25")
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "👍"))
    await chat.send("/radio")
    assert "Techno" in chat.last()["text"] and "Radio" in chat.last()["text"]


async def test_settings_language_dial_hour_and_time_zone(busy_chat: Chat, container) -> None:
    chat = busy_chat
    users: UserService = container.services.users
    await chat.send("/settings")
    panel = chat.last()
    assert "Familiar ↔ new: Mostly familiar" in panel["text"]
    await chat.press(panel, chat.bot.server.button(panel, "Русский"))
    assert "Настройки" in chat.last()["text"]
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "Знакомое ↔ новое"))
    dial = chat.last()
    assert "Насколько рекомендации" in dial["text"]
    assert [b["text"] for b in chat.bot.server.buttons(dial)] == [
        "Знакомое",
        "• Скорее знакомое",
        "Поровну",
        "Скорее новое",
        "Новое",
        "◀ Назад",
    ]
    await chat.press(dial, chat.bot.server.button(dial, "Новое"))
    assert "Знакомое ↔ новое: <b>Новое</b>" in chat.bot.calls("editMessageText")[-1]["text"]  # back on the panel
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "🔔"))
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "09:00"))
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "🕒"))
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "Москва"))
    user = await users.by_telegram_id(chat.user["id"])
    assert user is not None
    assert (user.language, user.diversity, user.subscribed, user.pick_hour, user.timezone) == (
        "ru",
        1.0,
        True,
        9,
        "Europe/Moscow",
    )
    assert "Трек дня: <b>каждый день в 09:00</b>" in chat.bot.calls("editMessageText")[-1]["text"]
    # Pressing the same choice twice is "message is not modified": answered, no error.
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "Знакомое ↔ новое"))
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "• Новое"))
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "Знакомое ↔ новое"))
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "• Новое"))
    assert chat.bot.calls("answerCallbackQuery")[-1].get("show_alert") is not True


async def test_subscribe_at_a_local_time_and_unsubscribe(chat: Chat, container) -> None:
    users: UserService = container.services.users
    for typed, shown, stored in (("7", "07:00", (7, 0)), ("9am", "09:00", (9, 0)), ("21:30", "21:30", (21, 30))):
        await chat.send(f"/subscribe {typed}")
        assert f"every day at {shown}, UTC" in chat.last()["text"]
        user = await users.by_telegram_id(chat.user["id"])
        assert user is not None and (user.subscribed, user.pick_hour, user.pick_minute) == (True, *stored)
    await chat.send("/subscribe 25")
    assert "couldn't read" in chat.last()["text"] and "21:30" in chat.last()["text"]
    await chat.send("/timezone america/new_york")
    assert "Time zone set: New York (UTC−" in chat.last()["text"] and "21:30" in chat.last()["text"]
    await chat.send("/timezone Mars/Base")
    assert "don't know the time zone" in chat.last()["text"]
    user = await users.by_telegram_id(chat.user["id"])
    assert user is not None and (user.pick_hour, user.pick_minute, user.timezone) == (21, 30, "America/New_York")
    await chat.send("/unsubscribe")
    user = await users.by_telegram_id(chat.user["id"])
    assert user is not None and user.subscribed is False


async def test_a_russian_user_starts_on_moscow_time(dp, bot, container) -> None:
    chat = Chat(dp, bot, user_id=3003, language="ru")
    await chat.send("/subscribe 9")
    assert "каждый день в <b>09:00</b>, часовой пояс — Москва (UTC+3)" in chat.bot.calls("sendMessage")[-1]["text"]


async def test_inline_search_is_personal_with_links(chat: Chat) -> None:
    await chat.inline("Jazz Song 1")
    answer = chat.bot.calls("answerInlineQuery")[-1]
    assert answer["is_personal"] is True
    results = answer["results"]
    assert 1 <= len(results) <= 10
    first = results[0]
    assert first["input_message_content"]["message_text"].count("https://t.me/encore_test_bot?start=t_") == 1
    assert " · Jazz · " in first["description"]
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


async def test_inline_shows_the_same_genre_as_the_card_with_a_thumbnail(chat: Chat, fakes: FakeServices) -> None:
    cover = "https://cdn-images.dzcdn.net/images/cover/x/250x250.jpg"
    fakes.tracks.add(dataclasses.replace(make_track(800, "rock", name="Master of Puppets"), cover_url=cover))
    await chat.inline("Master of Puppets")
    result = chat.bot.calls("answerInlineQuery")[-1]["results"][0]
    assert result["thumbnail_url"] == cover
    assert result["input_message_content"]["link_preview_options"]["url"] == cover
    assert "maybe Rock" in result["description"]  # unsure (45 %): not stated as fact
    await chat.send("/start t_800")
    card = chat.last()["text"]
    inline_card = parse_html(result["input_message_content"]["message_text"])
    genre_line = next(line for line in card.splitlines() if line.startswith("🏷"))
    assert genre_line in inline_card and "Rock — 45%" in card


async def test_unknown_command_says_so_then_helps(chat: Chat) -> None:
    await chat.send("/whatever")
    text = chat.last()["text"]
    assert text.startswith("🤔 I don't know the command /whatever.") and "How to use Encore" in text


async def test_recordings_get_a_clear_answer_when_analysis_is_off(chat: Chat) -> None:
    """No analysis service (switched off): voice, audio and documents say so; a sticker points at what works."""
    server = chat.bot.server
    for extra in (
        {"voice": {"file_id": "v1", "file_unique_id": "u1", "duration": 3}},
        {"audio": {"file_id": "a1", "file_unique_id": "u2", "duration": 200}},
        {"document": {"file_id": "d1", "file_unique_id": "u3", "mime_type": "audio/mpeg"}},
    ):
        update = server.message_update(chat.user, "")
        message = {k: v for k, v in update["message"].items() if k != "text"}
        await chat.feed({"message": {**message, **extra}})
        assert chat.last()["text"].startswith("🎧 Listening to recordings is switched off right now.")
    await chat.feed(
        {
            "message": {
                **message,
                "sticker": {
                    "file_id": "s",
                    "file_unique_id": "s",
                    "type": "regular",
                    "width": 1,
                    "height": 1,
                    "is_animated": False,
                    "is_video": False,
                },
            }
        }
    )
    assert "Send me a song title" in chat.last()["text"]
