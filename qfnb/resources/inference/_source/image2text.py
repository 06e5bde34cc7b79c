"""``Image2Text``'s call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from qfnb._core.http.response import QfResponse

from ..base import BaseInference
from ..params import Image2TextCall


class Image2TextCalls(BaseInference[Image2TextCall]):
    """``Image2Text.ado`` / ``do``."""

    async def ado(self, prompt: str, image: str | bytes, model: str | None = None, endpoint: str | None = None,
                  stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None,
                  **kwargs: Any) -> QfResponse | AsyncIterator[QfResponse]:
        """Ask ``prompt`` about ``image``.

        :param prompt: the question about the image.
        :param image: the image, as base64 text or bytes.
        :param model: a model name (built-in catalog or the platform's list); default: the
            instance's, then the config's default.
        :param endpoint: a custom service's endpoint suffix (wins over ``model``).
        :param stream: ``True``: an async iterator of chunks instead of one response.
        :param retry_count: tries in all; ``None``: the config's ``llm_api_retry_count``.
        :param request_timeout: seconds per try; ``None``: the config's.
        :param request_id: sent as the request's id (the platform echoes it).
        :param backoff_factor: the retry backoff factor; ``None``: the config's.
        :param kwargs: further body fields the platform accepts, sent as given.
        """
        return await self._acall(Image2TextCall(
            prompt=prompt, image=image, model=model, endpoint=endpoint, stream=stream, retry_count=retry_count,
            request_timeout=request_timeout, request_id=request_id, backoff_factor=backoff_factor, extra=kwargs))
