"""The fake Bot API's checks of inline keyboards, HTML text and plain parameters, in Telegram's words."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramNotFound
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.types import (
    CopyTextButton,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MessageEntity,
    ReplyKeyboardRemove,
    ReplyParameters,
    WebAppInfo,
)

from tests.fakes.telegram import STRICTER, TOKEN, BadRequest, FakeTelegram, check_message_text, parse_html
from tests.fakes_tests.conftest import ANN, refusal


def keyboard(*buttons: InlineKeyboardButton) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[list(buttons)])


def button(**fields: Any) -> InlineKeyboardButton:
    return InlineKeyboardButton.model_construct(**{"text": "▶", **fields})


async def test_every_button_kind_the_bot_may_use_is_accepted(bot: Bot, telegram: FakeTelegram) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="👍", callback_data="x" * 64)],
            [InlineKeyboardButton(text="Deezer", url="https://www.deezer.com/track/3135556")],
            [InlineKeyboardButton(text="Page", url="http://127.0.0.1:8080/radio/abc")],
            [InlineKeyboardButton(text="Profile", url="tg://user?id=7001")],
            [InlineKeyboardButton(text="Share", switch_inline_query="daft punk")],
            [InlineKeyboardButton(text="Here", switch_inline_query_current_chat="")],
            [InlineKeyboardButton(text="Copy link", copy_text=CopyTextButton(text="https://encore.example.com/p/x"))],
            [InlineKeyboardButton(text="App", web_app=WebAppInfo(url="https://encore.example.com/app"))],
        ]
    )
    sent = await bot.send_message(ANN["id"], "buttons", reply_markup=markup)
    assert sent.reply_markup is not None
    assert sent.reply_markup.model_dump(exclude_none=True) == markup.model_dump(exclude_none=True)
    removed = await bot.send_message(ANN["id"], "no keyboard", reply_markup=ReplyKeyboardRemove())
    assert removed.reply_markup is None  # only inline keyboards show in a Message


async def test_buttons_are_refused_as_telegram_refuses_them(bot: Bot) -> None:
    cases: list[tuple[Any, str]] = [
        (
            keyboard(button()),
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            keyboard(button(callback_data="")),
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (keyboard(button(callback_data="x" * 65)), "Bad Request: BUTTON_DATA_INVALID"),
        (keyboard(button(callback_data="й" * 33)), "Bad Request: BUTTON_DATA_INVALID"),  # 66 bytes
        (
            keyboard(button(url="not-a-url")),
            "Bad Request: inline keyboard button URL 'not-a-url' is invalid: Wrong HTTP URL",
        ),
        (
            keyboard(button(url="http://localhost:8081")),
            "Bad Request: inline keyboard button URL 'http://localhost:8081' is invalid: Wrong HTTP URL",
        ),
        (
            keyboard(button(url="ftp://example.com")),
            "Bad Request: inline keyboard button URL 'ftp://example.com' is invalid: Unsupported URL protocol",
        ),
        (
            keyboard(button(url="javascript:alert(1)")),
            "Bad Request: inline keyboard button URL 'javascript:alert(1)' is invalid: Unsupported URL protocol",
        ),
        (
            keyboard(button(web_app=WebAppInfo(url="http://example.com"))),
            "Bad Request: inline keyboard button Web "
            "App URL 'http://example.com' is invalid: Only HTTPS links are allowed",
        ),
        (keyboard(button(copy_text=CopyTextButton(text=""))), "Bad Request: BUTTON_COPY_TEXT_INVALID"),
        (keyboard(button(copy_text=CopyTextButton(text="x" * 257))), "Bad Request: BUTTON_COPY_TEXT_INVALID"),
        (keyboard(button(pay=True)), "Bad Request: BUTTON_TYPE_INVALID"),
        (keyboard(button(text="", callback_data="x")), "Bad Request: BUTTON_TEXT_INVALID"),
        (
            keyboard(InlineKeyboardButton.model_construct(callback_data="x")),
            "Bad Request: can't parse inline keyboard button: Can't find field \"text\"",
        ),
        (
            InlineKeyboardMarkup.model_construct(inline_keyboard="bad"),
            'Bad Request: field "inline_keyboard" must be of type Array',
        ),
        (
            InlineKeyboardMarkup.model_construct(inline_keyboard=[button(callback_data="x")]),
            'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays',
        ),
        (
            keyboard(button(callback_data="x", url="https://example.com")),
            "Bad Request: can't parse inline keyboard "
            "button: a button needs exactly one action, got url, callback_data (Telegram uses the first)",
        ),
    ]
    for markup, description in cases:
        method = SendMessage.model_construct(chat_id=ANN["id"], text="x", reply_markup=markup)
        assert await refusal(bot(method), TelegramBadRequest) == description, description


@pytest.mark.parametrize(
    ("html", "description"),
    [
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<script>alert(1)</script>", 'Unsupported start tag "script" at byte offset 0'),
        ("<b><i>test</b></i>", 'Unmatched end tag at byte offset 10, expected "</i>", found "</b>"'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("Привет <x>", 'Unsupported start tag "x" at byte offset 13'),  # offsets count UTF-8 bytes
        ("</b>", "Unexpected end tag at byte offset 0"),
        ("x <b", "Unclosed start tag at byte offset 2"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ("x <b title", 'Unclosed start tag "b" at byte offset 2'),
        ("<a =x>y</a>", 'Empty attribute name in the tag "a" at byte offset 0'),
        ("<a href=x/y>z</a>", "Unexpected end of name token at byte offset 8"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<tg-emoji emoji-id="9999999999999999999">x</tg-emoji>', "Invalid custom emoji identifier specified"),
    ],
)
def test_html_parse_errors_match_telegrams_wording(html: str, description: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_html(html)
    assert refused.value.description == f"Bad Request: can't parse entities: {description}"


def test_html_that_telegram_accepts() -> None:
    assert parse_html(
        '<b>a</b> <i>b</i> <u>c</u> <s>d</s> <tg-spoiler>e</tg-spoiler> <span class="tg-spoiler">f</span>'
    )
    assert parse_html('<blockquote expandable>q</blockquote> <pre><code class="language-python">x</code></pre>') == (
        "q x"
    )
    assert parse_html('<a href="https://x.y/?a=1&amp;b=2">ok</a> &lt;3 &#39;&#x41; &quot;') == "ok <3 'A \""
    assert parse_html("5 > 3") == "5 > 3"  # a bare > is text
    assert parse_html('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>') == "👍"


def test_strict_mode_refuses_what_telegram_only_tolerates() -> None:
    """A bare &, &nbsp;, ignored attributes and <a> without a link pass Telegram but show the user a mistake."""
    for html in ("R&B", "&nbsp;", '<b class="x">y</b>', "<a>not a link</a>", '<a href="javascript:x">y</a>'):
        with pytest.raises(BadRequest) as refused:
            parse_html(html)
        assert refused.value.description.endswith(STRICTER), html
        assert parse_html(html, strict=False)  # what Telegram itself does: shown as text
    assert parse_html("R&B &nbsp;", strict=False) == "R&B &nbsp;"


def test_text_length_and_emptiness() -> None:
    assert check_message_text("x" * 4096, None) == "x" * 4096
    assert check_message_text("🎵" * 2048, None)  # 4096 UTF-16 units
    for text, description in (
        ("x" * 4097, "Bad Request: message is too long"),
        ("🎵" * 2049, "Bad Request: message is too long"),
        ("", "Bad Request: message text is empty"),
        ("   ", "Bad Request: text must be non-empty"),
    ):
        with pytest.raises(BadRequest) as refused:
            check_message_text(text, None)
        assert refused.value.description == description


async def test_plain_parameters_and_methods(bot: Bot, telegram: FakeTelegram) -> None:
    class NoSuchMethod(TelegramMethod[bool]):
        __returning__ = bool
        __api_method__ = "sendSong"

    assert await refusal(bot(NoSuchMethod()), TelegramNotFound) == "Not Found: method not found"
    assert await refusal(bot.send_message(ANN["id"], "<b>x")) == (
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""
    )
    assert await refusal(bot.send_chat_action(ANN["id"], "dancing")) == "Bad Request: wrong parameter action in request"
    assert await bot.send_chat_action(ANN["id"], "upload_voice")
    reply = ReplyParameters(message_id=999)
    assert await refusal(bot.send_message(ANN["id"], "x", reply_parameters=reply)) == (
        "Bad Request: message to be replied not found"
    )
    spoken = telegram.send_text(ANN, "daft punk")["message"]
    answered = await bot.send_message(ANN["id"], "x", reply_parameters=ReplyParameters(message_id=spoken["message_id"]))
    assert answered.reply_to_message is not None and answered.reply_to_message.text == "daft punk"
    assert await refusal(bot.send_message("@nobody", "x")) == "Bad Request: chat not found"
    telegram.blocked.add(ANN["id"])
    assert await refusal(bot.send_message(ANN["id"], "x")) == "Forbidden: bot was blocked by the user"


async def test_explicit_entities_and_parse_modes(bot: Bot) -> None:
    bold = MessageEntity(type="bold", offset=0, length=5)
    assert (await bot.send_message(ANN["id"], "hello", entities=[bold], parse_mode=None)).text == "hello"
    cases = [
        (
            [MessageEntity(type="bold", offset=100, length=1)],
            "Bad Request: entity begins after the end of the text at UTF-16 offset 100",
        ),
        (
            [MessageEntity(type="bold", offset=0, length=100)],
            "Bad Request: entity beginning at UTF-16 offset 0 ends after the end of the text at UTF-16 offset 100",
        ),
        ([MessageEntity(type="bold", offset=-1, length=1)], "Bad Request: receive an entity with incorrect offset -1"),
        (
            [MessageEntity.model_construct(type="sparkle", offset=0, length=1)],
            "Bad Request: can't parse MessageEntity: Unsupported type specified",
        ),
        (
            [MessageEntity(type="text_link", offset=0, length=5, url="not-a-url")],
            "Bad Request: entity URL 'not-a-url' is invalid: Wrong HTTP URL",
        ),
    ]
    for entities, description in cases:
        assert await refusal(bot.send_message(ANN["id"], "hello", entities=entities, parse_mode=None)) == description
    assert await refusal(bot.send_message(ANN["id"], "x", parse_mode="Mixed")) == "Bad Request: unsupported parse_mode"
    assert "not implemented by the fake" in await refusal(bot.send_message(ANN["id"], "*x*", parse_mode="MarkdownV2"))


async def test_a_raw_request_with_an_unknown_parameter(telegram: FakeTelegram) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{telegram.base_url}/bot{TOKEN}/sendMessage", data={"chat_id": "1", "text": "x", "colour": "red"}
        ) as response,
    ):
        body = await response.json()
    assert response.status == 400
    assert body["description"] == (
        'Bad Request: unknown parameter "colour" for method sendMessage (the fake is stricter than Telegram here)'
    )
