"""``Image2Text``: a prompt about an image → text (``/image2text/{endpoint}``)."""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from qfnb._core.errors import ValidationError

from .._generated.image2text import Image2TextCalls
from ..base import Target
from ..params import Image2TextCall

__all__ = ["Image2Text"]


class Image2Text(Image2TextCalls):
    """``Image2Text(endpoint="your_endpoint").do(prompt="what is in it?", image=b64)["result"]``.

    ``image`` is the image as base64 text (bytes are encoded for you). The platform has no
    default image model: give ``endpoint=`` (or ``model=`` naming a served one). Streams
    with ``stream=True``.
    """

    api_types: ClassVar[tuple[str, ...]] = ("image2text",)
    batch_field: ClassVar[str] = "prompt"
    batch_keywords: ClassVar[tuple[str, ...] | None] = ("input_list", "prompt_list")  # input_list: the official one

    def _batch_item(self, item: Any) -> dict[str, Any]:
        """A ``batch_do`` input is ``(prompt, image)``, as in the official SDK (or a dict of both)."""
        if isinstance(item, dict):
            return item
        if isinstance(item, tuple | list) and len(item) == 2:
            return {"prompt": item[0], "image": item[1]}
        raise ValidationError("input_list", f"each item must be a (prompt, image) pair, got {type(item).__name__}")

    def _body(self, target: Target, call: Image2TextCall) -> tuple[Target, dict[str, Any]]:
        kwargs = self._given(call)
        prompt, image = kwargs.get("prompt"), kwargs.get("image")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValidationError("prompt", "must be a non-empty string")
        if isinstance(image, bytes | bytearray):
            image = base64.b64encode(bytes(image)).decode("ascii")
        if not isinstance(image, str) or not image:
            raise ValidationError("image", "must be the image as base64 text (or bytes)")
        return target, self._wire_body({**kwargs, "image": image}, call.stream)
