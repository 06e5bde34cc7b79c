"""OpenAI's Responses API (``/v1/responses``, Qianfan's ``/v2/responses``) as data: the request's
checks, its input items in chat terms (the response object and stream events it answers with are
:mod:`.answer`).

A response is one turn of a conversation the platform keeps: ``previous_response_id`` names the
turn it follows, and the platform rebuilds the history from its store, so a follow-up sends only
its new input. Pure data work (no I/O); a problem raises one :class:`ProtocolError` naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import field_validator, model_validator

from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.schema.accepted import check_schema
from qfnb.protocol.wires.chat.bodies import (
    ResponsesFields,
    ResponsesFunctionCall,
    ResponsesFunctionOutput,
    ResponsesItem,
    ResponsesMessage,
    ResponsesTool,
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
from qfnb.protocol.wires.chat.openai_wire import check_content, check_metadata, content_text, drop_nulls
from qfnb.protocol.wires.chat.ranges import RESPONSES_RANGES, RESPONSES_REQUIRED
from qfnb.protocol.wires.chat.tools import check_tool_count

#: what ``POST /responses`` takes (the spec's fields); any other field is refused by name
REQUEST_FIELDS = body_fields(ResponsesFields)
#: values of ``include`` the platform can honour (none adds anything a local model does not have)
INCLUDES = ("message.output_text.logprobs",)
#: input item types, in OpenAI's terms -> their models (the spec's ``ResponsesItem``)
ITEMS: dict[str, type[ResponsesItem]] = by_type(ResponsesItem)
#: the roles of a message item
ITEM_ROLES = literals(ResponsesMessage.model_fields["role"].annotation)
#: the ``tool_choice`` values that name no function
_CHOICES = literals(ResponsesFields.model_fields["tool_choice"].annotation)
_CHOICE_RULE = "must be " + ", ".join(f'"{choice}"' for choice in _CHOICES) + ' or {"type": "function", "name": ...}'


class ResponsesRequest(ResponsesFields):
    """Body of ``POST /responses`` (fields, types and ranges: the spec's); ``input`` reads as a list
    of items (a string: one user message)."""

    @model_validator(mode="before")
    @classmethod
    def _body(cls, data: Any) -> Any:
        data = check_body(data, ResponsesFields, "Responses API", RESPONSES_RANGES, RESPONSES_REQUIRED)
        if isinstance(data, dict):
            if "input" not in data and "previous_response_id" not in data:
                raise ProtocolError("input", "is required: a string or a list of input items")
            _check_options(data)
        return data

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> Any:
        return None if value is None else typed_items(value)

    @field_validator("tools", mode="before")
    @classmethod
    def _tools(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ProtocolError("tools", "must be a list of function tools")
        for i, tool in enumerate(value):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind != "function":
                raise ProtocolError(f"tools[{i}].type", f"must be 'function', got {kind!r:.40}: the local platform "
                                    "has no built-in tools (web search, file search, computer use, code interpreter)")
        return [item_of(ResponsesTool, tool, f"tools[{i}]") for i, tool in enumerate(value)]

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice(cls, value: Any) -> Any:
        if value in _CHOICES or (isinstance(value, dict) and value.get("type") == "function"
                                 and isinstance(value.get("name"), str)):
            return value
        raise ProtocolError("tool_choice", _CHOICE_RULE)

    @model_validator(mode="after")
    def _offered(self) -> ResponsesRequest:
        functions = self.functions()
        check_functions(functions)
        if not isinstance(self.tool_choice, str) and self.tool_choice is not None and self.tools:
            check_named_choice(self.tool_choice.name, functions)
        fmt = self.text.format if self.text is not None else None
        if fmt is not None and fmt.type == "json_schema":
            if fmt.schema_ is None:
                raise ProtocolError("text.format.schema", "must be a JSON schema object")
            check_answer_schema(fmt.schema_, "text.format.schema", functions)
        return self

    def functions(self) -> list[OfferedFunction]:
        """The function tools offered, as the checks and the engine take them."""
        return offered_functions(self.tools, "parameters")

    def items(self) -> list[ResponsesItem]:
        """This request's own input items (none when it only continues a stored conversation)."""
        return typed_items(self.input) if isinstance(self.input, str) else list(self.input or ())


def check_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body with explicit nulls dropped, every field checked (:class:`ResponsesRequest`)."""
    parse_body(ResponsesRequest, dict(body))
    return drop_nulls(body)


def _check_options(data: Mapping[str, Any]) -> None:
    """What the platform cannot honour, by name."""
    if data.get("background"):
        raise ProtocolError("background", "must be false: the local platform answers in the foreground "
                            "(a stored response can be retrieved later by its id)")
    if "top_logprobs" in data:
        raise ProtocolError("top_logprobs", "is not served on the Responses API; use chat completions' logprobs")
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
    check_metadata(data.get("metadata", {}))


def typed_items(value: Any, field_name: str = "input") -> list[ResponsesItem]:
    """The request's ``input`` as typed items (a string is one user message), each checked; a
    message's string content reads as one text part."""
    if isinstance(value, str):
        return [ResponsesMessage(role="user", content=[{"type": "input_text", "text": value}])]
    if not isinstance(value, list):
        raise ProtocolError(field_name, "must be a string or a list of input items")
    return [_item(raw, f"{field_name}[{i}]") for i, raw in enumerate(value)]


def _item(raw: Any, where: str) -> ResponsesItem:
    if isinstance(raw, ResponsesMessage | ResponsesFunctionCall | ResponsesFunctionOutput):
        return raw
    if not isinstance(raw, dict):
        raise ProtocolError(where, "must be an input item object")
    kind = raw.get("type") or "message"
    if kind not in ITEMS:
        raise ProtocolError(f"{where}.type", f"must be one of {', '.join(ITEMS)}, got {kind!r:.40} (the local "
                            "platform has no built-in tools, reasoning or item references)")
    if kind == "message" and raw.get("role") not in ITEM_ROLES:
        raise ProtocolError(f"{where}.role", f"must be one of {', '.join(ITEM_ROLES)}")
    item = item_of(ITEMS[kind], raw, where)
    if isinstance(item, ResponsesMessage):
        check_content(item.content, f"{where}.content")
        if isinstance(item.content, str):
            part = "output_text" if item.role == "assistant" else "input_text"
            item = item.model_copy(update={"content": [{"type": part, "text": item.content}]})
    elif isinstance(item, ResponsesFunctionOutput):
        check_content(item.output, f"{where}.output")
    return item


def input_items(value: Any, field_name: str = "input") -> list[dict[str, Any]]:
    """The request's ``input`` as a list of item objects (as stored and listed), each checked."""
    return [item.model_dump(by_alias=True, exclude_none=True) for item in typed_items(value, field_name)]


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
    before sending; the platform checks the whole body with :class:`ResponsesRequest`)."""
    text = data.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        check_schema(fmt.get("schema"), "text.format.schema")
    tools = data.get("tools")
    if isinstance(tools, list):
        check_tool_count(tools)
        for i, tool in enumerate(tools):
            if isinstance(tool, dict) and isinstance(tool.get("parameters"), dict):
                check_schema(tool["parameters"], f"tools[{i}].parameters")


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
