"""Text2Image on the local platform: a real diffusers pipeline the user points at, or a clear error.

No text-to-image weights ship on PyPI, so nothing is generated unless
``QFNB_TEXT2IMAGE_MODEL_DIR`` names a local diffusers model directory and ``diffusers``
is installed. There is never a placeholder image.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("qfnb.local.engines.text2image")

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
                from diffusers import AutoPipelineForText2Image  # type: ignore[import-not-found]
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
    images = pipe(**kwargs).images
    data = []
    for i, image in enumerate(images, 1):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data.append({"object": "image", "b64_image": base64.b64encode(buf.getvalue()).decode(), "index": i})
    tokens = len(str(body["prompt"]).split())
    return {"id": "as-" + str(int(time.time() * 1000)), "object": "image", "created": int(time.time()),
            "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
