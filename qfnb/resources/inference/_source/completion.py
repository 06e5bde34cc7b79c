"""``Completion``'s call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from qfnb._core.http.response import QfResponse

from ..base import BaseInference
from ..params import CompletionCall


class CompletionCalls(BaseInference[CompletionCall]):
    """``Completion.ado`` / ``do``."""

    async def ado(self, prompt: str, model: str | None = None, endpoint: str | None = None,
                  stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, *,
                  temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
                  penalty_score: float | None = None, stop: list[str] | None = None,
                  max_output_tokens: int | None = None, user_id: str | None = None,
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
        return await self._acall(CompletionCall(
            prompt=prompt, model=model, endpoint=endpoint, stream=stream, retry_count=retry_count,
            request_timeout=request_timeout, request_id=request_id, backoff_factor=backoff_factor,
            temperature=temperature, top_p=top_p, top_k=top_k, penalty_score=penalty_score, stop=stop,
            max_output_tokens=max_output_tokens, user_id=user_id, extra=kwargs))
