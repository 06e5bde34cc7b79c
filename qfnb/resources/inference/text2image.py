"""``Text2Image``: prompt → images (base64 in ``data[i].b64_image``)."""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from qfnb._core.errors import ValidationError
from qfnb._core.response import QfResponse

from .base import BaseInference, Target

__all__ = ["Text2Image"]


class Text2Image(BaseInference):
    """``Text2Image().do(prompt="Rag doll cat", with_decode="base64")["body"]["data"][0]["image"]``
    holds the decoded image bytes."""

    api_types: ClassVar[tuple[str, ...]] = ("text2image",)
    batch_field: ClassVar[str] = "prompt"
    default_retry: ClassVar[dict[str, Any]] = {"retry_count": 1, "request_timeout": 60.0, "backoff_factor": 0.0}

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
