"""``Completion``: text continuation; a chat model is driven with the prompt as one user turn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, Literal, overload

from qfnb._core.errors import ValidationError
from qfnb._core.http.response import QfResponse
from qfnb.protocol.limits import MAX_PROMPT_CHARS

from .base import BaseInference, Target, blocking_doc, call_params

__all__ = ["Completion"]


class Completion(BaseInference):
    """``Completion().do(prompt="你好")``. With a chat model (the default, as in the official
    SDK) the prompt becomes ``messages=[{"role": "user", ...}]`` and the answer's ``object``
    reads ``"completion"``."""

    api_types: ClassVar[tuple[str, ...]] = ("completions", "chat")
    batch_field: ClassVar[str] = "prompt"

    @overload
    async def ado(self, prompt: str, model: str | None = None, endpoint: str | None = None,
                  stream: Literal[False] = False, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, *,
                  temperature: float | None = None,
                  top_p: float | None = None, top_k: int | None = None, penalty_score: float | None = None,
                  stop: list[str] | None = None, max_output_tokens: int | None = None, user_id: str | None = None,
                  **kwargs: Any) -> QfResponse: ...
    @overload
    async def ado(self, prompt: str, model: str | None = None, endpoint: str | None = None, *,
                  stream: Literal[True], retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, temperature: float | None = None,
                  top_p: float | None = None, top_k: int | None = None, penalty_score: float | None = None,
                  stop: list[str] | None = None, max_output_tokens: int | None = None, user_id: str | None = None,
                  **kwargs: Any) -> AsyncIterator[QfResponse]: ...
    @overload
    async def ado(self, prompt: str, model: str | None = None, endpoint: str | None = None,
                  stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, *,
                  temperature: float | None = None,
                  top_p: float | None = None, top_k: int | None = None, penalty_score: float | None = None,
                  stop: list[str] | None = None, max_output_tokens: int | None = None, user_id: str | None = None,
                  **kwargs: Any) -> QfResponse | AsyncIterator[QfResponse]: ...
    async def ado(self, prompt: str, model: str | None = None, endpoint: str | None = None,
                  stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, *,
                  temperature: float | None = None,
                  top_p: float | None = None, top_k: int | None = None, penalty_score: float | None = None,
                  stop: list[str] | None = None, max_output_tokens: int | None = None, user_id: str | None = None,
                  **kwargs: Any) -> QfResponse | AsyncIterator[QfResponse]:
        """Continue ``prompt`` (a chat model gets it as one user turn).

        :param prompt: the text to continue.
        :param model: a model name (built-in catalog or the platform's list); default: the
            instance's, then the config's default.
        :param endpoint: a custom service's endpoint suffix (wins over ``model``).
        :param stream: ``True``: an async iterator of chunks instead of one response.
        :param retry_count: tries in all; ``None``: the config's ``llm_api_retry_count``.
        :param request_timeout: seconds per try; ``None``: the config's.
        :param request_id: sent as the request's id (the platform echoes it).
        :param backoff_factor: the retry backoff factor; ``None``: the config's.
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
    def do(self, prompt: str, model: str | None = None, endpoint: str | None = None,
           stream: Literal[False] = False, retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None, *,
           temperature: float | None = None,
           top_p: float | None = None, top_k: int | None = None, penalty_score: float | None = None,
           stop: list[str] | None = None, max_output_tokens: int | None = None, user_id: str | None = None,
           **kwargs: Any) -> QfResponse: ...
    @overload
    def do(self, prompt: str, model: str | None = None, endpoint: str | None = None, *,
           stream: Literal[True], retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None, temperature: float | None = None,
           top_p: float | None = None, top_k: int | None = None, penalty_score: float | None = None,
           stop: list[str] | None = None, max_output_tokens: int | None = None, user_id: str | None = None,
           **kwargs: Any) -> Iterator[QfResponse]: ...
    @overload
    def do(self, prompt: str, model: str | None = None, endpoint: str | None = None,
           stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None, *,
           temperature: float | None = None,
           top_p: float | None = None, top_k: int | None = None, penalty_score: float | None = None,
           stop: list[str] | None = None, max_output_tokens: int | None = None, user_id: str | None = None,
           **kwargs: Any) -> QfResponse | Iterator[QfResponse]: ...
    def do(self, prompt: str, model: str | None = None, endpoint: str | None = None,
           stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None, *,
           temperature: float | None = None,
           top_p: float | None = None, top_k: int | None = None, penalty_score: float | None = None,
           stop: list[str] | None = None, max_output_tokens: int | None = None, user_id: str | None = None,
           **kwargs: Any) -> QfResponse | Iterator[QfResponse]:
        return self._blocking(self.ado(**call_params(locals(), keep_none=True)))

    do.__doc__ = blocking_doc(ado.__doc__)

    def _body(self, target: Target, kwargs: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
        stream = bool(kwargs.get("stream", False))
        prompt = kwargs.get("prompt")
        if prompt is None:
            raise ValidationError("prompt", "is required")
        if target.api_type == "chat":
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValidationError("prompt", "must be a non-empty string")
            if len(prompt) > MAX_PROMPT_CHARS:
                raise ValidationError("prompt", f"is {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are accepted")
            rest = {k: v for k, v in kwargs.items() if k != "prompt"}
            body = self._wire_body({**rest, "messages": [{"role": "user", "content": prompt}]}, stream)
            from qfnb.protocol.inference import ChatRequest, parse_request  # pydantic: on first use
            parse_request(ChatRequest, body)
        else:
            body = self._wire_body(kwargs, stream)
            from qfnb.protocol.inference import CompletionRequest, parse_request  # pydantic: on first use
            parse_request(CompletionRequest, body)
        return target, body

    def _postprocess(self, resp: QfResponse, kwargs: dict[str, Any], target: Target) -> QfResponse:
        if target.api_type == "chat":
            resp.body["object"] = "completion"
        return resp
