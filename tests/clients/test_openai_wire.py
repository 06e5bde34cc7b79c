"""The OpenAI wire as the real ``openai`` SDK and today's clients send it, against the platform's
app with engine doubles (issue 42, part 1): content as an array of parts on every role, the
``developer`` role, explicit nulls, base64 embeddings (the SDK's default), include_usage's own
last chunk, and JSON errors for unknown routes and models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfnb.protocol.wires.chat.openai_wire import decode_vector, encode_vector, text_messages
from tests.fakes.local_platform import ServedPlatform

openai = pytest.importorskip("openai")


def sdk(served: ServedPlatform, prefix: str = "/v1") -> Any:
    return openai.OpenAI(base_url=served.url + prefix, api_key=served.bearer_token(), max_retries=0, timeout=30)


def parts(text: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": text}]


@pytest.mark.parametrize("prefix", ["/v1", "/v2"])
def test_content_parts_on_every_role_developer_and_nulls(served: ServedPlatform, prefix: str) -> None:
    client = sdk(served, prefix)
    answer = client.chat.completions.create(
        model="tiny-chat", n=None, stream=None, temperature=None, stop=None,  # explicit nulls, as LangChain sends
        messages=[{"role": "developer", "content": parts("be brief")},
                  {"role": "system", "content": [*parts("answer in English"), *parts("and kindly")]},
                  {"role": "user", "content": parts("first question")},
                  {"role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot say"}]},
                  {"role": "user", "content": parts("hello there")}])
    assert answer.choices[0].message.content == "tiny-chat: hello there"
    seen = served.registry.engines["tiny-chat"].calls[-1]
    assert seen["system"] == "be brief\nanswer in English\nand kindly"
    assert [m["content"] for m in seen["messages"]] == ["first question", "I cannot say", "hello there"]


def test_an_image_part_to_a_text_model_is_a_400_that_says_so(served: ServedPlatform) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(served).chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": [
            *parts("what is this?"), {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    error = caught.value.body
    assert error["param"] == "messages[0].content[1]" and "text only" in error["message"]
    assert "tiny-chat" not in served.registry.engines  # refused before any engine work


def test_embeddings_default_base64_and_float(served: ServedPlatform) -> None:
    client = sdk(served)
    texts = ["one", "two words"]
    default = client.embeddings.create(model="tiny-embed", input=texts)  # the SDK asks for base64
    floats = client.embeddings.create(model="tiny-embed", input=texts, encoding_format="float")
    expected = [[float(len(t)), float(sum(map(ord, t)) % 7), 1.0] for t in texts]
    assert [d.embedding for d in default.data] == expected == [d.embedding for d in floats.data]
    raw = httpx.post(served.url + "/v1/embeddings", headers={"Authorization": "Bearer " + served.bearer_token()},
                     json={"model": "tiny-embed", "input": "one", "encoding_format": "base64"}).json()
    assert isinstance(raw["data"][0]["embedding"], str)
    assert decode_vector(raw["data"][0]["embedding"]) == expected[0]
    with pytest.raises(openai.BadRequestError, match="encoding_format"):
        client.embeddings.create(model="tiny-embed", input="x", encoding_format="int8")  # type: ignore[arg-type]


def test_include_usage_comes_in_a_last_chunk_of_its_own(served: ServedPlatform) -> None:
    chunks = list(sdk(served).chat.completions.create(
        model="tiny-chat", messages=[{"role": "user", "content": "hello there"}], stream=True,
        stream_options={"include_usage": True}))
    *answer, last = chunks
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 3
    assert all(c.usage is None for c in answer)
    assert answer[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in answer) == "tiny-chat: hello there"


def test_unknown_routes_and_models_answer_json_errors(served: ServedPlatform) -> None:
    client = sdk(served)
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.body["code"] == "model_not_found" and "tiny-chat" in caught.value.body["message"].lower()
    headers = {"Authorization": "Bearer " + served.bearer_token()}
    for method, path in [("GET", "/v1/no/such/route"), ("POST", "/v2/nothing"), ("DELETE", "/v1/chat/completions")]:
        resp = httpx.request(method, served.url + path, headers=headers)
        assert resp.status_code in (404, 405) and resp.headers["content-type"] == "application/json"
        assert resp.json()["error"]["type"] == "invalid_request_error" and path in resp.json()["error"]["message"]
    v1 = httpx.post(served.url + "/rpc/2.0/nowhere", json={})
    assert v1.status_code == 404 and "error_code" in v1.json()


def test_batch_rows_take_parts_developer_and_nulls(tmp_path: Path) -> None:
    from qfnb.local.domain.batch.rows import RowError, parse_line

    line = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {
        "model": "tiny-chat", "max_tokens": None, "temperature": None, "messages": [
            {"role": "developer", "content": parts("be brief")}, {"role": "user", "content": parts("hi")}]}})
    row = parse_line(line.encode(), 1, None, {})
    assert row.system == "be brief" and row.messages == [{"role": "user", "content": "hi"}]
    image = json.dumps({"body": {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "x"}}]}]}})
    with pytest.raises(RowError, match=r"messages\[0\]\.content\[0\].*text only"):
        parse_line(image.encode(), 2, "tiny-chat", {})


def test_the_wire_helpers_round_trip() -> None:
    vector = [0.5, -1.25, 3.0]
    assert decode_vector(encode_vector(vector, "base64")) == vector
    assert encode_vector(vector, "float") == vector
    turns = text_messages([{"role": "developer", "content": "x"},
                           {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}])
    assert turns == [{"role": "system", "content": "x"}, {"role": "assistant", "content": None,
                                                           "tool_calls": [{"id": "c"}]}]
