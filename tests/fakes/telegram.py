"""A fake Telegram Bot API server for end-to-end tests, strict where the real one is.

It answers `/bot{token}/{method}` on 127.0.0.1 with the real wire format: form-encoded or
multipart requests whose nested fields are JSON-encoded, `{"ok": true, "result": …}` answers and
long-polling `getUpdates` with offset semantics. Every call is checked against the official spec
(`tests/fakes/data/bot-api-spec.json`, a copy of shared/telegram/bot-api-spec.json): an unknown
method, a missing required field, a field the method does not take, a value of the wrong type,
text outside 1–4096 characters after entity parsing, malformed HTML, `callback_data` outside
1–64 bytes, more than 50 inline results, answering a callback query twice or editing a message
that does not exist are refused with HTTP 400 and
`{"ok": false, "error_code": 400, "description": "Bad Request: …"}`, as Telegram would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiohttp import web

SPEC_PATH = Path(__file__).resolve().parent / "data" / "bot-api-spec.json"
TOKEN = "123456789:AAFakeTokenForEncoreTestsOnly_000000000"
BOT_USER = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "Encore",
    "username": "encore_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": True,
}

# Telegram's HTML subset: tag → attributes it accepts.
HTML_TAGS: dict[str, set[str]] = {
    "b": set(),
    "strong": set(),
    "i": set(),
    "em": set(),
    "u": set(),
    "ins": set(),
    "s": set(),
    "strike": set(),
    "del": set(),
    "tg-spoiler": set(),
    "span": {"class"},
    "a": {"href"},
    "code": {"class"},
    "pre": set(),
    "blockquote": {"expandable"},
    "tg-emoji": {"emoji-id"},
}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_TOKEN = re.compile(
    r"<(?P<close>/?)(?P<tag>[a-zA-Z][a-zA-Z0-9-]*)(?P<attrs>(?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*>"
    r"|&(?P<entity>#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|[a-zA-Z]+);"
    r"|(?P<bare>[<>&])"
)
_ATTR = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+)))?")
_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


class BadRequest(Exception):
    def __init__(self, description: str, code: int = 400) -> None:
        super().__init__(description)
        self.description = description
        self.code = code


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(text: str) -> str:
    """Telegram's HTML parse mode: the visible text, or BadRequest for what Telegram refuses."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for match in _HTML_TOKEN.finditer(text):
        out.append(text[pos : match.start()])
        pos = match.end()
        offset = utf16_len(text[: match.start()])
        if match.group("bare"):
            raise BadRequest(
                f"Bad Request: can't parse entities: unexpected {match.group('bare')!r} at byte offset {offset}; "
                "escape <, > and & as &lt;, &gt; and &amp;"
            )
        entity = match.group("entity")
        if entity is not None:
            if entity.startswith("#"):
                code = int(entity[2:], 16) if entity[1:2] in "xX" and len(entity) > 1 else int(entity[1:])
                out.append(chr(code))
            elif entity in NAMED_ENTITIES:
                out.append(NAMED_ENTITIES[entity])
            else:
                raise BadRequest(f"Bad Request: can't parse entities: unsupported HTML entity &{entity}; at {offset}")
            continue
        tag = match.group("tag").lower()
        if tag not in HTML_TAGS:
            raise BadRequest(
                f'Bad Request: can\'t parse entities: Unsupported start tag "{tag}" at byte offset {offset}'
            )
        if match.group("close"):
            if not stack or stack[-1] != tag:
                raise BadRequest(
                    f'Bad Request: can\'t parse entities: Unexpected end tag "{tag}" at byte offset {offset}'
                )
            stack.pop()
            continue
        attrs = {
            m.group(1).lower(): next((g for g in m.groups()[1:] if g is not None), "")
            for m in _ATTR.finditer(match.group("attrs"))
        }
        unknown = set(attrs) - HTML_TAGS[tag]
        if unknown:
            raise BadRequest(
                f"Bad Request: can't parse entities: unsupported attribute {sorted(unknown)[0]!r} of <{tag}>"
            )
        if tag == "a" and not attrs.get("href"):
            raise BadRequest("Bad Request: can't parse entities: <a> without href")
        stack.append(tag)
    out.append(text[pos:])
    if stack:
        raise BadRequest(
            f"Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
        )
    return "".join(out)


def visible_text(text: str, parse_mode: str | None) -> str:
    if parse_mode is None:
        return text
    if parse_mode.upper() != "HTML":
        raise BadRequest(f"Bad Request: unsupported parse_mode {parse_mode!r} in this fake")
    return parse_html(text)


def check_message_text(text: str, parse_mode: str | None, what: str = "message text") -> str:
    plain = visible_text(text, parse_mode).strip()
    if not plain:
        raise BadRequest(f"Bad Request: {what} is empty")
    if utf16_len(plain) > 4096:
        raise BadRequest(f"Bad Request: {what} is too long")
    return plain


class SpecValidator:
    """Checks decoded Bot API calls against the machine-readable spec."""

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        self.spec = spec or load_spec()
        self.methods = {name.lower(): m for name, m in self.spec["methods"].items()}
        self.types = self.spec["types"]

    def method(self, name: str) -> dict[str, Any]:
        method = self.methods.get(name.lower())
        if method is None:
            raise BadRequest("Not Found: method not found", code=404)
        return method

    def decode_call(self, name: str, raw: dict[str, Any]) -> dict[str, Any]:
        """Wire params (strings, JSON-encoded nested values) → checked Python values."""
        method = self.method(name)
        fields = {f["name"]: f for f in method.get("fields", [])}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise BadRequest(f'Bad Request: unknown parameter "{unknown[0]}" for method {method["name"]}')
        decoded: dict[str, Any] = {}
        for fname, spec in fields.items():
            if fname not in raw:
                if spec["required"]:
                    raise BadRequest(f'Bad Request: parameter "{fname}" is required')
                continue
            decoded[fname] = self._decode_wire(raw[fname], spec["types"], fname)
        return decoded

    def _decode_wire(self, value: Any, types: list[str], path: str) -> Any:
        if not isinstance(value, str):  # a multipart file part
            if "InputFile" in types:
                return value
            raise BadRequest(f'Bad Request: field "{path}" must be a string')
        errors = []
        for type_name in types:
            try:
                return self._decode_scalar(value, type_name, path)
            except BadRequest as exc:
                errors.append(exc.description)
        raise BadRequest(errors[0])

    def _decode_scalar(self, value: str, type_name: str, path: str) -> Any:
        if type_name == "String":
            return value
        if type_name == "Integer":
            if re.fullmatch(r"-?\d+", value.strip()):
                return int(value)
            raise BadRequest(f'Bad Request: field "{path}" must be of type Integer')
        if type_name == "Float":
            try:
                return float(value)
            except ValueError:
                raise BadRequest(f'Bad Request: field "{path}" must be of type Float') from None
        if type_name == "Boolean":
            if value.lower() in ("true", "1"):
                return True
            if value.lower() in ("false", "0"):
                return False
            raise BadRequest(f'Bad Request: field "{path}" must be of type Boolean')
        if type_name == "InputFile":
            if value.startswith("attach://"):
                return value
            raise BadRequest(f'Bad Request: field "{path}" must be an InputFile')
        try:
            obj = json.loads(value)
        except json.JSONDecodeError:
            raise BadRequest(f"Bad Request: can't parse {path} JSON object") from None
        self.check_value(obj, type_name, path)
        return obj

    def check_value(self, value: Any, type_name: str, path: str) -> None:
        if type_name.startswith("Array of "):
            if not isinstance(value, list):
                raise BadRequest(f'Bad Request: field "{path}" must be an Array')
            for i, item in enumerate(value):
                self.check_value(item, type_name[len("Array of ") :], f"{path}[{i}]")
            return
        scalar_ok = {
            "String": lambda v: isinstance(v, str),
            "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "Boolean": lambda v: isinstance(v, bool),
            "True": lambda v: v is True,
            "InputFile": lambda v: isinstance(v, str),
        }
        if type_name in scalar_ok:
            if not scalar_ok[type_name](value):
                raise BadRequest(f'Bad Request: field "{path}" must be of type {type_name}')
            return
        spec = self.types.get(type_name)
        if spec is None:
            raise BadRequest(f"Bad Request: unknown type {type_name} at {path}")
        if spec.get("subtypes"):
            errors = []
            for sub in spec["subtypes"]:
                try:
                    self.check_value(value, sub, path)
                    return
                except BadRequest as exc:
                    errors.append(exc.description)
            raise BadRequest(f"Bad Request: {path} is not a valid {type_name}")
        if not isinstance(value, dict):
            raise BadRequest(f'Bad Request: field "{path}" must be an object ({type_name})')
        fields = {f["name"]: f for f in spec.get("fields", [])}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise BadRequest(f'Bad Request: unknown field "{unknown[0]}" in {path} ({type_name})')
        for fname, fspec in fields.items():
            if fname not in value:
                if fspec["required"]:
                    raise BadRequest(f'Bad Request: field "{fname}" of {type_name} is required at {path}')
                continue
            errors = []
            for option in fspec["types"]:
                try:
                    self.check_value(value[fname], option, f"{path}.{fname}")
                    break
                except BadRequest as exc:
                    errors.append(exc.description)
            else:
                raise BadRequest(errors[0])
        if type_name.startswith("InlineQueryResult") and "type" in fields:
            expected = re.search(r"must be (\w+)", fields["type"]["description"])
            if expected and value.get("type") != expected.group(1):
                raise BadRequest(f"Bad Request: {path}.type must be {expected.group(1)}")
        self._check_limits(value, type_name, path)

    def _check_limits(self, value: dict[str, Any], type_name: str, path: str) -> None:
        if type_name == "InlineKeyboardButton":
            actions = [a for a in _BUTTON_ACTIONS if a in value]
            if len(actions) != 1:
                raise BadRequest(f"Bad Request: {path}: a button needs exactly one action, got {actions}")
            if not value["text"]:
                raise BadRequest(f"Bad Request: {path}: button text is empty")
            if "callback_data" in value and not 1 <= len(value["callback_data"].encode()) <= 64:
                raise BadRequest("Bad Request: BUTTON_DATA_INVALID")
        elif type_name == "InputTextMessageContent":
            check_message_text(value["message_text"], value.get("parse_mode"))
        elif (
            type_name.startswith("InlineQueryResult")
            and "id" in value
            and not 1 <= len(str(value["id"]).encode()) <= 64
        ):
            raise BadRequest("Bad Request: RESULT_ID_INVALID")
        elif type_name == "BotCommand" and (
            not re.fullmatch(r"[a-z0-9_]{1,32}", value["command"]) or not 1 <= len(value["description"]) <= 256
        ):
            raise BadRequest("Bad Request: BOT_COMMAND_INVALID")


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    ok: bool
    result: Any = None
    error: str | None = None
    at: float = field(default_factory=time.monotonic)


def tg_user(user_id: int, first_name: str = "Ann", language_code: str | None = "en", **extra: Any) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": first_name, **extra}
    if language_code:
        user["language_code"] = language_code
    return user


class FakeTelegram:
    """The server's state: queued updates, messages, pending queries and the recorded calls."""

    def __init__(self, token: str = TOKEN, *, validator: SpecValidator | None = None) -> None:
        self.token = token
        self.validator = validator or SpecValidator()
        self.calls: list[ApiCall] = []
        self.updates: list[dict[str, Any]] = []
        self.blocked: set[int] = set()
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.callback_queries: dict[str, bool] = {}  # id → answered
        self.inline_queries: dict[str, bool] = {}
        self.webhook: dict[str, Any] | None = None
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._query_ids = itertools.count(1000)
        self._changed = asyncio.Condition()
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    # --- running -------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        return app

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        async with self._changed:
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what tests use ------------------------------------------------------------------------
    def calls_of(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    async def wait_for(
        self, method: str, predicate: Callable[[ApiCall], bool] | None = None, *, after: int = 0, within: float = 5.0
    ) -> ApiCall:
        """The first call of `method` (recorded at index ≥ `after`) that matches `predicate`."""

        def find() -> ApiCall | None:
            for call in self.calls[after:]:
                if call.method.lower() == method.lower() and (predicate is None or predicate(call)):
                    return call
            return None

        async with asyncio.timeout(within), self._changed:
            while (found := find()) is None:
                await self._changed.wait()
            return found

    def mark(self) -> int:
        """The index of the next recorded call (pass it as `after=`)."""
        return len(self.calls)

    def enqueue(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **update}
        self.updates.append(update)
        asyncio.get_running_loop().create_task(self._notify())
        return update

    def message_update(self, user: dict[str, Any], text: str) -> dict[str, Any]:
        chat = {"id": user["id"], "type": "private", "first_name": user.get("first_name", "")}
        message = {
            "message_id": self._next_message_id(user["id"]),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        self.messages[(chat["id"], message["message_id"])] = message
        return {"message": message}

    def send_text(self, user: dict[str, Any], text: str) -> dict[str, Any]:
        return self.enqueue(self.message_update(user, text))

    def callback_update(self, user: dict[str, Any], message: dict[str, Any], data: str) -> dict[str, Any]:
        query_id = str(next(self._query_ids))
        self.callback_queries[query_id] = False
        current = self.messages.get((message["chat"]["id"], message["message_id"]), message)
        return {
            "callback_query": {
                "id": query_id,
                "from": user,
                "message": current,
                "chat_instance": str(message["chat"]["id"]),
                "data": data,
            }
        }

    def press(self, user: dict[str, Any], message: dict[str, Any], data: str) -> dict[str, Any]:
        return self.enqueue(self.callback_update(user, message, data))

    def inline_update(self, user: dict[str, Any], query: str) -> dict[str, Any]:
        query_id = str(next(self._query_ids))
        self.inline_queries[query_id] = False
        return {"inline_query": {"id": query_id, "from": user, "query": query, "offset": ""}}

    def inline(self, user: dict[str, Any], query: str) -> dict[str, Any]:
        return self.enqueue(self.inline_update(user, query))

    def choose_inline(self, user: dict[str, Any], result_id: str, query: str) -> dict[str, Any]:
        """The user sent inline result `result_id` (reported when inline feedback is on)."""
        return self.enqueue({"chosen_inline_result": {"result_id": result_id, "from": user, "query": query}})

    @staticmethod
    def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
        markup = message.get("reply_markup") or {}
        return [b for row in markup.get("inline_keyboard", []) for b in row]

    @classmethod
    def button(cls, message: dict[str, Any], text_part: str) -> str:
        """The callback_data of the button labelled `text_part` (or else the first that contains it)."""
        buttons = [b for b in cls.buttons(message) if "callback_data" in b]
        for b in [b for b in buttons if b["text"] == text_part] + [b for b in buttons if text_part in b["text"]]:
            return b["callback_data"]
        raise AssertionError(f"no button with {text_part!r} in {[b['text'] for b in cls.buttons(message)]}")

    # --- the HTTP side -------------------------------------------------------------------------
    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        raw: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            raw.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
        elif request.can_read_body:
            form = await request.post()
            for key, value in form.items():
                raw[key] = value  # a str, or a FileField for an uploaded file
        try:
            params = self.validator.decode_call(method, raw)
            name = self.validator.method(method)["name"]
            result = await self._dispatch(name, params)
        except BadRequest as exc:
            self.calls.append(ApiCall(method, raw, ok=False, error=exc.description))
            await self._notify()
            body = {"ok": False, "error_code": exc.code, "description": exc.description}
            return web.json_response(body, status=exc.code)
        if name != "getUpdates" or result:
            self.calls.append(ApiCall(name, params, ok=True, result=result))
            await self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _dispatch(self, name: str, params: dict[str, Any]) -> Any:
        handler = getattr(self, f"_api_{name}", None)
        if handler is not None:
            return await handler(params)
        return True

    async def _api_getMe(self, params: dict[str, Any]) -> Any:
        return BOT_USER

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        if self.webhook is not None:
            raise BadRequest("Conflict: can't use getUpdates method while webhook is active", code=409)
        offset = params.get("offset")
        if offset is not None:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        limit = max(1, min(100, params.get("limit", 100)))
        timeout = max(0, params.get("timeout", 0))
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not self.updates and time.monotonic() < deadline:
                try:
                    async with asyncio.timeout(deadline - time.monotonic()):
                        await self._changed.wait()
                except TimeoutError:
                    break
        return self.updates[:limit]

    async def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = params
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self.updates.clear()
        return True

    async def _api_getWebhookInfo(self, params: dict[str, Any]) -> Any:
        return {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False, "pending_update_count": 0}

    async def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        scope = json.dumps(params.get("scope", {"type": "default"}), sort_keys=True)
        self.commands[(scope, params.get("language_code", ""))] = params["commands"]
        return True

    def _check_chat(self, chat_id: int | str) -> int:
        chat = int(chat_id)
        if chat in self.blocked:
            raise BadRequest("Forbidden: bot was blocked by the user", code=403)
        return chat

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        chat_id = self._check_chat(params["chat_id"])
        plain = check_message_text(params["text"], params.get("parse_mode"))
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            "text": plain,
        }
        if "reply_markup" in params:
            message["reply_markup"] = params["reply_markup"]
        self.messages[(chat_id, message["message_id"])] = message
        return message

    def _existing(self, params: dict[str, Any]) -> dict[str, Any]:
        if "inline_message_id" in params:
            raise BadRequest("Bad Request: MESSAGE_ID_INVALID")
        if "chat_id" not in params or "message_id" not in params:
            raise BadRequest("Bad Request: chat_id and message_id are required")
        key = (self._check_chat(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None or message.get("from", {}).get("id") != BOT_USER["id"]:
            raise BadRequest("Bad Request: message to edit not found")
        return message

    async def _api_editMessageText(self, params: dict[str, Any]) -> Any:
        message = self._existing(params)
        plain = check_message_text(params["text"], params.get("parse_mode"))
        markup = params.get("reply_markup")
        if plain == message["text"] and markup == message.get("reply_markup"):
            raise BadRequest(
                "Bad Request: message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        message["text"] = plain
        message["edit_date"] = int(time.time())
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        return message

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        message = self._existing(params)
        markup = params.get("reply_markup")
        if markup == message.get("reply_markup"):
            raise BadRequest("Bad Request: message is not modified")
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        return message

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        query_id = params["callback_query_id"]
        if self.callback_queries.get(query_id, True):
            raise BadRequest("Bad Request: query is too old and response timeout expired or query ID is invalid")
        if len(params.get("text", "")) > 200:
            raise BadRequest("Bad Request: MESSAGE_TOO_LONG")
        self.callback_queries[query_id] = True
        return True

    async def _api_answerInlineQuery(self, params: dict[str, Any]) -> Any:
        query_id = params["inline_query_id"]
        if self.inline_queries.get(query_id, True):
            raise BadRequest("Bad Request: query is too old and response timeout expired or query ID is invalid")
        results = params["results"]
        if len(results) > 50:
            raise BadRequest("Bad Request: RESULTS_TOO_MUCH")
        ids = [r["id"] for r in results]
        if len(set(ids)) != len(ids):
            raise BadRequest("Bad Request: RESULT_ID_DUPLICATE")
        if len(params.get("next_offset", "").encode()) > 64:
            raise BadRequest("Bad Request: NEXT_OFFSET_INVALID")
        self.inline_queries[query_id] = True
        return True
