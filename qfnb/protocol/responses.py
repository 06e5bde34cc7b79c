"""OpenAI's Responses API (``/v1/responses``, Qianfan's ``/v2/responses``) as data: the request's
checks, its input items in chat terms, and the response object and stream events it answers with.

A response is one turn of a conversation the platform keeps: ``previous_response_id`` names the
turn it follows, and the platform rebuilds the history from its store, so a follow-up sends only
its new input. Pure data work (no I/O); a problem raises one :class:`ProtocolError` naming the field.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ProtocolError
from .openai_wire import check_content, content_text, drop_nulls, refuse_unknown
from .schemas import check_schema
from .tools import check_tool_count

#: what ``POST /responses`` takes; any other field is refused by name
REQUEST_FIELDS = ("model", "input", "instructions", "previous_response_id", "store", "stream", "stream_options",
                  "temperature", "top_p", "max_output_tokens", "tools", "tool_choice", "parallel_tool_calls",
                  "text", "metadata", "user", "truncation", "include", "reasoning", "service_tier",
                  "prompt_cache_key", "safety_identifier", "background", "top_logprobs")
#: values of ``include`` the platform can honour (none adds anything a local model does not have)
INCLUDES = ("message.output_text.logprobs",)
#: input item types, in OpenAI's terms
ITEM_TYPES = ("message", "function_call", "function_call_output")
#: the roles of a message item
ITEM_ROLES = ("user", "assistant", "system", "developer")
#: the prefix of a response id
RESPONSE_PREFIX = "resp_"


def new_id(prefix: str) -> str:
    """An id like OpenAI's (``msg_…``, ``fc_…``, ``call_…``): the prefix and 24 hex digits."""
    return prefix + secrets.token_hex(12)


def check_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body with explicit nulls dropped and every field checked; a field the platform cannot
    honour is refused by name."""
    data = drop_nulls(body)
    refuse_unknown(data, REQUEST_FIELDS, "Responses API")
    if not isinstance(data.get("model"), str) or not data["model"]:
        raise ProtocolError("model", "is required: the name of a served chat model")
    if "input" not in data and "previous_response_id" not in data:
        raise ProtocolError("input", "is required: a string or a list of input items")
    _check_scalars(data)
    _check_options(data)
    if "input" in data:
        input_items(data["input"])
    chat_tools(data.get("tools"))
    chat_tool_choice(data.get("tool_choice"), data.get("tools"))
    chat_format(data.get("text"))
    return data


def _check_scalars(data: Mapping[str, Any]) -> None:
    for name in ("store", "stream", "parallel_tool_calls", "background"):
        if name in data and not isinstance(data[name], bool):
            raise ProtocolError(name, "must be true or false")
    for name in ("instructions", "previous_response_id", "user", "prompt_cache_key", "safety_identifier",
                 "service_tier"):
        if name in data and not isinstance(data[name], str):
            raise ProtocolError(name, "must be a string")
    if data.get("background"):
        raise ProtocolError("background", "must be false: the local platform answers in the foreground "
                            "(a stored response can be retrieved later by its id)")
    if "top_logprobs" in data:
        raise ProtocolError("top_logprobs", "is not served on the Responses API; use chat completions' logprobs")


def _check_options(data: Mapping[str, Any]) -> None:
    if data.get("truncation", "disabled") != "disabled":
        raise ProtocolError("truncation", "must be 'disabled': the platform never drops turns of a conversation "
                            "silently (a history longer than the context is refused)")
    include = data.get("include", [])
    if not isinstance(include, list) or any(i not in INCLUDES for i in include):
        raise ProtocolError("include", f"may hold only {', '.join(INCLUDES)}")
    reasoning = data.get("reasoning", {})
    if not isinstance(reasoning, dict) or any(v is not None for v in reasoning.values()):
        raise ProtocolError("reasoning", "the local models do not reason in separate steps: send no reasoning "
                            "options")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict) or len(metadata) > 16 or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in metadata.items()):
        raise ProtocolError("metadata", "must map at most 16 keys (64 characters) to strings (512 characters)")


def input_items(value: Any, field_name: str = "input") -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items (a string is one user message), each checked."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if not isinstance(value, list):
        raise ProtocolError(field_name, "must be a string or a list of input items")
    items = []
    for i, raw in enumerate(value):
        if not isinstance(raw, dict):
            raise ProtocolError(f"{field_name}[{i}]", "must be an input item object")
        items.append(_item(drop_nulls(raw), f"{field_name}[{i}]"))
    return items


def _item(item: dict[str, Any], where: str) -> dict[str, Any]:
    kind = item.get("type", "message")
    if kind == "message":
        if item.get("role") not in ITEM_ROLES:
            raise ProtocolError(f"{where}.role", f"must be one of {', '.join(ITEM_ROLES)}")
        check_content(item.get("content"), f"{where}.content")
        content = item["content"]
        part = "output_text" if item["role"] == "assistant" else "input_text"
        return {**item, "type": "message", "content": [{"type": part, "text": content}]
                if isinstance(content, str) else content}
    if kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                raise ProtocolError(f"{where}.{name}", "must be a string")
        return item
    if kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise ProtocolError(f"{where}.call_id", "must be the call_id of the function_call it answers")
        check_content(item.get("output"), f"{where}.output")
        return item
    raise ProtocolError(f"{where}.type", f"must be one of {', '.join(ITEM_TYPES)}, got {kind!r:.40} (the local "
                        "platform has no built-in tools, reasoning or item references)")


def chat_messages(items: Iterable[Mapping[str, Any]], instructions: str | None = None,
                  field_name: str = "input") -> list[dict[str, Any]]:
    """Input and output items (a whole conversation) as OpenAI chat turns: ``instructions`` first as
    the system turn, consecutive function calls as one assistant turn's ``tool_calls``, each
    function output as a ``tool`` turn. Media parts are refused (the models read text only)."""
    out: list[dict[str, Any]] = [{"role": "system", "content": instructions}] if instructions else []
    for i, item in enumerate(items):
        where = f"{field_name}[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            out.append({"role": role, "content": content_text(item["content"], f"{where}.content") or ""})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":  # the same assistant turn: its text, then its calls
                last.setdefault("tool_calls", []).append(call)
                if last["content"] == "":
                    last["content"] = None
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item["call_id"],
                        "content": content_text(item["output"], f"{where}.output") or ""})
    return out


def check_schemas(data: Mapping[str, Any]) -> None:
    """The JSON schemas of a Responses body (``text.format`` and the function tools' ``parameters``)
    and its tool count, as :mod:`.schemas` and :mod:`.limits` cap them (what a client checks
    before sending; the platform checks the whole body with :func:`check_request`)."""
    text = data.get("text")
    if isinstance(text, dict):
        chat_format(text)
    tools = data.get("tools")
    if isinstance(tools, list):
        check_tool_count(tools)
        for i, tool in enumerate(tools):
            if isinstance(tool, dict) and isinstance(tool.get("parameters"), dict):
                check_schema(tool["parameters"], f"tools[{i}].parameters")


def chat_tools(tools: Any) -> list[dict[str, Any]] | None:
    """Responses' function tools (``{"type": "function", "name", "description", "parameters",
    "strict"}``) in chat terms; built-in tools are refused by name."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise ProtocolError("tools", "must be a list of function tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise ProtocolError(f"tools[{i}].type", f"must be 'function', got {kind!r:.40}: the local platform has "
                                "no built-in tools (web search, file search, computer use, code interpreter)")
        fn = {k: tool[k] for k in ("name", "description", "parameters") if tool.get(k) is not None}
        fn["strict"] = tool.get("strict", True)  # the Responses API's default: enforced
        if isinstance(fn.get("parameters"), dict):
            check_schema(fn["parameters"], f"tools[{i}].parameters")
        out.append({"type": "function", "function": fn})
    return out or None


def chat_tool_choice(choice: Any, tools: Any) -> str | dict[str, Any] | None:
    """``auto``/``none``/``required`` or ``{"type": "function", "name"}`` in chat terms."""
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise ProtocolError("tool_choice", 'must be "auto", "none", "required" or {"type": "function", "name": ...}')


def chat_format(text: Any) -> dict[str, Any] | None:
    """``text.format`` (``text``, ``json_object``, ``json_schema`` with ``name``/``schema``/``strict``)
    as chat's ``response_format``."""
    if text is None:
        return None
    if not isinstance(text, dict):
        raise ProtocolError("text", 'must be an object like {"format": {"type": "text"}}')
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise ProtocolError("text.format.type", "must be one of text, json_object, json_schema")
    if fmt["type"] != "json_schema":
        return {"type": fmt["type"]}
    spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
    if not isinstance(spec.get("schema"), dict):
        raise ProtocolError("text.format.schema", "must be a JSON schema object")
    check_schema(spec["schema"], "text.format.schema")
    return {"type": "json_schema", "json_schema": spec}


def text_format(response_format: Mapping[str, Any]) -> dict[str, Any]:
    """Chat's ``response_format`` as Responses' ``text`` (the inverse of :func:`chat_format`)."""
    if response_format.get("type") != "json_schema":
        return {"format": {"type": response_format.get("type", "text")}}
    return {"format": {"type": "json_schema", **response_format.get("json_schema", {})}}


def output_text(response: Mapping[str, Any]) -> str:
    """The text of a response object's message items, joined (the SDKs' ``output_text``)."""
    return "".join(part.get("text", "") for item in response.get("output") or () if item.get("type") == "message"
                   for part in item.get("content") or () if part.get("type") == "output_text")


def chat_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Responses' usage in chat's names (``prompt_tokens``, ``completion_tokens``, ``total_tokens``,
    the cached prompt tokens under ``prompt_tokens_details``)."""
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens", 0)
    return {"prompt_tokens": usage.get("input_tokens", 0), "completion_tokens": usage.get("output_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0), "prompt_tokens_details": {"cached_tokens": cached}}


#: Responses fields -> their chat completions names
_CHAT_NAMES = {"temperature": "temperature", "top_p": "top_p", "max_output_tokens": "max_completion_tokens",
               "parallel_tool_calls": "parallel_tool_calls", "user": "user"}


def chat_body(data: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The OpenAI chat body that asks what a (checked) Responses request asks, over ``history`` (the
    stored conversation's items, oldest first) and this request's own input."""
    items = [*history, *input_items(data.get("input", []))]
    body: dict[str, Any] = {"model": data["model"], "messages": chat_messages(items, data.get("instructions"))}
    for source, target in _CHAT_NAMES.items():
        if source in data:
            body[target] = data[source]
    tools = chat_tools(data.get("tools"))
    if tools:
        body["tools"] = tools
    choice = chat_tool_choice(data.get("tool_choice"), data.get("tools"))
    if choice is not None and tools:
        body["tool_choice"] = choice
    fmt = chat_format(data.get("text"))
    if fmt is not None and fmt["type"] != "text":
        body["response_format"] = fmt
    return body


# ---- the answer -------------------------------------------------------------------------------


@dataclass
class Turn:
    """What the model answered, collected: its text, its tool calls (chat shape), why it stopped
    (``normal``/``stop``/``length``/``tool_calls``) and the token counts."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


def usage(turn: Turn) -> dict[str, Any]:
    """Responses' usage: ``cached_tokens`` are the prompt tokens the engine did not prefill again."""
    return {"input_tokens": turn.input_tokens, "input_tokens_details": {"cached_tokens": turn.cached_tokens},
            "output_tokens": turn.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": turn.input_tokens + turn.output_tokens}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def call_item(item_id: str, call: Mapping[str, Any], status: str = "completed") -> dict[str, Any]:
    fn = call.get("function") or {}
    return {"type": "function_call", "id": item_id, "call_id": call.get("id") or new_id("call_"),
            "name": fn.get("name", ""), "arguments": fn.get("arguments", ""), "status": status}


def output_items(turn: Turn, ids: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The answer as output items: a message with its text (if any), then one item per call."""
    ids = list(ids)
    out = []
    if turn.text or not turn.tool_calls:
        out.append(message_item(ids.pop(0) if ids else new_id("msg_"), turn.text,
                                "incomplete" if turn.finish == "length" else "completed"))
    out += [call_item(ids.pop(0) if ids else new_id("fc_"), call) for call in turn.tool_calls]
    return out


def response_object(rid: str, data: Mapping[str, Any], model: str, created: int, *, status: str,
                    output: list[dict[str, Any]], turn: Turn | None = None) -> dict[str, Any]:
    """The response object as OpenAI returns it (the request's settings echoed back)."""
    incomplete = {"reason": "max_output_tokens"} if turn is not None and turn.finish == "length" else None
    tool_choice = data.get("tool_choice", "auto")
    return {"id": rid, "object": "response", "created_at": created, "status": "incomplete" if incomplete else status,
            "background": False, "error": None, "incomplete_details": incomplete,
            "instructions": data.get("instructions"), "max_output_tokens": data.get("max_output_tokens"),
            "model": model, "output": output, "parallel_tool_calls": data.get("parallel_tool_calls", True),
            "previous_response_id": data.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": data.get("store", True),
            "temperature": data.get("temperature", 1.0), "text": data.get("text") or {"format": {"type": "text"}},
            "tool_choice": tool_choice, "tools": data.get("tools", []), "top_p": data.get("top_p", 1.0),
            "truncation": "disabled", "usage": usage(turn) if turn is not None else None, "user": data.get("user"),
            "metadata": data.get("metadata", {})}


class ResponseEvents:
    """The stream of a response as OpenAI's semantic events, each an ``(event type, data)`` pair
    with its ``sequence_number``: ``response.created``, ``response.in_progress``, per output item
    ``response.output_item.added`` … ``response.output_text.delta`` (or
    ``response.function_call_arguments.delta``) … ``response.output_item.done``, then
    ``response.completed``."""

    def __init__(self, rid: str, data: Mapping[str, Any], model: str, created: int) -> None:
        self.rid, self.data, self.model, self.created = rid, data, model, created
        self.sequence = 0
        self.items: list[dict[str, Any]] = []
        self.text_item: dict[str, Any] | None = None
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> its output item

    def _event(self, kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return kind, event

    def _snapshot(self, status: str, turn: Turn | None = None) -> dict[str, Any]:
        return response_object(self.rid, self.data, self.model, self.created, status=status,
                               output=[dict(i) for i in self.items], turn=turn)

    def start(self) -> list[tuple[str, dict[str, Any]]]:
        return [self._event("response.created", response=self._snapshot("in_progress")),
                self._event("response.in_progress", response=self._snapshot("in_progress"))]

    def text(self, piece: str) -> list[tuple[str, dict[str, Any]]]:
        out = []
        if self.text_item is None:
            self.text_item = {**message_item(new_id("msg_"), "", "in_progress"), "content": []}
            self.items.append(self.text_item)
            index = len(self.items) - 1
            out.append(self._event("response.output_item.added", output_index=index, item=dict(self.text_item)))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append(self._event("response.content_part.added", item_id=self.text_item["id"], output_index=index,
                                   content_index=0, part=part))
            self.text_item["content"] = [dict(part)]
        self.text_item["content"][0]["text"] += piece
        out.append(self._event("response.output_text.delta", item_id=self.text_item["id"],
                               output_index=self.items.index(self.text_item), content_index=0, delta=piece,
                               logprobs=[]))
        return out

    def tool_fragments(self, fragments: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for frag in fragments:
            index = int(frag.get("index", len(self.calls)))
            fn = frag.get("function") or {}
            item = self.calls.get(index)
            if item is None:
                item = call_item(new_id("fc_"), {"id": frag.get("id") or new_id("call_"),
                                                 "function": {"name": fn.get("name") or "", "arguments": ""}},
                                 "in_progress")
                self.calls[index] = item
                self.items.append(item)
                out.append(self._event("response.output_item.added", output_index=len(self.items) - 1,
                                       item=dict(item)))
            elif fn.get("name"):
                item["name"] += fn["name"]
            if fn.get("arguments"):
                item["arguments"] += fn["arguments"]
                out.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                       output_index=self.items.index(item), delta=fn["arguments"]))
        return out

    def finish(self, turn: Turn) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
        """The closing events, and the final response object (what is stored)."""
        out = []
        if self.text_item is None and not self.calls:
            out += self.text("")  # an empty answer is still one message
        for index, item in enumerate(self.items):
            if item is self.text_item:
                text = item["content"][0]["text"]
                item["status"] = "incomplete" if turn.finish == "length" else "completed"
                out.append(self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                       content_index=0, text=text, logprobs=[]))
                out.append(self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                       content_index=0, part=dict(item["content"][0])))
            else:
                item["status"] = "completed"
                out.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                       output_index=index, name=item["name"], arguments=item["arguments"]))
            out.append(self._event("response.output_item.done", output_index=index, item=json.loads(json.dumps(item))))
        final = self._snapshot("completed", turn)
        out.append(self._event("response.incomplete" if final["status"] == "incomplete" else "response.completed",
                               response=final))
        return out, final

    def failed(self, message: str) -> tuple[str, dict[str, Any]]:
        snapshot = self._snapshot("failed")
        snapshot["error"] = {"code": "server_error", "message": message}
        return self._event("response.failed", response=snapshot)


def list_page(items: Sequence[Mapping[str, Any]], *, order: str = "desc", after: str | None = None,
              limit: int = 20) -> dict[str, Any]:
    """A page of ``items`` (oldest first, each with an ``id``) in OpenAI's list shape: a response's
    ``input_items``, or the stored responses ``GET /responses`` lists."""
    ordered = list(items) if order == "asc" else list(items)[::-1]
    if after is not None:
        ids = [i.get("id") for i in ordered]
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    page = ordered[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > limit}


def with_ids(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Input items as stored: each with an ``id`` (``msg_…``, ``fc_…``, ``fco_…``) and a status."""
    prefix = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_"}
    return [{**item, "id": item.get("id") or new_id(prefix.get(str(item.get("type")), "item_")),
             "status": item.get("status", "completed")} for item in items]
