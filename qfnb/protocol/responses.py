"""OpenAI's Responses API (``/v1/responses``, Qianfan's ``/v2/responses``) as data: the request's
checks, its input items in chat terms (the response object and stream events it answers with are
:mod:`.responses_answer`).

A response is one turn of a conversation the platform keeps: ``previous_response_id`` names the
turn it follows, and the platform rebuilds the history from its store, so a follow-up sends only
its new input. Pure data work (no I/O); a problem raises one :class:`ProtocolError` naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
