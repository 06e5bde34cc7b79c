"""What the server needs from the engine registry (architecture Contract 7), as Protocols.

``qfnb.local.engines.EngineRegistry`` satisfies these; tests pass small doubles.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol


class ServedModelLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def api_types(self) -> tuple[str, ...]: ...
    @property
    def kind(self) -> str: ...


class DeltaLike(Protocol):
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class ChatEngineLike(Protocol):
    def chat(self, messages: list[dict[str, Any]], *, system: str | None,
             params: dict[str, Any]) -> Iterator[DeltaLike]: ...
    def complete(self, prompt: str, *, params: dict[str, Any]) -> Iterator[DeltaLike]: ...


class EmbedderLike(Protocol):
    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]: ...


class RegistryLike(Protocol):
    def served_models(self) -> list[Any]: ...
    def chat(self, endpoint: str) -> Any: ...
    def embedder(self, endpoint: str) -> Any: ...
    def register_adapter(self, endpoint: str, base_model: str, adapter_dir: Path) -> Any: ...
