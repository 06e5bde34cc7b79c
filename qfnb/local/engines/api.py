"""What the server needs from the engine registry (architecture Contract 7), as Protocols.

``qfnb.local.engines.EngineRegistry`` satisfies these; tests pass small doubles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class RegistryLike(Protocol):
    def served_models(self) -> list[Any]: ...
    def chat(self, endpoint: str) -> Any: ...
    def embedder(self, endpoint: str) -> Any: ...
    def register_adapter(self, endpoint: str, base_model: str, adapter_dir: Path) -> Any: ...
