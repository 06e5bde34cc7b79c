"""``Text2Image``: prompt → images (base64 in ``data[i].b64_image``)."""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from qfnb._core.errors import ValidationError
from qfnb._core.http.response import QfResponse
from qfnb._core.runtime import sync

from .base import BaseInference, Target, blocking_doc, call_params

__all__ = ["Text2Image"]


class Text2Image(BaseInference):
    """``Text2Image().do(prompt="Rag doll cat", with_decode="base64")["body"]["data"][0]["image"]``
    holds the decoded image bytes."""

    api_types: ClassVar[tuple[str, ...]] = ("text2image",)
    batch_field: ClassVar[str] = "prompt"
    default_retry: ClassVar[dict[str, Any]] = {"retry_count": 1, "request_timeout": 60.0, "backoff_factor": 0.0}

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
        return await self._acall_one(call_params(locals()))

    def do(self, prompt: str, model: str | None = None, endpoint: str | None = None,
           with_decode: str | None = None, retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None, *,
           negative_prompt: str | None = None, size: str | None = None, n: int | None = None,
           steps: int | None = None, sampler_index: str | None = None, seed: int | None = None,
           cfg_scale: float | None = None, style: str | None = None, user_id: str | None = None,
           **kwargs: Any) -> QfResponse:
        return sync.run(self.ado(**call_params(locals(), keep_none=True)))

    do.__doc__ = blocking_doc(ado.__doc__)

    def _body(self, target: Target, kwargs: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
        if kwargs.get("stream"):
            raise ValidationError("stream", "text2image cannot be streamed")
        decode = kwargs.get("with_decode")
        if decode not in (None, "base64"):
            raise ValidationError("with_decode", f"only 'base64' is supported, got {decode!r}")
        body = self._wire_body(kwargs, False)
        body.pop("stream", None)
        from qfnb.protocol.inference import Text2ImageRequest, parse_request  # pydantic: on first use
        parse_request(Text2ImageRequest, body)
        return target, body

    def _postprocess(self, resp: QfResponse, kwargs: dict[str, Any], target: Target) -> QfResponse:
        if kwargs.get("with_decode") == "base64":
            for item in resp.body.get("data") or []:
                if isinstance(item, dict) and isinstance(item.get("b64_image"), str):
                    item["image"] = base64.b64decode(item["b64_image"])
        return resp
