"""``Plugin``'s call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from qfnb._core.http.response import QfResponse

from ..base import BaseInference
from ..params import ChatMessages, PluginCall


class PluginCalls(BaseInference[PluginCall]):
    """``Plugin.ado`` / ``do``."""

    async def ado(self, query: str | ChatMessages | None = None, plugins: list[str] | None = None,
                  model: str | None = None, endpoint: str | None = None, stream: bool = False,
                  retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, *, prompt: str | None = None,
                  messages: ChatMessages | None = None, **kwargs: Any) -> QfResponse | AsyncIterator[QfResponse]:
        """Run a plugin app (``endpoint=``) on ``query``, or an ERNIE Bot plugin model on a conversation.

        :param query: the question (a plugin app), or the conversation (ERNIE Bot plugins:
            a list of messages or :class:`Messages`, sent as ``messages``).
        :param plugins: the plugins to use, e.g. ``["uuid-zhishiku"]``.
        :param model: a model name (built-in catalog or the platform's list); default: the
            instance's, then the config's default.
        :param endpoint: a custom service's endpoint suffix (wins over ``model``).
        :param stream: ``True``: an async iterator of chunks instead of one response.
        :param retry_count: tries in all; ``None``: the config's ``llm_api_retry_count``.
        :param request_timeout: seconds per try; ``None``: the config's.
        :param request_id: sent as the request's id (the platform echoes it).
        :param backoff_factor: the retry backoff factor; ``None``: the config's.
        :param prompt: the seed docs' spelling of a text ``query``.
        :param messages: the conversation for an ERNIE Bot plugin model.
        :param kwargs: further body fields the platform accepts, sent as given.
        """
        return await self._acall(PluginCall(
            query=query, plugins=plugins, model=model, endpoint=endpoint, stream=stream, retry_count=retry_count,
            request_timeout=request_timeout, request_id=request_id, backoff_factor=backoff_factor, prompt=prompt,
            messages=messages, extra=kwargs))
