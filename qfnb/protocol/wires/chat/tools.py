"""Tool calling and structured output on the wire: checks of ``tools``, ``tool_choice``,
``response_format`` and tool turns in a history (their JSON schemas checked by
:mod:`qfnb.protocol.schema.accepted`), and v1's ``functions`` in OpenAI's terms.

Pure data checks (no pydantic): each problem raises one :class:`ProtocolError` naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from qfnb.protocol.errors import ErrorCode, ProtocolError
from qfnb.protocol.limits import MAX_TOOLS
from qfnb.protocol.schema.accepted import check_schema, check_schema_total
from qfnb.protocol.wires.chat.openai_wire import CHAT_ROLES, check_content

#: a function name as OpenAI accepts it
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: the structured-output types OpenAI defines
FORMAT_TYPES = ("text", "json_object", "json_schema")


def check_tools(tools: Any, field: str = "tools") -> list[dict[str, Any]]:
    """``[{"type": "function", "function": {"name", "description"?, "parameters"?}}]``."""
    if not isinstance(tools, list) or not tools:
        raise ProtocolError(field, "must be a non-empty list of {\"type\": \"function\", \"function\": {...}}")
    check_tool_count(tools, field)
    names: set[str] = set()
    for i, tool in enumerate(tools):
        where = f"{field}[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise ProtocolError(where, 'must be {"type": "function", "function": {"name": ..., "parameters": ...}}')
        fn = tool["function"]
        check_function(fn, f"{where}.function")
        if fn["name"] in names:
            raise ProtocolError(f"{where}.function.name", f"{fn['name']!r} is given twice")
        names.add(fn["name"])
    check_schema_total([t["function"].get("parameters") for t in tools], field)
    return tools


def check_tool_count(tools: Sequence[Any], field: str = "tools") -> None:
    """At most :data:`MAX_TOOLS` tools in one request."""
    if len(tools) > MAX_TOOLS:
        raise ProtocolError(field, f"offers {len(tools)} tools; at most {MAX_TOOLS} are accepted (MAX_TOOLS)")


def check_function(fn: Mapping[str, Any], where: str) -> None:
    """One function's ``name`` (OpenAI's charset), ``description`` and JSON-schema ``parameters``."""
    name = fn.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME.match(name):
        raise ProtocolError(f"{where}.name", "must be 1-64 letters, digits, '_' or '-'")
    if fn.get("description") is not None and not isinstance(fn["description"], str):
        raise ProtocolError(f"{where}.description", "must be a string")
    if fn.get("strict") is not None and not isinstance(fn["strict"], bool):
        raise ProtocolError(f"{where}.strict", "must be true or false")
    params = fn.get("parameters")
    if params is not None:
        if not isinstance(params, dict):
            raise ProtocolError(f"{where}.parameters", "must be a JSON schema object")
        check_schema(params, f"{where}.parameters")


def check_tool_choice(choice: Any, tools: Sequence[Mapping[str, Any]] | None) -> None:
    """``auto``, ``none``, ``required`` or ``{"type": "function", "function": {"name": one of tools}}``."""
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise ProtocolError("tool_choice", f"must be 'auto', 'none', 'required' or a named function, "
                                f"got {choice!r:.40}")
        if choice == "required" and not tools:
            raise ProtocolError("tool_choice", "'required' needs tools")
        return
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) and isinstance(
        choice.get("function"), dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(name, str):
        raise ProtocolError("tool_choice", 'a named choice is {"type": "function", "function": {"name": ...}}')
    offered = [t["function"]["name"] for t in tools or ()]
    if name not in offered:
        raise ProtocolError("tool_choice.function.name", f"{name!r} is not one of the tools given "
                            f"({', '.join(offered) or 'none'})")


def check_response_format(fmt: Any, field: str = "response_format") -> dict[str, Any] | None:
    """OpenAI's ``{"type": "text" | "json_object" | "json_schema", "json_schema": {"name", "schema",
    "strict"}}``; returns the JSON schema the answer must follow (None: free text)."""
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in FORMAT_TYPES:
        raise ProtocolError(f"{field}.type", f"must be one of {', '.join(FORMAT_TYPES)}")
    if fmt["type"] == "text":
        return None
    if fmt["type"] == "json_object":
        return {"type": "object"}
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise ProtocolError(f"{field}.json_schema", 'needs {"name": ..., "schema": {...}} with a JSON schema object')
    name = spec.get("name")
    if name is not None and (not isinstance(name, str) or not FUNCTION_NAME.match(name)):
        raise ProtocolError(f"{field}.json_schema.name", "must be 1-64 letters, digits, '_' or '-'")
    if spec.get("strict") is not None and not isinstance(spec["strict"], bool):
        raise ProtocolError(f"{field}.json_schema.strict", "must be true or false")
    check_schema(spec["schema"], f"{field}.json_schema.schema")
    return dict(spec["schema"])


def check_chat_turn(m: Any, i: int, field: str = "messages") -> None:
    """One OpenAI-style turn: system/developer/user/assistant/tool, its content a string or a list of
    content parts (:mod:`.openai_wire`); an assistant turn may carry ``tool_calls`` instead of
    content, a tool turn needs ``tool_call_id``."""
    where = f"{field}[{i}]"
    if not isinstance(m, dict):
        raise ProtocolError(where, 'must be an object like {"role": "user", "content": "..."}, '
                                   f"not {type(m).__name__}")
    if m.get("role") not in CHAT_ROLES:
        raise ProtocolError(f"{where}.role", f"must be one of {', '.join(CHAT_ROLES)}")
    calls = m.get("tool_calls")
    if calls is not None:
        if m["role"] != "assistant":
            raise ProtocolError(f"{where}.tool_calls", "only an assistant turn carries tool_calls")
        check_tool_calls(calls, f"{where}.tool_calls")
    if m["role"] == "tool" and not isinstance(m.get("tool_call_id"), str):
        raise ProtocolError(f"{where}.tool_call_id", "a tool turn needs the id of the call it answers")
    check_content(m.get("content"), f"{where}.content", required=not calls)


def check_tool_calls(calls: Any, where: str) -> None:
    if not isinstance(calls, list) or not calls:
        raise ProtocolError(where, "must be a non-empty list of calls")
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(
                fn.get("arguments"), str):
            raise ProtocolError(f"{where}[{j}]", 'must be {"id", "type": "function", "function": {"name", '
                                '"arguments": a JSON string}}')
        check_call_arguments(fn["arguments"], f"{where}[{j}].function.arguments")


def check_call_arguments(arguments: Any, where: str, code: int = ErrorCode.INVALID_PARAM) -> None:
    """A call's ``arguments`` given back in a history: a JSON object (as a string, or as an object
    on v1); else a 400 naming ``where`` (the engine would fail on it, which read as "retry")."""
    if isinstance(arguments, dict):
        return
    try:
        value = json.loads(arguments) if isinstance(arguments, str) else None
    except ValueError as exc:
        raise ProtocolError(where, f"is not valid JSON ({exc}); give back the arguments as the model wrote "
                                   "them, a JSON object as a string", code) from None
    if not isinstance(value, dict):
        raise ProtocolError(where, "must be a JSON object as a string, like '{\"city\": \"Paris\"}'", code)


# ---- v1 (ERNIE) function calling in OpenAI's terms ----------------------------------------------


def functions_as_tools(functions: Any) -> list[dict[str, Any]]:
    """v1 ``functions`` (``name``, ``description``, ``parameters``; ``responses``/``examples`` are
    hints the engine has no field for) as OpenAI ``tools``."""
    if not isinstance(functions, list) or not functions:
        raise ProtocolError("functions", "must be a non-empty list of {name, description, parameters}")
    check_tool_count(functions, "functions")
    tools = []
    for i, fn in enumerate(functions):
        if not isinstance(fn, dict):
            raise ProtocolError(f"functions[{i}]", "must be an object with name, description, parameters")
        check_function(fn, f"functions[{i}]")
        tools.append({"type": "function", "function": {k: fn[k] for k in ("name", "description", "parameters")
                                                       if fn.get(k) is not None}})
    check_schema_total([fn.get("parameters") for fn in functions], "functions")
    return tools


def v1_history_as_openai(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A v1 history with ``function_call`` turns and ``function`` results as OpenAI turns: the
    call becomes ``tool_calls`` and its result a ``tool`` turn answering it."""
    out: list[dict[str, Any]] = []
    last_id = ""
    for i, m in enumerate(messages):
        call = m.get("function_call")
        if m.get("role") == "assistant" and isinstance(call, dict):
            last_id = f"call_{i}"
            args = call.get("arguments")
            out.append({"role": "assistant", "content": m.get("content") or None, "tool_calls": [
                {"id": last_id, "type": "function", "function": {
                    "name": str(call.get("name") or ""),
                    "arguments": args if isinstance(args, str) else json.dumps(args or {}, ensure_ascii=False)}}]})
        elif m.get("role") == "function":
            out.append({"role": "tool", "tool_call_id": last_id or f"call_{i}", "name": m.get("name"),
                        "content": str(m.get("content") or "")})
        else:
            out.append({"role": m["role"], "content": m.get("content")})
    return out


def openai_history_as_v1(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """An OpenAI history as v1 turns (the reverse of :func:`v1_history_as_openai`): a turn's first
    tool call becomes its ``function_call`` and each ``tool`` result a ``function`` turn."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            call = v1_function_call(m["tool_calls"])
            out.append({"role": "assistant", "content": m.get("content") or "",
                        "function_call": {"name": call["name"], "arguments": call["arguments"]}})
        elif m.get("role") == "tool":
            out.append({"role": "function", "name": m.get("name"), "content": str(m.get("content") or "")})
        else:
            out.append(dict(m))
    return out


def v1_function_call(tool_calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The first tool call as v1's ``function_call`` (``name``, ``arguments`` as a JSON string,
    ``thoughts``)."""
    fn = tool_calls[0].get("function") or {}
    return {"name": fn.get("name", ""), "arguments": fn.get("arguments", "{}"), "thoughts": ""}
