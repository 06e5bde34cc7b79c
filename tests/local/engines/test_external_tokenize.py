"""An external engine's prompt tokens (issue 58): counted by its own ``/tokenize`` (vLLM's answers a
``count`` of the rendered turns; llama-server's bare tokens, after its ``/apply-template``), and
refused with a clear reason where it has none (the forecast then states an estimate). The engines
are in-process doubles (httpx's MockTransport)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from qfnb.local.engines.ask import ChatAsk
from qfnb.local.engines.base import CannotServe
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama.external import ExternalEngine
from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.transport import Endpoint

ASK = ChatAsk(model="ext", messages=({"role": "system", "content": "be brief"},
                                    {"role": "user", "content": "hi there"}))


Answer = Callable[[str, dict[str, Any]], httpx.Response]


def _external(monkeypatch: pytest.MonkeyPatch,
              answer: Answer) -> tuple[ExternalEngine, list[tuple[str, dict[str, Any]]]]:
    seen: list[tuple[str, dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.url.path, body))
        return answer(request.url.path, body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    monkeypatch.setattr(transport, "client", lambda: client)
    target = Endpoint("http://gpu-box:8000/v1", "k")
    return ExternalEngine("ext", target, gate=LaneGate("ext", 2, 4), model="remote-7b"), seen


def test_a_vllm_engine_counts_the_rendered_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    chat, seen = _external(monkeypatch, lambda path, body: httpx.Response(200, json={"count": 17, "tokens": [1] * 17}))
    assert asyncio.run(chat.count_tokens(ASK)) == 17
    assert seen == [("/tokenize", {"model": "remote-7b", "messages": list(ASK.messages)})]


def test_a_llama_server_renders_its_template_then_tokenizes(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(path: str, body: dict[str, Any]) -> httpx.Response:
        if path == "/apply-template":
            return httpx.Response(200, json={"prompt": "<s>be brief hi there<a>"})
        return httpx.Response(200, json={"tokens": list(range(len(str(body.get("content", "")).split())))})

    chat, seen = _external(monkeypatch, answer)
    assert asyncio.run(chat.count_tokens(ASK)) == 4
    assert [p for p, _ in seen] == ["/tokenize", "/apply-template", "/tokenize"]


def test_an_engine_without_tokenize_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    chat, _ = _external(monkeypatch, lambda path, body: httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(CannotServe, match="external engine whose /tokenize could not count"):
        asyncio.run(chat.count_tokens(ASK))
