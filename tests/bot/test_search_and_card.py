"""Handler tests through feed_update: /start, search, candidates paging, the track card buttons."""

from __future__ import annotations

from bot.telegram.callbacks import SearchPageCallback, TrackAction, TrackCallback
from db.models import InteractionKind
from tests.bot.conftest import Chat
from tests.bot.fakes_services import FakeServices, make_track


async def test_start_explains_with_an_example(chat: Chat) -> None:
    await chat.send("/start")
    message = chat.last()
    assert "Encore" in message["text"]
    assert "Daft Punk" in message["text"]
    assert message["reply_markup"]["inline_keyboard"][0][0]["switch_inline_query_current_chat"]


async def test_start_in_russian_for_a_russian_client(dp, bot) -> None:
    chat = Chat(dp, bot, user_id=2002, language="ru")
    await chat.send("/start")
    assert "Привет" in chat.last()["text"]


async def test_one_match_shows_the_card(chat: Chat, fakes: FakeServices) -> None:
    await chat.send("Jazz Song 12")
    card = chat.last()
    assert "Jazz Song 12" in card["text"]
    assert "jazz" in card["text"] and "80%" in card["text"]
    assert "open.spotify.com/track/" not in card["text"]  # links are HTML anchors; visible text is short
    data = [b["callback_data"] for b in chat.bot.server.buttons(card)]
    assert TrackCallback(action=TrackAction.RADIO, track_id=12).pack() in data
    assert TrackCallback(action=TrackAction.LIKE, track_id=12).pack() in data
    assert TrackCallback(action=TrackAction.SIMILAR, track_id=12).pack() in data
    sent = chat.bot.calls("sendMessage")[-1]
    assert '<a href="https://open.spotify.com/track/' in sent["text"]
    assert "youtube.com/results" in sent["text"]


async def test_unsure_genre_shows_top_three(chat: Chat) -> None:
    await chat.send("Rock Song 3")
    text = chat.last()["text"]
    assert "rock — 45%" in text and "metal — 35%" in text and "punk — 20%" in text


async def test_several_matches_are_buttons_with_paging(chat: Chat) -> None:
    await chat.send("Song 1")  # Song 1, Song 10..19 … : more than 8
    listing = chat.last()
    buttons = chat.bot.server.buttons(listing)
    picks = [b for b in buttons if b["callback_data"].startswith("t:p:")]
    assert len(picks) == 8
    next_data = chat.bot.server.button(listing, "▶")
    assert SearchPageCallback.unpack(next_data).page == 1
    await chat.press(listing, next_data)
    edited = chat.last()
    assert edited["message_id"] == listing["message_id"]  # edited in place
    page2 = [b for b in chat.bot.server.buttons(edited) if b["callback_data"].startswith("t:p:")]
    assert 1 <= len(page2) <= 8
    assert {b["callback_data"] for b in page2}.isdisjoint({b["callback_data"] for b in picks})
    assert "(2/2)" in edited["text"]


async def test_picking_a_candidate_opens_the_card_and_records_the_search(chat: Chat, fakes: FakeServices) -> None:
    await chat.send("Song 1")
    pick = chat.bot.server.buttons(chat.last())[0]
    await chat.press(chat.last(), pick["callback_data"])
    track_id = TrackCallback.unpack(pick["callback_data"]).track_id
    assert fakes.tracks.by_id[track_id].name in chat.last()["text"]
    assert any(r[1] == track_id and r[2] is InteractionKind.SEARCHED for r in fakes.feedback.records)


async def test_an_old_search_list_answers_with_an_alert(chat: Chat) -> None:
    await chat.send("Song 1")
    old = chat.last()
    await chat.send("Song 2")
    await chat.press(old, chat.bot.server.button(old, "▶"))
    answer = chat.answers()[-1]
    assert answer["show_alert"] is True and "out of date" in answer["text"]


async def test_nothing_found_gives_an_example_and_escapes_the_query(chat: Chat) -> None:
    await chat.send("<b>zzz & nothing</b>")
    sent = chat.bot.calls("sendMessage")[-1]["text"]
    assert "&lt;b&gt;zzz &amp; nothing&lt;/b&gt;" in sent
    assert "Daft Punk" in sent


async def test_album_links_are_explained(chat: Chat) -> None:
    await chat.send("https://open.spotify.com/album/abc")
    assert "albums" in chat.last()["text"]


async def test_like_button_saves_and_flips_to_liked(chat: Chat, fakes: FakeServices) -> None:
    await chat.send("Jazz Song 12")
    card = chat.last()
    await chat.press(card, chat.bot.server.button(card, "👍"))
    user_likes = next(iter(fakes.feedback.liked.values()))
    assert user_likes == [12]
    assert chat.bot.server.button(chat.last(), "Liked") == TrackCallback(action=TrackAction.UNLIKE, track_id=12).pack()
    assert "likes" in chat.answers()[-1]["text"]
    await chat.press(chat.last(), chat.bot.server.button(chat.last(), "Liked"))
    assert next(iter(fakes.feedback.liked.values())) == []


async def test_similar_lists_five_tracks(chat: Chat) -> None:
    await chat.send("Jazz Song 12")
    card = chat.last()
    await chat.press(card, chat.bot.server.button(card, "Similar"))
    listing = chat.last()
    assert listing["message_id"] != card["message_id"]
    assert len(chat.bot.server.buttons(listing)) == 5
    assert listing["text"].count("Jazz Song") == 6  # the seed and five others


async def test_forged_track_id_gets_an_alert_not_an_exception(chat: Chat) -> None:
    await chat.send("Jazz Song 12")
    card = chat.last()
    for action in (TrackAction.LIKE, TrackAction.CARD, TrackAction.SIMILAR):
        await chat.press(card, TrackCallback(action=action, track_id=999_999).pack())
        answer = chat.answers()[-1]
        assert answer["show_alert"] is True and "no longer available" in answer["text"]


async def test_garbage_callback_data_gets_an_alert(chat: Chat) -> None:
    await chat.send("Jazz Song 12")
    for data in ("t:zz:1", "nonsense", "r:1:x:q"):
        await chat.press(chat.last(), data)
        assert chat.answers()[-1]["show_alert"] is True


async def test_deep_link_opens_the_card(chat: Chat) -> None:
    await chat.send("/start t_7")
    assert "Rock Song 7" in chat.last()["text"]


async def test_huge_titles_stay_within_the_limit(chat: Chat, fakes: FakeServices) -> None:
    fakes.tracks.add(make_track(500, "jazz", name="Ünïcode <&> " * 900, artist="A" * 5000))
    await chat.send("/start t_500")
    sent = chat.bot.calls("sendMessage")[-1]
    assert "&lt;&amp;&gt;" in sent["text"]
    assert len(chat.last()["text"]) <= 4096
