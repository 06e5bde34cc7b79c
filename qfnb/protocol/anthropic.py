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

from .errors import ProtocolError
from .openai_wire import drop_nulls, refuse_unknown
from .responses_answer import new_id as new_id  # Anthropic's ids look alike (``msg_…``, ``toolu_…``)
from .schemas import check_schema
from .turn import Turn

#: what ``POST /v1/messages`` takes; any other field is refused by name
REQUEST_FIELDS = ("model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p", "top_k",
                  "stream", "tools", "tool_choice", "metadata", "thinking", "service_tier", "output_config",
                  "cache_control", "speed", "inference_geo", "user_profile_id", "workspace_id")
#: what ``POST /v1/messages/count_tokens`` takes
COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "output_config", "cache_control")
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


def check_request(body: Mapping[str, Any], *, count: bool = False) -> dict[str, Any]:
    """The body with explicit nulls dropped and every field checked (``count``: a count_tokens body)."""
    data = drop_nulls(body)
    refuse_unknown(data, COUNT_FIELDS if count else REQUEST_FIELDS, "Messages API")
    if not isinstance(data.get("model"), str) or not data["model"]:
        raise ProtocolError("model", "is required: the name of a served chat model")
    if not count:
        _check_generation(data)
    thinking = data.get("thinking", {"type": "disabled"})
    if not isinstance(thinking, dict) or thinking.get("type") != "disabled":
        raise ProtocolError("thinking", "the local models do not think in separate blocks: send "
                            '{"type": "disabled"} or leave it out')
    if data.get("speed", "standard") != "standard":
        raise ProtocolError("speed", "must be 'standard': a local model has one speed")
    cache = data.get("cache_control", {"type": "ephemeral"})
    if not isinstance(cache, dict) or cache.get("type") != "ephemeral":
        raise ProtocolError("cache_control", 'must be {"type": "ephemeral"} (the engine keeps every prompt\'s '
                            "prefix for the next request of the conversation on its own)")
    chat_body(data)  # every message, block, tool and output format, checked
    return data


def chat_format(config: Any) -> dict[str, Any] | None:
    """``output_config.format`` (``{"type": "json_schema", "schema"}``) as chat's ``response_format``;
    an ``effort`` is refused (the local models do not think in separate steps)."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise ProtocolError("output_config", 'must be an object like {"format": {"type": "json_schema", ...}}')
    if config.get("effort") is not None:
        raise ProtocolError("output_config.effort", "the local models have no effort levels: leave it out")
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise ProtocolError("output_config.format", 'must be {"type": "json_schema", "schema": {...}}')
    check_schema(fmt["schema"], "output_config.format.schema")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


def _check_generation(data: Mapping[str, Any]) -> None:
    tokens = data.get("max_tokens")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ProtocolError("max_tokens", "is required: a whole number of tokens, at least 1")
    stops = data.get("stop_sequences", [])
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise ProtocolError("stop_sequences", "must be a list of non-empty strings")
    if "stream" in data and not isinstance(data["stream"], bool):
        raise ProtocolError("stream", "must be true or false")


def _system_text(system: Any) -> str | None:
    if system is None or isinstance(system, str):
        return system
    if isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text" and isinstance(
            b.get("text"), str) for b in system):
        return "\n".join(b["text"] for b in system)
    raise ProtocolError("system", "must be a string or a list of text blocks")


def chat_messages(messages: Any, system: Any = None) -> list[dict[str, Any]]:
    """Anthropic turns as OpenAI chat turns: ``system`` first; an assistant's ``tool_use`` blocks
    as its ``tool_calls``; a user's ``tool_result`` blocks as ``tool`` turns (before its text)."""
    if not isinstance(messages, list) or not messages:
        raise ProtocolError("messages", "must be a non-empty list of {role, content}")
    text = _system_text(system)
    out: list[dict[str, Any]] = [{"role": "system", "content": text}] if text else []
    called: list[str] = []  # the previous assistant turn's tool_use ids
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise ProtocolError(f"{where}.role", "must be 'user' or 'assistant'")
        content = m.get("content")
        if isinstance(content, str):
            turns = [{"role": m["role"], "content": content}]
        elif not isinstance(content, list) or not content:
            raise ProtocolError(f"{where}.content", "must be a string or a non-empty list of content blocks")
        else:
            turns = _turns(m["role"], content, f"{where}.content")
        called = _check_pairing(called, turns, m["role"], where)
        out += turns
    return out


def _check_pairing(called: list[str], turns: list[dict[str, Any]], role: str, where: str) -> list[str]:
    """As Anthropic's API: the user turn after an assistant's ``tool_use`` blocks answers each of
    them with a ``tool_result``, and a ``tool_result`` answers a ``tool_use`` of the turn before.
    Returns this turn's tool_use ids."""
    if role == "assistant":
        return [c["id"] for t in turns for c in t.get("tool_calls") or ()]
    answered = [t["tool_call_id"] for t in turns if t["role"] == "tool"]
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


def _turns(role: str, blocks: list[Any], where: str) -> list[dict[str, Any]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind in ("thinking", "redacted_thinking"):
            continue  # another model's thinking, given back in a history: not part of what is asked
        else:
            turn = _tool_block(role, block, kind, f"{where}[{j}]")
            (calls if role == "assistant" else results).append(turn)
    if role == "assistant":
        answer: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
        if calls:
            answer["tool_calls"] = calls
        return [answer]
    return results + ([{"role": "user", "content": "\n".join(texts)}] if texts else [])


def _tool_block(role: str, block: Any, kind: Any, here: str) -> dict[str, Any]:
    """An assistant's ``tool_use`` as an OpenAI tool call, a user's ``tool_result`` as a tool turn."""
    if kind == "tool_use" and role == "assistant":
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise ProtocolError(here, "a tool_use block needs its id and name")
        return {"id": block["id"], "type": "function", "function": {
            "name": block["name"], "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False)}}
    if kind == "tool_result" and role == "user":
        if not isinstance(block.get("tool_use_id"), str):
            raise ProtocolError(f"{here}.tool_use_id", "must name the tool_use block it answers")
        output = _result_text(block.get("content"), f"{here}.content")
        return {"role": "tool", "tool_call_id": block["tool_use_id"],
                "content": f"Error: {output}" if block.get("is_error") else output}
    if kind in ("image", "document"):
        raise ProtocolError(here, f"is {'an image' if kind == 'image' else 'a document'} block: the local "
                            "platform's models read text only; send the content as text")
    raise ProtocolError(f"{here}.type", f"{kind!r:.40} is not a {role} content block the platform reads "
                        "(text, tool_use from the assistant, tool_result from the user)")


def _result_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for k, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise ProtocolError(f"{where}[{k}]", "a tool result holds text blocks only on the local platform")
            texts.append(block["text"])
        return "\n".join(texts)
    raise ProtocolError(where, "must be a string or a list of text blocks")


def chat_tools(tools: Any) -> list[dict[str, Any]] | None:
    """``[{"name", "description", "input_schema"}]`` as OpenAI function tools (server tools refused)."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise ProtocolError("tools", "must be a list of {name, description, input_schema}")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom" or "input_schema" not in tool:
            raise ProtocolError(f"tools[{i}]", "must be a client tool {name, description, input_schema}: the local "
                                "platform has no server tools (web search, code execution, computer use)")
        fn = {"name": tool.get("name"), "parameters": tool["input_schema"]}
        for key in ("description", "strict"):
            if tool.get(key) is not None:
                fn[key] = tool[key]
        if isinstance(tool["input_schema"], dict):
            check_schema(tool["input_schema"], f"tools[{i}].input_schema")
        out.append({"type": "function", "function": fn})
    return out or None


def chat_tool_choice(choice: Any) -> str | dict[str, Any] | None:
    """``{"type": "auto" | "any" | "tool" (with name) | "none"}`` in OpenAI's terms."""
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("auto", "none"):
        return str(kind)
    if kind == "any":
        return "required"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise ProtocolError("tool_choice", 'must be {"type": "auto" | "any" | "none"} or {"type": "tool", "name": ...}')


def chat_body(data: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI chat body that asks what a Messages request asks."""
    body: dict[str, Any] = {"model": data["model"], "messages": chat_messages(data.get("messages"), data.get("system"))}
    if "max_tokens" in data:
        body["max_completion_tokens"] = data["max_tokens"]
    for name in ("temperature", "top_p", "top_k"):
        if name in data:
            body[name] = data[name]
    if data.get("stop_sequences"):
        body["stop"] = list(data["stop_sequences"])
    fmt = chat_format(data.get("output_config"))
    if fmt is not None:
        body["response_format"] = fmt
    tools = chat_tools(data.get("tools"))
    if tools:
        body["tools"] = tools
        choice = chat_tool_choice(data.get("tool_choice"))
        if choice is not None:
            body["tool_choice"] = choice
        parallel = (data.get("tool_choice") or {}).get("disable_parallel_tool_use")
        if parallel is not None:
            body["parallel_tool_calls"] = not parallel
    return body


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
        usage = {"input_tokens": input_tokens, "output_tokens": 0, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        message: dict[str, Any] = {"id": self.mid, "type": "message", "role": "assistant", "model": self.model,
                                   "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
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
