"""What every wire's converter does alike on the way to a :class:`~qfnb.local.engines.ask.ChatAsk`:
the functions a request offers as the engine's tool specs (a named choice: that one, required),
its answer format as the engine's structured-output fields, and the conversation's caps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qfnb.local.engines.ask import ToolChoice
from qfnb.protocol.errors import ErrorCode, ProtocolError
from qfnb.protocol.limits import LOCAL_CONTEXT_TOKENS, LOCAL_MAX_MESSAGES, check_message_count, check_prompt_chars
from qfnb.protocol.wires.chat.openai_wire import prompt_texts, text_messages

__all__ = ["conversation", "structured_output", "tool_specs"]


def tool_specs(functions: Iterable[Mapping[str, Any]], choice: str | None = None,
               named: str | None = None) -> tuple[tuple[dict[str, Any], ...], ToolChoice]:
    """The engine's tools (OpenAI function tools: ``{"type": "function", "function": fn}``) for the
    ``functions`` offered (``name``, ``description``, ``parameters``, ``strict``), and its choice:
    ``named`` offers that one function only, required; ``choice`` ``none``/``required`` as given,
    anything else ``auto``."""
    offered = [{k: v for k, v in fn.items() if v is not None} for fn in functions]
    if named is not None:
        return tuple({"type": "function", "function": fn} for fn in offered if fn["name"] == named), "required"
    tools = tuple({"type": "function", "function": fn} for fn in offered)
    return tools, "none" if choice == "none" else "required" if choice == "required" and tools else "auto"


def structured_output(kind: str | None, schema: Mapping[str, Any] | None = None,
                      name: str | None = None) -> dict[str, Any]:
    """The ask's ``schema``/``schema_name`` for an answer format (checked by the wire's model):
    ``json_object`` any JSON object, ``json_schema`` that schema (named ``answer`` when unnamed),
    anything else free text."""
    if kind == "json_object":
        return {"schema": {"type": "object"}, "schema_name": None}
    if kind == "json_schema" and schema is not None:
        return {"schema": dict(schema), "schema_name": name or "answer"}
    return {"schema": None, "schema_name": None}


def conversation(turns: Sequence[Mapping[str, Any]], field: str) -> tuple[dict[str, Any], ...]:
    """The engine's turns (every ``content`` one string) of a converted conversation, within the
    caps: the message count, the prompt's characters, and what fits the local context; a problem
    names the client's ``field``."""
    check_message_count(list(turns), field)
    check_prompt_chars(prompt_texts(list(turns)), field)
    if len(turns) > LOCAL_MAX_MESSAGES:
        raise ProtocolError(field, f"makes a conversation of {len(turns)} messages; at most {LOCAL_MAX_MESSAGES} "
                            f"fit the local platform's {LOCAL_CONTEXT_TOKENS}-token context",
                            ErrorCode.INVALID_MESSAGES)
    return tuple(text_messages(turns, field))
