"""``ChatCompletion``: v1 chat (``/chat/{endpoint}``) and, with ``version=2``, the v2 API."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from qfnb._core.errors import ValidationError
from qfnb._core.http.ratelimit import estimate_tokens
from qfnb._core.http.response import QfResponse
from qfnb._core.runtime import sync
from qfnb.protocol import routes
from qfnb.protocol.model_names import V2_DEFAULT_MODEL

from ..structured import SchemaError, as_response_format
from . import function_call
from ._generated.chat import ChatCompletionCalls
from .accumulator import ChatAccumulator
from .base import Target
from .params import CONTINUE_PROMPT, ChatCall, ChatMessages

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.protocol.answers import ChatAnswer, ChatChunk

__all__ = ["ChatCompletion", "ChatMessages"]

logger = logging.getLogger("qfnb.chat")

#: follow-up requests ``auto_concat_truncate`` makes at most for one answer
MAX_CONTINUATIONS = 16
_Typed = TypeVar("_Typed", "ChatAnswer", "ChatChunk")


def _official(resp: QfResponse[_Typed]) -> _Typed:
    """What the official ``create()`` answers: ``resp.parsed``, with the call's latencies
    (``statistic``) and the body as received (``raw``)."""
    from qfnb.protocol.answers import Statistic  # deferred: loads pydantic (`qfnb.ChatCompletion` does not)

    answer = resp.parsed
    answer.statistic = Statistic.model_validate({k: v for k, v in resp.statistic.items()
                                                 if k in Statistic.model_fields})
    answer.raw = resp.body
    return answer

class ChatCompletion(ChatCompletionCalls):
    """Chat with a model: ``ChatCompletion().do(messages=[{"role": "user", "content": "你好"}])``.

    ``model=`` a name (built-in catalog or the platform's list), ``endpoint=`` a custom
    service; ``stream=True`` gives chunks; ``system=``, ``temperature=`` ... go in the body.
    ``ChatCompletion(version=2)`` speaks the OpenAI-style v2 API (bearer token). ``ado``/``do``
    are in :class:`ChatCompletionCalls` (generated from ``tools/spec/inference.py``).
    """

    api_types: ClassVar[tuple[str, ...]] = ("chat",)
    batch_field: ClassVar[str] = "messages"

    def __init__(self, model: str | None = None, endpoint: str | None = None, *, version: int | str = 1,
                 **kwargs: Any) -> None:
        super().__init__(model, endpoint, **kwargs)
        if str(version) not in ("1", "2"):
            raise ValueError(f"version must be 1 or 2, got {version!r}")
        self.version = int(version)

    async def acreate(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None,
                      stream: bool = False, **kwargs: Any) -> Any:
        """The official ``create``: as :meth:`ado`, but a v2 resource answers typed objects
        (:class:`~qfnb.protocol.answers.ChatAnswer`, officially ``typing_client.Completion``, or an
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
        return dataclasses.replace(call, messages=history)

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

    async def _target(self, model: str | None, endpoint: str | None) -> Target:
        if self.version == 2:
            return Target("v2", "", model or self._model or V2_DEFAULT_MODEL)
        return await super()._target(model, endpoint)

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
        body = self._wire_body(fields, call.stream)
        if target.api_type == "v2":
            body["model"] = target.model
            # deferred: loads pydantic (`qfnb.ChatCompletion` does not)
            from qfnb.protocol.inference import parse_request
            from qfnb.protocol.openai_requests import V2ChatRequest
            parse_request(V2ChatRequest, body)
        else:
            if call.extra.get("adapt_openai_message_format"):
                body = _hoist_system(body)
            # deferred: loads pydantic (`qfnb.ChatCompletion` does not)
            from qfnb.protocol.inference import ChatRequest, parse_request
            parse_request(ChatRequest, body)
        return target, body

    async def _send(self, target: Target, body: dict[str, Any], call: ChatCall
                    ) -> QfResponse | AsyncIterator[QfResponse]:
        if target.api_type == "v2":
            return await self.client.chat_v2(body, stream=call.stream, retry=self._retry(call),
                                             request_id=call.request_id)
        return await super()._send(target, body, call)


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
