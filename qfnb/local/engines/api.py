"""What the server needs from the engine registry (architecture Contract 7), as Protocols.

``qfnb.local.engines.EngineRegistry`` satisfies these; tests pass small doubles. A chat engine
may be async (:class:`~qfnb.local.engines.gate.AsyncChat`) or blocking (:class:`SyncChat`); the
server gives a blocking one its async face (``gate.as_async_chat``), and the same for embedders.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeAlias

from qfnb.local.engines.base import Delta
from qfnb.local.engines.gate import AsyncChat

__all__ = ["ChatLike", "CrossEncoderLike", "EmbedderLike", "RegistryLike", "ServedLike", "SyncChat"]


class ServedLike(Protocol):
    """A served model (``base.ServedModel``): its name, endpoint, API types and engine kind."""

    @property
    def name(self) -> str: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def api_types(self) -> tuple[str, ...]: ...
    @property
    def kind(self) -> str: ...


class SyncChat(Protocol):
    """A blocking chat engine (``base.ChatEngine``)."""

    def chat(self, messages: list[dict[str, Any]], *, system: str | None,
             params: dict[str, Any]) -> Iterator[Delta]: ...
    def complete(self, prompt: str, *, params: dict[str, Any]) -> Iterator[Delta]: ...


ChatLike: TypeAlias = AsyncChat | SyncChat


class EmbedderLike(Protocol):
    """Sentence embeddings: the vectors of ``texts`` and the tokens counted."""

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]: ...


class CrossEncoderLike(Protocol):
    """A reranker scoring (query, document) pairs: each document's score and the tokens read."""

    async def ascore(self, query: str, documents: list[str]) -> tuple[list[float], int]: ...


class RegistryLike(Protocol):
    def served_models(self) -> Sequence[ServedLike]: ...
    def chat(self, endpoint: str) -> ChatLike: ...
    def embedder(self, endpoint: str) -> EmbedderLike: ...
    def cross_encoder(self, endpoint: str) -> CrossEncoderLike: ...
    def register_adapter(self, endpoint: str, base_model: str, adapter_dir: Path) -> ServedLike: ...
