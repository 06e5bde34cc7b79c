"""The seed inference API against the fake cloud: do / ado / stream, validation, models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qfnb import ChatCompletion, Completion, Embedding, Messages, Plugin, QfResponse
from qfnb._core.config import Config
from qfnb.errors import AuthError, InvalidArgumentError, ValidationError
from tests.fakes.clock import VirtualTime
from tests.fakes.cloud import FakeQianfan
from tests.fakes.fixtures import fake, fake_server, make_config

__all__ = ["fake", "fake_server", "make_config"]

MakeConfig = Callable[..., Config]
HI = [{"role": "user", "content": "你好"}]


def test_chat_do_default_model_and_body(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("oauth"))
    resp = chat.do(messages=HI, temperature=0.5, system="be brief", request_id="rid-7")
    assert isinstance(resp, QfResponse)
    assert resp["result"] == resp["body"]["result"] == resp.result == "echo[ernie-lite-8k]: 你好"
    assert "result" in resp and resp.get("nope", 1) == 1 and resp.usage.total_tokens > 0
    assert resp.code == 200 and resp.statistic["request_latency"] > 0
    sent = fake.calls("/chat/")[0]
    assert sent.path.endswith("/chat/ernie-lite-8k") and sent.headers["request_id"] == "rid-7"
    assert sent.json == {"messages": HI, "temperature": 0.5, "system": "be brief", "stream": False,
                         "extra_parameters": {"request_source": "qfnb_py_sdk_v0.1.0"}}
    assert b"\\u4f60" in sent.raw  # ensure_ascii, as the official SDK sends


def test_chat_model_names_and_custom_endpoint(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("oauth"))
    assert chat.do(model="ERNIE-Bot", messages=HI).result.startswith("echo[completions]")
    assert chat.do(model="ernie-4.0-8k", messages=HI).result.startswith("echo[completions_pro]")
    assert chat.do(endpoint="my_service", messages=HI).result.startswith("echo[my_service]")
    assert ChatCompletion(model="ERNIE-Speed-8K", config=make_config("oauth")).do(messages=HI).result.startswith(
        "echo[ernie_speed]")


def test_unknown_model_resolved_via_dynamic_list(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.services["common"].append({"name": "Brand-New-Model-32K", "apiType": "chat",
                                    "url": "https://x/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/brand_new"})
    chat = ChatCompletion(config=make_config("both"))
    assert chat.do(model="brand-new-model-32k", messages=HI).result.startswith("echo[brand_new]")
    chat.do(model="brand-new-model-32k", messages=HI)
    assert len(fake.calls("service/list")) == 1  # cached
    with pytest.raises(ValidationError, match="unknown model 'No-Such'") as info:
        chat.do(model="No-Such", messages=HI)
    assert info.value.field == "model"


def test_resolve_checks_a_model_without_calling_it(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.services["common"].append({"name": "Brand-New-Model-32K", "apiType": "chat",
                                    "url": "https://x/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/brand_new"})
    target = ChatCompletion(model="brand-new-model-32k", config=make_config("both")).resolve()
    assert (target.api_type, target.endpoint) == ("chat", "brand_new")
    assert ChatCompletion(endpoint="my_service", config=make_config("both")).resolve().endpoint == "my_service"
    with pytest.raises(ValidationError, match="unknown model 'No-Such'"):
        ChatCompletion(config=make_config("both")).resolve(model="No-Such")
    assert fake.calls("/chat/") == []


def test_unknown_model_error_names_the_failed_model_list(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.fail_next(1, "code:6", path="service/list")  # no permission: not retried
    chat = ChatCompletion(config=make_config("both"))
    with pytest.raises(ValidationError, match="service list could not be fetched") as info:
        chat.do(model="Brand-New-Model-32K", messages=HI)
    assert info.value.field == "model" and info.value.__cause__ is not None
    assert fake.calls("/chat/") == []


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "messages"),
    ({"messages": HI, "temperature": 3}, "temperature"),
    ({"messages": "hello"}, "messages"),
    ({"messages": HI, "stream": "yes"}, "stream"),
])
def test_bad_input_rejected_before_sending(fake: FakeQianfan, make_config: MakeConfig,
                                           kwargs: dict[str, Any], field: str) -> None:
    chat = ChatCompletion(config=make_config("oauth"))
    with pytest.raises(ValidationError) as info:
        chat.do(**kwargs)
    assert info.value.field == field and isinstance(info.value, ValueError)
    assert fake.calls("/chat/") == []


def test_missing_messages_is_a_type_error_naming_them(fake: FakeQianfan, make_config: MakeConfig) -> None:
    """``messages`` is a required parameter, as in the official SDK: Python names it."""
    with pytest.raises(TypeError, match="'messages'"):
        ChatCompletion(config=make_config("oauth")).do()
    assert fake.calls("/chat/") == []


def test_platform_errors_surface(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.fail_next(1, "code:336003", path="/chat/")
    with pytest.raises(InvalidArgumentError) as info:
        ChatCompletion(config=make_config("oauth")).do(messages=HI)
    assert info.value.error_code == 336003


async def test_chat_ado_and_streams(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("oauth"))
    assert (await chat.ado(messages=HI)).result == "echo[ernie-lite-8k]: 你好"
    chunks = [c async for c in await chat.ado(messages=HI, stream=True)]
    assert len(chunks) == 3 and "".join(c["result"] for c in chunks) == "echo[ernie-lite-8k]: 你好"
    assert fake.calls("/chat/")[-1].json["stream"] is True


def test_chat_sync_stream(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("oauth"))
    parts = [c["result"] for c in chat.do(messages=HI, stream=True)]
    assert "".join(parts) == "echo[ernie-lite-8k]: 你好" and len(parts) == 3


def test_messages_multi_turn(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("oauth"))
    msgs = Messages()
    msgs.append("第一句")
    resp = chat.do(messages=msgs)
    msgs.append(resp)
    msgs.append("第二句")
    chat.do(messages=msgs)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert fake.calls("/chat/")[-1].json["messages"][1] == {"role": "assistant", "content": resp.result}


def test_chat_v2(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(version=2, config=make_config("iam"))
    resp = chat.do(model="ernie-4.0-8k", messages=[{"role": "system", "content": "s"}, *HI])
    assert resp.result == "echo[ernie-4.0-8k]: 你好"
    assert "".join(c.result for c in chat.do(messages=HI, stream=True)) == "echo[ernie-4.5-turbo-128k]: 你好"
    sent = fake.calls("/v2/chat/completions")[0]
    assert sent.headers["authorization"].startswith("Bearer ") and sent.json["model"] == "ernie-4.0-8k"


def test_chat_v2_create_answers_the_official_typed_objects(fake: FakeQianfan, make_config: MakeConfig) -> None:
    from qfnb.protocol.wires.qianfan.answers import ChatAnswer
    from qfnb.resources import typing_client

    chat = ChatCompletion(version=2, config=make_config("iam"))
    answer = chat.create(model="ernie-4.0-8k", messages=HI)
    assert isinstance(answer, typing_client.Completion) and typing_client.Completion is ChatAnswer
    assert isinstance(answer.choices[0], typing_client.Choice) and answer.model == "ernie-4.0-8k"
    text = answer.raw["choices"][0]["message"]["content"]
    assert answer.choices[0].message.content == "echo[ernie-4.0-8k]: 你好" == text
    assert answer.statistic is not None and answer.statistic.total_latency > 0
    chunks = list(chat.create(messages=HI, stream=True))
    assert all(isinstance(c, typing_client.CompletionChunk) for c in chunks)
    assert all(isinstance(c.choices[0].delta, typing_client.ChoiceDelta) for c in chunks if c.choices)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo[ernie-4.5-turbo-128k]: 你好"


def test_completion_with_chat_model_and_completion_model(fake: FakeQianfan, make_config: MakeConfig) -> None:
    comp = Completion(config=make_config("oauth"))
    resp = comp.do(prompt="你好")
    assert resp["object"] == "completion" and resp.result == "echo[ernie-lite-8k]: 你好"
    assert fake.calls("/chat/")[0].json["messages"] == HI
    resp2 = comp.do(model="SQLCoder-7B", prompt="select")
    assert fake.calls("/completions/")[0].json["prompt"] == "select" and resp2.result.startswith("echo[sqlcoder_7b]")
    stream = list(comp.do(prompt="你好", stream=True))
    assert all(c["object"] == "completion" for c in stream)
    with pytest.raises(ValidationError, match="prompt"):
        comp.do(prompt="  ")


async def test_completion_async_stream(fake: FakeQianfan, make_config: MakeConfig) -> None:
    comp = Completion(config=make_config("oauth"))
    out = [c.result async for c in await comp.ado(endpoint="custom_ep", prompt="hi", stream=True)]
    assert "".join(out) == "echo[custom_ep]: hi"
    assert fake.calls("/completions/custom_ep")


def test_embedding(fake: FakeQianfan, make_config: MakeConfig) -> None:
    emb = Embedding(config=make_config("oauth"))
    resp = emb.do(texts=["世界上最高的山", "ab"])
    assert [d["embedding"][0] for d in resp["data"]] == [7.0, 2.0]
    assert fake.calls("/embeddings/embedding-v1")[0].json["input"] == ["世界上最高的山", "ab"]
    with pytest.raises(ValidationError, match="at most 16"):
        emb.do(texts=["x"] * 17)
    with pytest.raises(ValidationError):
        emb.do(texts=["x"], stream=True)


async def test_embedding_async(fake: FakeQianfan, make_config: MakeConfig) -> None:
    resp = await Embedding(config=make_config("oauth")).ado(model="bge-large-zh", texts=["a"])
    assert resp["data"][0]["index"] == 0 and fake.calls("/embeddings/bge_large_zh")


def test_plugin(fake: FakeQianfan, make_config: MakeConfig) -> None:
    plugin = Plugin(config=make_config("oauth"))
    assert plugin.do(endpoint="your_app", prompt="你好")["result"] == "echo[your_app]: 你好"
    sent = fake.calls("/plugin/your_app/")[0]
    assert sent.json["query"] == "你好" and sent.path.endswith("/plugin/your_app/")
    chunks = list(plugin.do(endpoint="your_app", prompt="hi", stream=True))
    assert "".join(c.result for c in chunks) == "echo[your_app]: hi"
    eb = Plugin(model="EBPluginV2", config=make_config("oauth")).do(messages=HI, plugins=["uuid-zhishiku"])
    assert eb.result and fake.calls("/erniebot/plugin")


def test_plugin_query_positional_as_the_official_sdk(fake: FakeQianfan, make_config: MakeConfig) -> None:
    """``do(query, plugins, model, endpoint)``: a text query for an app, a conversation for ERNIE Bot."""
    assert Plugin(config=make_config("oauth")).do("你好", None, None, "your_app").result == "echo[your_app]: 你好"
    assert fake.calls("/plugin/your_app/")[0].json["query"] == "你好"
    eb = Plugin(config=make_config("oauth")).do(Messages().append("你好"), ["uuid-zhishiku"], "EBPluginV2")
    sent = fake.calls("/erniebot/plugin")[0].json
    assert eb.result and sent["messages"] == HI and sent["plugins"] == ["uuid-zhishiku"] and "query" not in sent


def test_constructor_kwargs_and_repr(fake: FakeQianfan) -> None:
    chat = ChatCompletion(ak=fake.ak, sk=fake.sk, base_url=fake.base_url, transport=fake.transport)
    assert chat.do(messages=HI).result == "echo[ernie-lite-8k]: 你好"
    bad = ChatCompletion(ak="my-ak-123456789", sk="my-SECRET-sk", base_url=fake.base_url, transport=fake.transport)
    with pytest.raises(AuthError) as info:
        bad.do(messages=HI)
    assert "SECRET" not in repr(bad) + repr(bad.config) + str(info.value)
    with pytest.raises(TypeError, match="nonsense"):
        ChatCompletion(nonsense=1)


def test_models_listing() -> None:
    assert {"ERNIE-Lite-8K", "ERNIE-4.0-8K"} <= ChatCompletion.models()
    assert "Embedding-V1" in Embedding.models() and "ERNIE-Lite-8K" not in Embedding.models()


async def test_tpm_limit_spaces_requests(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("oauth", token_per_minute=600))  # 10 tokens/s
    vt = VirtualTime()
    chat.client.sleep = vt.sleep  # record the limiter's waits instead of sleeping
    words = " ".join(["w"] * 300)  # ~300 tokens each
    await chat.ado(messages=[{"role": "user", "content": words}])
    await chat.ado(messages=[{"role": "user", "content": words}])
    assert vt.sleeps == []  # within the 600-token budget: no wait
    # the minute's budget is spent (the fake reports usage above the estimate: nothing is credited back)
    assert chat.client.limiter.reserve(300) > 1.0


def test_truncate_overlong_messages(fake: FakeQianfan, make_config: MakeConfig) -> None:
    from qfnb.resources.inference.chat import truncate_messages

    msgs = [{"role": "user", "content": "a" * 10}, {"role": "assistant", "content": "b" * 10},
            {"role": "user", "content": "c" * 10}, {"role": "assistant", "content": "d" * 10},
            {"role": "user", "content": "e" * 5}]
    assert truncate_messages(msgs, 30, None) == msgs[2:]
    assert truncate_messages(msgs, 10, None) == msgs[4:]
    assert truncate_messages(msgs, 1000, None) == msgs
    long = [{"role": "user", "content": "x" * 30000}, {"role": "assistant", "content": "y"},
            {"role": "user", "content": "hi"}]
    ChatCompletion(config=make_config("oauth")).do(model="ERNIE-3.5-8K", messages=long, truncate_overlong_msgs=True)
    assert fake.calls("/chat/completions")[0].json["messages"] == long[2:]


def test_use_custom_endpoint_verbatim(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("oauth", use_custom_endpoint=True))
    assert chat.do(endpoint="/chat/my_full_path", messages=HI).result == "echo[my_full_path]: 你好"
    assert fake.calls("/chat/")[0].path.endswith("/wenxinworkshop/chat/my_full_path")


def test_auto_concat_truncate_continues_until_complete(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("oauth"))
    fake.truncate_next = 2
    resp = chat.do(messages=HI, auto_concat_truncate=True, truncated_continue_prompt="go on")
    sent = [c.json for c in fake.calls("/chat/")]
    assert len(sent) == 3
    first = "echo[ernie-lite-8k]: 你好"
    assert sent[1]["messages"] == [*HI, {"role": "assistant", "content": first}, {"role": "user", "content": "go on"}]
    second = "echo[ernie-lite-8k]: go on"
    assert sent[2]["messages"][-2:] == [{"role": "assistant", "content": second}, {"role": "user", "content": "go on"}]
    assert all("auto_concat_truncate" not in b and "truncated_continue_prompt" not in b for b in sent)
    assert resp.result == first + second + second and resp["is_truncated"] is False
    assert resp.usage.completion_tokens == len(first) + 2 * len(second)
    # without the flag a truncated answer comes back as it is
    fake.truncate_next = 1
    assert chat.do(messages=HI)["is_truncated"] is True and len(fake.calls("/chat/")) == 4
    # a key of the caller's names the first round; each follow-up is another request, with a key of its own
    fake.truncate_next = 1
    chat.do(messages=HI, auto_concat_truncate=True, idempotency_key="mine-1")
    keys = [c.headers["idempotency-key"] for c in fake.calls("/chat/")[4:]]
    assert keys[0] == "mine-1" and len(keys) == 2 and keys[1].startswith("qfnb-")


async def test_auto_concat_truncate_streams_every_round(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("oauth"))
    fake.truncate_next = 1
    chunks = [c async for c in await chat.ado(messages=HI, stream=True, auto_concat_truncate=True)]
    assert "".join(c.result for c in chunks) == "echo[ernie-lite-8k]: 你好" + "echo[ernie-lite-8k]: 继续"
    assert len(fake.calls("/chat/")) == 2 and chunks[-1]["is_end"] is True
    fake.truncate_next = 1
    parts = [c.result for c in chat.do(messages=HI, stream=True, auto_concat_truncate=True)]
    assert "".join(parts).endswith("继续") and len(fake.calls("/chat/")) == 4


def test_auto_concat_truncate_gives_up_after_the_cap(fake: FakeQianfan, make_config: MakeConfig,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from qfnb.resources.inference.chat import MAX_CONTINUATIONS

    fake.truncate_next = 1000  # a model that never finishes
    resp = ChatCompletion(config=make_config("oauth")).do(messages=HI, auto_concat_truncate=True)
    assert len(fake.calls("/chat/")) == MAX_CONTINUATIONS + 1
    assert resp["is_truncated"] is True and "still truncated" in caplog.text
