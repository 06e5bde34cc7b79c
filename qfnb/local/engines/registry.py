"""The registry of served models: resolves endpoints, loads engines lazily, once, thread-safely."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from qfnb.local.engines.base import ChatEngine, Embedder, ModelSpec, ServedModel, UnknownModel

log = logging.getLogger("qfnb.local.engines")

DEFAULT_CHAT = "Qwen2.5-Coder-0.5B-Instruct"
GEMMA = "Gemma-3-270M"
MINILM = "all-MiniLM-L6-v2"

BUILTIN_SPECS: dict[str, ModelSpec] = {
    DEFAULT_CHAT: ModelSpec(kind="llama.cpp", template="native", n_ctx=4096),
    GEMMA: ModelSpec(kind="llama.cpp", template="gemma", stop=("<end_of_turn>",), n_ctx=4096),
    MINILM: ModelSpec(kind="sentence-transformers", api_types=("embeddings",)),
}
_CHAT_TYPES = ("chat", "completions")


def endpoint_for(name: str) -> str:
    """The URL endpoint of a model name: lowercase, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


class EngineRegistry:
    """Served models and their engines (Contract 7). Engines load on first use and are shared."""

    def __init__(self, data_dir: Path, extra_models: Mapping[str, ModelSpec] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self._specs: dict[str, ModelSpec] = {}
        for name, spec in {**BUILTIN_SPECS, **(extra_models or {})}.items():
            self._add(name, spec)
        self._engines: dict[str, ChatEngine | Embedder] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _add(self, name: str, spec: ModelSpec) -> ServedModel:
        spec = replace(spec, endpoint=spec.endpoint or endpoint_for(name))
        self._specs[name] = spec
        return self._served(name, spec)

    @staticmethod
    def _served(name: str, spec: ModelSpec) -> ServedModel:
        assert spec.endpoint is not None
        return ServedModel(name=name, endpoint=spec.endpoint, api_types=spec.api_types, kind=_effective_kind(spec))

    def served_models(self) -> list[ServedModel]:
        # A snapshot under the lock: services are (re-)registered from other threads, e.g. in the
        # background after a restart, while requests list the served models.
        with self._lock:
            specs = list(self._specs.items())
        return [self._served(n, s) for n, s in specs]

    def resolve(self, api_type: str, endpoint: str) -> ServedModel:
        """The model serving ``api_type`` at ``endpoint`` (its endpoint or its name, case-insensitive)."""
        key = endpoint.lower()
        for model in self.served_models():
            if api_type in model.api_types and key in (model.endpoint.lower(), model.name.lower()):
                return model
        raise UnknownModel(api_type, endpoint, [m.name for m in self.served_models() if api_type in m.api_types])

    def chat(self, endpoint: str) -> ChatEngine:
        try:
            name = self.resolve("chat", endpoint).name
        except UnknownModel:
            name = self.resolve("completions", endpoint).name
        engine = self._get(name)
        assert isinstance(engine, ChatEngine)
        return engine

    def embedder(self, endpoint: str) -> Embedder:
        engine = self._get(self.resolve("embeddings", endpoint).name)
        assert isinstance(engine, Embedder)
        return engine

    def register_adapter(self, endpoint: str, base_model: str, adapter_dir: Path) -> ServedModel:
        """Serve ``base_model`` + the peft LoRA in ``adapter_dir`` for chat/completions at ``endpoint``.

        With llama.cpp the adapter is converted once to a LoRA GGUF next to it; otherwise the
        transformers backend merges it into the base weights.
        """
        base_name = self.resolve("chat", base_model).name
        base = self._specs[base_name]
        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise FileNotFoundError(f"adapter_dir {adapter_dir} has no adapter_config.json")
        spec: ModelSpec | None = None
        if _effective_kind(base) == "llama.cpp":
            from qfnb.local.training.lora_gguf import LoraConversionError, convert_adapter

            base_gguf = base.path or self._gguf(base_name)
            try:
                lora = convert_adapter(adapter_dir, adapter_dir / "adapter.gguf", base_gguf=base_gguf)
                spec = replace(base, endpoint=endpoint, lora_path=lora, path=base_gguf)
            except LoraConversionError as exc:
                log.warning("serving %s with transformers: %s", endpoint, exc)
        if spec is None:
            hf_path = base.path if base.path is not None and base.path.is_dir() else self._hf(base_name)
            spec = replace(base, endpoint=endpoint, kind="transformers", lora_path=adapter_dir, path=hf_path)
        with self._lock:
            name = endpoint
            self._engines.pop(name, None)
            return self._add(name, spec)

    def unregister(self, endpoint: str) -> None:
        """Stop serving a model registered with :meth:`register_adapter` and free its engine."""
        with self._lock:
            name = next((n for n, s in self._specs.items() if s.endpoint == endpoint and n not in BUILTIN_SPECS), None)
            if name is None:
                return
            del self._specs[name]
            engine = self._engines.pop(name, None)
        if isinstance(engine, ChatEngine):
            engine.close()

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            if isinstance(engine, ChatEngine):
                engine.close()

    # -- loading -------------------------------------------------------------------------------

    def _get(self, name: str) -> ChatEngine | Embedder:
        with self._lock:
            engine = self._engines.get(name)
            if engine is not None:
                return engine
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:  # one load per model; other models load in parallel
            with self._lock:
                engine = self._engines.get(name)
            if engine is None:
                log.info("loading model %s", name)
                engine = self._load(name, self._specs[name])
                with self._lock:
                    self._engines[name] = engine
            return engine

    def _gguf(self, name: str) -> Path:
        from qfnb.local import assets

        return assets.gguf_path(name)

    def _hf(self, name: str) -> Path:
        from qfnb.local import assets

        return assets.hf_dir(name)

    def _load(self, name: str, spec: ModelSpec) -> ChatEngine | Embedder:
        kind = _effective_kind(spec)
        if kind == "sentence-transformers":
            from qfnb.local import assets
            from qfnb.local.engines.embed import MeanPoolEmbedder

            return MeanPoolEmbedder(name, spec.path or assets.minilm_dir())
        if kind == "llama.cpp":
            from qfnb.local.engines.llama import LlamaChatEngine

            return LlamaChatEngine(
                name,
                spec.path or self._gguf(name),
                template=spec.template,
                stop=spec.stop,
                n_ctx=spec.n_ctx,
                lora_path=spec.lora_path,
            )
        from qfnb.local.engines.hf import HFChatEngine

        if spec.kind == "llama.cpp":
            log.warning("llama-cpp-python is not installed; serving %s with transformers (slower)", name)
        path = spec.path if spec.path is not None and spec.path.is_dir() else self._hf(name)
        return HFChatEngine(
            name, path, template=spec.template, stop=spec.stop, n_ctx=spec.n_ctx, adapter_dir=spec.lora_path
        )


def _effective_kind(spec: ModelSpec) -> str:
    if spec.kind == "llama.cpp":
        from qfnb.local.engines.llama import llama_available

        if not llama_available():
            return "transformers"
    return spec.kind
