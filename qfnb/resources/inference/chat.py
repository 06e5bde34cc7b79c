"""``ChatCompletion``: the v2 API (``/v2/chat/completions``) on an account with a v2 API key, else
v1 chat (``/chat/{endpoint}``); ``version=`` chooses."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from qfnb._core.errors import ValidationError
from qfnb._core.http.ratelimit import estimate_tokens
from qfnb._core.http.response import QfResponse
from qfnb._core.runtime import sync
from qfnb.protocol.wires.qianfan import routes

from ..structured import SchemaError, as_response_format
from ._generated.chat import ChatCompletionCalls
from .base import Target
from .params import CONTINUE_PROMPT, ChatCall, ChatMessages
from .shapes import function_call
from .shapes import v2 as v2_shapes
from .shapes.accumulator import ChatAccumulator

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.protocol.wires.qianfan.answers import ChatAnswer, ChatChunk

__all__ = ["ChatCompletion", "ChatMessages"]

logger = logging.getLogger("qfnb.chat")

#: follow-up requests ``auto_concat_truncate`` makes at most for one answer
MAX_CONTINUATIONS = 16
_Typed = TypeVar("_Typed", "ChatAnswer", "ChatChunk")


def _official(resp: QfResponse[_Typed]) -> _Typed:
    """What the official ``create()`` answers: ``resp.parsed``, with the call's latencies
    (``statistic``) and the body as received (``raw``)."""
    # deferred: loads pydantic (`qfnb.ChatCompletion` does not)
    from qfnb.protocol.wires.qianfan.answers import Statistic

    answer = resp.parsed
    answer.statistic = Statistic.model_validate({k: v for k, v in resp.statistic.items()
                                                 if k in Statistic.model_fields})
    answer.raw = resp.body
    return answer

class ChatCompletion(ChatCompletionCalls):
    """Chat with a model: ``ChatCompletion().do(messages=[{"role": "user", "content": "你好"}])``.

    ``model=`` a name (built-in catalog or the platform's list), ``endpoint=`` a custom
    service; ``stream=True`` gives chunks; ``system=``, ``temperature=`` ... go in the body.
    With a v2 API key (``QIANFAN_API_KEY``) calls go to the OpenAI-style v2 API and answer with
    ``["result"]`` beside the v2 body; ``version=1``/``2`` chooses the API. ``ado``/``do``
    are in :class:`ChatCompletionCalls` (generated from ``tools/spec/inference.py``).
    """

    api_types: ClassVar[tuple[str, ...]] = ("chat",)
    batch_field: ClassVar[str] = "messages"

    async def acreate(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None,
                      stream: bool = False, **kwargs: Any) -> Any:
        """The official ``create``: as :meth:`ado`, but a v2 resource answers typed objects
        (:class:`~qfnb.protocol.wires.qianfan.answers.ChatAnswer`, officially ``typing_client.Completion``, or an
        async iterator of ``ChatChunk``); a v1 resource answers as :meth:`ado`."""
        resp = await self.ado(messages, model, endpoint, stream, **kwargs)
        if self.version != 2:
            return resp
        if isinstance(resp, QfResponse):
            return _official(resp)

        async def chunks() -> AsyncIterator[ChatChunk]:
            async for chunk in resp:
                yield _official(chunk)

        return chunks()

    def create(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None,
               stream: bool = False, **kwargs: Any) -> Any:
        """Blocking :meth:`acreate` (a stream is a plain iterator)."""
        result = sync.run(self.acreate(messages, model, endpoint, stream, **kwargs))
        return sync.iterate(result) if stream and self.version == 2 else result

    async def _acall(self, call: ChatCall) -> QfResponse[ChatAnswer] | AsyncIterator[QfResponse[ChatChunk]]:
        if self.version == 1 and call.extra.get("functions"):
            target = await self._target(call.model, call.endpoint)
            if target.endpoint == function_call.FUNCTION_ENDPOINT:  # as officially: that model takes instructions
                plain = dataclasses.replace(call, auto_concat_truncate=False)
                result: QfResponse[ChatAnswer] | AsyncIterator[QfResponse[ChatChunk]] = await function_call.acall(
                    self._acall, plain)
                return result
        if not call.auto_concat_truncate:
            return await super()._acall(call)
        first = await super()._acall(call)
        if call.stream:
            assert not isinstance(first, QfResponse)
            return self._continue_stream(first, call)
        assert isinstance(first, QfResponse)
        acc, resp = ChatAccumulator(), first
        acc.add_body(resp.body)
        while acc.truncated and len(acc.rounds) < MAX_CONTINUATIONS:
            acc.end_round()
            nxt = await super()._acall(self._continuation(call, acc.rounds))
            assert isinstance(nxt, QfResponse)
            resp = nxt
            acc.add_body(resp.body)
        if acc.truncated:
            _still_truncated()
        resp.body["result"] = acc.text
        if acc.usage:
            resp.body["usage"] = acc.usage
        return resp

    def _continuation(self, call: ChatCall, parts: list[str]) -> ChatCall:
        """The follow-up request: the history so far, the partial answer, the continue prompt."""
        prompt = call.truncated_continue_prompt or CONTINUE_PROMPT
        history: list[dict[str, Any]] = list(call.fields()["messages"])
        for part in parts:
            history += [{"role": "assistant", "content": part}, {"role": "user", "content": prompt}]
        return dataclasses.replace(call, messages=history, idempotency_key=None)  # another call: a key of its own

    async def _continue_stream(self, first: AsyncIterator[QfResponse[ChatChunk]], call: ChatCall
                               ) -> AsyncIterator[QfResponse[ChatChunk]]:
        acc, chunks = ChatAccumulator(), first
        while True:
            async for chunk in chunks:
                acc.add_body(chunk.body)
                yield chunk
            acc.end_round()
            if not acc.truncated:
                return
            if len(acc.rounds) > MAX_CONTINUATIONS:
                _still_truncated()
                return
            nxt = await super()._acall(self._continuation(call, acc.rounds))
            assert not isinstance(nxt, QfResponse)
            chunks = nxt

    def _batch_items(self, inputs: Iterable[Any] | None, body_list: Iterable[dict[str, Any]] | None,
                     common: dict[str, Any]) -> Iterable[dict[str, Any]]:
        if common.get("response_format") is not None:  # refused before the first row is sent
            common["response_format"] = _wire_format(common["response_format"])
        return super()._batch_items(inputs, body_list, common)

    def _body(self, target: Target, call: ChatCall) -> tuple[Target, dict[str, Any]]:
        fields = self._given(call)
        if "messages" not in fields:
            raise ValidationError("messages", "is required")
        if "response_format" in fields:
            fields["response_format"] = _wire_format(fields["response_format"])
        if call.truncate_overlong_msgs and target.api_type == "chat":
            limits = _input_limits(target.model)
            if limits is not None:
                fields["messages"] = truncate_messages(fields["messages"], *limits, system=call.system or "")
        if target.api_type == "v2":
            body = v2_shapes.chat_body(fields, target.model or "", call.stream)
            # deferred: loads pydantic (`qfnb.ChatCompletion` does not)
            from qfnb.protocol.wires.openai.requests import V2ChatRequest
            from qfnb.protocol.wires.qianfan.inference import parse_request
            parse_request(V2ChatRequest, body)
        else:
            body = self._wire_body(fields, call.stream)
            if call.extra.get("adapt_openai_message_format"):
                body = _hoist_system(body)
            # deferred: loads pydantic (`qfnb.ChatCompletion` does not)
            from qfnb.protocol.wires.qianfan.inference import ChatRequest, parse_request
            parse_request(ChatRequest, body)
        return target, body

    def _v1_keys(self, body: dict[str, Any], *, chunk: bool) -> dict[str, Any]:
        return v2_shapes.chat_chunk(body) if chunk else v2_shapes.chat_answer(body)


def _wire_format(value: Any) -> str | dict[str, Any] | None:
    """``response_format`` as sent: a pydantic model class or a JSON-schema dict becomes the strict
    ``json_schema`` form (:func:`qfnb.resources.structured.as_response_format`)."""
    try:
        return as_response_format(value)
    except SchemaError as exc:
        raise ValidationError("response_format", str(exc)) from None


def _still_truncated() -> None:
    logger.warning("auto_concat_truncate: the answer is still truncated after %d continuations; returning "
                   "what arrived (is_truncated stays true)", MAX_CONTINUATIONS)


def _input_limits(model: str | None) -> tuple[int | None, int | None] | None:
    info = routes.builtin_model("chat", model)
    return (info.get("max_input_chars"), info.get("max_input_tokens")) if info else None


def truncate_messages(messages: list[dict[str, Any]], max_chars: int | None, max_tokens: int | None, *,
                      system: str = "") -> list[dict[str, Any]]:
    """Drop the oldest user/assistant pairs until the history fits (pure; keeps an odd tail).

    The last message is always kept, even if it alone is too long (the platform will say so).
    """
    sizes = [(len(t), estimate_tokens(t)) for t in (str(m.get("content") or "") for m in messages)]
    chars = len(system) + sum(c for c, _ in sizes)  # one pass; each dropped pair is subtracted (O(n))
    tokens = estimate_tokens(system) + sum(t for _, t in sizes)
    start = 0
    while len(messages) - start > 1:
        if (max_chars is None or chars <= max_chars) and (max_tokens is None or tokens <= max_tokens):
            break
        for c, t in sizes[start:start + 2]:
            chars, tokens = chars - c, tokens - t
        start += 2
    return messages[start:]


def _hoist_system(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI-style ``system`` messages → the v1 top-level ``system`` string."""
    msgs = body.get("messages") or []
    system = [m.get("content", "") for m in msgs if isinstance(m, dict) and m.get("role") == "system"]
    if system:
        body = {**body, "messages": [m for m in msgs if not (isinstance(m, dict) and m.get("role") == "system")]}
        body["system"] = "\n".join(filter(None, [body.get("system"), *system]))
    return body
