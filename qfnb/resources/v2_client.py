"""``qfnb.Qianfan``: the official SDK's OpenAI-style client for the v2 API::

    client = qfnb.Qianfan(api_key="bce-v3/...", app_id="app-...")
    answer = client.chat.completions.create(model="ernie-4.0-8k", messages=[{"role": "user", "content": "hi"}])
    answer.choices[0].message.content

Credentials not given here come from the environment / ``qfnb.get_config()`` as for every
resource (``QIANFAN_BEARER_TOKEN``, ``QIANFAN_ACCESS_KEY``/``QIANFAN_SECRET_KEY``, ``QIANFAN_APP_ID``).
"""

from __future__ import annotations

from typing import Any

from qfnb._core.config import Config
from qfnb._core.runtime import sync
from qfnb.resources.inference.chat import ChatCompletion

__all__ = ["Chat", "Qianfan", "V2Route"]


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
    def embedding(self) -> V2Route:
        """``client.embedding.create(model="embedding-v1", input=["text", ...])`` (``/v2/embeddings``)."""
        return V2Route(self, "/v2/embeddings", "embedding-v1")

    @property
    def reranker(self) -> V2Route:
        """``client.reranker.create(model="bce-reranker-base", query=..., documents=[...], top_n=...)``
        (``/v2/rerankers``)."""
        return V2Route(self, "/v2/rerankers", "bce-reranker-base")


class V2Route:
    """One v2 inference route: ``create(**fields)`` posts them (with ``model``) and answers the
    platform's JSON as a ``QfResponse``; ``acreate`` is the same, awaited."""

    def __init__(self, client: Qianfan, route: str, default_model: str) -> None:
        self._client, self._route, self._default = client, route, default_model

    async def acreate(self, *, model: str | None = None, **fields: Any) -> Any:
        http = self._client._resource().client
        return await http.infer_v2(self._route, {"model": model or self._default, **fields})

    def create(self, *, model: str | None = None, **fields: Any) -> Any:
        return sync.run(self.acreate(model=model, **fields))


class Chat:
    """``client.chat``: its ``completions`` is the chat resource."""

    def __init__(self, client: Qianfan) -> None:
        self._client = client

    @property
    def completions(self) -> ChatCompletion:
        return self._client._resource()
