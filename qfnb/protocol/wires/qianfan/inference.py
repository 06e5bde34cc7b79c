"""Pydantic models of the v1/v2 inference wire: requests, responses, stream chunks.

Validation that the platform performs (message roles, order, parameter ranges) lives
here once, so the client rejects bad input before sending and the local platform
answers with the same rule and the platform's error code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ValidationError, field_validator, model_validator

from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.errors import ProtocolError as ProtocolError  # defined there: importable without pydantic
from qfnb.protocol.limits import (
    LOCAL_MAX_EMBEDDING_TEXTS,
    MAX_EMBEDDING_TEXTS,
    MAX_PROMPT_CHARS,
    STOP_CHARS,
    check_embedding_text,
    check_flags,
    check_message_count,
    check_prompt_chars,
    check_ranges,
    check_stops,
    range_problem,
)
from qfnb.protocol.schema.accepted import check_schema_total
from qfnb.protocol.wires.chat import openai_wire
from qfnb.protocol.wires.chat import tools as tool_checks
from qfnb.protocol.wires.chat.fields import (
    OPENAI_CHAT_FIELDS,
    ChatFields,
    CompletionFields,
    EmbeddingFields,
    PluginFields,
    SamplingFields,
    Text2ImageFields,
)
from qfnb.protocol.wires.chat.ranges import RANGES, TEXT2IMAGE_RANGES

_M = TypeVar("_M", bound=BaseModel)
#: the request models below, by name (a caller that defers importing this module names one)
RequestModel = Literal["ChatRequest", "CompletionRequest", "EmbeddingRequest", "Text2ImageRequest", "PluginRequest"]


def parse_request(model: type[_M], data: Any) -> _M:
    """Validate ``data`` as ``model``; any problem raises one :class:`ProtocolError` naming the field.

    Use this rather than ``model.model_validate`` so callers see the protocol's own error
    (with its ``field`` and platform ``code``) instead of pydantic's wrapper. A problem pydantic
    finds itself gets the code of its field (a history's: invalid messages; else invalid param).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        for err in errors:
            inner = (err.get("ctx") or {}).get("error")
            if isinstance(inner, ProtocolError):
                raise inner from None
        first = errors[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        code = ErrorCode.INVALID_MESSAGES if field.startswith("messages") else ErrorCode.INVALID_PARAM
        raise ProtocolError(field, first["msg"], code) from None


V1_ROLES = ("user", "assistant", "function")


def validate_messages(messages: Any, *, field: str = "messages") -> list[dict[str, Any]]:
    """Check a v1 chat history and return it as plain dicts.

    Rules (the platform's, errors 336006/336003): a non-empty list, odd length,
    starting with ``user``, roles alternating user/assistant (a ``function`` message,
    carrying ``name``, may stand where an assistant reply would), every content a
    non-empty string (an assistant message may carry ``function_call`` instead).
    """
    if not isinstance(messages, list | tuple):
        raise ProtocolError(field, f"must be a list of messages, got {type(messages).__name__}",
                            ErrorCode.INVALID_MESSAGES)
    if not messages:
        raise ProtocolError(field, "must not be empty", ErrorCode.INVALID_MESSAGES)
    check_message_count(messages, field)
    out = [_checked_message(raw, i, f"{field}[{i}]") for i, raw in enumerate(messages)]
    if len(out) % 2 == 0:
        raise ProtocolError(field, f"must hold an odd number of messages ending with a user turn, got {len(out)}",
                            ErrorCode.INVALID_MESSAGES)
    return out


def _checked_message(raw: Any, i: int, where: str) -> dict[str, Any]:
    """Message ``i`` of a v1 history as a plain dict; ProtocolError naming ``where`` otherwise."""
    if isinstance(raw, BaseModel):
        raw = raw.model_dump(exclude_none=True)
    if not isinstance(raw, dict):
        raise ProtocolError(where, f"must be a dict with role and content, got {type(raw).__name__}",
                            ErrorCode.INVALID_MESSAGES)
    _check_role(raw.get("role"), i, where)
    content = raw.get("content")
    if raw.get("role") == "function" and not raw.get("name"):
        raise ProtocolError(f"{where}.name", "a function message must carry the function's name",
                            ErrorCode.INVALID_MESSAGES)
    call = raw.get("function_call")
    if raw.get("role") == "assistant" and call:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ProtocolError(f"{where}.function_call", 'must be {"name", "arguments"}', ErrorCode.INVALID_MESSAGES)
        tool_checks.check_call_arguments(call.get("arguments", "{}"), f"{where}.function_call.arguments",
                                         ErrorCode.INVALID_MESSAGES)
        if content in (None, ""):
            return dict(raw)
    if not isinstance(content, str):
        raise ProtocolError(f"{where}.content", f"must be a string, got {type(content).__name__}",
                            ErrorCode.INVALID_MESSAGES)
    if not content.strip():
        raise ProtocolError(f"{where}.content", "must not be empty", ErrorCode.INVALID_MESSAGES)
    return dict(raw)


def _check_role(role: Any, i: int, where: str) -> None:
    if role == "system":
        raise ProtocolError(f"{where}.role", "v1 chat has no 'system' role; pass system=... instead",
                            ErrorCode.INVALID_MESSAGES)
    if role not in V1_ROLES:
        raise ProtocolError(f"{where}.role", f"unknown role {role!r}; expected one of {', '.join(V1_ROLES)}",
                            ErrorCode.INVALID_MESSAGES)
    # ERNIE's function calling: a function's result stands where the user's turn would, after
    # the assistant turn that called it (user, assistant + function_call, function)
    if i % 2 == 0 and role != "user" and not (i and role == "function"):
        raise ProtocolError(f"{where}.role", f"expected 'user' at position {i} (roles must alternate "
                            f"user/assistant starting with user), got {role!r}", ErrorCode.INVALID_MESSAGES)
    if i % 2 == 1 and role == "user":
        raise ProtocolError(f"{where}.role", f"expected 'assistant' or 'function' at position {i} "
                            "(roles must alternate user/assistant), got 'user'", ErrorCode.INVALID_MESSAGES)


def body_check(check: Callable[[dict[str, Any]], None]) -> Any:
    """A model's ``before`` validator that runs ``check`` on a dict body (the raw request), so the
    rule is a plain function any side can call on a body without the model."""

    def validate(cls: type[BaseModel], data: Any) -> Any:
        if isinstance(data, dict):
            check(data)
        return data

    return model_validator(mode="before")(validate)  # a classmethod: its first parameter is `cls`


#: what to use instead of a value outside Qianfan's range that OpenAI's range takes
_QIANFAN_INSTEAD = {"temperature": "for greedy decoding send a small temperature such as 0.01, or temperature 0 "
                    "on the OpenAI routes (/v1/chat/completions, /v2/chat/completions)"}


def check_sampling(data: dict[str, Any]) -> None:
    """Every sampling field of a request body against :data:`RANGES`, then ``stop``/``stream``."""
    for name, bounds in RANGES.items():
        problem = range_problem(data.get(name), *bounds)
        if problem:
            hint = f"; {_QIANFAN_INSTEAD[name]}" if name in _QIANFAN_INSTEAD else ""
            raise ProtocolError(name, problem + hint)
    check_stops("stop", data.get("stop"), max_chars=STOP_CHARS)
    check_flags(data, "stream")


class SamplingParams(SamplingFields):
    """Sampling parameters shared by chat and completion requests (fields: the spec's)."""

    _ranges = body_check(check_sampling)


def check_builtin_tool_choice(choice: dict[str, Any], tools: Any) -> None:
    """v1's choice of one of the platform's own tools (ERNIE's ``baidu_search``):
    ``{"type": "tool", "tool": {"name": ...}}`` naming a tool of ``tools``
    (``[{"type": "tool", "tool": {"name": ..., <name>: {...}}}]``)."""
    named = choice.get("tool")
    name = named.get("name") if isinstance(named, dict) else None
    if not isinstance(name, str):
        raise ProtocolError("tool_choice.tool", 'a platform tool is chosen as {"type": "tool", "tool": {"name": ...}}')
    offered = [t["tool"].get("name") for t in tools or () if isinstance(t, dict) and isinstance(t.get("tool"), dict)]
    if name not in offered:
        raise ProtocolError("tool_choice.tool.name", f"{name!r} is not one of the tools given "
                            f"({', '.join(map(str, offered)) or 'none'})")


class ChatRequest(ChatFields, SamplingParams):
    """Body of ``POST .../chat/{endpoint}`` (fields: the spec's)."""

    @model_validator(mode="before")
    @classmethod
    def _caps(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_history_caps(data.get("messages"), data.get("system"))
            functions = data.get("functions")
            tools = tool_checks.functions_as_tools(functions) if functions is not None else None
            choice = data.get("tool_choice")
            if isinstance(choice, dict) and choice.get("type") == "tool":
                check_builtin_tool_choice(choice, data.get("tools"))
            elif choice is not None:
                tool_checks.check_tool_choice(choice, tools)
            schema = v1_schema(data.get("response_format"))
            if schema is not None and tools:
                check_schema_total([schema, *(t["function"].get("parameters") for t in tools)], "response_format")
        return data

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> list[dict[str, Any]]:
        return validate_messages(value)

    @field_validator("system")
    @classmethod
    def _system(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ProtocolError("system", "must be a string")
        return value


#: every field v1 chat takes on the local platform (its model's, and those the cloud's SDK sends beside
#: them); any other is refused by name
V1_CHAT_FIELDS = (*ChatRequest.model_fields, "frequency_penalty", "presence_penalty", "seed", "disable_search",
                  "enable_citation", "enable_trace")
#: cloud switches that only an ``off`` value can honour locally, and why
_CLOUD_ONLY = {"enable_citation": "the local platform has no web search to cite",
               "enable_trace": "the local platform has no web search to trace"}


def check_v1_chat_fields(data: dict[str, Any]) -> None:
    """Refuse, by name, a v1 chat field the local platform cannot honour (the cloud's others too)."""
    for key in data:
        if key not in V1_CHAT_FIELDS:
            hint = "; on the OpenAI routes use /v2/chat/completions" if key in OPENAI_CHAT_FIELDS else ""
            raise ProtocolError(key, f"is not a v1 chat field the local platform serves{hint} (supported: "
                                f"{', '.join(V1_CHAT_FIELDS)})")
    for key, why in _CLOUD_ONLY.items():
        if data.get(key):
            raise ProtocolError(key, f"must be false here: {why}")


def v1_schema(fmt: Any) -> dict[str, Any] | None:
    """v1's ``response_format`` (``"text"`` or ``"json_object"``, or OpenAI's object form) as the
    JSON schema the answer must follow (None: free text)."""
    if fmt is None or fmt == "text":
        return None
    if fmt == "json_object":
        return {"type": "object"}
    if isinstance(fmt, dict):
        return tool_checks.check_response_format(fmt)
    raise ProtocolError("response_format", f"must be 'text' or 'json_object' (or an OpenAI response_format "
                        f"object), got {fmt!r:.40}")


class CompletionRequest(CompletionFields, SamplingParams):
    """Body of ``POST .../completions/{endpoint}``."""

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> str:
        return check_prompt(value)


def check_prompt(value: Any) -> str:
    """A completion's ``prompt``: a non-empty string within :data:`MAX_PROMPT_CHARS`."""
    if not isinstance(value, str):
        raise ProtocolError("prompt", f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ProtocolError("prompt", "must not be empty")
    if len(value) > MAX_PROMPT_CHARS:
        raise ProtocolError("prompt", f"is {len(value)} characters; at most {MAX_PROMPT_CHARS} are accepted")
    return value


def check_history_caps(messages: Any, system: Any = None) -> None:
    """The message count, then the prompt's total characters: O(n), before any other check."""
    if isinstance(messages, list | tuple):
        check_message_count(messages)
        check_prompt_chars([system, *openai_wire.prompt_texts(messages)])


class EmbeddingRequest(EmbeddingFields):
    """Body of ``POST .../embeddings/{endpoint}``."""

    #: the most texts one call takes, and the field's name in errors
    max_texts: ClassVar[int] = MAX_EMBEDDING_TEXTS
    field: ClassVar[str] = "texts"

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> list[str]:
        name = cls.field
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ProtocolError(name, "must be a list of strings")
        if not value:
            raise ProtocolError(name, "must not be empty")
        if len(value) > cls.max_texts:
            raise ProtocolError(name, f"at most {cls.max_texts} texts per call, got {len(value)}; split the "
                                      "texts into several calls")
        for i, text in enumerate(value):
            if not isinstance(text, str) or not text:
                raise ProtocolError(f"{name}[{i}]", "must be a non-empty string")
            check_embedding_text(text, f"{name}[{i}]")
        return list(value)


class PackedEmbeddingRequest(EmbeddingRequest):
    """The v1 embeddings body of a qfnb batch's packed call to the local platform: the texts of
    several of the v1 API's calls, up to :data:`~qfnb.protocol.limits.LOCAL_MAX_EMBEDDING_TEXTS`."""

    max_texts: ClassVar[int] = LOCAL_MAX_EMBEDDING_TEXTS


class Text2ImageRequest(Text2ImageFields):
    """Body of ``POST .../text2image/{endpoint}``."""

    @model_validator(mode="before")
    @classmethod
    def _checks(cls, data: Any) -> Any:
        if isinstance(data, dict):
            prompt = data.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise ProtocolError("prompt", "must be a non-empty string")
            size = data.get("size", "1024x1024")
            parts = str(size).split("x")
            if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
                raise ProtocolError("size", f"must look like '1024x1024', got {size!r}")
            check_ranges(data, TEXT2IMAGE_RANGES)
        return data


class PluginRequest(PluginFields):
    """Body of a plugin call: EB plugins take ``messages``; custom plugins take ``query``."""

    @model_validator(mode="after")
    def _one_input(self) -> PluginRequest:
        if self.messages is not None:
            self.messages = validate_messages(self.messages)
        elif not (isinstance(self.query, str) and self.query.strip()):
            raise ProtocolError("query", "a plugin call needs a non-empty query (or messages)")
        return self
