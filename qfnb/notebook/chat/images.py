"""Inline Text2Image output: PNG (or JPEG) bytes with a readable text/plain."""

from __future__ import annotations

import base64
import logging
import struct
from dataclasses import dataclass
from typing import Any

from qfnb import resources
from qfnb._core.errors import APIError
from qfnb._core.http.response import QfResponse
from qfnb.notebook.errors import QfnbCellError
from qfnb.notebook.magic_options import ImageOptions
from qfnb.notebook.render import theme
from qfnb.resources.safe_html import clean, escape

log = logging.getLogger("qfnb.notebook.chat.images")


def _size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    return None


def _mime(data: bytes) -> str:
    return "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"


@dataclass
class ImageResult:
    """The images of one Text2Image response, shown inline."""

    images: list[bytes]
    prompt: str = ""
    model: str | None = None
    response: Any = None

    @classmethod
    def from_response(cls, response: Any, *, prompt: str = "", model: str | None = None) -> ImageResult:
        body = response.body if isinstance(response, QfResponse) else response
        items = (body or {}).get("data") or []
        images = [
            item["image"] if isinstance(item.get("image"), bytes) else base64.b64decode(item["b64_image"])
            for item in items
            if isinstance(item, dict) and (item.get("image") or item.get("b64_image"))
        ]
        return cls(images, prompt=prompt, model=model, response=response)

    def __repr__(self) -> str:
        sizes = ", ".join("x".join(map(str, s)) if (s := _size(b)) else f"{len(b)} bytes" for b in self.images)
        who = f" from {self.model}" if self.model else ""
        return f"<{len(self.images)} image(s){who}: {sizes or 'none'} · prompt {self.prompt[:60]!r}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        data: dict[str, Any] = {"text/plain": repr(self)}
        meta: dict[str, Any] = {}
        if len(self.images) == 1:
            img = self.images[0]
            mime = _mime(img)
            data[mime] = base64.b64encode(img).decode()
            if size := _size(img):
                meta[mime] = {"width": size[0], "height": size[1]}
        elif self.images:
            tags = "".join(
                f'<img style="max-width:48%;margin:2px" alt="{escape(self.prompt)}" '
                f'src="data:{_mime(b)};base64,{base64.b64encode(b).decode()}"/>'
                for b in self.images
            )
            data["text/html"] = clean(f'<div class="qfnb-images">{tags}</div>')
        return data, meta


#: what to do when the platform has no image engine: one sentence, both ways to attach one
NO_IMAGE_ENGINE = ("No image engine is attached to this platform{named}: attach one with "
                   "`qfnb models add --name NAME --engine URL --role text2image` (an OpenAI-API image server) "
                   "or by pointing QFNB_TEXT2IMAGE_MODEL_DIR at a local diffusers model before `qfnb serve`, "
                   "then run this cell again.")

#: how the platform says it has no such model or no image engine (336005: "API name not exist";
#: the local platform's text-to-image room says how to configure one)
_NO_ENGINE_SIGNS = ("336005", "api name not exist", "text2image needs", "text-to-image model")


def no_image_engine(exc: BaseException) -> bool:
    """Whether ``exc`` says the platform has no image engine (not that a drawing failed)."""
    text = f"{exc.error_code if isinstance(exc, APIError) else ''} {exc}".lower()
    return any(sign in text for sign in _NO_ENGINE_SIGNS)


@dataclass
class NoImageEngine:
    """What ``%qfimage`` shows instead of a traceback when no image engine is attached: a notice
    (the cell ends without an error, so Run All goes on past it), saying what to do."""

    model: str | None = None
    response: Any = None

    @property
    def message(self) -> str:
        return NO_IMAGE_ENGINE.format(named=f" (no image model {self.model!r})" if self.model else "")

    def __repr__(self) -> str:
        return self.message

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        text = escape(self.message)
        return ({"text/plain": self.message,
                 "text/html": clean(f'<div class="qfnb-notice" style="color:{theme.TEXT};border-left:3px solid '
                                    f'{theme.BORDER};padding:2px 8px">🖼 {text}</div>')}, {})


def generate(prompt: str, *, model: str | None = None,
             options: ImageOptions | None = None) -> ImageResult | NoImageEngine:
    """Call Text2Image with ``options`` (``%qfimage``'s, checked; None: the platform's defaults). No
    image engine on the platform: a :class:`NoImageEngine` notice; any other platform error becomes
    one clear line (:class:`QfnbCellError`)."""
    try:
        resp = resources.Text2Image(model=model).do(prompt=prompt, **(options or ImageOptions()).fields())
    except Exception as exc:
        if no_image_engine(exc):
            log.warning("qfimage: no image engine: %s", exc)
            return NoImageEngine(model)
        raise QfnbCellError(f"{type(exc).__name__}: {exc}", title="qfimage failed") from exc
    return ImageResult.from_response(resp, prompt=prompt, model=model)
