"""``ChatCompletion``: v1 chat (``/chat/{endpoint}``) and, with ``version=2``, the v2 API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal, overload

from qfnb._core.http.ratelimit import estimate_tokens
from qfnb._core.http.response import QfResponse
from qfnb._core.runtime import sync
from qfnb.protocol import routes

from . import function_call
from .accumulator import ChatAccumulator
from .base import BaseInference, Target, blocking_doc, call_params
from .messages import Messages

__all__ = ["ChatCompletion", "ChatMessages"]

logger = logging.getLogger("qfnb.chat")

V2_DEFAULT_MODEL = "ernie-lite-8k"
#: what ``auto_concat_truncate`` sends to ask for the rest of a truncated answer (the SDK's default)
CONTINUE_PROMPT = "继续"
#: follow-up requests ``auto_concat_truncate`` makes at most for one answer
MAX_CONTINUATIONS = 16

#: a conversation: ``[{"role": "user", "content": "你好"}, ...]`` or :class:`Messages`
ChatMessages = Sequence[Mapping[str, Any]] | Messages


def _messages(value: Any) -> Any:
    return value.to_list() if isinstance(value, Messages) else value


class ChatCompletion(BaseInference):
    """Chat with a model: ``ChatCompletion().do(messages=[{"role": "user", "content": "你好"}])``.

    ``model=`` a name (built-in catalog or the platform's list), ``endpoint=`` a custom
    service; ``stream=True`` gives chunks; ``system=``, ``temperature=`` ... go in the body.
    ``ChatCompletion(version=2)`` speaks the OpenAI-style v2 API (bearer token).
    """

    api_types: ClassVar[tuple[str, ...]] = ("chat",)
    batch_field: ClassVar[str] = "messages"

    def __init__(self, model: str | None = None, endpoint: str | None = None, *, version: int | str = 1,
                 **kwargs: Any) -> None:
        super().__init__(model, endpoint, **kwargs)
        if str(version) not in ("1", "2"):
            raise ValueError(f"version must be 1 or 2, got {version!r}")
        self.version = int(version)

    # The official SDK's parameters in its positional order, then the documented body fields
    # (keyword-only), then ``**kwargs`` for fields the platform adds. The overloads give the
    # result's type from ``stream``; both calls run :meth:`_acall`.
    @overload
    async def ado(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None,
                  stream: Literal[False] = False, retry_count: int | None = None,
                  request_timeout: float | None = None, request_id: str | None = None,
                  backoff_factor: float | None = None, auto_concat_truncate: bool = False,
                  truncated_continue_prompt: str = CONTINUE_PROMPT, truncate_overlong_msgs: bool = False, *,
                  system: str | None = None, temperature: float | None = None, top_p: float | None = None,
                  top_k: int | None = None, penalty_score: float | None = None, stop: list[str] | None = None,
                  max_output_tokens: int | None = None, user_id: str | None = None,
                  **kwargs: Any) -> QfResponse: ...
    @overload
    async def ado(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None, *,
                  stream: Literal[True], retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None,
                  auto_concat_truncate: bool = False, truncated_continue_prompt: str = CONTINUE_PROMPT,
                  truncate_overlong_msgs: bool = False,
                  system: str | None = None, temperature: float | None = None, top_p: float | None = None,
                  top_k: int | None = None, penalty_score: float | None = None, stop: list[str] | None = None,
                  max_output_tokens: int | None = None, user_id: str | None = None,
                  **kwargs: Any) -> AsyncIterator[QfResponse]: ...
    @overload
    async def ado(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None,
                  stream: bool = False, retry_count: int | None = None,
                  request_timeout: float | None = None, request_id: str | None = None,
                  backoff_factor: float | None = None, auto_concat_truncate: bool = False,
                  truncated_continue_prompt: str = CONTINUE_PROMPT, truncate_overlong_msgs: bool = False, *,
                  system: str | None = None, temperature: float | None = None, top_p: float | None = None,
                  top_k: int | None = None, penalty_score: float | None = None, stop: list[str] | None = None,
                  max_output_tokens: int | None = None, user_id: str | None = None,
                  **kwargs: Any) -> QfResponse | AsyncIterator[QfResponse]: ...
    async def ado(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None,
                  stream: bool = False, retry_count: int | None = None,
                  request_timeout: float | None = None, request_id: str | None = None,
                  backoff_factor: float | None = None, auto_concat_truncate: bool = False,
                  truncated_continue_prompt: str = CONTINUE_PROMPT, truncate_overlong_msgs: bool = False, *,
                  system: str | None = None, temperature: float | None = None, top_p: float | None = None,
                  top_k: int | None = None, penalty_score: float | None = None, stop: list[str] | None = None,
                  max_output_tokens: int | None = None, user_id: str | None = None,
                  **kwargs: Any) -> QfResponse | AsyncIterator[QfResponse]:
        """Chat with the model.

        :param messages: the conversation, oldest first, ending with a user turn.
        :param model: a model name (built-in catalog or the platform's list); default: the
            instance's, then the config's default chat model.
        :param endpoint: a custom service's endpoint suffix (wins over ``model``).
        :param stream: ``True``: an async iterator of chunks instead of one response.
        :param retry_count: tries in all; ``None``: the config's ``llm_api_retry_count``.
        :param request_timeout: seconds per try; ``None``: the config's.
        :param request_id: sent as the request's id (the platform echoes it).
        :param backoff_factor: the retry backoff factor; ``None``: the config's.
        :param auto_concat_truncate: continue an answer the platform marks ``is_truncated``
            (the partial answer as the assistant turn, then ``truncated_continue_prompt``)
            until it is complete: one response whose ``result`` is the whole answer and whose
            ``usage`` adds up every round; with ``stream=True`` the chunks of every round.
        :param truncated_continue_prompt: the user turn that asks for the rest.
        :param truncate_overlong_msgs: drop the oldest turns until the model's input limit fits.
        :param system: the system prompt (v1).
        :param temperature: sampling temperature, ``(0, 1]``.
        :param top_p: nucleus sampling mass, ``[0, 1]``.
        :param top_k: sample from the ``top_k`` likeliest tokens.
        :param penalty_score: repetition penalty, ``[1, 2]``.
        :param stop: strings that end the answer.
        :param max_output_tokens: the most tokens to generate.
        :param user_id: the end user's id, for the platform's abuse checks.
        :param kwargs: further body fields the platform accepts, sent as given.
        """
        return await self._acall(call_params(locals()))

    @overload
    def do(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None,
           stream: Literal[False] = False, retry_count: int | None = None,
           request_timeout: float | None = None, request_id: str | None = None,
           backoff_factor: float | None = None, auto_concat_truncate: bool = False,
           truncated_continue_prompt: str = CONTINUE_PROMPT, truncate_overlong_msgs: bool = False, *,
           system: str | None = None, temperature: float | None = None, top_p: float | None = None,
           top_k: int | None = None, penalty_score: float | None = None, stop: list[str] | None = None,
           max_output_tokens: int | None = None, user_id: str | None = None,
           **kwargs: Any) -> QfResponse: ...
    @overload
    def do(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None, *,
           stream: Literal[True], retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None,
           auto_concat_truncate: bool = False, truncated_continue_prompt: str = CONTINUE_PROMPT,
           truncate_overlong_msgs: bool = False,
           system: str | None = None, temperature: float | None = None, top_p: float | None = None,
           top_k: int | None = None, penalty_score: float | None = None, stop: list[str] | None = None,
           max_output_tokens: int | None = None, user_id: str | None = None,
           **kwargs: Any) -> Iterator[QfResponse]: ...
    @overload
    def do(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None,
           stream: bool = False, retry_count: int | None = None,
           request_timeout: float | None = None, request_id: str | None = None,
           backoff_factor: float | None = None, auto_concat_truncate: bool = False,
           truncated_continue_prompt: str = CONTINUE_PROMPT, truncate_overlong_msgs: bool = False, *,
           system: str | None = None, temperature: float | None = None, top_p: float | None = None,
           top_k: int | None = None, penalty_score: float | None = None, stop: list[str] | None = None,
           max_output_tokens: int | None = None, user_id: str | None = None,
           **kwargs: Any) -> QfResponse | Iterator[QfResponse]: ...
    def do(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None,
           stream: bool = False, retry_count: int | None = None,
           request_timeout: float | None = None, request_id: str | None = None,
           backoff_factor: float | None = None, auto_concat_truncate: bool = False,
           truncated_continue_prompt: str = CONTINUE_PROMPT, truncate_overlong_msgs: bool = False, *,
           system: str | None = None, temperature: float | None = None, top_p: float | None = None,
           top_k: int | None = None, penalty_score: float | None = None, stop: list[str] | None = None,
           max_output_tokens: int | None = None, user_id: str | None = None,
           **kwargs: Any) -> QfResponse | Iterator[QfResponse]:
        return self._blocking(self.ado(**call_params(locals(), keep_none=True)))

    do.__doc__ = blocking_doc(ado.__doc__)

    async def acreate(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None,
                      stream: bool = False, **kwargs: Any) -> Any:
        """The official ``create``: as :meth:`ado`, but a v2 resource answers typed objects
        (:class:`~qfnb.resources.typing_client.Completion`, or an async iterator of
        ``CompletionChunk``); a v1 resource answers as :meth:`ado`."""
        from qfnb.resources.typing_client import chunk_of, completion_of

        resp = await self.ado(messages, model, endpoint, stream, **kwargs)
        if self.version != 2:
            return resp
        if isinstance(resp, QfResponse):
            return completion_of(resp.body, resp.statistic)

        async def chunks() -> AsyncIterator[Any]:
            async for chunk in resp:
                yield chunk_of(chunk.body, chunk.statistic)

        return chunks()

    def create(self, messages: ChatMessages, model: str | None = None, endpoint: str | None = None,
               stream: bool = False, **kwargs: Any) -> Any:
        """Blocking :meth:`acreate` (a stream is a plain iterator)."""
        result = sync.run(self.acreate(messages, model, endpoint, stream, **kwargs))
        return sync.iterate(result) if stream and self.version == 2 else result

    async def _acall(self, params: dict[str, Any]) -> QfResponse | AsyncIterator[QfResponse]:
        if self.version == 1 and params.get("functions"):
            target = await self._target(params.get("model"), params.get("endpoint"))
            if target.endpoint == function_call.FUNCTION_ENDPOINT:  # as officially: that model takes instructions
                rest = {k: v for k, v in params.items() if k != "auto_concat_truncate"}
                result: QfResponse | AsyncIterator[QfResponse] = await function_call.acall(self._acall, rest)
                return result
        if not params.get("auto_concat_truncate"):
            return await super()._acall(params)
        first = await super()._acall(params)
        if params.get("stream"):
            assert not isinstance(first, QfResponse)
            return self._continue_stream(first, params)
        assert isinstance(first, QfResponse)
        acc, resp = ChatAccumulator(), first
        acc.add_body(resp.body)
        while acc.truncated and len(acc.rounds) < MAX_CONTINUATIONS:
            acc.end_round()
            nxt = await super()._acall(self._continuation(params, acc.rounds))
            assert isinstance(nxt, QfResponse)
            resp = nxt
            acc.add_body(resp.body)
        if acc.truncated:
            _still_truncated()
        resp.body["result"] = acc.text
        if acc.usage:
            resp.body["usage"] = acc.usage
        return resp

    def _continuation(self, kwargs: dict[str, Any], parts: list[str]) -> dict[str, Any]:
        """The follow-up request: the history so far, the partial answer, the continue prompt."""
        prompt = kwargs.get("truncated_continue_prompt") or CONTINUE_PROMPT
        history = list(_messages(kwargs["messages"]))
        for part in parts:
            history += [{"role": "assistant", "content": part}, {"role": "user", "content": prompt}]
        return {**kwargs, "messages": history}

    async def _continue_stream(self, first: AsyncIterator[QfResponse], kwargs: dict[str, Any]
                               ) -> AsyncIterator[QfResponse]:
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
            nxt = await super()._acall(self._continuation(kwargs, acc.rounds))
            assert not isinstance(nxt, QfResponse)
            chunks = nxt

    async def _target(self, model: str | None, endpoint: str | None) -> Target:
        if self.version == 2:
            return Target("v2", "", model or self._model or V2_DEFAULT_MODEL)
        return await super()._target(model, endpoint)

    def _body(self, target: Target, kwargs: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
        stream = bool(kwargs.get("stream", False))
        if "messages" not in kwargs:
            from qfnb._core.errors import ValidationError

            raise ValidationError("messages", "is required")
        kwargs = {**kwargs, "messages": _messages(kwargs["messages"])}
        if kwargs.get("truncate_overlong_msgs") and target.api_type == "chat":
            limits = _input_limits(target.model)
            if limits is not None:
                kwargs["messages"] = truncate_messages(kwargs["messages"], *limits, system=kwargs.get("system") or "")
        body = self._wire_body(kwargs, stream)
        if target.api_type == "v2":
            body["model"] = target.model
            from qfnb.protocol.inference import V2ChatRequest, parse_request  # pydantic: on first use
            parse_request(V2ChatRequest, body)
        else:
            if kwargs.get("adapt_openai_message_format"):
                body = _hoist_system(body)
            from qfnb.protocol.inference import ChatRequest, parse_request  # pydantic: on first use
            parse_request(ChatRequest, body)
        return target, body

    async def _send(self, target: Target, body: dict[str, Any], stream: bool, kwargs: dict[str, Any]) -> Any:
        if target.api_type == "v2":
            return await self.client.chat_v2(body, stream=stream, retry=self._retry(kwargs),
                                             request_id=kwargs.get("request_id"))
        return await super()._send(target, body, stream, kwargs)


def _still_truncated() -> None:
    logger.warning("auto_concat_truncate: the answer is still truncated after %d continuations; returning "
                   "what arrived (is_truncated stays true)", MAX_CONTINUATIONS)


def _input_limits(model: str | None) -> tuple[int | None, int | None] | None:
    if not model:
        return None
    for name, info in routes.model_catalog().get("chat", {}).get("models", {}).items():
        if name.lower() == model.lower():
            return info.get("max_input_chars"), info.get("max_input_tokens")
    return None


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
