"""``qfnb.default_model()``: the model a call without ``model=`` uses (no network).

The config's ``default_models`` (the local platform's choice, or the user's) win; else the
built-in catalog's default for that kind of call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from qfnb.protocol.console.model_names import V2_DEFAULT_MODEL

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config
    from qfnb.resources.inference.base import BaseInference

__all__ = ["DefaultLLMModel", "Kind", "default_model"]

Kind = Literal["chat", "completion", "embedding", "text2image"]


def default_model(kind: Kind = "chat", *, config: Config | None = None) -> str | None:
    """The default model's name for ``kind`` (``"chat"``, ``"completion"``, ``"embedding"`` or
    ``"text2image"``); None when the platform has none."""
    from qfnb.resources import inference  # deferred: loads the HTTP client (`%load_ext qfnb` does not)

    resources: dict[str, type[BaseInference[Any, Any, Any]]] = {
        "chat": inference.ChatCompletion, "completion": inference.Completion,
        "embedding": inference.Embedding, "text2image": inference.Text2Image}
    if kind not in resources:
        raise ValueError(f"kind must be one of {sorted(resources)}, got {kind!r}")
    name: str | None = resources[kind](config=config)._default_model()
    return name


class DefaultLLMModel:
    """The official SDK's default model of each resource (its ``qianfan.consts.DefaultLLMModel``)."""

    Completion = "ERNIE-Lite-8K"
    ChatCompletion = "ERNIE-Lite-8K"
    Embedding = "Embedding-V1"
    Text2Image = "Stable-Diffusion-XL"
    ChatCompletionV2 = V2_DEFAULT_MODEL
