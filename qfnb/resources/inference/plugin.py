"""``Plugin``: Qianfan plugin apps (``endpoint=`` + ``query``/``prompt``) and ERNIE Bot plugins."""

from __future__ import annotations

from typing import Any, ClassVar

from qfnb._core.errors import ValidationError
from qfnb.protocol.wires.qianfan import routes

from ._generated.plugin import PluginCalls
from .base import Target
from .messages import Messages
from .params import PluginCall

__all__ = ["Plugin"]

_EB_MODELS = {"ebplugin": routes.EB_PLUGINS, "ebpluginv2": routes.EB_PLUGIN_V2}


class Plugin(PluginCalls):
    """``Plugin().do(endpoint="your_app", prompt="你好")`` (``prompt`` is sent as ``query``);
    ``Plugin(model="EBPluginV2").do(messages=[...], plugins=[...])`` for ERNIE Bot plugins."""

    api_types: ClassVar[tuple[str, ...]] = ("plugin",)
    batch_field: ClassVar[str] = "prompt"

    async def _target(self, model: str | None, endpoint: str | None) -> Target:
        endpoint = endpoint or self._endpoint
        model = model or self._model
        if endpoint:
            return Target("plugin", endpoint.strip("/"), verbatim=self.config.use_custom_endpoint)
        path = _EB_MODELS.get((model or "EBPlugin").lower().replace("-", "").replace("_", ""))
        if path is None:
            raise ValidationError("endpoint", f"unknown plugin model {model!r}; pass endpoint= for a plugin app")
        return Target("plugin", path, model)

    def _body(self, target: Target, call: PluginCall) -> tuple[Target, dict[str, Any]]:
        kwargs = self._given(call)
        query = kwargs.get("query")
        if isinstance(query, list | tuple | Messages) and "messages" not in kwargs:
            kwargs["messages"] = kwargs.pop("query")  # the official SDK: a conversation as the query
        if isinstance(kwargs.get("messages"), Messages):
            kwargs["messages"] = kwargs["messages"].to_list()
        if "prompt" in kwargs and "query" not in kwargs:
            kwargs["query"] = kwargs.pop("prompt")
        if target.endpoint.startswith("/erniebot") and "messages" not in kwargs:
            raise ValidationError("messages", "ERNIE Bot plugins take messages=[...]")
        return target, self._wire_body(kwargs, call.stream, "PluginRequest")

