"""``qfnb.Qianfan``: the official SDK's OpenAI-style client for the v2 API::

    client = qfnb.Qianfan(api_key="bce-v3/...", app_id="app-...")
    answer = client.chat.completions.create(model="ernie-4.0-8k", messages=[{"role": "user", "content": "hi"}])
    answer.choices[0].message.content

Credentials not given here come from the environment / ``qfnb.get_config()`` as for every
resource (``QIANFAN_BEARER_TOKEN``, ``QIANFAN_ACCESS_KEY``/``QIANFAN_SECRET_KEY``, ``QIANFAN_APP_ID``).
"""

from __future__ import annotations

from typing import Any, cast

from qfnb._core.config import Config
from qfnb._core.errors import ValidationError
from qfnb._core.http.client import AsyncQianfanClient
from qfnb._core.http.response import QfResponse
from qfnb._core.runtime import sync
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.wires.qianfan.routes import idempotency_key_problem
from qfnb.resources.inference.chat import ChatCompletion

__all__ = ["Chat", "Qianfan", "Responses", "V2Route"]


class Qianfan:
    """The v2 client: ``.chat.completions`` (and ``.completions``) is a ``ChatCompletion(version=2)``
    bound to this client's settings; ``create()`` answers typed :mod:`~qfnb.resources.typing_client`
    objects."""

    def __init__(self, *, access_key: str | None = None, secret_key: str | None = None, api_key: str | None = None,
                 bearer_token: str | None = None, app_id: str | None = None, console_api_base_url: str | None = None,
                 request_timeout: float | None = None, retry_count: int | None = None,
                 config: Config | None = None, **kwargs: Any) -> None:
        settings = {"access_key": access_key, "secret_key": secret_key, "bearer_token": api_key or bearer_token,
                    "app_id": app_id, "console_api_base_url": console_api_base_url,
                    "llm_api_retry_timeout": request_timeout, "llm_api_retry_count": retry_count, **kwargs}
        self._settings = {k: v for k, v in settings.items() if v is not None}
        self._config = config

    def __repr__(self) -> str:
        return f"Qianfan(settings={sorted(self._settings)})"  # names only: never the keys

    def _resource(self) -> ChatCompletion:
        return ChatCompletion(version=2, config=self._config, **self._settings)

    @property
    def chat(self) -> Chat:
        return Chat(self)

    @property
    def completions(self) -> ChatCompletion:
        return self._resource()

    @property
    def responses(self) -> Responses:
        """The stateful Responses API (``/v2/responses``): ``create``, ``retrieve``, ``delete``,
        ``input_items``, ``list`` (by metadata)."""
        return Responses(self)

    @property
    def embedding(self) -> V2Route:
        """``client.embedding.create(model="embedding-v1", input=["text", ...])`` (``/v2/embeddings``)."""
        return V2Route(self, "/v2/embeddings", "embedding-v1", "EmbeddingAnswer")

    @property
    def reranker(self) -> V2Route:
        """``client.reranker.create(model="bce-reranker-base", query=..., documents=[...], top_n=...)``
        (``/v2/rerankers``)."""
        return V2Route(self, "/v2/rerankers", "bce-reranker-base", "RerankerAnswer")


class V2Route:
    """One v2 inference route: ``create(**fields)`` posts them (with ``model``) and answers the
    platform's JSON as a ``QfResponse`` (``resp["data"][0]["embedding"]``), typed as ``answer`` names
    (``resp.parsed.data[0].embedding``); ``acreate`` is the same, awaited."""

    def __init__(self, client: Qianfan, route: str, default_model: str, answer: str) -> None:
        self._client, self._route, self._default, self._answer = client, route, default_model, answer

    async def acreate(self, *, model: str | None = None, **fields: Any) -> QfResponse:
        http = self._client._resource().client
        resp = await http.infer_v2(self._route, {"model": model or self._default, **fields})
        return resp.with_answer_named(self._answer)

    def create(self, *, model: str | None = None, **fields: Any) -> QfResponse:
        return sync.run(self.acreate(model=model, **fields))


class Chat:
    """``client.chat``: its ``completions`` is the chat resource."""

    def __init__(self, client: Qianfan) -> None:
        self._client = client

    @property
    def completions(self) -> ChatCompletion:
        return self._client._resource()


class Responses:
    """``client.responses``: Qianfan's stateful ``/v2/responses`` (OpenAI's Responses API), on the
    cloud and on the local platform alike. A conversation is kept by the platform: a follow-up sends
    only its new ``input`` with ``previous_response_id``::

        first = client.responses.create(model="ernie-4.0-8k", input="My name is Ada.")
        again = client.responses.create(model="ernie-4.0-8k", input="What is my name?",
                                        previous_response_id=first["id"])

    ``create(stream=True)`` yields the semantic events (``resp["type"]``: ``response.created`` …
    ``response.output_text.delta`` … ``response.completed``). Every call has an ``a…`` twin."""

    def __init__(self, client: Qianfan) -> None:
        self._client = client

    def _http(self) -> AsyncQianfanClient:
        return self._client._resource().client

    async def _one(self, method: str, path: str = "", params: dict[str, Any] | None = None) -> QfResponse:
        """A call answered by one response (only a streamed ``create`` is answered by chunks)."""
        return cast(QfResponse, await self._http().responses_v2(method, path, params=params))

    async def acreate(self, *, model: str, input: str | list[dict[str, Any]] | None = None, stream: bool = False,
                      idempotency_key: str | None = None, **fields: Any) -> Any:
        """Create a response (``instructions``, ``previous_response_id``, ``store``, ``tools``,
        ``text``, ``temperature``, ``max_output_tokens``, … as OpenAI names them). ``idempotency_key``:
        sent as the call's ``Idempotency-Key`` instead of a new one (as ``ChatCompletion.do``'s)."""
        body: dict[str, Any] = {"model": model, **({"input": input} if input is not None else {}), **fields}
        # deferred: the protocol's checks load on first use
        from qfnb.protocol.wires.responses.request import check_schemas

        if idempotency_key is not None and (problem := idempotency_key_problem(idempotency_key)):
            raise ValidationError("idempotency_key", problem)
        try:
            check_schemas(body)
        except ProtocolError as exc:
            raise ValidationError(exc.field, str(exc).split(": ", 1)[-1]) from None
        if stream:
            body["stream"] = True
        return await self._http().responses_v2("POST", body=body, stream=stream, idempotency_key=idempotency_key)

    def create(self, *, model: str, input: str | list[dict[str, Any]] | None = None, stream: bool = False,
               idempotency_key: str | None = None, **fields: Any) -> Any:
        answer = sync.run(self.acreate(model=model, input=input, stream=stream, idempotency_key=idempotency_key,
                                       **fields))
        return sync.iterate(answer) if stream else answer

    async def aretrieve(self, response_id: str) -> QfResponse:
        """A stored response, by id."""
        return await self._one("GET", "/" + _checked_id(response_id))

    def retrieve(self, response_id: str) -> QfResponse:
        return sync.run(self.aretrieve(response_id))

    async def adelete(self, response_id: str) -> QfResponse:
        """Delete a stored response (a chain through it can no longer continue)."""
        return await self._one("DELETE", "/" + _checked_id(response_id))

    def delete(self, response_id: str) -> QfResponse:
        return sync.run(self.adelete(response_id))

    async def ainput_items(self, response_id: str, *, limit: int = 20, order: str = "desc") -> QfResponse:
        """The input items a stored response was asked (OpenAI's list page)."""
        return await self._one("GET", f"/{_checked_id(response_id)}/input_items",
                               params={"limit": limit, "order": order})

    def input_items(self, response_id: str, *, limit: int = 20, order: str = "desc") -> QfResponse:
        return sync.run(self.ainput_items(response_id, limit=limit, order=order))

    async def alist(self, *, metadata: dict[str, str], limit: int = 20, order: str = "desc",
                    after: str | None = None) -> QfResponse:
        """The stored responses whose ``metadata`` holds every given pair (OpenAI's list page; a
        local-platform addition, which the cloud may not answer)."""
        if not metadata or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValidationError("metadata", "must map at least one key to a string value")
        params: dict[str, Any] = {f"metadata[{k}]": v for k, v in metadata.items()}
        params.update(limit=limit, order=order, **({"after": after} if after else {}))
        return await self._one("GET", params=params)

    def list(self, *, metadata: dict[str, str], limit: int = 20, order: str = "desc",
             after: str | None = None) -> QfResponse:
        return sync.run(self.alist(metadata=metadata, limit=limit, order=order, after=after))


def _checked_id(response_id: str) -> str:
    """A response id as a path segment (refused before sending when it could leave it)."""
    if not isinstance(response_id, str) or not response_id or any(c in response_id for c in "/?#% "):
        raise ValidationError("response_id", f"must be a response's id such as 'resp_…', got {response_id!r:.60}")
    return response_id
