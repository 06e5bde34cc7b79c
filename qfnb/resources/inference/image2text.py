"""``Image2Text``: a prompt about an image → text (``/image2text/{endpoint}``)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, ClassVar, Literal, overload

from qfnb._core.errors import ValidationError
from qfnb._core.http.response import QfResponse

from .base import BaseInference, Target, blocking_doc, call_params

__all__ = ["Image2Text"]


class Image2Text(BaseInference):
    """``Image2Text(endpoint="your_endpoint").do(prompt="what is in it?", image=b64)["result"]``.

    ``image`` is the image as base64 text (bytes are encoded for you). The platform has no
    default image model: give ``endpoint=`` (or ``model=`` naming a served one). Streams
    with ``stream=True``.
    """

    api_types: ClassVar[tuple[str, ...]] = ("image2text",)
    batch_field: ClassVar[str] = "prompt"

    @overload
    async def ado(self, prompt: str, image: str | bytes, model: str | None = None,
                  endpoint: str | None = None,
                  stream: Literal[False] = False, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None, **kwargs: Any) -> QfResponse: ...
    @overload
    async def ado(self, prompt: str, image: str | bytes, model: str | None = None,
                  endpoint: str | None = None, *,
                  stream: Literal[True], retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None,
                  **kwargs: Any) -> AsyncIterator[QfResponse]: ...
    @overload
    async def ado(self, prompt: str, image: str | bytes, model: str | None = None,
                  endpoint: str | None = None,
                  stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None,
                  **kwargs: Any) -> QfResponse | AsyncIterator[QfResponse]: ...
    async def ado(self, prompt: str, image: str | bytes, model: str | None = None,
                  endpoint: str | None = None,
                  stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
                  request_id: str | None = None, backoff_factor: float | None = None,
                  **kwargs: Any) -> QfResponse | AsyncIterator[QfResponse]:
        """Ask ``prompt`` about ``image``.

        :param prompt: the question about the image.
        :param image: the image, as base64 text or bytes.
        :param model: a model name (built-in catalog or the platform's list); default: the
            instance's, then the config's default.
        :param endpoint: a custom service's endpoint suffix (wins over ``model``).
        :param stream: ``True``: an async iterator of chunks instead of one response.
        :param retry_count: tries in all; ``None``: the config's ``llm_api_retry_count``.
        :param request_timeout: seconds per try; ``None``: the config's.
        :param request_id: sent as the request's id (the platform echoes it).
        :param backoff_factor: the retry backoff factor; ``None``: the config's.
        :param kwargs: further body fields the platform accepts, sent as given.
        """
        return await self._acall(call_params(locals()))

    @overload
    def do(self, prompt: str, image: str | bytes, model: str | None = None,
           endpoint: str | None = None,
           stream: Literal[False] = False, retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None, **kwargs: Any) -> QfResponse: ...
    @overload
    def do(self, prompt: str, image: str | bytes, model: str | None = None,
           endpoint: str | None = None, *,
           stream: Literal[True], retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None,
           **kwargs: Any) -> Iterator[QfResponse]: ...
    @overload
    def do(self, prompt: str, image: str | bytes, model: str | None = None,
           endpoint: str | None = None,
           stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None,
           **kwargs: Any) -> QfResponse | Iterator[QfResponse]: ...
    def do(self, prompt: str, image: str | bytes, model: str | None = None,
           endpoint: str | None = None,
           stream: bool = False, retry_count: int | None = None, request_timeout: float | None = None,
           request_id: str | None = None, backoff_factor: float | None = None,
           **kwargs: Any) -> QfResponse | Iterator[QfResponse]:
        return self._blocking(self.ado(**call_params(locals(), keep_none=True)))

    do.__doc__ = blocking_doc(ado.__doc__)

    def _named_inputs(self, inputs: Iterable[Any] | None, common: dict[str, Any]) -> Iterable[Any] | None:
        named = common.pop("input_list", None)  # the official keyword
        if named is not None:
            if inputs is not None:
                raise ValidationError("input_list", "given both positionally and by name")
            return named  # type: ignore[no-any-return]
        return super()._named_inputs(inputs, common)

    def _batch_item(self, item: Any) -> dict[str, Any]:
        """A ``batch_do`` input is ``(prompt, image)``, as in the official SDK (or a dict of both)."""
        if isinstance(item, dict):
            return item
        if isinstance(item, tuple | list) and len(item) == 2:
            return {"prompt": item[0], "image": item[1]}
        raise ValidationError("input_list", f"each item must be a (prompt, image) pair, got {type(item).__name__}")

    def _body(self, target: Target, kwargs: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
        prompt, image = kwargs.get("prompt"), kwargs.get("image")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValidationError("prompt", "must be a non-empty string")
        if isinstance(image, bytes | bytearray):
            image = base64.b64encode(bytes(image)).decode("ascii")
        if not isinstance(image, str) or not image:
            raise ValidationError("image", "must be the image as base64 text (or bytes)")
        return target, self._wire_body({**kwargs, "image": image}, bool(kwargs.get("stream")))
