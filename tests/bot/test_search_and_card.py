"""Handler tests through feed_update: /start, search, candidates paging, the track card buttons."""

from __future__ import annotations

import dataclasses

from bot.telegram.callbacks import SearchPageCallback, TrackAction, TrackCallback
from db.models import InteractionKind
from handlers.telegram.search import MAX_SAVED
from services.dto import Resolution, ResolutionKind, TrackCard, YouTubeLink
from services.examples import EXAMPLES
from services.tracks import NOTICE_FROM_VIDEO, NOTICE_SPOTIFY_DOWN
from tests.bot.conftest import Chat
from tests.fakes.services import FakeServices, make_track


async def test_start_explains_with_an_example_from_the_catalogue(chat: Chat) -> None:
    await chat.send("/start")
    message = chat.last()
    assert "Encore" in message["text"]
    shown = [e for e in EXAMPLES["en"] if e in message["text"]]
    assert len(shown) == 1 and "Daft Punk" not in message["text"]
    assert message["reply_markup"]["inline_keyboard"][0][0]["switch_inline_query_current_chat"] == shown[0]


async def test_start_in_russian_for_a_russian_client(dp, bot) -> None:
    chat = Chat(dp, bot, user_id=2002, language="ru")
    await chat.send("/start")
    assert "Привет" in chat.last()["text"]
    assert any(e in chat.last()["text"] for e in EXAMPLES["ru"])


async def test_one_match_shows_the_card(chat: Chat, fakes: FakeServices) -> None:
    await chat.send("Jazz Song 12")
    card = chat.last()
    assert "Jazz Song 12" in card["text"]
    assert "Genre: Jazz (80%, by its sound)" in card["text"]
    assert "🔎 YouTube" in card["text"]  # only a search until a video is known
    assert "open.spotify.com/track/" not in card["text"]  # links are HTML anchors; visible text is short
    data = [b["callback_data"] for b in chat.bot.server.buttons(card)]
    assert TrackCallback(action=TrackAction.RADIO, track_id=12).pack() in data
    assert TrackCallback(action=TrackAction.LIKE, track_id=12).pack() in data
    assert TrackCallback(action=TrackAction.SIMILAR, track_id=12).pack() in data
    sent = chat.bot.calls("sendMessage")[-1]
    assert '<a href="https://open.spotify.com/track/' in sent["text"]
    assert "youtube.com/results" in sent["text"]
    assert sent["link_preview_options"] == {"is_disabled": True}  # no cover known


async def test_card_shows_cover_duration_and_year_when_known(chat: Chat, fakes: FakeServices) -> None:
    track = dataclasses.replace(
        make_track(700, "rock", name="Master of Puppets", artist="Metallica"),
        album="Master of Puppets",
        duration_ms=515_000,
        year=1986,
        cover_url="https://cdn-images.dzcdn.net/images/cover/abc/500x500.jpg",
    )
    fakes.tracks.add(track)
    await chat.send("/start t_700")
    sent = chat.bot.calls("sendMessage")[-1]
    assert "💿 Master of Puppets · 1986 · 8:35" in chat.last()["text"]
    assert sent["link_preview_options"] == {
        "url": track.cover_url,
        "prefer_small_media": True,
        "show_above_text": False,
    }


async def test_youtube_link_says_watch_when_a_video_is_known(chat: Chat, fakes: FakeServices, monkeypatch) -> None:
    card = fakes.tracks.card

    async def with_video(track_id: int, *, user_id: int | None = None) -> TrackCard:
        found = await card(track_id, user_id=user_id)
        return dataclasses.replace(found, youtube=YouTubeLink("https://www.youtube.com/watch?v=abc", False, "abc"))

    monkeypatch.setattr(fakes.tracks, "card", with_video)
    await chat.send("Jazz Song 12")
    assert "▶️ YouTube" in chat.last()["text"] and "🔎 YouTube" not in chat.last()["text"]


async def test_unsure_genre_shows_top_three(chat: Chat) -> None:
    await chat.send("Rock Song 3")
    text = chat.last()["text"]
    assert "Genre not clear by its sound; most likely:" in text
    assert "Rock — 45%" in text and "Metal — 35%" in text and "Punk — 20%" in text


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
    assert "2 / 2" in [b["text"] for b in chat.bot.server.buttons(edited)]
    assert "/2" not in edited["text"]  # the pager says where you are; the text does not repeat it


async def test_picking_a_candidate_opens_the_card_and_records_the_search(chat: Chat, fakes: FakeServices) -> None:
    await chat.send("Song 1")
    pick = chat.bot.server.buttons(chat.last())[0]
    await chat.press(chat.last(), pick["callback_data"])
    track_id = TrackCallback.unpack(pick["callback_data"]).track_id
    assert fakes.tracks.by_id[track_id].name in chat.last()["text"]
    assert any(r[1] == track_id and r[2] is InteractionKind.SEARCHED for r in fakes.feedback.records)


async def test_older_search_lists_still_page_until_they_are_too_old(busy_chat: Chat) -> None:
    chat = busy_chat
    await chat.send("Song 1")
    old = chat.last()
    await chat.send("Song 2")
    await chat.press(old, chat.bot.server.button(old, "▶"))
    edited = chat.bot.calls("editMessageText")[-1]
    assert edited["message_id"] == old["message_id"] and "Song 1" in edited["text"]
    assert "2 / 2" in [b["text"] for row in edited["reply_markup"]["inline_keyboard"] for b in row]
    for i in range(MAX_SAVED):  # the list falls out of the kept ones …
        await chat.send(f"Song {2 + i % 2}")
    await chat.press(old, chat.bot.server.button(chat.bot.server.messages[(chat.user["id"], old["message_id"])], "◀"))
    answer = chat.answers()[-1]
    assert answer.get("show_alert") is not True and "older search" in answer["text"]  # … and says so in a toast


async def test_weak_matches_say_no_exact_match(chat: Chat, fakes: FakeServices, monkeypatch) -> None:
    async def closest(text: str, *, user_id: int | None = None, limit: int = 8) -> Resolution:
        return Resolution(ResolutionKind.CANDIDATES, tracks=tuple(fakes.catalog[:3]), exact=False)

    monkeypatch.setattr(fakes.tracks, "resolve", closest)
    await chat.send("quen bohemain rapsody")
    assert chat.last()["text"] == "🔎 No exact match for quen bohemain rapsody — closest:"
    assert len(chat.bot.server.buttons(chat.last())) == 3


async def test_notices_are_in_the_users_language(dp, bot, fakes: FakeServices, monkeypatch) -> None:
    async def from_video(text: str, *, user_id: int | None = None, limit: int = 8) -> Resolution:
        notice = f"{NOTICE_FROM_VIDEO.format('Kino - Gruppa Krovi (Official Video)')} {NOTICE_SPOTIFY_DOWN}"
        return Resolution(ResolutionKind.CANDIDATES, tracks=tuple(fakes.catalog[:3]), notice=notice)

    monkeypatch.setattr(fakes.tracks, "resolve", from_video)
    chat = Chat(dp, bot, user_id=2003, language="ru")
    await chat.send("https://youtu.be/abcdefghijk")
    assert (
        "Искал по названию видео «Kino - Gruppa Krovi (Official Video)». Spotify сейчас недоступен"
        in chat.last()["text"]
    )


async def test_a_clear_match_opens_with_other_versions_behind_a_button(
    chat: Chat, fakes: FakeServices, monkeypatch
) -> None:
    song = fakes.tracks.by_id[3]
    versions = (
        dataclasses.replace(song, id=41, album="Greatest Hits", year=1981),
        dataclasses.replace(song, id=42, album="Live Killers", year=1979),
    )
    for v in versions:
        fakes.tracks.add(v)

    async def opened(text: str, *, user_id: int | None = None, limit: int = 8) -> Resolution:
        return Resolution(ResolutionKind.TRACK, tracks=(song,), alternatives=versions)

    monkeypatch.setattr(fakes.tracks, "resolve", opened)
    await chat.send("rock band 0 rock song 3")
    card = chat.last()
    assert song.name in card["text"]
    await chat.press(card, chat.bot.server.button(card, "👍"))  # the like keeps the versions button
    card = chat.last()
    assert chat.bot.server.button(card, "Liked") and chat.bot.server.button(card, "Other versions (2)")
    await chat.press(card, chat.bot.server.button(card, "Other versions"))
    listing = chat.last()
    assert listing["message_id"] != card["message_id"]
    assert listing["text"].startswith(f"🔀 Other versions of {song.name}")
    assert [b["text"] for b in chat.bot.server.buttons(listing)] == [
        f"{song.name} — Greatest Hits (1981)",
        f"{song.name} — Live Killers (1979)",
    ]
    await chat.press(listing, chat.bot.server.buttons(listing)[1]["callback_data"])
    assert chat.last()["message_id"] != listing["message_id"] and "Live Killers" in chat.last()["text"]


async def test_nothing_found_gives_an_example_and_escapes_the_query(chat: Chat) -> None:
    await chat.send("<b>zzz & nothing</b>")
    sent = chat.bot.calls("sendMessage")[-1]["text"]
    assert "&lt;b&gt;zzz &amp; nothing&lt;/b&gt;" in sent
    assert any(f"<code>{e}</code>" in sent for e in EXAMPLES["en"])


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


async def test_similar_lists_five_tracks_once_and_records_them_as_shown(chat: Chat, fakes: FakeServices) -> None:
    await chat.send("Jazz Song 12")
    card = chat.last()
    await chat.press(card, chat.bot.server.button(card, "Similar"))
    listing = chat.last()
    assert listing["message_id"] != card["message_id"]
    buttons = chat.bot.server.buttons(listing)
    assert len(buttons) == 5
    assert listing["text"].count("Jazz Song") == 1  # only the seed: the five are the buttons, not repeated
    assert "5 tracks" in listing["text"]
    assert all(b["text"].startswith("Jazz Song") and " — Jazz Band" in b["text"] for b in buttons)  # title first
    shown = [r for r in fakes.feedback.records if r[2] is InteractionKind.SHOWN and r[3] == "similar"]
    assert [r[1] for r in shown] == [TrackCallback.unpack(b["callback_data"]).track_id for b in buttons]


async def test_forged_track_id_gets_an_alert_not_an_exception(chat: Chat) -> None:
    await chat.send("Jazz Song 12")
    card = chat.last()
    for action in (TrackAction.LIKE, TrackAction.CARD, TrackAction.SIMILAR):
        await chat.press(card, TrackCallback(action=action, track_id=999_999).pack())
        answer = chat.answers()[-1]
        assert answer.get("show_alert") is not True and "no longer available" in answer["text"]


async def test_garbage_callback_data_gets_an_alert(chat: Chat) -> None:
    await chat.send("Jazz Song 12")
    for data in ("t:zz:1", "nonsense", "r:1:x:q"):
        await chat.press(chat.last(), data)
        assert chat.answers()[-1].get("show_alert") is not True and chat.answers()[-1]["text"]


async def test_deep_link_opens_the_card(chat: Chat) -> None:
    await chat.send("/start t_7")
    assert "Rock Song 7" in chat.last()["text"]


async def test_huge_titles_stay_within_the_limit(chat: Chat, fakes: FakeServices) -> None:
    fakes.tracks.add(make_track(500, "jazz", name="Ünïcode <&> " * 900, artist="A" * 5000))
    await chat.send("/start t_500")
    sent = chat.bot.calls("sendMessage")[-1]
    assert "&lt;&amp;&gt;" in sent["text"]
    assert len(chat.last()["text"]) <= 4096
