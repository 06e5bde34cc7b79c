"""The loop guard on schema-constrained answers (issue 42): a chat with a JSON schema (and a forced
tool call, which the engine also decodes under a schema) reaches our own llama-server with llama.cpp's
DRY sampler on, set by :data:`~qfnb.local.engines.llama.grammar.LOOP_GUARD`; an unconstrained chat
reaches it without, so its greedy answers are the engine's as before."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from engine_asks import chat_ask

from qfnb.local.engines.api import generate_blocking
from qfnb.local.engines.ask import ChatAsk
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama import openai_http
from qfnb.local.engines.llama.grammar import LOOP_GUARD

ANSWER = 'data: {"choices": [{"text": "{\\"a\\": \\"x\\"}", "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'


def _answer(monkeypatch: pytest.MonkeyPatch, ask: ChatAsk) -> dict[str, Any]:
    """The body the engine got for ``ask``."""
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/apply-template"):
            return httpx.Response(200, json={"prompt": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"})
        if request.url.path.endswith("/tokenize"):
            return httpx.Response(200, json={"tokens": [1, 2, 3]})
        sent.append(json.loads(request.content))
        return httpx.Response(200, stream=httpx.ByteStream(ANSWER.encode()),
                              headers={"Content-Type": "text/event-stream"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    monkeypatch.setattr(openai_http, "_client", lambda: client)
    engine = openai_http.OpenAIChat("qwen", lambda: openai_http.Endpoint("http://127.0.0.1:1/v1"),
                                    gate=LaneGate("qwen", 2, 4), n_ctx=4096)
    generate_blocking(engine, ask)
    assert len(sent) == 1
    return sent[0]


def _guarded(body: dict[str, Any]) -> bool:
    return all(body.get(k) == v for k, v in LOOP_GUARD.items())


def test_a_schema_constrained_answer_is_decoded_with_the_loop_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    body = _answer(monkeypatch, ChatAsk(model="", messages=({"role": "user", "content": "hi"},), schema=schema))
    assert body["json_schema"] == schema and _guarded(body)
    assert body["dry_allowed_length"] >= 16  # only a long run is cut: JSON keys repeat in far shorter ones


def test_a_forced_tool_call_is_guarded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    body = _answer(monkeypatch, ChatAsk(model="", messages=({"role": "user", "content": "hi"},), tools=(tool,),
                                        tool_choice="required"))
    assert "json_schema" in body and _guarded(body)


@pytest.mark.parametrize("ask", [chat_ask([{"role": "user", "content": "hi"}], temperature=0),
                                 chat_ask([{"role": "user", "content": "hi"}], temperature=0, presence_penalty=0.5)],
                         ids=["plain", "penalties"])
def test_an_unconstrained_answer_is_not(monkeypatch: pytest.MonkeyPatch, ask: ChatAsk) -> None:
    body = _answer(monkeypatch, ask)
    assert "json_schema" not in body and not any(k.startswith("dry_") for k in body)
