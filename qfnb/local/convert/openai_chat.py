"""The OpenAI wire (Qianfan v2 and the platform's ``/v1``, ``/v2`` OpenAI routes) as a converter:
a parsed :class:`~qfnb.protocol.wires.openai.requests.OpenAIChatRequest` (or ``OpenAICompletionRequest``) ->
an ask, and the answers -> a ``chat.completion`` body, its ``chat.completion.chunk`` stream, or a
``text_completion`` body."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from qfnb.local.convert.answer import BROKE_OFF, Answer, Tally, answer_of, answered, total_usage, until_broken
from qfnb.local.convert.asks import structured_output, tool_specs
from qfnb.local.engines.api import ServedLike
from qfnb.local.engines.ask import ChatAsk, Sampling, TextAsk
from qfnb.local.engines.base import Delta
from qfnb.protocol.limits import SCHEMA_RESAMPLES
from qfnb.protocol.wires.chat.openai_wire import text_messages
from qfnb.protocol.wires.chat.tools import check_response_format
from qfnb.protocol.wires.codec.sse import DONE, encode_event
from qfnb.protocol.wires.openai.requests import OpenAIChatRequest, OpenAICompletionRequest

__all__ = ["SERVED_TIER", "ChatRender", "CompletionRender", "chat_ask", "choice_of", "finish", "ignored_fields",
           "stream_error_event", "text_ask"]

#: the ``service_tier`` every answer is served in (answered when the request names one)
SERVED_TIER = "default"
#: the engine kinds that keep a ``prompt_cache_key``'s requests on one slot (our llama-server)
_SLOT_KINDS = ("llama.cpp",)
#: the engine kinds that get ``reasoning_effort`` (an external OpenAI-compatible engine: its model may reason)
_REASONING_KINDS = ("openai",)


def chat_ask(req: OpenAIChatRequest, lane: str) -> ChatAsk:
    """The ask of an OpenAI chat (``temperature`` 0: greedy; a named ``tool_choice``: that one
    tool, required; ``response_format`` ``text``: free text)."""
    # max_completion_tokens comes after max_tokens in the body model: it wins when both are given
    sampling = dataclasses.replace(Sampling.of(req.model_dump()), logit_bias=req.logit_bias)
    given = req.tool_choice
    tools, choice = tool_specs((t["function"] for t in req.tools or ()), given if isinstance(given, str) else None,
                               given["function"]["name"] if isinstance(given, dict) else None)
    fmt = req.response_format
    output = structured_output(fmt.get("type"), check_response_format(fmt),
                               (fmt.get("json_schema") or {}).get("name")) if fmt else structured_output(None)
    # the models read text: a media part is refused here, by name
    return ChatAsk(model=req.model, messages=tuple(text_messages(req.messages)), sampling=sampling, tools=tools,
                   tool_choice=choice, parallel_tool_calls=req.parallel_tool_calls,
                   logprobs=(req.top_logprobs or 0) if req.logprobs else None, n=req.n, lane=lane,
                   cache_key=req.prompt_cache_key, reasoning_effort=req.reasoning_effort, **output)


def ignored_fields(req: OpenAIChatRequest, served: ServedLike) -> list[str]:
    """The fields of ``req`` the platform accepted but cannot honour for ``served``: ``metadata``
    without ``store``, ``prompt_cache_key`` off our llama-server (one slot or an external engine),
    ``reasoning_effort`` (other than ``"none"``) for a model that does not reason."""
    ignored = []
    if req.metadata and not req.store:
        ignored.append("metadata")
    if req.prompt_cache_key and served.kind not in _SLOT_KINDS:
        ignored.append("prompt_cache_key")
    if req.reasoning_effort not in (None, "none") and served.kind not in _REASONING_KINDS:
        ignored.append("reasoning_effort")
    return ignored


def text_ask(req: OpenAICompletionRequest, lane: str) -> TextAsk:
    return TextAsk(model=str(req.model), prompt=req.prompt, sampling=Sampling.of(req.model_dump()), lane=lane)


def finish(reason: str | None) -> str:
    """OpenAI's ``finish_reason`` for an engine's."""
    return "stop" if reason in (None, "", "normal") else reason


def refusal(tally: Tally) -> str:
    """The ``refusal`` of an answer that still fails its JSON schema after the resamples, or that
    ``max_tokens`` cut (not written again) (OpenAI's field for an answer that is not the structured
    output asked for)."""
    when = "cut by max_tokens" if tally.finish == "length" else f"after {SCHEMA_RESAMPLES} resamples"
    return f"the answer does not fit the JSON schema ({when}): {tally.schema_miss}"


def stream_error_event(message: str = BROKE_OFF) -> bytes:
    """The SSE ``error`` event of a stream broken on the platform's side (a retryable error for clients)."""
    return encode_event({"error": {"code": "server_overloaded", "message": message, "type": "server_error"}},
                        event="error")


def choice_of(index: int, answer: Answer, *, logprobs: bool) -> dict[str, Any]:
    """One whole choice: content, assembled tool calls, logprobs (when asked), finish reason."""
    calls = answer.tool_calls
    message: dict[str, Any] = {"role": "assistant", "content": answer.text if answer.text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if answer.tally.schema_miss:
        message["refusal"] = refusal(answer.tally)
    return {"index": index, "message": message, "logprobs": {"content": answer.logprobs} if logprobs else None,
            "finish_reason": "tool_calls" if calls else finish(answer.finish)}


def _chunk_delta(delta: Delta) -> dict[str, Any]:
    """A chunk's ``delta``: the text and tool-call fragments ``delta`` carries."""
    out: dict[str, Any] = {}
    if delta.text:
        out["content"] = delta.text
    if delta.tool_calls:
        out["tool_calls"] = delta.tool_calls
    return out


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
    #: the request named a ``service_tier``: every answer and chunk says the one it was served in
    tier: bool = False
    #: called with the whole ``chat.completion`` once answered (a stream: once it ended whole)
    keep: Callable[[dict[str, Any]], None] | None = None

    def _head(self, kind: str, served: ServedLike) -> dict[str, Any]:
        head = {"id": self.rid, "object": kind, "created": self.created, "model": answered(self.model, served)}
        return {**head, "service_tier": SERVED_TIER} if self.tier else head

    def body(self, answers: Sequence[Answer], served: ServedLike) -> dict[str, Any]:
        whole = {**self._head("chat.completion", served),
                 "choices": [choice_of(i, a, logprobs=self.logprobs) for i, a in enumerate(answers)],
                 "usage": total_usage([a.tally for a in answers])}
        if self.keep is not None:
            self.keep(whole)
        return whole

    def events(self, deltas: AsyncIterator[tuple[int, Delta]], tallies: Sequence[Tally],
               served: ServedLike) -> AsyncIterator[bytes]:
        return until_broken(self._events(deltas, tallies, served), stream_error_event, "chat")

    async def _events(self, deltas: AsyncIterator[tuple[int, Delta]], tallies: Sequence[Tally],
                      served: ServedLike) -> AsyncGenerator[bytes, None]:
        choices = len(tallies)
        called = [False] * choices
        kept: list[list[Delta]] = [[] for _ in range(choices)]  # for ``keep``
        base = self._head("chat.completion.chunk", served)
        for i in range(choices):
            yield encode_event({**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                                     "logprobs": None, "finish_reason": None}]})
        async for i, delta in deltas:
            tallies[i].add(delta)
            if self.keep is not None:
                kept[i].append(delta)
            out = _chunk_delta(delta)
            called[i] = called[i] or "tool_calls" in out
            if out:
                logprobs = {"content": delta.logprobs or []} if self.logprobs else None
                yield encode_event({**base, "choices": [{"index": i, "delta": out, "logprobs": logprobs,
                                                         "finish_reason": None}]})
        for i, tally in enumerate(tallies):
            closing = {"refusal": refusal(tally)} if tally.schema_miss else {}
            yield encode_event({**base, "choices": [{"index": i, "delta": closing, "logprobs": None,
                                                     "finish_reason": "tool_calls" if called[i]
                                                     else finish(tally.finish)}]})
        if self.include_usage:  # a chunk of its own with no choices, as OpenAI sends it (where clients read it)
            yield encode_event({**base, "choices": [], "usage": total_usage(tallies)})
        if self.keep is not None:
            self.body([answer_of(d) for d in kept], served)
        yield encode_event(DONE)


@dataclass(frozen=True)
class CompletionRender:
    """``text_completion``: one body, or its chunk stream (each chunk's ``choices[i].text`` a
    piece; with ``include_usage`` a last chunk with no choices carries the usage)."""

    model: str
    rid: str
    created: int
    stream: bool = False
    include_usage: bool = False

    def body(self, answers: Sequence[Answer], served: ServedLike) -> dict[str, Any]:
        return {"id": self.rid, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": [{"index": i, "text": a.text, "logprobs": None, "finish_reason": finish(a.finish)}
                            for i, a in enumerate(answers)],
                "usage": total_usage([a.tally for a in answers])}

    def events(self, deltas: AsyncIterator[tuple[int, Delta]], tallies: Sequence[Tally],
               served: ServedLike) -> AsyncIterator[bytes]:
        return until_broken(self._events(deltas, tallies), stream_error_event, "completion")

    async def _events(self, deltas: AsyncIterator[tuple[int, Delta]],
                      tallies: Sequence[Tally]) -> AsyncGenerator[bytes, None]:
        base = {"id": self.rid, "object": "text_completion", "created": self.created, "model": self.model}
        async for i, delta in deltas:
            tallies[i].add(delta)
            if delta.text:
                yield encode_event({**base, "choices": [{"index": i, "text": delta.text, "logprobs": None,
                                                         "finish_reason": None}]})
        for i, tally in enumerate(tallies):
            yield encode_event({**base, "choices": [{"index": i, "text": "", "logprobs": None,
                                                     "finish_reason": finish(tally.finish)}]})
        if self.include_usage:
            yield encode_event({**base, "choices": [], "usage": total_usage(tallies)})
        yield encode_event(DONE)
