"""The fake Bot API's inline mode and callback answers, validated per result type against the spec."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InlineQueryResultAudio,
    InlineQueryResultCachedAudio,
    InlineQueryResultsButton,
    InputTextMessageContent,
    LinkPreviewOptions,
    WebAppInfo,
)

from tests.fakes.telegram import FakeTelegram
from tests.fakes_tests.conftest import ANN, refusal

PREVIEW = "https://cdnt-preview.dzcdn.net/api/1/1/a/b/c/0/abc.mp3?hdnea=exp=1700000000~hmac=ff"


def audio(result_id: str = "t:1", **fields: Any) -> InlineQueryResultAudio:
    values = {"audio_url": PREVIEW, "title": "One More Time", "performer": "Daft Punk", "audio_duration": 30}
    return InlineQueryResultAudio(id=result_id, **{**values, **fields})


def article(result_id: str = "a:1", **fields: Any) -> InlineQueryResultArticle:
    content = InputTextMessageContent(message_text="<b>Daft Punk</b> — One More Time")
    values = {"title": "One More Time", "input_message_content": content}
    return InlineQueryResultArticle(id=result_id, **{**values, **fields})


async def answer(bot: Bot, telegram: FakeTelegram, results: list[Any], **kwargs: Any) -> str:
    query_id = telegram.inline(ANN, "daft")["inline_query"]["id"]
    await bot.answer_inline_query(query_id, results, **kwargs)
    return query_id


async def test_playable_audio_and_articles_with_thumbnails_are_accepted(bot: Bot, telegram: FakeTelegram) -> None:
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="▶ Radio", callback_data="r:1")]])
    results: list[Any] = [
        audio(reply_markup=markup, caption="<i>30-s preview</i>"),
        article(
            thumbnail_url="https://e-cdns-images.dzcdn.net/images/cover/abc/250x250.jpg",
            thumbnail_width=250,
            thumbnail_height=250,
            description="French house · 2000",
        ),
    ]
    button = InlineQueryResultsButton(text="Open Encore", start_parameter="inline_help")
    query_id = await answer(bot, telegram, results, cache_time=0, is_personal=True, button=button)
    sent = telegram.inline_answers[query_id]
    assert [r["type"] for r in sent["results"]] == ["audio", "article"]
    assert sent["results"][0]["performer"] == "Daft Punk" and sent["results"][0]["audio_duration"] == 30
    assert sent["results"][1]["thumbnail_width"] == 250
    assert (sent["cache_time"], sent["is_personal"], sent["button"]["start_parameter"]) == (0, True, "inline_help")
    assert await refusal(bot.answer_inline_query(query_id, results)) == (
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )


async def test_cached_audio_must_name_a_known_audio_file(bot: Bot, telegram: FakeTelegram) -> None:
    audio_id = telegram.send_audio(ANN, b"ID3...")["message"]["audio"]["file_id"]
    voice_id = telegram.send_voice(ANN, b"OggS...")["message"]["voice"]["file_id"]
    await answer(bot, telegram, [InlineQueryResultCachedAudio(id="c:1", audio_file_id=audio_id)])
    for file_id, description in (
        (voice_id, "Bad Request: type of file mismatch"),
        ("CQACAgIAAxkBAAIunknown", "Bad Request: wrong file identifier/HTTP URL specified"),
    ):
        cached = InlineQueryResultCachedAudio(id="c:2", audio_file_id=file_id)
        assert await refusal(answer(bot, telegram, [cached]), TelegramBadRequest) == description


async def test_inline_results_are_refused_in_telegrams_words(bot: Bot, telegram: FakeTelegram) -> None:
    no_title = InlineQueryResultAudio.model_construct(type="audio", id="t:1", audio_url=PREVIEW)
    unknown_type = InlineQueryResultAudio.model_construct(type="song", id="t:1", audio_url=PREVIEW, title="x")
    cases: list[tuple[list[Any], str]] = [
        ([no_title], "Bad Request: can't parse inline query result: Can't find field \"title\""),
        (
            [unknown_type],
            'Bad Request: can\'t parse inline query result: type "song" is unsupported for the inline query result',
        ),
        ([audio("x" * 65)], "Bad Request: RESULT_ID_INVALID"),
        ([audio("same"), article("same")], "Bad Request: RESULT_ID_DUPLICATE"),
        ([audio(f"t:{i}") for i in range(51)], "Bad Request: too many inline query results specified"),
        ([audio(audio_url="not-a-url")], "Bad Request: wrong file identifier/HTTP URL specified"),
        ([audio(audio_url="ftp://cdn.example.com/a.mp3")], "Bad Request: WEBDOCUMENT_URL_INVALID"),
        ([article(thumbnail_url="http://localhost/cover.jpg")], "Bad Request: WEBDOCUMENT_URL_INVALID"),
        ([audio(caption="x" * 1025)], "Bad Request: message caption is too long"),
        ([article(title=" ")], "Bad Request: RESULT_TITLE_EMPTY"),
        (
            [article(input_message_content=InputTextMessageContent(message_text="<b>open"))],
            "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"",
        ),
        (
            [article(reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="x")]]))],
            "Bad Request: can't parse inline query result: Can't parse inline keyboard button: Text buttons are "
            "unallowed in the inline keyboard",
        ),
    ]
    for results, description in cases:
        assert await refusal(answer(bot, telegram, results), TelegramBadRequest) == description, description
    assert await refusal(answer(bot, telegram, [audio()], next_offset="x" * 65)) == "Bad Request: NEXT_OFFSET_INVALID"
    assert (await refusal(answer(bot, telegram, [audio()], cache_time=-1))).startswith(
        "Bad Request: CACHE_TIME_INVALID"
    )
    assert telegram.inline_answers == {}  # nothing was accepted half-way


async def test_the_results_button_needs_exactly_one_target(bot: Bot, telegram: FakeTelegram) -> None:
    both = InlineQueryResultsButton(text="x", start_parameter="a", web_app=WebAppInfo(url="https://encore.example.com"))
    assert await refusal(answer(bot, telegram, [audio()], button=both)) == (
        "Bad Request: can't parse inline query results button: InlineQueryResultsButton must have exactly one "
        "optional field"
    )
    bad_start = InlineQueryResultsButton(text="x", start_parameter="has space")
    assert await refusal(answer(bot, telegram, [audio()], button=bad_start)) == "Bad Request: START_PARAM_INVALID"
    http_app = InlineQueryResultsButton(text="x", web_app=WebAppInfo(url="http://encore.example.com"))
    assert (await refusal(answer(bot, telegram, [audio()], button=http_app))).endswith("Only HTTPS links are allowed")


async def test_link_preview_options_are_checked(bot: Bot, telegram: FakeTelegram) -> None:
    ok = await bot.send_message(ANN["id"], "x", link_preview_options=LinkPreviewOptions(is_disabled=True))
    assert ok.link_preview_options is not None and ok.link_preview_options.is_disabled is True
    shown = LinkPreviewOptions(
        url="https://www.deezer.com/track/3135556", prefer_small_media=True, show_above_text=True
    )
    assert (await bot.send_message(ANN["id"], "x", link_preview_options=shown)).text == "x"

    not_bool = LinkPreviewOptions.model_construct(is_disabled="yes")
    assert await refusal(bot.send_message(ANN["id"], "x", link_preview_options=not_bool)) == (
        'Bad Request: field "is_disabled" must be of type Boolean'
    )
    bad_url = LinkPreviewOptions(url="not-a-url")
    assert await refusal(bot.send_message(ANN["id"], "x", link_preview_options=bad_url)) == (
        "Bad Request: WEBPAGE_URL_INVALID"
    )
    unknown = LinkPreviewOptions.model_construct(is_disabled=True, disable=True)
    assert (await refusal(bot.send_message(ANN["id"], "x", link_preview_options=unknown))).endswith(
        "(the fake is stricter than Telegram here)"
    )


async def test_callback_answers_text_alert_and_url(bot: Bot, telegram: FakeTelegram) -> None:
    message = await bot.send_message(
        ANN["id"],
        "x",
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="👍", callback_data="l")]]),
    )

    def press() -> str:
        return str(telegram.press(ANN, message.model_dump(), "l")["callback_query"]["id"])

    first = press()
    assert await bot.answer_callback_query(first, text="y" * 200, show_alert=True)
    assert telegram.callback_answers[first]["show_alert"] is True
    assert await bot.answer_callback_query(press(), url="https://t.me/encore_test_bot?start=t_42")
    assert await refusal(bot.answer_callback_query(press(), text="y" * 201)) == "Bad Request: MESSAGE_TOO_LONG"
    assert await refusal(bot.answer_callback_query(press(), url="https://encore.example.com/")) == (
        "Bad Request: URL_INVALID"
    )
    assert await refusal(bot.answer_callback_query(first, text="again")) == (
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )
