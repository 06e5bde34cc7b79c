"""Test doubles for the local platform's engines and training worker (never used by the product)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfnb.local.engines.base import PromptTooLong


@dataclass(frozen=True)
class FakeServed:
    name: str
    endpoint: str
    api_types: tuple[str, ...]
    kind: str


@dataclass
class FakeDelta:
    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class FakeChat:
    """Answers ``"<tag>: <last user message>"`` word by word."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.calls: list[dict[str, Any]] = []

    def _words(self, text: str, params: dict[str, Any]) -> Iterator[FakeDelta]:
        if text == "TOO LONG":
            raise PromptTooLong("the prompt does not fit the 8-token context")
        words = f"{self.tag}: {text}".split(" ")
        limit = params.get("max_output_tokens") or len(words)
        for i, w in enumerate(words[:limit]):
            last = i == min(limit, len(words)) - 1
            yield FakeDelta(w if i == 0 else " " + w, ("length" if limit < len(words) else "normal") if last else None,
                            prompt_tokens=len(text.split()), completion_tokens=i + 1)

    def chat(self, messages: list[dict[str, Any]], *, system: str | None,
             params: dict[str, Any]) -> Iterator[FakeDelta]:
        self.calls.append({"messages": messages, "system": system, "params": params})
        return self._words(messages[-1]["content"], params)

    def complete(self, prompt: str, *, params: dict[str, Any]) -> Iterator[FakeDelta]:
        return self._words(prompt, params)


class FakeEmbedder:
    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        vecs = [[float(len(t)), float(sum(map(ord, t)) % 7), 1.0] for t in texts]
        return vecs, sum(len(t.split()) for t in texts)


class FakeRegistry:
    """Two chat models, one embedder; adapters register as new chat endpoints."""

    def __init__(self) -> None:
        self.models = [FakeServed("Tiny-Chat", "tiny-chat", ("chat", "completions"), "transformers"),
                       FakeServed("Other-Chat", "other-chat", ("chat", "completions"), "llama.cpp"),
                       FakeServed("Tiny-Embed", "tiny-embed", ("embeddings", "reranker"), "sentence-transformers")]
        self.engines: dict[str, FakeChat] = {}
        self.adapters: dict[str, tuple[str, Path]] = {}

    def served_models(self) -> list[FakeServed]:
        return list(self.models)

    def chat(self, endpoint: str) -> FakeChat:
        if endpoint not in self.engines:
            tag = f"adapter {endpoint}" if endpoint in self.adapters else endpoint
            self.engines[endpoint] = FakeChat(tag)
        return self.engines[endpoint]

    def embedder(self, endpoint: str) -> FakeEmbedder:
        return FakeEmbedder()

    def register_adapter(self, endpoint: str, base_model: str, adapter_dir: Path) -> FakeServed:
        if not (adapter_dir / "adapter_config.json").exists():
            raise FileNotFoundError(f"no adapter in {adapter_dir}")
        self.adapters[endpoint] = (base_model, adapter_dir)
        served = FakeServed(endpoint, endpoint, ("chat", "completions"), "transformers")
        self.models.append(served)
        return served
