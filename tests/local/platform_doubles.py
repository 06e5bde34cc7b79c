"""Test doubles for the local platform's engines and training worker (never used by the product)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfnb.local.domain.records import keyed_creates
from qfnb.local.engines.api import Engine, NullRegistry
from qfnb.local.engines.ask import Sampling
from qfnb.local.engines.base import ChatEngine, Delta, Embedder, PromptTooLong
from qfnb.local.engines.gate import BatchingEmbedder, ThreadedChat


@dataclass(frozen=True)
class FakeServed:
    name: str
    endpoint: str
    api_types: tuple[str, ...]
    kind: str
    digest: str = ""


#: the doubles answer with the engines' own Delta
FakeDelta = Delta


class FakeChat(ChatEngine):
    """Answers ``"<tag>: <last user message>"`` word by word; notes each call's turns (the system
    prompt apart) and sampling."""

    def __init__(self, tag: str) -> None:
        self.tag = self.name = tag
        self.calls: list[dict[str, Any]] = []

    def _words(self, text: str, sampling: Sampling) -> Iterator[FakeDelta]:
        if text == "TOO LONG":
            raise PromptTooLong("the prompt does not fit the 8-token context")
        words = f"{self.tag}: {text}".split(" ")
        limit = sampling.max_tokens or len(words)
        for i, w in enumerate(words[:limit]):
            last = i == min(limit, len(words)) - 1
            yield FakeDelta(w if i == 0 else " " + w, ("length" if limit < len(words) else "normal") if last else None,
                            prompt_tokens=len(text.split()), completion_tokens=i + 1)

    def chat(self, messages: list[dict[str, str]], *, sampling: Sampling) -> Iterator[FakeDelta]:  # type: ignore[override]
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        turns = [m for m in messages if m["role"] != "system"]
        self.calls.append({"messages": turns, "system": system, "sampling": sampling})
        return self._words(turns[-1]["content"], sampling)

    def complete(self, prompt: str, *, sampling: Sampling) -> Iterator[FakeDelta]:  # type: ignore[override]
        return self._words(prompt, sampling)


class FakeEmbedder(Embedder):
    name = "fake-embedder"

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        vecs = [[float(len(t)), float(sum(map(ord, t)) % 7), 1.0] for t in texts]
        return vecs, sum(len(t.split()) for t in texts)


class FakeRegistry(NullRegistry):
    """Two chat models, one embedder; adapters register as new chat endpoints. ``engines`` holds
    each chat endpoint's :class:`FakeChat` (what it was asked)."""

    def __init__(self) -> None:
        self.models = [FakeServed("Tiny-Chat", "tiny-chat", ("chat", "completions"), "transformers"),
                       FakeServed("Other-Chat", "other-chat", ("chat", "completions"), "llama.cpp"),
                       FakeServed("Tiny-Embed", "tiny-embed", ("embeddings", "reranker"), "sentence-transformers")]
        self.engines: dict[str, FakeChat] = {}
        self.adapters: dict[str, tuple[str, Path]] = {}
        self.siblings: dict[str, list[Path]] = {}  # endpoint -> the other checkpoints loaded with it
        self._faces: dict[str, ThreadedChat] = {}
        self._embedder = BatchingEmbedder(FakeEmbedder())

    def served_models(self) -> list[FakeServed]:
        return list(self.models)

    def make_chat(self, tag: str) -> FakeChat:
        return FakeChat(tag)

    def chat(self, endpoint: str) -> Engine:
        if endpoint not in self.engines:
            tag = f"adapter {endpoint}" if endpoint in self.adapters else endpoint
            self.engines[endpoint] = self.make_chat(tag)
        engine, face = self.engines[endpoint], self._faces.get(endpoint)
        if face is None or face.engine is not engine:  # a test may have put its own engine in
            face = self._faces[endpoint] = ThreadedChat(engine)
        return face

    def embedder(self, endpoint: str) -> BatchingEmbedder:
        return self._embedder

    def register_adapter(self, endpoint: str, base_model: str, adapter_dir: Path,
                         siblings: Sequence[Path] = ()) -> FakeServed:
        if not (adapter_dir / "adapter_config.json").exists():
            raise FileNotFoundError(f"no adapter in {adapter_dir}")
        self.adapters[endpoint] = (base_model, adapter_dir)
        self.siblings[endpoint] = list(siblings)
        served = FakeServed(endpoint, endpoint, ("chat", "completions"), "transformers")
        self.models.append(served)
        return served


def killed_after_a_keyed_fine_tune() -> FakeRegistry:
    """:class:`FakeRegistry` for a daemon (``--registry``) that SIGKILLs itself once a keyed fine-tune task
    create (``CreateFineTuningTask`` under an ``Idempotency-Key``) committed its run and its key, before its
    answer leaves: the daemon death the keyed creates are made for."""
    real = keyed_creates.run_once

    def committed_then_killed(store: Any, owner: str, key: str, route: str, body: Any, create: Any) -> Any:
        created = real(store, owner, key, route, body, create)
        if route.endswith("CreateFineTuningTask") and not created.replayed:
            os.kill(os.getpid(), signal.SIGKILL)
        return created

    keyed_creates.run_once = committed_then_killed  # type: ignore[assignment]
    return FakeRegistry()
