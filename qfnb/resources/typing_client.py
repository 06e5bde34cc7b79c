"""The OpenAI-style result types of ``ChatCompletion(version=2).create()`` and the
:class:`qfnb.Qianfan` client: ``Completion`` (a whole answer) and ``CompletionChunk`` (a
streamed piece), under the official SDK's names. Fields the platform adds are kept."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChatCompletionMessage", "Choice", "ChoiceDelta", "Completion", "CompletionChunk", "CompletionChunkChoice",
           "CompletionStatistic", "CompletionUsage", "Function", "SearchResult", "ToolCall"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Function(_Model):
    name: str
    arguments: str


class ToolCall(_Model):
    id: str
    type: str
    function: Function


class SearchResult(_Model):
    index: int
    url: str
    title: str
    datasource_id: str = ""


class ChatCompletionMessage(_Model):
    content: str | None = None
    reasoning_content: str | None = None
    role: str = "assistant"
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class Choice(_Model):
    finish_reason: str | None = None
    index: int = 0
    message: ChatCompletionMessage
    ban_round: int | None = None
    flag: int | None = None


class CompletionUsage(_Model):
    completion_tokens: int = 0
    prompt_tokens: int = 0
    total_tokens: int = 0


class CompletionStatistic(_Model):
    """Latencies of the call (seconds), measured on this machine."""

    first_token_latency: float = 0.0
    request_latency: float = 0.0
    total_latency: float = 0.0
    start_timestamp: float = 0.0
    avg_output_tokens_per_second: float = 0.0


class Completion(_Model):
    """A whole chat answer (``object == "chat.completion"``); ``raw`` is the body as received."""

    id: str = ""
    choices: list[Choice] = Field(default_factory=list)
    created: int = 0
    model: str = ""
    object: str = "chat.completion"
    usage: CompletionUsage | None = None
    statistic: CompletionStatistic | None = None
    raw: Any = None


class ChoiceDelta(_Model):
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None


class CompletionChunkChoice(_Model):
    delta: ChoiceDelta
    finish_reason: str | None = None
    index: int = 0
    ban_round: int | None = None
    flag: int | None = None


class CompletionChunk(_Model):
    """One streamed piece of an answer (``object == "chat.completion.chunk"``)."""

    id: str = ""
    choices: list[CompletionChunkChoice] = Field(default_factory=list)
    created: int = 0
    model: str = ""
    object: str = "chat.completion.chunk"
    usage: CompletionUsage | None = None
    statistic: CompletionStatistic | None = None
    raw: Any = None


def completion_of(body: dict[str, Any], statistic: dict[str, Any]) -> Completion:
    """A :class:`Completion` from a v2 answer's body and its latencies."""
    return _answer_of(Completion, body, statistic)


def chunk_of(body: dict[str, Any], statistic: dict[str, Any]) -> CompletionChunk:
    """A :class:`CompletionChunk` from one streamed v2 event."""
    return _answer_of(CompletionChunk, body, statistic)


_Answer = TypeVar("_Answer", Completion, CompletionChunk)


def _answer_of(kind: type[_Answer], body: dict[str, Any], statistic: dict[str, Any]) -> _Answer:
    result = kind.model_validate(body)
    result.statistic = CompletionStatistic.model_validate({k: v for k, v in statistic.items()
                                                           if k in CompletionStatistic.model_fields})
    result.raw = body
    return result
