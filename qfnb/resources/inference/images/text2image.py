"""``Text2Image``: prompt → images (base64 in ``data[i].b64_image``; with a v2 API key from
``/v2/images/generations``, where ``b64_json`` holds the same)."""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from qfnb._core.errors import ValidationError
from qfnb._core.http.response import QfResponse

from .._generated.text2image import Text2ImageCalls
from ..base import Target
from ..params import Text2ImageCall
from ..shapes import v2 as v2_shapes

__all__ = ["Text2Image"]


class Text2Image(Text2ImageCalls):
    """``Text2Image().do(prompt="Rag doll cat", with_decode="base64")["body"]["data"][0]["image"]``
    holds the decoded image bytes."""

    api_types: ClassVar[tuple[str, ...]] = ("text2image",)
    batch_field: ClassVar[str] = "prompt"
    default_retry: ClassVar[dict[str, Any]] = {"retry_count": 1, "request_timeout": 60.0, "backoff_factor": 0.0}

    def _body(self, target: Target, call: Text2ImageCall) -> tuple[Target, dict[str, Any]]:
        kwargs = self._given(call)
        if kwargs.get("stream"):
            raise ValidationError("stream", "text2image cannot be streamed")
        decode = call.with_decode
        if decode not in (None, "base64"):
            raise ValidationError("with_decode", f"only 'base64' is supported, got {decode!r}")
        if target.api_type == "v2":
            return target, v2_shapes.image_body(kwargs, target.model or "")
        return target, self._wire_body(kwargs, False, "Text2ImageRequest")

    def _v1_keys(self, body: dict[str, Any], *, chunk: bool) -> dict[str, Any]:
        return v2_shapes.image_answer(body)

    def _postprocess(self, resp: QfResponse, call: Text2ImageCall, target: Target) -> QfResponse:
        if call.with_decode == "base64":
            for item in resp.body.get("data") or []:
                if isinstance(item, dict) and isinstance(item.get("b64_image"), str):
                    item["image"] = base64.b64decode(item["b64_image"])
        return resp
