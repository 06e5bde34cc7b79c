"""``Text2Image``'s call."""

from __future__ import annotations

from typing import Any

from qfnb._core.http.response import QfResponse

from ..base import BaseInference
from ..params import Text2ImageCall


class Text2ImageCalls(BaseInference[Text2ImageCall]):
    """``Text2Image.ado`` / ``do``."""

    async def ado(self, prompt: str, model: str | None = None, endpoint: str | None = None,
                  with_decode: str | None = None, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, *,
                  negative_prompt: str | None = None, size: str | None = None, n: int | None = None,
                  steps: int | None = None, sampler_index: str | None = None, seed: int | None = None,
                  cfg_scale: float | None = None, style: str | None = None, user_id: str | None = None,
                  **kwargs: Any) -> QfResponse:
        """Draw ``prompt``: ``resp["data"][i]["b64_image"]`` (and ``["image"]``, the bytes,
        with ``with_decode="base64"``).

        :param prompt: what to draw.
        :param model: a model name (built-in catalog or the platform's list); default: the
            instance's, then the config's default.
        :param endpoint: a custom service's endpoint suffix (wins over ``model``).
        :param with_decode: ``"base64"``: also decode each image into ``["image"]`` bytes.
        :param retry_count: tries in all; ``None``: the config's ``llm_api_retry_count``.
        :param request_timeout: seconds per try; ``None``: the config's.
        :param request_id: sent as the request's id (the platform echoes it).
        :param backoff_factor: the retry backoff factor; ``None``: the config's.
        :param negative_prompt: what not to draw.
        :param size: ``"WIDTHxHEIGHT"``, e.g. ``"1024x1024"``.
        :param n: how many images.
        :param steps: sampling steps.
        :param sampler_index: the sampler's name.
        :param seed: the random seed, for a repeatable image.
        :param cfg_scale: how closely the image follows the prompt.
        :param style: a style preset the model knows.
        :param user_id: the end user's id, for the platform's abuse checks.
        :param kwargs: further body fields the platform accepts, sent as given.
        """
        return await self._acall_one(Text2ImageCall(
            prompt=prompt, model=model, endpoint=endpoint, with_decode=with_decode, retry_count=retry_count,
            request_timeout=request_timeout, request_id=request_id, backoff_factor=backoff_factor,
            negative_prompt=negative_prompt, size=size, n=n, steps=steps, sampler_index=sampler_index, seed=seed,
            cfg_scale=cfg_scale, style=style, user_id=user_id, extra=kwargs))
