"""The OpenAI wire (Qianfan v2 and the platform's ``/v1``, ``/v2`` OpenAI routes) as a converter:
a parsed :class:`~qfnb.protocol.openai_requests.OpenAIChatRequest` (or ``OpenAICompletionRequest``) ->
an ask, and the answers -> a ``chat.completion`` body, its ``chat.completion.chunk`` stream, or a
``text_completion`` body."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qfnb.local.convert.answer import Answer, Tally, answered, total_usage
from qfnb.local.engines.api import ServedLike
from qfnb.local.engines.ask import ChatAsk, Sampling, TextAsk, ToolChoice
from qfnb.local.engines.base import Delta
from qfnb.protocol.limits import SCHEMA_RESAMPLES
from qfnb.protocol.openai_requests import OpenAIChatRequest, OpenAICompletionRequest
from qfnb.protocol.openai_wire import text_messages
from qfnb.protocol.sse import DONE, encode_event
from qfnb.protocol.tools import check_response_format

log = logging.getLogger("qfnb.local.inference")

__all__ = ["ChatRender", "CompletionRender", "chat_ask", "choice_of", "finish", "stream_error_event", "text_ask"]


def chat_ask(req: OpenAIChatRequest, lane: str) -> ChatAsk:
    """The ask of an OpenAI chat (``temperature`` 0: greedy; a named ``tool_choice``: that one
    tool, required; ``response_format`` ``text``: free text)."""
    # max_completion_tokens comes after max_tokens in the body model: it wins when both are given
    sampling = dataclasses.replace(Sampling.of(req.model_dump()), logit_bias=req.logit_bias)
    tools = tuple(req.tools or ())
    given = req.tool_choice
    choice: ToolChoice = "none" if given == "none" else "required" if given == "required" else "auto"
    if isinstance(req.tool_choice, dict):
        named = req.tool_choice["function"]["name"]
        tools, choice = tuple(t for t in tools if t["function"]["name"] == named), "required"
    # the models read text: a media part is refused here, by name
    return ChatAsk(model=req.model, messages=tuple(text_messages(req.messages)), sampling=sampling, tools=tools,
                   tool_choice=choice,
                   parallel_tool_calls=req.parallel_tool_calls, schema=check_response_format(req.response_format),
                   schema_name=_schema_name(req.response_format),
                   logprobs=(req.top_logprobs or 0) if req.logprobs else None, n=req.n, lane=lane)


def _schema_name(fmt: Mapping[str, Any] | None) -> str | None:
    """The name a ``json_schema`` format gives its schema (None for ``json_object``)."""
    if fmt is None or fmt.get("type") != "json_schema":
        return None
    return str((fmt.get("json_schema") or {}).get("name") or "answer")


def text_ask(req: OpenAICompletionRequest, lane: str) -> TextAsk:
    sampling = Sampling.of(req.model_dump(include={"temperature", "top_p", "max_tokens", "stop", "seed"}))
    return TextAsk(model=str(req.model), prompt=req.prompt, sampling=sampling, lane=lane)


def finish(reason: str | None) -> str:
    """OpenAI's ``finish_reason`` for an engine's."""
    return "stop" if reason in (None, "", "normal") else reason


def refusal(schema_miss: str) -> str:
    """The ``refusal`` of an answer that still fails its JSON schema after the resamples (OpenAI's
    field for an answer that is not the structured output asked for)."""
    return f"the answer does not fit the JSON schema after {SCHEMA_RESAMPLES} resamples: {schema_miss}"


def stream_error_event() -> bytes:
    """The SSE ``error`` event of a stream broken on the platform's side (a retryable error for clients)."""
    message = "the model engine failed mid-answer; the answer is incomplete, retry the request"
    return encode_event({"error": {"code": "server_overloaded", "message": message, "type": "server_error"}},
                        event="error")


def choice_of(index: int, answer: Answer, *, logprobs: bool) -> dict[str, Any]:
    """One whole choice: content, assembled tool calls, logprobs (when asked), finish reason."""
    calls = answer.tool_calls
    message: dict[str, Any] = {"role": "assistant", "content": answer.text if answer.text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if answer.tally.schema_miss:
        message["refusal"] = refusal(answer.tally.schema_miss)
    return {"index": index, "message": message, "logprobs": {"content": answer.logprobs} if logprobs else None,
            "finish_reason": "tool_calls" if calls else finish(answer.finish)}


@dataclass(frozen=True)
class ChatRender:
    """``chat.completion`` (``n`` choices, tool calls, logprobs) or its chunk stream. ``model`` is
    the name the client asked for: answered back when it names the served model."""

    model: str
    stream: bool
    rid: str
    created: int
    logprobs: bool = False
    include_usage: bool = False

    def body(self, answers: Sequence[Answer], served: ServedLike) -> dict[str, Any]:
        return {"id": self.rid, "object": "chat.completion", "created": self.created,
                "model": answered(self.model, served),
                "choices": [choice_of(i, a, logprobs=self.logprobs) for i, a in enumerate(answers)],
                "usage": total_usage([a.tally for a in answers])}

    async def events(self, deltas: AsyncIterator[tuple[int, Delta]], choices: int,
                     served: ServedLike) -> AsyncIterator[bytes]:
        tallies = [Tally() for _ in range(choices)]
        called = [False] * choices
        base = {"id": self.rid, "object": "chat.completion.chunk", "created": self.created,
                "model": answered(self.model, served)}
        try:
            for i in range(choices):
                yield encode_event({**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                                         "logprobs": None, "finish_reason": None}]})
            async for i, delta in deltas:
                tallies[i].add(delta)
                out: dict[str, Any] = {}
                if delta.text:
                    out["content"] = delta.text
                if delta.tool_calls:
                    out["tool_calls"] = delta.tool_calls
                    called[i] = True
                if out:
                    logprobs = {"content": delta.logprobs or []} if self.logprobs else None
                    yield encode_event({**base, "choices": [{"index": i, "delta": out, "logprobs": logprobs,
                                                             "finish_reason": None}]})
        except Exception:
            log.exception("stream failed")
            yield stream_error_event()
            return
        for i, tally in enumerate(tallies):
            closing = {"refusal": refusal(tally.schema_miss)} if tally.schema_miss else {}
            yield encode_event({**base, "choices": [{"index": i, "delta": closing, "logprobs": None,
                                                     "finish_reason": "tool_calls" if called[i]
                                                     else finish(tally.finish)}]})
        if self.include_usage:  # a chunk of its own with no choices, as OpenAI sends it (where clients read it)
            yield encode_event({**base, "choices": [], "usage": total_usage(tallies)})
        yield encode_event(DONE)


@dataclass(frozen=True)
class CompletionRender:
    """``text_completion`` (answered whole: streamed answers are served on chat completions)."""

    model: str
    rid: str
    created: int
    stream: bool = False

    def body(self, answers: Sequence[Answer], served: ServedLike) -> dict[str, Any]:
        return {"id": self.rid, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": [{"index": i, "text": a.text, "logprobs": None, "finish_reason": finish(a.finish)}
                            for i, a in enumerate(answers)],
                "usage": total_usage([a.tally for a in answers])}

    def events(self, deltas: AsyncIterator[tuple[int, Delta]], choices: int,
               served: ServedLike) -> AsyncIterator[bytes]:
        raise NotImplementedError("completions are answered whole (OpenAICompletionRequest refuses stream)")
