"""Qianfan's v1 inference wire (``/chat/{endpoint}``, ``/completions/{endpoint}``) as a converter:
a parsed :class:`~qfnb.protocol.wires.qianfan.inference.ChatRequest` or ``CompletionRequest`` -> an ask, and
the answer -> v1's body (``result``, ``is_truncated``, ``function_call``...) or its SSE chunks
(``sentence_id`` counting up, ``is_end`` on the last)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from qfnb.local.convert.answer import BROKE_OFF, Answer, Tally, merge_tool_calls, until_broken
from qfnb.local.engines.api import ServedLike
from qfnb.local.engines.ask import ChatAsk, Sampling, TextAsk
from qfnb.local.engines.base import Delta
from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.wires.chat.tools import functions_as_tools, v1_function_call, v1_history_as_openai
from qfnb.protocol.wires.codec.sse import encode_event
from qfnb.protocol.wires.qianfan.inference import ChatRequest, CompletionRequest, check_v1_chat_fields, v1_schema

__all__ = ["V1Render", "chat_ask", "finish", "stream_error_event", "text_ask"]


def chat_ask(req: ChatRequest, model: str, lane: str) -> ChatAsk:
    """The ask of a v1 chat: ``system`` as the first turn, ``function_call``/``function`` turns as
    OpenAI tool turns, ``functions`` as tools (a named ``tool_choice``: that one, required),
    ``response_format`` as the answer's JSON schema."""
    check_v1_chat_fields(req.model_dump(exclude_unset=True))
    tools = tuple(functions_as_tools(req.functions)) if req.functions else ()
    choice = req.tool_choice
    if tools and isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        tools = tuple(t for t in tools if t["function"]["name"] == choice["function"]["name"])
    system = ({"role": "system", "content": req.system},) if req.system else ()
    return ChatAsk(model=model, messages=(*system, *v1_history_as_openai(req.messages)),
                   sampling=Sampling.of(req.model_dump()),
                   tools=tools, tool_choice="required" if tools and isinstance(choice, dict) else "auto",
                   schema=v1_schema(req.response_format), lane=lane)


def text_ask(req: CompletionRequest, model: str, lane: str) -> TextAsk:
    return TextAsk(model=model, prompt=req.prompt, sampling=Sampling.of(req.model_dump()), lane=lane)


def finish(reason: str | None) -> str:
    """v1's ``finish_reason`` for an engine's."""
    return "normal" if reason in (None, "", "stop", "eos") else reason


def stream_error_event(message: str = BROKE_OFF) -> bytes:
    """v1's SSE ``error`` event: the answer broke off on the platform's side; clients raise a
    retryable stream error. No internals: they go to the log."""
    return encode_event({"error_code": int(ErrorCode.SERVER_HIGH_LOAD), "error_msg": message}, event="error")


@dataclass(frozen=True)
class V1Render:
    """v1's answer: ``obj`` is ``chat.completion`` or ``completion``."""

    obj: str
    stream: bool
    rid: str
    created: int

    def body(self, answers: Sequence[Answer], served: ServedLike) -> dict[str, Any]:
        (answer,) = answers
        tally = answer.tally
        body: dict[str, Any] = {"id": self.rid, "object": self.obj, "created": self.created, "result": answer.text,
                                "is_truncated": tally.finish == "length", "need_clear_history": False,
                                "finish_reason": finish(tally.finish), "usage": tally.usage()}
        if answer.tool_calls:  # ERNIE's function calling: the call instead of a result
            body.update(result="", function_call=v1_function_call(answer.tool_calls), finish_reason="function_call")
        return body

    def events(self, deltas: AsyncIterator[tuple[int, Delta]], tallies: Sequence[Tally],
               served: ServedLike) -> AsyncIterator[bytes]:
        return until_broken(self._events(deltas, tallies), stream_error_event, "v1 chat")

    async def _events(self, deltas: AsyncIterator[tuple[int, Delta]],
                      tallies: Sequence[Tally]) -> AsyncGenerator[bytes, None]:
        """One ``data:`` chunk per delta, sent as it comes; the last is marked ``is_end``. Only a delta
        that says the answer is over (its ``finish_reason``: an engine's last) waits for the next one: a
        token waiting a delta would reach the client one engine step late (the first token's wait
        ~17 ms longer on the 2-core machine). A stream that ends after a token ends with an empty
        ``is_end`` chunk, as an engine's own final delta makes it."""
        (tally,) = tallies
        pending: Delta | None = None
        sentence = 0
        calls: list[dict[str, Any]] = []

        def chunk(delta: Delta | None, end: bool) -> bytes:
            body: dict[str, Any] = {"id": self.rid, "object": self.obj, "created": self.created,
                                    "sentence_id": sentence, "is_end": end, "is_truncated": False,
                                    "result": delta.text if delta else "", "need_clear_history": False,
                                    "usage": tally.usage()}
            if end:
                body["finish_reason"] = finish(tally.finish)
                body["is_truncated"] = tally.finish == "length"  # the answer hit max_output_tokens
                if calls:
                    body.update(function_call=v1_function_call(calls), finish_reason="function_call")
            return encode_event(body)

        async for _, delta in deltas:
            tally.add(delta)
            if delta.tool_calls:
                merge_tool_calls(calls, delta.tool_calls)
            if pending is not None:
                yield chunk(pending, False)
                sentence += 1
                pending = None
            if delta.finish_reason is not None:
                pending = delta
                continue
            yield chunk(delta, False)
            sentence += 1
        yield chunk(pending, True)
