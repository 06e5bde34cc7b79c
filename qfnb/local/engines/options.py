"""How the platform runs its engines: slots, queue, idle time and external engines (``QFNB_ENGINE_*``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qfnb.local.engines.base import ModelSpec
from qfnb.local.engines.llama.process.command import NGRAM_FLAGS, default_slots
from qfnb.local.engines.store.store_inputs import check_engine_url


@dataclass(frozen=True)
class EngineOptions:
    """How engines run: ``slots`` parallel requests per llama-server (default from the cores),
    ``queue`` more waiting before 429, ``idle_seconds`` before an unused engine stops, and
    ``external``: model name -> an OpenAI-compatible engine that serves it; ``stall_seconds`` and
    ``request_seconds``: the watchdog's limits on one request (:mod:`.llama.watchdog`)."""

    slots: int = field(default_factory=default_slots)
    queue: int | None = None  # default: 4 x slots
    idle_seconds: float = 600.0
    external: Mapping[str, ModelSpec] = field(default_factory=dict)
    #: a request whose engine stream shows no progress (no token, no prompt chunk read) this long is
    #: cancelled, and the engine restarted if its decode loop does not answer (:mod:`.llama.watchdog`)
    stall_seconds: float = 30.0
    #: the compute deadline: a request still generating after this long is cancelled
    request_seconds: float = 600.0
    #: who turns a chat with tools, a schema or logprobs into our own llama-server's request
    #: (``QFNB_LLAMA_CHAT``): ``"own"`` renders and tokenizes it here and sends token ids to
    #: ``/completions``; ``"server"`` sends the turns to llama-server's ``/v1/chat/completions``
    chat_layer: str = "own"
    #: speculative decoding on our own llama-server engines (``QFNB_ENGINE_SPECULATIVE``): ``"none"`` (the
    #: default: measured no faster on a 2-core CPU, and its batched verification changes greedy text),
    #: an n-gram kind, or ``"draft"`` (the tool model drafted by the 0.5B chat model); see docs/local-platform.md
    speculative: str = "none"
    #: the pace of streamed answers from our own llama-server engines (``QFNB_STREAM_INTERVAL_MS``; 0: each
    #: token as it comes): the first token goes on at once and the last as soon as it comes; between
    #: them, about three tokens a piece, none waiting longer than this many seconds
    stream_interval: float = 0.2

    @property
    def queue_len(self) -> int:
        return self.queue if self.queue is not None else 4 * self.slots

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EngineOptions:
        """``QFNB_ENGINE_SLOTS``, ``QFNB_ENGINE_QUEUE``, ``QFNB_ENGINE_IDLE_SECONDS``, ``QFNB_ENGINES``,
        ``QFNB_ENGINE_STALL_SECONDS``, ``QFNB_ENGINE_REQUEST_SECONDS``, ``QFNB_LLAMA_CHAT``,
        ``QFNB_ENGINE_SPECULATIVE``, ``QFNB_STREAM_INTERVAL_MS``."""

        def number(key: str, kind: type, default: Any) -> Any:
            raw = env.get(key)
            try:
                return default if raw in (None, "") else kind(raw)
            except ValueError:
                raise ValueError(f"{key} must be a number, got {raw!r}") from None

        def positive(key: str, default: float) -> float:
            value = float(number(key, float, default))
            if not value > 0:
                raise ValueError(f"{key} must be a number of seconds > 0, got {env.get(key)!r}")
            return value

        def milliseconds(key: str, default: float) -> float:
            value = float(number(key, float, default * 1000))
            if not 0 <= value <= 1000:
                raise ValueError(f"{key} must be a number of milliseconds from 0 to 1000, got {env.get(key)!r}")
            return value / 1000

        return cls(slots=number("QFNB_ENGINE_SLOTS", int, default_slots()),
                   queue=number("QFNB_ENGINE_QUEUE", int, None),
                   idle_seconds=number("QFNB_ENGINE_IDLE_SECONDS", float, cls.idle_seconds),
                   external=parse_external(env.get("QFNB_ENGINES")),
                   stall_seconds=positive("QFNB_ENGINE_STALL_SECONDS", cls.stall_seconds),
                   request_seconds=positive("QFNB_ENGINE_REQUEST_SECONDS", cls.request_seconds),
                   chat_layer=one_of(CHAT_LAYER_SETTING, env.get(CHAT_LAYER_SETTING), CHAT_LAYERS),
                   speculative=one_of(SPECULATIVE_SETTING, env.get(SPECULATIVE_SETTING), SPECULATIVE_KINDS),
                   stream_interval=milliseconds("QFNB_STREAM_INTERVAL_MS", cls.stream_interval))


#: the setting that says who prepares a chat for our own llama-server (:attr:`EngineOptions.chat_layer`)
CHAT_LAYER_SETTING = "QFNB_LLAMA_CHAT"
CHAT_LAYERS = ("own", "server")
#: the setting that turns on speculative decoding (:attr:`EngineOptions.speculative`)
SPECULATIVE_SETTING = "QFNB_ENGINE_SPECULATIVE"
SPECULATIVE_KINDS = ("none", *NGRAM_FLAGS, "draft")


def one_of(setting: str, raw: str | None, choices: tuple[str, ...]) -> str:
    """The setting ``setting`` checked: one of ``choices`` (unset: the first)."""
    value = (raw or choices[0]).strip().lower()
    if value not in choices:
        raise ValueError(f"{setting} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def parse_external(raw: str | Mapping[str, Any] | None) -> dict[str, ModelSpec]:
    """External engines from JSON: ``{"name": "http://host:8000/v1"}`` or ``{"name": {"base_url":
    ..., "model": "the engine's model name", "api_key": ..., "api_types": ["chat", "completions"]}}``."""
    if not raw:
        return {}
    try:
        data = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except ValueError as exc:
        raise ValueError(f"QFNB_ENGINES must be a JSON object of model name -> engine URL: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("QFNB_ENGINES must be a JSON object of model name -> engine URL")
    out = {}
    for name, conf in data.items():
        conf = {"base_url": conf} if isinstance(conf, str) else conf
        if not isinstance(conf, dict) or not str(conf.get("base_url", "")).startswith(("http://", "https://")):
            raise ValueError(f"QFNB_ENGINES[{name!r}] needs an http(s) base_url, e.g. http://gpu-box:8000/v1")
        check_engine_url(conf["base_url"], f"QFNB_ENGINES[{name!r}]")
        types = tuple(conf.get("api_types") or ("chat", "completions"))
        out[str(name)] = ModelSpec(kind="openai", api_types=types, base_url=str(conf["base_url"]).rstrip("/"),
                                   api_key=conf.get("api_key"), remote_model=conf.get("model") or str(name))
    return out
