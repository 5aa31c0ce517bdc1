"""An in-process recording Bot session for handler tests (after aiogram's tests/mocked_bot.py).

`RecordingSession` is a `BaseSession`: every API method the bot calls is serialised exactly as
`AiohttpSession` would put it on the wire, checked by the same spec validator as the fake server
(so a bad field or a 65-byte callback_data fails here too), recorded, and answered with a queued
or a sensible default result.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.enums import ParseMode
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import LinkPreviewOptions

from tests.fakes.telegram import BOT_USER, TOKEN, BadRequest, FakeTelegram, SpecValidator, read_input_files


class RecordingSession(BaseSession):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self.wire: list[tuple[str, dict[str, Any]]] = []  # (method name, decoded params)
        self.responses: deque[Any] = deque()  # results (or BadRequest) to return before defaults
        # The fake server's state machine gives realistic default results (message ids, edits …).
        self.server = FakeTelegram()
        self.closed = False

    def add_result(self, result: Any) -> None:
        self.responses.append(result)

    def of(self, method_type: type[TelegramMethod[Any]]) -> list[Any]:
        return [r for r in self.requests if isinstance(r, method_type)]

    async def close(self) -> None:
        self.closed = True

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> TelegramType:
        files: dict[str, Any] = {}
        raw: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if prepared is not None:
                raw[key] = prepared
        self.requests.append(method)
        name = method.__api_method__
        try:
            uploads = await read_input_files(files, bot)  # the bytes AiohttpSession would put on the wire
            params = self.server.validator.decode_call(name, raw, uploads)
            self.wire.append((name, params))
            if self.responses:
                queued = self.responses.popleft()
                if isinstance(queued, BadRequest):
                    raise queued
                result: Any = queued
            else:
                result = await self.server._dispatch(self.server.validator.method(name)["name"], params)
        except BadRequest as exc:
            content = json.dumps({"ok": False, "error_code": exc.code, "description": exc.description})
            self.check_response(bot, method, exc.code, content)
            raise AssertionError("check_response should have raised") from exc
        content = json.dumps({"ok": True, "result": result})
        response = self.check_response(bot, method, 200, content)
        return response.result  # type: ignore[return-value]

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - BaseSession's signature
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield self.server.download_bytes(url)  # a file_path from getFile; FileNotFoundError for any other


class RecordingBot(Bot):
    def __init__(self) -> None:
        super().__init__(
            TOKEN,
            session=RecordingSession(),
            default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview=LinkPreviewOptions(is_disabled=True)),
        )

    @property
    def recorder(self) -> RecordingSession:
        assert isinstance(self.session, RecordingSession)
        return self.session

    @property
    def server(self) -> FakeTelegram:
        return self.recorder.server

    def calls(self, name: str) -> list[dict[str, Any]]:
        return [params for method, params in self.recorder.wire if method.lower() == name.lower()]


_update_ids = itertools.count(1)


def next_update_id() -> int:
    return next(_update_ids)


__all__ = ["BOT_USER", "RecordingBot", "RecordingSession", "SpecValidator", "next_update_id", "time"]
