"""Anthropic's Messages API (``/v1/messages``, ``/v1/messages/count_tokens``) as data: the
request's checks and its OpenAI chat equivalent, and the message object, stream events and error
shape it answers with, so ``anthropic.Anthropic(base_url=<server root>)`` and Claude Code-style
tools work against the local platform. Pure data work (no I/O); a problem raises one
:class:`ProtocolError` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import field_validator, model_validator

from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.limits import check_stops
from qfnb.protocol.wires.chat.bodies import (
    AnthropicBlock,
    AnthropicMessage,
    AnthropicTool,
    AnthropicToolChoice,
    AnthropicToolResult,
    AnthropicToolUse,
    MessagesCountFields,
    MessagesFields,
)
from qfnb.protocol.wires.chat.checks import (
    OfferedFunction,
    body_fields,
    by_type,
    check_answer_schema,
    check_body,
    check_functions,
    check_named_choice,
    item_of,
    literals,
    offered_functions,
    parse_body,
)
from qfnb.protocol.wires.chat.openai_wire import drop_nulls
from qfnb.protocol.wires.chat.ranges import MESSAGES_RANGES, MESSAGES_REQUIRED
from qfnb.protocol.wires.chat.turn import Turn, new_id

#: what ``POST /v1/messages`` takes (the spec's fields); any other field is refused by name
REQUEST_FIELDS = body_fields(MessagesFields)
#: content block types -> their models (the spec's ``AnthropicBlock``)
BLOCKS: dict[str, type[AnthropicBlock]] = by_type(AnthropicBlock)
#: the ``tool_choice`` types that name no tool (the spec's, but ``tool``)
_CHOICES = tuple(kind for kind in literals(AnthropicToolChoice.model_fields["type"].annotation) if kind != "tool")
_CHOICE_RULE = ('must be {"type": ' + " | ".join(f'"{kind}"' for kind in _CHOICES)
                + '} or {"type": "tool", "name": ...}')
#: engine finish reasons -> Anthropic's ``stop_reason``
STOP_REASONS = {"normal": "end_turn", "stop": "stop_sequence", "length": "max_tokens", "tool_calls": "tool_use"}
#: HTTP status -> Anthropic's error ``type``
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               503: "overloaded_error", 529: "overloaded_error"}


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error object for an HTTP ``status``."""
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class CountRequest(MessagesCountFields):
    """Body of ``POST /v1/messages/count_tokens`` (fields and types: the spec's)."""

    @model_validator(mode="before")
    @classmethod
    def _body(cls, data: Any) -> Any:
        return _check_body(data, MessagesCountFields)

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> list[AnthropicMessage]:
        return typed_messages(value)

    @field_validator("system", mode="before")
    @classmethod
    def _system(cls, value: Any) -> Any:
        if isinstance(value, str) or (isinstance(value, list) and all(
                isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in value)):
            return value
        raise ProtocolError("system", "must be a string or a list of text blocks")

    @field_validator("tools", mode="before")
    @classmethod
    def _tools(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ProtocolError("tools", "must be a list of {name, description, input_schema}")
        for i, tool in enumerate(value):
            if not isinstance(tool, dict) or tool.get("type", "custom") != "custom" or "input_schema" not in tool:
                raise ProtocolError(f"tools[{i}]", "must be a client tool {name, description, input_schema}: the "
                                    "local platform has no server tools (web search, code execution, computer use)")
        return [item_of(AnthropicTool, tool, f"tools[{i}]") for i, tool in enumerate(value)]

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice(cls, value: Any) -> Any:
        kind = value.get("type") if isinstance(value, dict) else None
        if kind in _CHOICES or (kind == "tool" and isinstance(value.get("name"), str)):
            return value
        raise ProtocolError("tool_choice", _CHOICE_RULE)

    @field_validator("output_config", mode="before")
    @classmethod
    def _output_config(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ProtocolError("output_config", 'must be an object like {"format": {"type": "json_schema", ...}}')
        if value.get("effort") is not None:
            raise ProtocolError("output_config.effort", "the local models have no effort levels: leave it out")
        fmt = value.get("format")
        if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "json_schema"
                                or not isinstance(fmt.get("schema"), dict)):
            raise ProtocolError("output_config.format", 'must be {"type": "json_schema", "schema": {...}}')
        return value

    @model_validator(mode="after")
    def _offered(self) -> CountRequest:
        functions = self.functions()
        check_functions(functions)
        choice = self.tool_choice
        if choice is not None and choice.type == "tool" and choice.name is not None and self.tools:
            check_named_choice(choice.name, functions)
        fmt = self.output_config.format if self.output_config is not None else None
        if fmt is not None:
            check_answer_schema(fmt.schema_, "output_config.format.schema", functions)
        return self

    def functions(self) -> list[OfferedFunction]:
        """The client tools offered, as the checks and the engine take them."""
        return offered_functions(self.tools, "input_schema")

    def system_text(self) -> str | None:
        """The system prompt (text blocks joined by newlines)."""
        if self.system is None or isinstance(self.system, str):
            return self.system
        return "\n".join(block.text for block in self.system)


class MessagesRequest(MessagesFields, CountRequest):
    """Body of ``POST /v1/messages``: the count's fields and checks, then the generation's (each
    field's range: Anthropic's, :data:`~qfnb.protocol.wires.chat.bodies.MESSAGES_RANGES`)."""

    @model_validator(mode="before")
    @classmethod
    def _body(cls, data: Any) -> Any:
        data = _check_body(data, MessagesFields)
        if isinstance(data, dict):
            check_stops("stop_sequences", data.get("stop_sequences"))
            if data.get("speed", "standard") != "standard":
                raise ProtocolError("speed", "must be 'standard': a local model has one speed")
        return data


def _check_body(data: Any, model: type[MessagesCountFields]) -> Any:
    """The fields every Messages body shares the rules of: the spec's names, required fields and
    ranges, no thinking blocks, the one cache the engine keeps."""
    data = check_body(data, model, "Messages API", MESSAGES_RANGES, MESSAGES_REQUIRED)
    if not isinstance(data, dict):
        return data
    thinking = data.get("thinking", {"type": "disabled"})
    if not isinstance(thinking, dict) or thinking.get("type") != "disabled":
        raise ProtocolError("thinking", "the local models do not think in separate blocks: send "
                            '{"type": "disabled"} or leave it out')
    cache = data.get("cache_control", {"type": "ephemeral"})
    if not isinstance(cache, dict) or cache.get("type") != "ephemeral":
        raise ProtocolError("cache_control", 'must be {"type": "ephemeral"} (the engine keeps every prompt\'s '
                            "prefix for the next request of the conversation on its own)")
    return data


def check_request(body: Mapping[str, Any], *, count: bool = False) -> dict[str, Any]:
    """The body with explicit nulls dropped and every field checked (``count``: a count_tokens body)."""
    parse_body(CountRequest if count else MessagesRequest, dict(body))
    return drop_nulls(body)


def typed_messages(messages: Any) -> list[AnthropicMessage]:
    """The turns, each block read into its model: what the platform cannot read refused by name."""
    if not isinstance(messages, list) or not messages:
        raise ProtocolError("messages", "must be a non-empty list of {role, content}")
    out = []
    called: list[str] = []  # the previous assistant turn's tool_use ids
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, AnthropicMessage):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                raise ProtocolError(f"{where}.role", "must be 'user' or 'assistant'")
            content = m.get("content")
            if not isinstance(content, str):
                if not isinstance(content, list) or not content:
                    raise ProtocolError(f"{where}.content", "must be a string or a non-empty list of content blocks")
                content = [_block(m["role"], block, f"{where}.content[{j}]") for j, block in enumerate(content)]
            m = item_of(AnthropicMessage, {**m, "content": content}, where)
        called = _check_pairing(called, m, where)
        out.append(m)
    return out


def _check_pairing(called: list[str], message: AnthropicMessage, where: str) -> list[str]:
    """As Anthropic's API: the user turn after an assistant's ``tool_use`` blocks answers each of
    them with a ``tool_result``, and a ``tool_result`` answers a ``tool_use`` of the turn before.
    Returns this turn's tool_use ids."""
    blocks = [] if isinstance(message.content, str) else list(message.content)
    if message.role == "assistant":
        return [b.id for b in blocks if isinstance(b, AnthropicToolUse)]
    answered = [b.tool_use_id for b in blocks if isinstance(b, AnthropicToolResult)]
    for rid in answered:
        if rid not in called:
            raise ProtocolError(f"{where}.content", f"the tool_result for {rid!r:.60} answers no tool_use block of the "
                                "message before (each tool_result must answer one of its ids: "
                                f"{', '.join(called) or 'it has none'})")
    missing = [c for c in called if c not in answered]
    if missing:
        raise ProtocolError(where, f"the tool_use ids {', '.join(missing)} of the message before have no "
                            "tool_result block here: each tool_use needs one in the next message")
    return []


def _block(role: str, block: Any, where: str) -> AnthropicBlock:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind in ("image", "document"):
        raise ProtocolError(where, f"is {'an image' if kind == 'image' else 'a document'} block: the local "
                            "platform's models read text only; send the content as text")
    if kind not in BLOCKS or (kind == "tool_use" and role != "assistant") or (kind == "tool_result"
                                                                            and role != "user"):
        raise ProtocolError(f"{where}.type", f"{kind!r:.40} is not a {role} content block the platform reads "
                            "(text, tool_use from the assistant, tool_result from the user)")
    if kind == "tool_use" and not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)):
        raise ProtocolError(where, "a tool_use block needs its id and name")
    if kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise ProtocolError(f"{where}.tool_use_id", "must name the tool_use block it answers")
        content = block.get("content")
        if isinstance(content, list):
            for k, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise ProtocolError(f"{where}.content[{k}]", "a tool result holds text blocks only on the "
                                        "local platform")
        elif content is not None and not isinstance(content, str):
            raise ProtocolError(f"{where}.content", "must be a string or a list of text blocks")
    return item_of(BLOCKS[kind], block, where)


# ---- the answer -------------------------------------------------------------------------------


def _input(call: Mapping[str, Any]) -> Any:
    try:
        return json.loads((call.get("function") or {}).get("arguments") or "{}")
    except ValueError:
        return {}


def usage(reply: Turn) -> dict[str, Any]:
    """Anthropic's usage: ``input_tokens`` are those prefilled, ``cache_read_input_tokens`` those the
    engine kept from an earlier request with the same prefix."""
    return {"input_tokens": reply.input_tokens - reply.cached_tokens, "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": reply.cached_tokens}


def stop_reason(reply: Turn) -> str:
    return "tool_use" if reply.tool_calls else STOP_REASONS.get(reply.finish or "normal", "end_turn")


def message_object(mid: str, model: str, reply: Turn, stops: Iterable[str] = ()) -> dict[str, Any]:
    """The message a non-streamed request answers."""
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text or not reply.tool_calls else []
    content += [{"type": "tool_use", "id": c.get("id") or new_id("toolu_"), "name": (c.get("function") or {}).get(
        "name", ""), "input": _input(c)} for c in reply.tool_calls]
    reason = stop_reason(reply)
    stops = list(stops)
    return {"id": mid, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": reason, "stop_sequence": stops[0] if reason == "stop_sequence" and len(stops) == 1 else None,
            "usage": usage(reply)}


class MessageEvents:
    """A message's stream as Anthropic's events: ``message_start``, then per content block
    ``content_block_start`` / ``content_block_delta`` (``text_delta`` or ``input_json_delta``) /
    ``content_block_stop``, then ``message_delta`` (stop reason, usage) and ``message_stop``."""

    def __init__(self, mid: str, model: str, stops: Iterable[str] = ()) -> None:
        self.mid, self.model, self.stops = mid, model, list(stops)
        self.block = -1  # the open content block's index
        self.kind: str | None = None  # "text" or the index of the tool call whose block is open

    def start(self, input_tokens: int = 0) -> list[tuple[str, dict[str, Any]]]:
        message: dict[str, Any] = {"id": self.mid, "type": "message", "role": "assistant", "model": self.model,
                                   "content": [], "stop_reason": None, "stop_sequence": None,
                                   "usage": usage(Turn(input_tokens=input_tokens))}
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def _open(self, block: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
        out = self._close()
        self.block += 1
        self.kind = kind
        out.append(("content_block_start", {"type": "content_block_start", "index": self.block,
                                            "content_block": block}))
        return out

    def _close(self) -> list[tuple[str, dict[str, Any]]]:
        if self.kind is None:
            return []
        self.kind = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self.block})]

    def text(self, piece: str) -> list[tuple[str, dict[str, Any]]]:
        out = [] if self.kind == "text" else self._open({"type": "text", "text": ""}, "text")
        out.append(("content_block_delta", {"type": "content_block_delta", "index": self.block,
                                            "delta": {"type": "text_delta", "text": piece}}))
        return out

    def tool_fragments(self, fragments: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for frag in fragments:
            index, fn = f"call{frag.get('index', 0)}", frag.get("function") or {}
            if self.kind != index:
                out += self._open({"type": "tool_use", "id": frag.get("id") or new_id("toolu_"),
                                   "name": fn.get("name") or "", "input": {}}, index)
            if fn.get("arguments"):
                out.append(("content_block_delta", {"type": "content_block_delta", "index": self.block,
                                                    "delta": {"type": "input_json_delta",
                                                              "partial_json": fn["arguments"]}}))
        return out

    def finish(self, reply: Turn) -> list[tuple[str, dict[str, Any]]]:
        out = self.text("") if self.block < 0 else []  # an empty answer is still one text block
        out += self._close()
        reason = stop_reason(reply)
        sequence = self.stops[0] if reason == "stop_sequence" and len(self.stops) == 1 else None
        out.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": reason,
                                                                         "stop_sequence": sequence},
                                      "usage": usage(reply)}))
        out.append(("message_stop", {"type": "message_stop"}))
        return out

    @staticmethod
    def failed(message: str) -> tuple[str, dict[str, Any]]:
        return "error", error_body(529, message)
