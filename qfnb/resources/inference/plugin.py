"""``Plugin``: Qianfan plugin apps (``endpoint=`` + ``query``/``prompt``) and ERNIE Bot plugins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, Literal, overload

from qfnb._core.errors import ValidationError
from qfnb._core.http.response import QfResponse
from qfnb.protocol import routes

from .base import BaseInference, Target, blocking_doc, call_params
from .chat import ChatMessages
from .messages import Messages

__all__ = ["Plugin"]

_EB_MODELS = {"ebplugin": routes.EB_PLUGINS, "ebpluginv2": routes.EB_PLUGIN_V2}


class Plugin(BaseInference):
    """``Plugin().do(endpoint="your_app", prompt="你好")`` (``prompt`` is sent as ``query``);
    ``Plugin(model="EBPluginV2").do(messages=[...], plugins=[...])`` for ERNIE Bot plugins."""

    api_types: ClassVar[tuple[str, ...]] = ("plugin",)
    batch_field: ClassVar[str] = "prompt"

    @overload
    async def ado(self, query: str | ChatMessages | None = None, plugins: list[str] | None = None,
                  model: str | None = None, endpoint: str | None = None,
                  stream: Literal[False] = False, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, *, prompt: str | None = None,
                  messages: ChatMessages | None = None, **kwargs: Any) -> QfResponse: ...
    @overload
    async def ado(self, query: str | ChatMessages | None = None, plugins: list[str] | None = None,
                  model: str | None = None, endpoint: str | None = None, *,
                  stream: Literal[True], retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, prompt: str | None = None,
                  messages: ChatMessages | None = None, **kwargs: Any) -> AsyncIterator[QfResponse]: ...
    @overload
    async def ado(self, query: str | ChatMessages | None = None, plugins: list[str] | None = None,
                  model: str | None = None, endpoint: str | None = None,
                  stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, *, prompt: str | None = None,
                  messages: ChatMessages | None = None, **kwargs: Any) -> QfResponse | AsyncIterator[QfResponse]: ...
    async def ado(self, query: str | ChatMessages | None = None, plugins: list[str] | None = None,
                  model: str | None = None, endpoint: str | None = None,
                  stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, *, prompt: str | None = None,
                  messages: ChatMessages | None = None, **kwargs: Any) -> QfResponse | AsyncIterator[QfResponse]:
        """Run a plugin app (``endpoint=``) on ``query``, or an ERNIE Bot plugin model on a conversation.

        :param query: the question (a plugin app), or the conversation (ERNIE Bot plugins:
            a list of messages or :class:`Messages`, sent as ``messages``).
        :param plugins: the plugins to use, e.g. ``["uuid-zhishiku"]``.
        :param model: a model name (built-in catalog or the platform's list); default: the
            instance's, then the config's default.
        :param endpoint: a custom service's endpoint suffix (wins over ``model``).
        :param stream: ``True``: an async iterator of chunks instead of one response.
        :param retry_count: tries in all; ``None``: the config's ``llm_api_retry_count``.
        :param request_timeout: seconds per try; ``None``: the config's.
        :param request_id: sent as the request's id (the platform echoes it).
        :param backoff_factor: the retry backoff factor; ``None``: the config's.
        :param prompt: the seed docs' spelling of a text ``query``.
        :param messages: the conversation for an ERNIE Bot plugin model.
        :param kwargs: further body fields the platform accepts, sent as given.
        """
        return await self._acall(call_params(locals()))

    @overload
    def do(self, query: str | ChatMessages | None = None, plugins: list[str] | None = None,
           model: str | None = None, endpoint: str | None = None,
           stream: Literal[False] = False, retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None, *, prompt: str | None = None,
           messages: ChatMessages | None = None, **kwargs: Any) -> QfResponse: ...
    @overload
    def do(self, query: str | ChatMessages | None = None, plugins: list[str] | None = None,
           model: str | None = None, endpoint: str | None = None, *,
           stream: Literal[True], retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None, prompt: str | None = None,
           messages: ChatMessages | None = None, **kwargs: Any) -> Iterator[QfResponse]: ...
    @overload
    def do(self, query: str | ChatMessages | None = None, plugins: list[str] | None = None,
           model: str | None = None, endpoint: str | None = None,
           stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None, *, prompt: str | None = None,
           messages: ChatMessages | None = None, **kwargs: Any) -> QfResponse | Iterator[QfResponse]: ...
    def do(self, query: str | ChatMessages | None = None, plugins: list[str] | None = None,
           model: str | None = None, endpoint: str | None = None,
           stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None, *, prompt: str | None = None,
           messages: ChatMessages | None = None, **kwargs: Any) -> QfResponse | Iterator[QfResponse]:
        return self._blocking(self.ado(**call_params(locals(), keep_none=True)))

    do.__doc__ = blocking_doc(ado.__doc__)

    async def _target(self, model: str | None, endpoint: str | None) -> Target:
        endpoint = endpoint or self._endpoint
        model = model or self._model
        if endpoint:
            return Target("plugin", endpoint.strip("/"))
        path = _EB_MODELS.get((model or "EBPlugin").lower().replace("-", "").replace("_", ""))
        if path is None:
            raise ValidationError("endpoint", f"unknown plugin model {model!r}; pass endpoint= for a plugin app")
        return Target("plugin", path, model)

    def _body(self, target: Target, kwargs: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
        kwargs = dict(kwargs)
        query = kwargs.get("query")
        if isinstance(query, list | tuple | Messages) and "messages" not in kwargs:
            kwargs["messages"] = kwargs.pop("query")  # the official SDK: a conversation as the query
        if isinstance(kwargs.get("messages"), Messages):
            kwargs["messages"] = kwargs["messages"].to_list()
        if "prompt" in kwargs and "query" not in kwargs:
            kwargs["query"] = kwargs.pop("prompt")
        if target.endpoint.startswith("/erniebot") and "messages" not in kwargs:
            raise ValidationError("messages", "ERNIE Bot plugins take messages=[...]")
        body = self._wire_body(kwargs, bool(kwargs.get("stream", False)))
        from qfnb.protocol.inference import PluginRequest, parse_request  # pydantic: on first use
        parse_request(PluginRequest, body)
        return target, body

    async def _send(self, target: Target, body: dict[str, Any], stream: bool, kwargs: dict[str, Any]) -> Any:
        if target.endpoint.startswith("/erniebot"):  # fixed paths, not /plugin/{ep}/
            return await self.client.infer("", target.endpoint, body, stream=stream, retry=self._retry(kwargs),
                                           request_id=kwargs.get("request_id"))
        return await super()._send(target, body, stream, kwargs)
