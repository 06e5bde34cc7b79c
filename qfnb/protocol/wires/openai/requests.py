"""Pydantic models of the v2 chat wire and of the local platform's OpenAI routes.

``/v2/chat/completions`` (Qianfan's ranges) and the OpenAI chat, completions and embeddings bodies
(OpenAI's ranges and field list: any other field is refused by name). They build on the shared
checks of :mod:`qfnb.protocol.wires.qianfan.inference`; a problem raises one :class:`ProtocolError` naming the field.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, field_validator, model_validator

from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.limits import LOCAL_MAX_EMBEDDING_TEXTS, check_flags, check_ranges, check_stops
from qfnb.protocol.schema.accepted import check_schema_total
from qfnb.protocol.wires.chat import openai_wire
from qfnb.protocol.wires.chat import tools as tool_checks
from qfnb.protocol.wires.chat.fields import OPENAI_CHAT_FIELDS, OpenAIChatFields, V2ChatFields, WireModel
from qfnb.protocol.wires.chat.ranges import OPENAI_RANGES
from qfnb.protocol.wires.qianfan.inference import (
    EmbeddingRequest,
    body_check,
    check_history_caps,
    check_prompt,
    check_sampling,
)


class OpenAIEmbeddingRequest(EmbeddingRequest):
    """The ``input`` of the local platform's OpenAI-style ``/v1|/v2/embeddings``: up to
    :data:`~qfnb.protocol.limits.LOCAL_MAX_EMBEDDING_TEXTS` texts."""

    max_texts: ClassVar[int] = LOCAL_MAX_EMBEDDING_TEXTS
    field: ClassVar[str] = "input"


def check_v2_chat(data: dict[str, Any]) -> None:
    """A v2 chat body's sampling ranges (Qianfan's), then what v2 and the OpenAI routes check alike."""
    check_sampling(data)
    _check_v2_common(data)


def _without_nulls(cls: type[BaseModel], data: Any) -> Any:
    """An explicit ``null`` is an absent field, as OpenAI reads it (clients send them)."""
    return openai_wire.drop_nulls(data) if isinstance(data, dict) else data


class V2ChatRequest(V2ChatFields):
    """Body of ``POST /v2/chat/completions`` (fields: the spec's)."""

    _ranges = body_check(check_v2_chat)
    # defined last, so it runs first (pydantic runs ``before`` validators last-defined first)
    _nulls = model_validator(mode="before")(_without_nulls)

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not value:
            raise ProtocolError("messages", "must be a non-empty list")
        for i, m in enumerate(value):
            tool_checks.check_chat_turn(m, i)
        return value


def _check_v2_common(data: dict[str, Any]) -> None:
    """What v2 and the OpenAI routes check alike: history caps, stream options, tools, format."""
    check_history_caps(data.get("messages"))
    options = data.get("stream_options")
    if options is not None and (not isinstance(options, dict) or not isinstance(
            options.get("include_usage", False), bool)):
        raise ProtocolError("stream_options", 'must be an object like {"include_usage": true}')
    given = data.get("tools")
    if given is not None:
        tool_checks.check_tools(given)
    tool_checks.check_tool_choice(data.get("tool_choice"), given)
    check_flags(data, "parallel_tool_calls")
    schema = tool_checks.check_response_format(data.get("response_format"))
    if schema is not None and given:
        check_schema_total([schema, *(t["function"].get("parameters") for t in given)], "response_format")

#: OpenAI fields with a better-known replacement
_INSTEAD = {"functions": "tools", "function_call": "tool_choice", "max_output_tokens": "max_completion_tokens"}


def check_openai_chat(data: dict[str, Any]) -> None:
    """An OpenAI chat body's fields and ranges (the OpenAI routes' rules, usable on a batch row)."""
    openai_wire.refuse_unknown(data, OPENAI_CHAT_FIELDS, "OpenAI chat API", instead=_INSTEAD)
    check_ranges(data, OPENAI_RANGES)
    check_stops("stop", data.get("stop"), one_string=True)
    check_flags(data, "stream", "logprobs")
    if data.get("top_logprobs") is not None and not data.get("logprobs"):
        raise ProtocolError("top_logprobs", "needs logprobs: true")
    bias = data.get("logit_bias")
    if bias is not None and (not isinstance(bias, dict) or not all(
            str(k).lstrip("-").isdigit() and isinstance(v, int | float) and -100 <= v <= 100 for k, v in bias.items())):
        raise ProtocolError("logit_bias", "must map token ids to numbers from -100 to 100")
    _check_2026_fields(data)
    _check_v2_common(data)

#: the output modalities the platform's models have (``"audio"`` is refused by name)
MODALITIES = ("text",)


def _check_2026_fields(data: dict[str, Any]) -> None:
    """``store``, ``metadata`` and ``modalities`` (the other 2026 fields are checked by their types)."""
    check_flags(data, "store")
    if data.get("metadata") is not None:
        openai_wire.check_metadata(data["metadata"])
    modalities = data.get("modalities")
    if modalities is not None:
        if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
            raise ProtocolError("modalities", 'must be a list of strings, e.g. ["text"]')
        other = [m for m in modalities if m not in MODALITIES]
        if other:
            raise ProtocolError("modalities", f"{other[0]!r:.40} is not served: the local platform's models answer "
                                'text only; send modalities: ["text"]')

def check_openai_completion(data: dict[str, Any]) -> None:
    """Refuse, by name, what the OpenAI ``/completions`` route cannot honour; OpenAI's ranges."""
    openai_wire.refuse_unknown(data, OPENAI_COMPLETION_FIELDS, "completions API",
                               note="; for choices and logprobs use chat completions")
    # the completion's own fields aside, the rest are the chat's and take its rules
    check_openai_chat({k: v for k, v in data.items() if k not in ("model", "prompt", "user") and v is not None})


class OpenAICompletionRequest(WireModel):
    """Body of the platform's OpenAI ``/completions`` route (answered whole, or streamed as
    ``text_completion`` chunks)."""

    model: str | None = None
    prompt: str
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None

    _checks = body_check(check_openai_completion)

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> str:
        return check_prompt(value)


#: the fields the OpenAI ``/completions`` route takes (OpenAI's, less ``n``/``logprobs``/``echo``/
#: ``suffix``/``best_of``): its model's
OPENAI_COMPLETION_FIELDS = tuple(OpenAICompletionRequest.model_fields)


class OpenAIChatRequest(V2ChatRequest, OpenAIChatFields):
    """Body of the platform's OpenAI chat routes: OpenAI's fields and ranges (``temperature`` 0
    is greedy, ``n`` choices, ``logprobs``, the 2026 fields), plus ``penalty_score``/``top_k``;
    any other field is refused by name. The fields are the spec's (:class:`OpenAIChatFields`)."""

    stop: str | list[str] | None = None  # type: ignore[assignment]
    seed: int | None = None

    _ranges = body_check(check_openai_chat)
    _nulls = model_validator(mode="before")(_without_nulls)  # before _ranges (see V2ChatRequest)
