"""The OpenAI API on the local platform, in front of an OpenAI-compatible engine double: one base
URL (``/v1`` and ``/v2``) for chat, completions, embeddings, models, files, batches and rerank, and
a walk over each chat route's published fields: every one takes effect (seen in what the engine
received, or in the answer) or is refused with a 400 naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai_engine import FakeEngine
from fakes.cloud import serve
from platform_helpers import bearer, make_settings, token
from starlette.testclient import TestClient

from qfnb.local.engines.registry import EngineOptions, EngineRegistry, parse_external
from qfnb.local.server.app import create_app
from qfnb.protocol.wires.chat.fields import OPENAI_CHAT_FIELDS
from qfnb.protocol.wires.codec.sse import SSEDecoder
from qfnb.protocol.wires.qianfan.inference import V1_CHAT_FIELDS
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

MSG = [{"role": "user", "content": "hello there"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture()
def platform(tmp_path: Path) -> Iterator[tuple[TestClient, FakeEngine]]:
    fake = FakeEngine(tokens=4, delay=0.0)
    with serve(fake.app) as url:
        external = parse_external({"Ext-Chat": {"base_url": url + "/v1", "model": "remote-7b"}})
        registry = EngineRegistry(tmp_path, options=EngineOptions(slots=2, queue=2, external=external))
        with TestClient(create_app(make_settings(tmp_path), registry), base_url="http://127.0.0.1:8123") as client:
            yield client, fake
        registry.close()


#: field -> (a value to send, how its effect shows: a check of (engine body, answer))
Check = Any
OPENAI_WALK: dict[str, tuple[Any, Check]] = {
    "model": ("ext-chat", lambda sent, ans: ans["model"] == "ext-chat" and sent["model"] == "remote-7b"),
    "messages": (MSG, lambda sent, ans: sent["messages"] == MSG),
    "stream": (True, lambda sent, ans: ans["streamed"]),
    "stream_options": ({"include_usage": True}, lambda sent, ans: ans["usage"]["completion_tokens"] == 4),
    "temperature": (0, lambda sent, ans: sent["temperature"] == 0.0),
    "top_p": (0.5, lambda sent, ans: sent["top_p"] == 0.5),
    "top_k": (5, lambda sent, ans: sent["top_k"] == 5),
    "max_tokens": (2, lambda sent, ans: sent["max_tokens"] == 2 and ans["choices"][0]["finish_reason"] == "length"),
    "max_completion_tokens": (3, lambda sent, ans: sent["max_tokens"] == 3),
    "stop": ("w9", lambda sent, ans: sent["stop"] == ["w9"]),
    "seed": (11, lambda sent, ans: sent["seed"] == 11),
    "n": (2, lambda sent, ans: [c["index"] for c in ans["choices"]] == [0, 1]),
    "frequency_penalty": (0.5, lambda sent, ans: sent["frequency_penalty"] == 0.5),
    "presence_penalty": (0.25, lambda sent, ans: sent["presence_penalty"] == 0.25),
    "penalty_score": (1.2, lambda sent, ans: sent["repetition_penalty"] == 1.2),
    "logit_bias": ({"42": 5}, lambda sent, ans: sent["logit_bias"] == {"42": 5}),
    "logprobs": (True, lambda sent, ans: sent["logprobs"] is True and ans["choices"][0]["logprobs"] is not None),
    "top_logprobs": (2, lambda sent, ans: sent["top_logprobs"] == 2),
    "tools": ([WEATHER], lambda sent, ans: sent["tools"] == [WEATHER]),
    "tool_choice": ("required", lambda sent, ans: sent["tool_choice"] == "required"),
    "parallel_tool_calls": (False, lambda sent, ans: sent["parallel_tool_calls"] is False),
    "response_format": ({"type": "json_object"}, lambda sent, ans: sent["response_format"] == {"type": "json_object"}),
    # metadata about the caller: accepted, never part of what the model sees
    "user": ("u-1", lambda sent, ans: "user" not in sent["messages"][0]),
    "user_id": ("u-1", lambda sent, ans: ans["choices"][0]["message"]["content"]),
    "extra_parameters": ({"request_source": "sdk"}, lambda sent, ans: ans["choices"][0]["message"]["content"]),
    # the 2026 fields: acted on, or named in the ignored-fields header (an external engine keeps no slot)
    "store": (True, lambda sent, ans: "store" not in sent and IGNORED not in ans["headers"]),
    "metadata": ({"k": "v"}, lambda sent, ans: ans["headers"][IGNORED] == "metadata"),  # kept only with store
    "service_tier": ("flex", lambda sent, ans: ans["service_tier"] == "default" and "service_tier" not in sent),
    "prompt_cache_key": ("conv-1", lambda sent, ans: ans["headers"][IGNORED] == "prompt_cache_key"),
    "safety_identifier": ("u-1", lambda sent, ans: "safety_identifier" not in sent and IGNORED not in ans["headers"]),
    "reasoning_effort": ("low", lambda sent, ans: sent["reasoning_effort"] == "low" and IGNORED not in ans["headers"]),
    "modalities": (["text"], lambda sent, ans: "modalities" not in sent and ans["choices"][0]["message"]["content"]),
}
IGNORED = "x-qfnb-ignored-fields"
#: what a field needs beside it
NEEDS = {"top_logprobs": {"logprobs": True}, "tool_choice": {"tools": [WEATHER]}, "parallel_tool_calls": {
    "tools": [WEATHER]}, "stream_options": {"stream": True}}


def _answer(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post(path, headers={"Authorization": "Bearer " + bearer(client)}, json=body)
    assert resp.status_code == 200, resp.text
    if not body.get("stream"):
        return {**resp.json(), "streamed": False, "headers": resp.headers}
    events = [i.data for i in SSEDecoder().feed(resp.text) if not i.done]
    finishing = [e for e in events if e["choices"]][-1]
    return {"model": events[0]["model"], "streamed": True, "usage": events[-1].get("usage"),
            "choices": [{"finish_reason": finishing["choices"][0]["finish_reason"]}], "headers": resp.headers}


@pytest.mark.parametrize("prefix", ["/v1", "/v2"])
def test_every_openai_chat_field_takes_effect(platform: tuple[TestClient, FakeEngine], prefix: str) -> None:
    client, fake = platform
    assert set(OPENAI_WALK) == set(OPENAI_CHAT_FIELDS), "a published field is not walked"
    for field, (value, took_effect) in OPENAI_WALK.items():
        body = {"model": "ext-chat", "messages": MSG, **NEEDS.get(field, {}), field: value}
        answer = _answer(client, prefix + "/chat/completions", body)
        assert took_effect(fake.bodies[-1], answer), (field, fake.bodies[-1], answer)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("functions", [WEATHER["function"]], "use 'tools' instead"),
    ("function_call", "auto", "use 'tool_choice' instead"),
    ("audio", {"voice": "x"}, "audio: is not supported"),
    ("web_search", {"enable": True}, "web_search: is not supported"),
    ("temperature", 2.5, "temperature: must be in [0.0, 2.0]"),
    ("n", 9, "n: must be in [1, 8]"),
    ("top_logprobs", 2, "needs logprobs: true"),
    ("tool_choice", {"type": "function", "function": {"name": "nope"}}, "'nope' is not one of the tools"),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"a": {"type": "string", "pattern": "^([a-z]{0,40}){0,40}$"}}}}},
     "properties.a.pattern"),
])
def test_a_field_the_platform_cannot_honour_is_refused_by_name(platform: tuple[TestClient, FakeEngine], field: str,
                                                               value: Any, says: str) -> None:
    client, fake = platform
    sent = len(fake.bodies)
    body = {"model": "ext-chat", "messages": MSG, field: value}
    if field == "tool_choice":
        body["tools"] = [WEATHER]
    resp = client.post("/v1/chat/completions", headers={"Authorization": "Bearer " + bearer(client)}, json=body)
    assert resp.status_code == 400 and says in resp.json()["error"]["message"], resp.text
    assert resp.json()["error"]["param"].split(".")[0] == field
    assert len(fake.bodies) == sent  # refused before anything reached the engine


V1_WALK: dict[str, tuple[Any, Check]] = {
    "messages": (MSG, lambda sent, ans: sent["messages"][-1] == MSG[0]),
    "system": ("be brief", lambda sent, ans: sent["messages"][0] == {"role": "system", "content": "be brief"}),
    "stream": (True, lambda sent, ans: ans["streamed"]),
    "temperature": (0.3, lambda sent, ans: sent["temperature"] == 0.3),
    "top_p": (0.5, lambda sent, ans: sent["top_p"] == 0.5),
    "top_k": (5, lambda sent, ans: sent["top_k"] == 5),
    "penalty_score": (1.2, lambda sent, ans: sent["repetition_penalty"] == 1.2),
    "frequency_penalty": (0.5, lambda sent, ans: sent["frequency_penalty"] == 0.5),
    "presence_penalty": (0.5, lambda sent, ans: sent["presence_penalty"] == 0.5),
    "max_output_tokens": (2, lambda sent, ans: sent["max_tokens"] == 2 and ans["is_truncated"]),
    "stop": (["w9"], lambda sent, ans: sent["stop"] == ["w9"]),
    "seed": (7, lambda sent, ans: sent["seed"] == 7),
    "functions": ([WEATHER["function"]], lambda sent, ans: sent["tools"] == [WEATHER]),
    "tool_choice": ({"type": "function", "function": {"name": "get_weather"}},
                    lambda sent, ans: sent["tool_choice"] == "required"),
    "response_format": ("json_object", lambda sent, ans: sent["response_format"]["json_schema"]["schema"] == {
        "type": "object"}),
    "user_id": ("u-1", lambda sent, ans: ans["result"]),
    "extra_parameters": ({"request_source": "sdk"}, lambda sent, ans: ans["result"]),
    "disable_search": (True, lambda sent, ans: ans["result"]),  # the local platform never searches
    "enable_citation": (False, lambda sent, ans: ans["result"]),
    "enable_trace": (False, lambda sent, ans: ans["result"]),
}


def test_every_v1_chat_field_takes_effect_or_is_refused(platform: tuple[TestClient, FakeEngine]) -> None:
    client, fake = platform
    assert set(V1_WALK) == set(V1_CHAT_FIELDS), "a published field is not walked"
    path = MODEL_API_PREFIX + "/chat/ext-chat"
    for field, (value, took_effect) in V1_WALK.items():
        body = {"messages": MSG, field: value}
        if field == "tool_choice":
            body["functions"] = [WEATHER["function"]]
        resp = client.post(path, params={"access_token": token(client)}, json=body)
        if body.get("stream"):
            answer = {"streamed": True, **resp.json()} if resp.headers["content-type"].startswith(
                "application/json") else {"streamed": "is_end" in resp.text}
        else:
            answer = {"streamed": False, **resp.json()}
        assert "error_code" not in answer, (field, answer)
        assert took_effect(fake.bodies[-1], answer), (field, fake.bodies[-1], answer)
    for field, value in (("enable_citation", True), ("enable_trace", True), ("web_search", {"enable": True}),
                         ("n", 2), ("temperature", 0)):
        refused = client.post(path, params={"access_token": token(client)}, json={"messages": MSG, field: value}).json()
        assert refused["error_code"] == 336003 and refused["error_msg"].startswith(field + ":"), refused
    zero = client.post(path, params={"access_token": token(client)}, json={"messages": MSG, "temperature": 0}).json()
    assert "temperature 0 on the OpenAI routes" in zero["error_msg"]


@pytest.mark.parametrize("prefix", ["/v1", "/v2"])
def test_one_base_url_serves_the_whole_openai_api(platform: tuple[TestClient, FakeEngine], prefix: str) -> None:
    openai = pytest.importorskip("openai")
    client, _ = platform
    sdk = openai.OpenAI(base_url=f"http://127.0.0.1:8123{prefix}", api_key=bearer(client), http_client=client)
    assert sdk.chat.completions.create(model="Ext-Chat", messages=MSG).choices[0].message.content == "w0 w1 w2 w3"
    assert sdk.completions.create(model="Ext-Chat", prompt="hi", max_tokens=2).choices[0].text == "w0 w1"
    assert "Ext-Chat" in {m.id for m in sdk.models.list()}
    uploaded = sdk.files.create(file=("rows.jsonl", json.dumps({
        "custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "Ext-Chat", "messages": MSG}}).encode()), purpose="batch")
    batch = sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert sdk.batches.retrieve(batch.id).id == batch.id
    assert uploaded.id in {f.id for f in sdk.files.list()}
    ranked = client.post(prefix + "/rerankers", headers={"Authorization": "Bearer " + bearer(client)},
                         json={"model": "bce-reranker-base", "query": "q", "documents": ["a", "b"]})
    assert ranked.status_code in (200, 404), ranked.text  # 404 only where no embedding model can load
    refused = client.post(prefix + "/embeddings", headers={"Authorization": "Bearer " + bearer(client)},
                          json={"model": "Ext-Chat", "input": "x", "dimensions": 8})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "dimensions"


def test_models_route_lists_what_the_platform_serves(platform: tuple[TestClient, FakeEngine]) -> None:
    client, _ = platform
    served = {m.name for m in client.app.state.platform.served()}
    for prefix in ("/v1", "/v2"):
        listed = client.get(prefix + "/models", headers={"Authorization": "Bearer " + bearer(client)}).json()
        assert {m["id"] for m in listed["data"]} == served


def test_openai_client_and_status_point_at_the_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("openai")
    import argparse
    import sys

    import qfnb
    from qfnb import cli
    from qfnb._core.backend import daemon

    root = tmp_path / "data"
    monkeypatch.setenv("QFNB_DATA_DIR", str(root))
    doubles = ["--registry", "tests.local.platform_doubles:FakeRegistry", "--worker-command",
               f"{sys.executable} {Path(__file__).with_name('fake_worker.py')}"]
    platform = daemon.ensure_daemon(root, serve_args=doubles)
    try:
        sdk = qfnb.openai_client(data_dir=root)
        assert str(sdk.base_url).rstrip("/") == platform.base_url + "/v1"
        answer = sdk.chat.completions.create(model="tiny-chat", messages=MSG)
        assert answer.choices[0].message.content == "tiny-chat: hello there"
        assert {m.id for m in sdk.models.list()} >= {"Tiny-Chat", "Tiny-Embed"}
        assert qfnb.openai_client(data_dir=root, api="v2").models.list().data
        assert type(qfnb.async_openai_client(data_dir=root)).__name__ == "AsyncOpenAI"
        assert cli.status(argparse.Namespace(data_dir=root)) == 0
        printed = capsys.readouterr().out
        assert f"base_url {platform.base_url}/v1" in printed and "qfnb.openai_client()" in printed
        assert platform.iam_secret_key not in printed
    finally:
        daemon.stop_daemon(root, force=True, timeout=20)


def test_v1_function_history_reaches_the_engine_as_tool_turns(platform: tuple[TestClient, FakeEngine]) -> None:
    client, fake = platform
    history = [{"role": "user", "content": "weather in Paris?"},
               {"role": "assistant", "content": "", "function_call": {"name": "get_weather",
                                                                      "arguments": '{"city": "Paris"}'}},
               {"role": "function", "name": "get_weather", "content": '{"temp_c": 17}'}]
    assert len(history) % 2 == 1
    resp = client.post(MODEL_API_PREFIX + "/chat/ext-chat", params={"access_token": token(client)},
                       json={"messages": history, "functions": [WEATHER["function"]]}).json()
    assert resp["result"] == "w0 w1 w2 w3", resp
    sent = fake.bodies[-1]["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "tool_call_id": sent[1]["tool_calls"][0]["id"], "name": "get_weather",
                       "content": '{"temp_c": 17}'}


def test_a_plain_v1_chat_carries_an_earlier_exchanges_tool_turns_to_the_engine(
        platform: tuple[TestClient, FakeEngine]) -> None:
    """A ``%%qfchat`` cell without tools after a tool cell: its history's call and result reach the
    engine as tool turns in order, with no tools offered."""
    client, fake = platform
    history = [{"role": "user", "content": "weather in Paris?"},
               {"role": "assistant", "content": "", "function_call": {"name": "get_weather",
                                                                      "arguments": '{"city": "Paris"}'}},
               {"role": "function", "name": "get_weather", "content": '{"temp_c": 17}'},
               {"role": "assistant", "content": "17 C."}, {"role": "user", "content": "and tomorrow?"}]
    resp = client.post(MODEL_API_PREFIX + "/chat/ext-chat", params={"access_token": token(client)},
                       json={"messages": history}).json()
    assert resp["result"] == "w0 w1 w2 w3", resp
    sent = fake.bodies[-1]
    assert "tools" not in sent
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent["messages"][2]["tool_call_id"] == sent["messages"][1]["tool_calls"][0]["id"]


def test_qfmodels_says_the_default_reranker_is_the_embedding_model_by_cosine() -> None:
    from qfnb.notebook.models.discovery import rows_from_services

    services = {"common": [{"name": "Tiny-Embed", "apiType": "embeddings", "url": "u1"},
                           {"name": "Tiny-Embed", "apiType": "reranker", "url": "u2"},
                           {"name": "tiny-rerank", "apiType": "reranker", "url": "u3"}], "custom": []}
    rows = {(r.kind, r.name): r.role for r in rows_from_services(services, {})}
    assert rows[("reranker", "Tiny-Embed")] == "rerank (embedding cosine)"
    assert rows[("embedding", "Tiny-Embed")] == "embedding"
    assert rows[("reranker", "tiny-rerank")] == "rerank"  # a cross-encoder (qfnb models add --role rerank)


def test_a_named_v1_tool_choice_offers_that_function_alone_and_requires_it(
        platform: tuple[TestClient, FakeEngine]) -> None:
    client, fake = platform
    other = {**WEATHER["function"], "name": "get_time"}
    client.post(MODEL_API_PREFIX + "/chat/ext-chat", params={"access_token": token(client)},
                json={"messages": [{"role": "user", "content": "weather in Paris?"}],
                      "functions": [other, WEATHER["function"]],
                      "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    sent = fake.bodies[-1]
    assert sent["tools"] == [WEATHER] and sent["tool_choice"] == "required"


@pytest.mark.parametrize("prefix", ["/v1", "/v2"])
def test_embeddings_take_openais_batch_and_refuse_beyond_it(platform: tuple[TestClient, FakeEngine],
                                                            prefix: str) -> None:
    from qfnb.protocol.limits import LOCAL_MAX_EMBEDDING_TEXTS

    client, _ = platform
    refused = client.post(prefix + "/embeddings", headers={"Authorization": "Bearer " + bearer(client)},
                          json={"model": "all-MiniLM-L6-v2", "input": ["a"] * (LOCAL_MAX_EMBEDDING_TEXTS + 1)})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "input" and f"at most {LOCAL_MAX_EMBEDDING_TEXTS} texts per call" in error["message"]


def test_rerank_documents_get_the_embedding_cap_before_any_engine(platform: tuple[TestClient, FakeEngine]) -> None:
    # the probe: 64 documents of 120,000 characters held the embedder 11.8 s (an embeddings call beside it 11.3 s)
    from qfnb.protocol.limits import MAX_EMBEDDING_CHARS

    client, fake = platform
    auth = {"Authorization": f"Bearer {bearer(client)}"}
    long_docs = ["word " * 24_000] * 64
    refused = client.post("/v1/rerank", headers=auth, json={"query": "q", "documents": long_docs})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "documents[0]" and f"at most {MAX_EMBEDDING_CHARS}" in error["message"], error
    query = client.post("/v2/rerankers", headers=auth,
                        json={"query": "q" * (MAX_EMBEDDING_CHARS + 1), "documents": ["a", "b"]})
    assert query.status_code == 400 and query.json()["error"]["param"] == "query", query.text
    v1 = client.post(MODEL_API_PREFIX + "/reranker/bce_reranker_base", params={"access_token": token(client)},
                     json={"query": "q", "documents": ["short", "x" * (MAX_EMBEDDING_CHARS + 1)]})
    assert v1.status_code == 200 and "documents[1]" in v1.json()["error_msg"], v1.text
    assert not fake.bodies  # nothing reached an engine
