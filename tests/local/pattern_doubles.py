"""The probe's hostile schema patterns, and a platform whose chat model (the real llama engine
class, :class:`~qfnb.local.engines.llama.engine.LlamaEngine`) talks to a fake llama-server that
answers every chat with the near-miss text that makes a backtracking engine explode. Shared by
``test_probe_patterns.py`` and ``bench/hostile_patterns.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from platform_doubles import FakeRegistry
from platform_helpers import make_settings

from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.llama.link.transport import Endpoint
from qfnb.local.server.app import create_app

#: the probe's four patterns (anchored: a match that must fail is what backtracks), each with the
#: text that almost matches it
HOSTILE = {r"^(\d+)+$": "1", r"^(\d|\d)+$": "1", r"^(\w+\s?)+$": "a", r"^([a-z]+)*$": "a"}


def hostile_schema(pattern: str) -> dict[str, Any]:
    """An object whose string ``x`` must match ``pattern``; its ``uniqueItems`` list (which the
    grammar does not enforce) makes the whole answer checked, as any such keyword would."""
    return {"type": "object", "required": ["x", "y"], "properties": {
        "x": {"type": "string", "pattern": pattern},
        "y": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}}}


def near_miss(pattern: str, length: int) -> str:
    return json.dumps({"x": HOSTILE.get(pattern, "a") * length + "!", "y": [1]})


class HostileLlama:
    """llama-server's ``/apply-template``, ``/tokenize`` and a streamed chat that answers with the
    near miss of the pattern the request's last message names (the grammar may have left it out
    of the schema it sends)."""

    def __init__(self, length: int) -> None:
        self.length, self.chats = length, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/apply-template":
            return httpx.Response(200, json={"prompt": "<|im_start|>user\n...<|im_start|>assistant\n"})
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"tokens": list(range(12))})
        body = json.loads(request.content)
        self.chats += 1
        pattern = body["messages"][-1]["content"]
        text = near_miss(pattern, self.length)
        chunks = [{"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
                  {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                  {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": int(body.get("max_tokens", 9))}}]
        sse = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
        return httpx.Response(200, stream=httpx.ByteStream(sse), headers={"content-type": "text/event-stream"})


class HostileRegistry(FakeRegistry):
    """The doubles' registry, its ``tiny-chat`` the llama engine over :class:`HostileLlama`."""

    def __init__(self, fake: HostileLlama) -> None:
        super().__init__()
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(fake))
        self.llama = LlamaEngine("tiny-chat", lambda: Endpoint("http://127.0.0.1:9/v1", "key"),
                                gate=LaneGate("tiny-chat", 4, 16), n_ctx=4096, chat_layer="server")

    def chat(self, endpoint: str) -> Any:
        return self.llama if endpoint == "tiny-chat" else super().chat(endpoint)


def hostile_app(data_dir: Path, length: int) -> tuple[Any, HostileRegistry]:
    """The platform app over :class:`HostileRegistry`; ``transport.client`` must be pointed at
    ``registry.client`` by the caller (a test's monkeypatch)."""
    registry = HostileRegistry(HostileLlama(length))
    return create_app(make_settings(data_dir), registry), registry
