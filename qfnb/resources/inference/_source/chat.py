"""``ChatCompletion``'s call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from qfnb._core.http.response import QfResponse

from ..base import BaseInference
from ..params import CONTINUE_PROMPT, ChatCall, ChatMessages


class ChatCompletionCalls(BaseInference[ChatCall]):
    """``ChatCompletion.ado`` / ``do``."""

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
        return await self._acall(ChatCall(
            messages=messages, model=model, endpoint=endpoint, stream=stream, retry_count=retry_count,
            request_timeout=request_timeout, request_id=request_id, backoff_factor=backoff_factor,
            auto_concat_truncate=auto_concat_truncate, truncated_continue_prompt=truncated_continue_prompt,
            truncate_overlong_msgs=truncate_overlong_msgs, system=system, temperature=temperature, top_p=top_p,
            top_k=top_k, penalty_score=penalty_score, stop=stop, max_output_tokens=max_output_tokens,
            user_id=user_id, extra=kwargs))
