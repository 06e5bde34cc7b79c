"""The 2026 cloud double speaks the shapes a real client reads: driven by the ``openai`` SDK
(in-process through httpx's ASGI transport, and once over a socket), plus raw checks that v1 is refused."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import openai
import pytest
from PIL import Image

from qfnb._core.config import Config
from qfnb.protocol.wires.qianfan.signing import bce_date, sign
from tests.fakes.cloud import PREFIX
from tests.fakes.cloud_v2 import FakeQianfanV2, png
from tests.fakes.fixtures_v2 import cloud_v2, fake_server, key_only_config, key_only_env

__all__ = ["cloud_v2", "fake_server"]


@pytest.fixture
async def http(cloud_v2: FakeQianfanV2) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cast(Any, cloud_v2))
    async with httpx.AsyncClient(transport=transport, base_url=cloud_v2.base_url) as client:
        yield client


def sdk(fake: FakeQianfanV2, http: httpx.AsyncClient, key: str) -> openai.AsyncOpenAI:
    """The openai SDK pointed at ``fake``'s ``/v2`` with ``key``, through ``http`` (no retries)."""
    # openai 3.x types its client as httpx2's; an httpx client works the same
    return openai.AsyncOpenAI(api_key=key, base_url=f"{fake.base_url}/v2", http_client=cast(Any, http), max_retries=0)


@pytest.fixture
def client(cloud_v2: FakeQianfanV2, http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return sdk(cloud_v2, http, cloud_v2.key)


async def test_chat_answers_the_openai_shape(client: openai.AsyncOpenAI, cloud_v2: FakeQianfanV2) -> None:
    out = await client.chat.completions.create(
        model="ernie-4.5-turbo-32k", messages=[{"role": "system", "content": "be brief"},
                                               {"role": "user", "content": "你好 there"}])
    assert out.object == "chat.completion" and out.model == "ernie-4.5-turbo-32k"
    answer = "echo[ernie-4.5-turbo-32k]: 你好 there"
    assert out.choices[0].message.role == "assistant" and out.choices[0].message.content == answer
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (len("be brief") + len("你好 there"), len(answer))
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    sent = cloud_v2.calls("/v2/chat/completions")[0]
    assert sent.headers["authorization"] == f"Bearer {cloud_v2.key}"


async def test_chat_honours_max_tokens_and_n(client: openai.AsyncOpenAI) -> None:
    out = await client.chat.completions.create(model="ernie-lite-8k", messages=[{"role": "user", "content": "long"}],
                                               max_tokens=5, n=2)
    assert [c.message.content for c in out.choices] == ["echo["] * 2
    assert [c.finish_reason for c in out.choices] == ["length", "length"]
    assert out.usage is not None and out.usage.completion_tokens == 10


async def test_chat_streams_chunks_then_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="deepseek-v3.2", stream=True,
                                                  messages=[{"role": "user", "content": "stream me"}],
                                                  stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo[deepseek-v3.2]: stream me"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == len(text)


async def test_embeddings_are_deterministic_unit_vectors(client: openai.AsyncOpenAI) -> None:
    out = await client.embeddings.create(model="embedding-v1", input=["白色T恤", "白色T恤", "blue sky"])
    assert out.object == "list" and [d.index for d in out.data] == [0, 1, 2]
    first, again, other = (d.embedding for d in out.data)
    assert first == again and first != other
    assert abs(sum(v * v for v in first) - 1) < 1e-4
    assert out.usage.prompt_tokens == len("白色T恤") * 2 + len("blue sky")


async def test_embedding_limits_are_the_documented_ones(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.embeddings.create(model="tao-8k", input=["one", "two"])
    assert info.value.code == "invalid_argument"


async def test_rerankers_sort_by_overlap(http: httpx.AsyncClient, cloud_v2: FakeQianfanV2) -> None:
    headers = {"authorization": f"Bearer {cloud_v2.key}"}
    docs = ["北京美食很多", "上海天气晴", "上海气候"]
    out = (await http.post("/v2/rerankers", headers=headers,
                           json={"model": "bce-reranker-base", "query": "上海天气", "documents": docs,
                                 "top_n": 2})).json()
    assert out["object"] == "rerank_list"
    assert [r["index"] for r in out["results"]] == [1, 2]
    assert out["results"][0] == {"document": "上海天气晴", "relevance_score": 1.0, "index": 1}
    assert out["results"][0]["relevance_score"] >= out["results"][1]["relevance_score"]
    too_many = await http.post("/v2/rerankers", headers=headers,
                               json={"model": "bce-reranker-base", "query": "q", "documents": ["d"] * 65})
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "invalid_argument"


async def test_images_are_real_pngs_inline_or_by_url(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    inline = await client.images.generate(model="flux.1-schnell", prompt="a red fox", n=2, response_format="b64_json")
    assert inline.data is not None and len(inline.data) == 2
    pictures = [Image.open(io.BytesIO(base64.b64decode(d.b64_json or ""))) for d in inline.data]
    assert all(p.format == "PNG" and p.size == (64, 64) for p in pictures)
    assert pictures[0].tobytes() != pictures[1].tobytes()
    linked = await client.images.generate(model="flux.1-schnell", prompt="a red fox", response_format="url")
    assert linked.data is not None and linked.data[0].url
    fetched = await http.get(linked.data[0].url)
    assert fetched.headers["content-type"] == "image/png"
    assert base64.b64decode(inline.data[0].b64_json or "") == fetched.content


def test_png_builder_writes_a_valid_file() -> None:
    picture = Image.open(io.BytesIO(png(8, 4, (1, 2, 3), (4, 5, 6))))
    picture.load()
    assert picture.size == (8, 4) and picture.mode == "RGB" and picture.getpixel((7, 0)) == (1, 2, 3)


async def test_responses_keep_a_chain(client: openai.AsyncOpenAI, cloud_v2: FakeQianfanV2) -> None:
    first = await client.responses.create(model="ernie-4.5-turbo-128k", input="hello")
    assert first.object == "response" and first.status == "completed"
    assert first.output_text == "echo[ernie-4.5-turbo-128k] turn 1: hello"
    assert first.usage is not None and first.usage.input_tokens == len("hello")
    second = await client.responses.create(model="ernie-4.5-turbo-128k", input="and again",
                                           previous_response_id=first.id)
    assert second.output_text == "echo[ernie-4.5-turbo-128k] turn 2: and again"
    assert second.usage is not None
    assert second.usage.input_tokens == len("hello") + len(first.output_text) + len("and again")
    fetched = await client.responses.retrieve(second.id)
    assert fetched.output_text == second.output_text and fetched.previous_response_id == first.id
    items = await client.responses.input_items.list(second.id, order="asc")
    roles = [(item.role, item.content[0].text) for item in items.data]  # type: ignore[union-attr,index]
    assert roles == [("user", "hello"), ("assistant", first.output_text), ("user", "and again")]
    await client.responses.delete(first.id)
    assert first.id not in cloud_v2.responses
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(model="ernie-4.5-turbo-128k", input="x", previous_response_id=first.id)


async def test_responses_not_stored_when_store_is_false(client: openai.AsyncOpenAI, cloud_v2: FakeQianfanV2) -> None:
    out = await client.responses.create(model="ernie-speed-128k", input="once", store=False)
    assert out.to_dict().get("store") is False and out.id not in cloud_v2.responses


async def test_responses_stream_events(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(model="qwen3-235b-a22b", input="stream", stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "echo[qwen3-235b-a22b] turn 1: stream"
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_a_wrong_key_is_an_authentication_error(cloud_v2: FakeQianfanV2, http: httpx.AsyncClient) -> None:
    wrong = sdk(cloud_v2, http, "bce-v3/ALTAK-wrong/0")
    with pytest.raises(openai.AuthenticationError) as info:
        await wrong.chat.completions.create(model="ernie-3.5-8k", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 401 and info.value.code == "invalid_iam_token"
    body: Any = info.value.body
    assert body["message"] == "IAM Certification failed" and info.value.response.json()["id"].startswith("as-")
    missing = await http.post("/v2/embeddings", json={"model": "embedding-v1", "input": ["x"]})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_iam_token"


async def test_an_unknown_model_is_invalid_model(client: openai.AsyncOpenAI, cloud_v2: FakeQianfanV2) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="ERNIE-Bot-4", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 401 and info.value.code == "invalid_model"
    cloud_v2.models.add("ERNIE-Bot-4")
    cloud_v2.invalid_model_status = 404
    out = await client.chat.completions.create(model="ERNIE-Bot-4", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == "echo[ERNIE-Bot-4]: hi"
    with pytest.raises(openai.NotFoundError):
        await client.embeddings.create(model="no-such-embedder", input=["x"])


async def test_an_iam_minted_token_is_accepted(cloud_v2: FakeQianfanV2, http: httpx.AsyncClient) -> None:
    ts = bce_date()
    headers = {"host": "qianfan.fake", "x-bce-date": ts}
    params = {"expireInSeconds": "86400"}
    headers["authorization"] = sign("GET", "/v1/BCE-BEARER/token", params, headers, cloud_v2.access_key,
                                    cloud_v2.secret_key, ts)
    minted = (await http.get("/v1/BCE-BEARER/token", params=params, headers=headers)).json()["token"]
    assert minted != cloud_v2.key
    minted_client = sdk(cloud_v2, http, minted)
    out = await minted_client.embeddings.create(model="bge-large-zh", input=["x"])
    assert len(out.data) == 1
    unsigned = await http.get("/v1/BCE-BEARER/token", params=params)
    assert unsigned.status_code == 403


async def test_v1_is_refused_and_recorded(cloud_v2: FakeQianfanV2, http: httpx.AsyncClient) -> None:
    assert cloud_v2.v1_calls() == []
    oauth = await http.post("/oauth/2.0/token", params={"grant_type": "client_credentials", "client_id": "ak",
                                                         "client_secret": "sk"})
    assert oauth.status_code == 401
    assert oauth.json() == {"error": "invalid_client", "error_description": "unknown client id"}
    v1 = await http.post(f"{PREFIX}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert v1.status_code == 200 and v1.json() == {"error_code": 6, "error_msg": "No permission to access data"}
    with_token = await http.post(f"{PREFIX}/embeddings/embedding-v1", params={"access_token": "24.x"}, json={})
    assert with_token.json()["error_code"] == 110
    assert [c.path for c in cloud_v2.v1_calls()] == ["/oauth/2.0/token", f"{PREFIX}/chat/completions",
                                                     f"{PREFIX}/embeddings/embedding-v1"]


async def test_faults_come_in_the_v2_shape(client: openai.AsyncOpenAI, cloud_v2: FakeQianfanV2) -> None:
    cloud_v2.fail_next(1, "429", retry_after="1")
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="ernie-3.5-8k", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "rate_limit_exceeded" and info.value.response.headers["retry-after"] == "1"


async def test_console_routes_still_register_and_check_iam(cloud_v2: FakeQianfanV2, http: httpx.AsyncClient) -> None:
    @cloud_v2.route("POST", "/v2/finetuning", action="DescribeFineTuningTask")
    def describe(req: Any) -> dict[str, Any]:
        cloud_v2.check_iam(req)
        return {"requestId": "r", "result": {"taskId": req.json["taskId"]}}

    ts = bce_date()
    params = {"Action": "DescribeFineTuningTask"}
    headers = {"host": "qianfan.fake", "x-bce-date": ts, "content-type": "application/json"}
    headers["authorization"] = sign("POST", "/v2/finetuning", params, headers, cloud_v2.access_key,
                                    cloud_v2.secret_key, ts)
    ok = await http.post("/v2/finetuning", params=params, headers=headers, json={"taskId": "t-1"})
    assert ok.json() == {"requestId": "r", "result": {"taskId": "t-1"}}
    bad = await http.post("/v2/finetuning", params=params, json={"taskId": "t-1"})
    assert bad.status_code == 403


def test_key_only_config_makes_a_key_only_config(cloud_v2: FakeQianfanV2) -> None:
    values = key_only_config(cloud_v2)
    assert set(values) == {"api_key", "base_url", "console_api_base_url", "iam_base_url", "transport"}
    config = Config.from_env({}, **values)
    assert config.bearer_token == cloud_v2.key and not config.ak and not config.access_key
    with pytest.raises(ValueError, match="sockets"):
        key_only_env(cloud_v2)


@pytest.mark.sockets
def test_over_a_socket_with_the_sync_sdk_and_a_key_only_env(cloud_v2: FakeQianfanV2) -> None:
    assert cloud_v2.transport is None and cloud_v2.base_url.startswith("http://127.0.0.1")
    sync = openai.OpenAI(api_key=cloud_v2.key, base_url=f"{cloud_v2.base_url}/v2", max_retries=0)
    chunks = list(sync.chat.completions.create(model="ernie-x1-turbo-32k", stream=True,
                                               messages=[{"role": "user", "content": "over tcp"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo[ernie-x1-turbo-32k]: over tcp"
    env = {**os.environ, "QIANFAN_AK": "v1-app-key", **key_only_env(cloud_v2)}
    script = ("import os, openai; c = openai.OpenAI(api_key=os.environ['QIANFAN_API_KEY'], "
              "base_url=os.environ['QIANFAN_BASE_URL'] + '/v2'); "
              "print(os.environ['QIANFAN_AK'] == '', c.embeddings.create(model='tao-8k', input=['x']).data[0].index)")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.split() == ["True", "0"]
