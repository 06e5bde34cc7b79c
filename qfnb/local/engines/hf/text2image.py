"""Text2Image on the local platform: a real diffusers pipeline the user points at, or a clear error.

No text-to-image weights ship on PyPI, so nothing is generated unless
``QFNB_TEXT2IMAGE_MODEL_DIR`` names a local diffusers model directory and ``diffusers``
is installed. There is never a placeholder image.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("qfnb.local.engines.hf.text2image")

HOW_TO = ("Text2Image needs a real model on the local platform: install diffusers and set "
          "QFNB_TEXT2IMAGE_MODEL_DIR to a local diffusers model directory (for example a saved "
          "stable-diffusion pipeline), then restart the server.")

_pipelines: dict[Path, Any] = {}
_lock = threading.Lock()


class Unavailable(Exception):
    """No text-to-image model is configured (the message says how to configure one)."""


def _pipeline(model_dir: Path) -> Any:
    with _lock:
        if model_dir not in _pipelines:
            try:
                from diffusers import AutoPipelineForText2Image
            except ImportError as exc:
                raise Unavailable("diffusers is not installed. " + HOW_TO) from exc
            log.info("loading text2image model from %s", model_dir)
            _pipelines[model_dir] = AutoPipelineForText2Image.from_pretrained(str(model_dir), local_files_only=True)
        return _pipelines[model_dir]


def generate(model_dir: Path | None, body: dict[str, Any]) -> dict[str, Any]:
    """Run the configured pipeline for a (validated) text2image body; the platform's response shape."""
    if model_dir is None:
        raise Unavailable("API name not exist: no text2image model is configured. " + HOW_TO)
    if not model_dir.is_dir():
        raise Unavailable(f"QFNB_TEXT2IMAGE_MODEL_DIR={model_dir} is not a directory. " + HOW_TO)
    pipe = _pipeline(model_dir)
    width, height = (int(p) for p in str(body.get("size", "1024x1024")).split("x"))
    kwargs: dict[str, Any] = {"prompt": body["prompt"], "negative_prompt": body.get("negative_prompt"),
                              "num_inference_steps": int(body.get("steps", 20)), "width": width, "height": height,
                              "num_images_per_prompt": int(body.get("n", 1))}
    if body.get("cfg_scale") is not None:
        kwargs["guidance_scale"] = float(body["cfg_scale"])
    if body.get("seed") is not None:
        import torch

        kwargs["generator"] = torch.Generator().manual_seed(int(body["seed"]))
    pngs = []
    for image in pipe(**kwargs).images:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        pngs.append(buf.getvalue())
    return _answer(body, pngs)


def _answer(body: dict[str, Any], images: list[bytes]) -> dict[str, Any]:
    """The platform's text2image response shape for ``images`` drawn for ``body``."""
    data = [{"object": "image", "b64_image": base64.b64encode(raw).decode(), "index": i}
            for i, raw in enumerate(images, 1)]
    tokens = len(str(body["prompt"]).split())
    return {"id": "as-" + str(int(time.time() * 1000)), "object": "image", "created": int(time.time()),
            "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF", b"GIF8")


def drawer(registry: Any, endpoint: str, model_dir: Path | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What draws for ``/text2image/{endpoint}``: a text2image engine added to the model store
    (``qfnb models add --engine URL --role text2image``), else the diffusers model dir."""
    spec = None
    with contextlib.suppress(LookupError, AttributeError):
        spec = registry.spec_of(registry.resolve("text2image", endpoint).name)
    if spec is not None and spec.base_url:
        return functools.partial(generate_remote, str(spec.base_url), str(spec.remote_model), spec.api_key)
    return functools.partial(generate, model_dir)


def generate_remote(base_url: str, model: str, api_key: str | None, body: dict[str, Any]) -> dict[str, Any]:
    """Draw through an engine with the OpenAI images API (``POST {base_url}/images/generations``:
    stable-diffusion.cpp's server, LocalAI, ...); the platform's response shape."""
    import httpx

    payload: dict[str, Any] = {"model": model, "prompt": body["prompt"], "n": int(body.get("n") or 1),
                               "size": str(body.get("size") or "1024x1024"), "response_format": "b64_json"}
    for key in ("negative_prompt", "steps", "seed", "cfg_scale", "style", "sampler_index"):
        if body.get(key) is not None:
            payload[key] = body[key]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.post(base_url.rstrip("/") + "/images/generations", json=payload, headers=headers, timeout=600)
    except httpx.HTTPError as exc:
        raise Unavailable(f"the image engine at {base_url} cannot be reached: {exc}") from None
    if resp.status_code != 200:
        raise Unavailable(f"the image engine at {base_url} answered HTTP {resp.status_code}: {resp.text[:200]}")
    images = []
    try:
        for i, item in enumerate(resp.json()["data"], 1):
            raw = base64.b64decode(item["b64_json"]) if item.get("b64_json") else httpx.get(item["url"]).content
            if not raw.startswith(_IMAGE_MAGIC):
                raise ValueError(f"image {i} is not a PNG, JPEG, WebP or GIF")
            images.append(raw)
    except (KeyError, TypeError, ValueError, httpx.HTTPError) as exc:
        raise Unavailable(f"the image engine at {base_url} gave no usable image: {exc}") from None
    return _answer(body, images)
