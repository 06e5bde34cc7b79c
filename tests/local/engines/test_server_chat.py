"""A chat with tools or a schema on llama-server's own chat endpoint (``QFNB_LLAMA_CHAT=server``),
against a fake engine on an in-process transport: what is sent (turns, tools, the schema as the
grammar module writes it, the slot, ``max_tokens`` trimmed to the room left) and how its streamed
answer comes back (the server's call fragments joined, a call left as text recovered, the answer's
check against the whole schema)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from engine_asks import chat_ask

from qfnb.local.engines.api import generate_blocking
from qfnb.local.engines.ask import ChatAsk
from qfnb.local.engines.base import FINISH_TOOL_CALLS, PromptTooLong
from qfnb.local.engines.call_state import calls
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama import watchdog
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.transport import Endpoint
from qfnb.local.engines.options import EngineOptions

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK_PARIS = [{"role": "user", "content": "What's the weather in Paris?"}]

Chunk = dict[str, Any]


def _sse(chunks: list[Chunk]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _delta(**delta: Any) -> Chunk:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def _end(finish: str, prompt: int = 12, completion: int = 9) -> list[Chunk]:
    return [{"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
            {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}]


class FakeLlama:
    """``/apply-template`` (a text of ``prompt_tokens`` words), ``/tokenize`` (``prompt_tokens`` tokens) and a
    streaming ``/v1/chat/completions`` answering each request with the next of ``answers``."""

    def __init__(self, answers: list[list[Chunk]], prompt_tokens: int = 12) -> None:
        self.answers, self.prompt_tokens = list(answers), prompt_tokens
        self.chats: list[dict[str, Any]] = []
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        body = json.loads(request.content)
        if request.url.path == "/apply-template":
            # a text as long as its tokens say (a token is at least a byte): a short one is sent untokenized
            return httpx.Response(200, json={"prompt": "<|im_start|>user" + " x" * self.prompt_tokens +
                                             "<|im_start|>assistant\n"})
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"tokens": list(range(self.prompt_tokens))})
        assert request.url.path in ("/v1/chat/completions", "/v1/completions"), request.url.path
        self.chats.append(body)
        return httpx.Response(200, stream=httpx.ByteStream(_sse(self.answers.pop(0))),
                              headers={"content-type": "text/event-stream"})


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[LlamaEngine, FakeLlama]]:
    def make(answers: list[list[Chunk]], prompt_tokens: int = 12, n_ctx: int = 4096) -> tuple[LlamaEngine, FakeLlama]:
        fake = FakeLlama(answers, prompt_tokens)
        client = httpx.AsyncClient(transport=httpx.MockTransport(fake))
        monkeypatch.setattr(transport, "client", lambda: client)
        target = Endpoint("http://127.0.0.1:9/v1", "key")
        engine = LlamaEngine("qwen", lambda: target, gate=LaneGate("qwen", 2, 8), n_ctx=n_ctx, chat_layer="server")
        return engine, fake
    return make


def _ask(messages: list[dict[str, Any]], **fields: Any) -> ChatAsk:
    base = chat_ask(messages, temperature=0.0, max_tokens=64)
    return ChatAsk(model="", messages=base.messages, sampling=base.sampling, **fields)


def test_a_call_is_sent_as_turns_and_the_servers_fragments_come_back_whole(served: Any) -> None:
    engine, fake = served([[
        _delta(tool_calls=[{"index": 0, "id": "call_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": ""}}]),
        _delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
        _delta(tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}]),
        *_end("tool_calls")]], prompt_tokens=4050)
    deltas = generate_blocking(engine, _ask(ASK_PARIS, tools=(WEATHER,)))
    sent = fake.chats[0]
    assert fake.paths == ["/apply-template", "/tokenize", "/v1/chat/completions"]
    assert sent["messages"] == ASK_PARIS and sent["tools"] == [WEATHER] and sent["tool_choice"] == "auto"
    assert sent["stream"] is True and isinstance(sent["id_slot"], int)  # the slot the gate gave it
    assert sent["max_tokens"] == 4096 - 4050  # trimmed to the room the counted prompt leaves
    calls = [c for d in deltas for c in d.tool_calls or ()]
    assert calls == [{"index": 0, "id": "call_1", "type": "function",
                      "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    assert deltas[-1].finish_reason == FINISH_TOOL_CALLS
    assert (deltas[-1].prompt_tokens, deltas[-1].completion_tokens) == (12, 9)


def test_a_required_call_stays_with_the_platforms_opener_and_call_grammar(served: Any) -> None:
    engine, fake = served([[{"choices": [{"index": 0, "text": '{"name": "get_weather", "arguments": {"city": "Paris"}}',
                                          "finish_reason": None}]}, *_end("stop")]])
    deltas = generate_blocking(engine, _ask(ASK_PARIS, tools=(WEATHER,), tool_choice="required"))
    assert fake.paths == ["/apply-template", "/v1/completions"]  # a short prompt: sent as text
    sent = fake.chats[0]
    assert sent["prompt"].endswith("<|im_start|>assistant\n") and "tools" not in sent
    assert sent["json_schema"]["properties"]["name"] == {"const": "get_weather"}
    calls = [c for d in deltas for c in d.tool_calls or ()]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"})]


def test_a_call_the_server_left_as_text_becomes_tool_calls_under_auto(served: Any) -> None:
    fenced = '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```'
    engine, fake = served([[_delta(content=fenced[:20]), _delta(content=fenced[20:]), *_end("stop")]])
    deltas = generate_blocking(engine, _ask(ASK_PARIS, tools=(WEATHER,)))
    assert fake.chats[0]["tool_choice"] == "auto"
    calls = [c for d in deltas for c in d.tool_calls or ()]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"})]
    assert "".join(d.text for d in deltas) == ""


def test_plain_text_under_auto_streams_as_it_is(served: Any) -> None:
    engine, _ = served([[_delta(content="It is sunny."), *_end("stop")]])
    deltas = generate_blocking(engine, _ask(ASK_PARIS, tools=(WEATHER,)))
    assert "".join(d.text for d in deltas) == "It is sunny." and not any(d.tool_calls for d in deltas)


def test_a_schema_goes_as_the_grammar_modules_fields(served: Any) -> None:
    schema = {"type": "object", "properties": {"c": {"enum": ["red", "green"]}}, "required": ["c"]}
    engine, fake = served([[_delta(content='{"c": "red"}'), *_end("stop")]])
    deltas = generate_blocking(engine, _ask([{"role": "user", "content": "a colour"}], schema=schema))
    sent = fake.chats[0]
    assert "response_format" not in sent and "tools" not in sent
    assert sent["json_schema"]["properties"]["c"] == {"type": "string", "pattern": "^(green|red)$"}
    assert json.loads("".join(d.text for d in deltas)) == {"c": "red"}


def test_what_the_grammar_cannot_enforce_is_checked_and_written_again(served: Any) -> None:
    schema = {"type": "object", "required": ["a"],
              "properties": {"a": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}}}
    engine, fake = served([[_delta(content='{"a": [1, 1]}'), *_end("stop")],
                           [_delta(content='{"a": [1, 2]}'), *_end("stop")]])
    deltas = generate_blocking(engine, _ask([{"role": "user", "content": "two numbers"}], schema=schema))
    assert len(fake.chats) == 2 and "seed" in fake.chats[1]  # the miss written again, with another seed
    assert json.loads("".join(d.text for d in deltas)) == {"a": [1, 2]}
    assert deltas[-1].completion_tokens == 18 and deltas[-1].schema_miss is None  # both answers counted


def test_a_prompt_that_does_not_fit_is_refused_before_any_chat_is_sent(served: Any) -> None:
    engine, fake = served([], prompt_tokens=5000)
    with pytest.raises(PromptTooLong, match="5000 tokens"):
        generate_blocking(engine, _ask(ASK_PARIS, tools=(WEATHER,)))
    assert fake.chats == []


def test_the_setting_names_itself_on_a_bad_value() -> None:
    assert EngineOptions.from_env({}).chat_layer == "own"
    assert EngineOptions.from_env({"QFNB_LLAMA_CHAT": " Server "}).chat_layer == "server"
    with pytest.raises(ValueError, match="QFNB_LLAMA_CHAT must be one of own, server, got 'both'"):
        EngineOptions.from_env({"QFNB_LLAMA_CHAT": "both"})


def test_a_chat_sent_again_after_a_restart_goes_on_from_its_text_as_the_assistants_turn() -> None:
    body = {"messages": ASK_PARIS, "max_tokens": 64}
    again = watchdog._continued(body, "It is", 2)
    assert again["messages"] == [*ASK_PARIS, {"role": "assistant", "content": "It is"}]
    assert again["max_tokens"] == 62 and watchdog._continued(body, "", 0) is body


def test_a_plain_chat_goes_to_the_chat_endpoint_too(served: Any) -> None:
    engine, fake = served([[_delta(content="Hello"), *_end("stop")]])
    deltas = generate_blocking(engine, _ask([{"role": "user", "content": "hi"}]))
    assert fake.paths == ["/apply-template", "/v1/chat/completions"]  # short: counted by the engine alone
    assert fake.chats[0]["messages"] == [{"role": "user", "content": "hi"}] and "tools" not in fake.chats[0]
    assert "".join(d.text for d in deltas) == "Hello"


def test_speculative_decodings_draft_tokens_are_counted_per_model(served: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-server reports the tokens it drafted and those the model accepted with each answer
    (``timings``); the platform adds them up per model for ``/metrics``."""
    from collections import Counter

    monkeypatch.setattr(calls, "_drafted", Counter({"qwen": 5}))  # this test's counts only
    monkeypatch.setattr(calls, "_accepted", Counter({"qwen": 1}))
    before = calls.drafts()["qwen"]
    timings = {"choices": [], "timings": {"draft_n": 10, "draft_n_accepted": 7, "predicted_n": 9}}
    engine, _ = served([[_delta(content='{"c": "red"}'), *_end("stop"), timings]])
    schema = {"type": "object", "properties": {"c": {"enum": ["red", "green"]}}, "required": ["c"]}
    deltas = generate_blocking(engine, _ask([{"role": "user", "content": "a colour"}], schema=schema))
    assert "".join(d.text for d in deltas) == '{"c": "red"}'
    assert calls.drafts()["qwen"] == (before[0] + 10, before[1] + 7)
