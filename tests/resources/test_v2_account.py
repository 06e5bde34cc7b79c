"""A 2026 account (a v2 API key, no v1 app keys): every inference class takes the v2 routes by
default and answers in the shapes the seeds read, against the 2026 cloud double."""

from __future__ import annotations

import base64
import io
import warnings
from typing import Any

import pytest

import qfnb
from qfnb._core.config import Config
from qfnb._core.errors import AuthError, QfnbError
from qfnb.resources.inference import targets
from tests.fakes.cloud_v2 import FakeQianfanV2
from tests.fakes.fixtures_v2 import key_only_config

MSGS = [{"role": "user", "content": "你好"}]


def key_only(fake: FakeQianfanV2, **more: Any) -> Config:
    return Config.from_env({}, **key_only_config(fake), **more)


def v2_paths(fake: FakeQianfanV2) -> list[str]:
    return [r.path for r in fake.requests]


def test_the_key_alone_chats_on_v2_and_answers_result(cloud_v2: FakeQianfanV2) -> None:
    chat = qfnb.ChatCompletion(config=key_only(cloud_v2))
    assert chat.version == 2
    resp = chat.do(messages=MSGS, system="答得简短", max_output_tokens=200)
    assert resp["result"] == "echo[ernie-4.5-turbo-128k]: 你好"
    assert resp["choices"][0]["message"]["content"] == resp["result"]  # the v2 body is kept beside it
    assert resp["usage"]["total_tokens"] > 0
    sent = cloud_v2.calls("/v2/chat/completions")[0].json
    assert sent["messages"][0] == {"role": "system", "content": "答得简短"}
    assert sent["max_completion_tokens"] == 200 and "max_output_tokens" not in sent and "system" not in sent
    chunks = list(chat.do(messages=MSGS, model="ernie-4.5-turbo-128k", stream=True))
    assert "".join(c["result"] for c in chunks) == "echo[ernie-4.5-turbo-128k]: 你好"
    assert chunks[-1]["is_end"] and not any(c["is_end"] for c in chunks[:-1])
    assert cloud_v2.v1_calls() == []
    assert set(v2_paths(cloud_v2)) == {"/v2/chat/completions"}


def test_completion_embedding_reranker_and_batch_take_v2(cloud_v2: FakeQianfanV2) -> None:
    cfg = key_only(cloud_v2)
    assert qfnb.Completion(config=cfg).do(prompt="写一句诗")["result"] == "echo[ernie-4.5-turbo-128k]: 写一句诗"
    emb = qfnb.Embedding(config=cfg).do(texts=["世界上最高的山", "LoRA"])
    assert len(emb["data"]) == 2 and len(emb["data"][1]["embedding"]) > 0
    assert cloud_v2.calls("/v2/embeddings")[0].json == {"model": "embedding-v1",
                                                        "input": ["世界上最高的山", "LoRA"]}
    ranked = qfnb.Reranker(config=cfg).do("上海天气", ["北京美食", "上海天气预报"], top_n=1)
    assert ranked["results"][0]["index"] == 1 and len(ranked["results"]) == 1
    future = qfnb.ChatCompletion(config=cfg).batch_do([[{"role": "user", "content": q}] for q in "abc"],
                                                      worker_num=2)
    assert [r["result"] for r in future.results()] == [f"echo[ernie-4.5-turbo-128k]: {q}" for q in "abc"]
    assert cloud_v2.v1_calls() == []


def test_text2image_gives_a_real_png_from_the_v2_route(cloud_v2: FakeQianfanV2) -> None:
    resp = qfnb.Text2Image(config=key_only(cloud_v2)).do(prompt="布偶猫", with_decode="base64")
    item = resp["data"][0]
    assert item["b64_image"] == item["b64_json"]
    from PIL import Image

    assert Image.open(io.BytesIO(item["image"])).format == "PNG"
    assert base64.b64decode(item["b64_json"]) == item["image"]
    sent = cloud_v2.calls("/v2/images/generations")[0].json
    assert sent["model"] == "irag-1.0" and sent["response_format"] == "b64_json" and "with_decode" not in sent


def test_a_2024_name_is_sent_as_its_v2_successor_said_once(cloud_v2: FakeQianfanV2) -> None:
    targets._RENAMES_SAID.clear()
    chat = qfnb.ChatCompletion(model="ERNIE-Bot", config=key_only(cloud_v2))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert chat.do(messages=MSGS)["result"] == "echo[ernie-4.5-turbo-128k]: 你好"
        chat.do(messages=MSGS)
    renamed = [w for w in seen if issubclass(w.category, targets.RenamedModelWarning)]
    said = str(renamed[0].message)
    assert len(renamed) == 1 and "ERNIE-Bot is called ernie-3.5-8k on the v2 API, retired on 2026-06-30" in said
    assert said.endswith("sent as ernie-4.5-turbo-128k")
    assert qfnb.Embedding(model="Embedding-V1", config=key_only(cloud_v2)).do(texts=["x"])["data"]


def test_a_v2_id_goes_as_given_even_when_the_catalog_lists_it_retired(cloud_v2: FakeQianfanV2) -> None:
    cloud_v2.models.add("deepseek-v3")
    with warnings.catch_warnings():
        warnings.simplefilter("error", targets.RenamedModelWarning)
        resp = qfnb.ChatCompletion(model="deepseek-v3", config=key_only(cloud_v2)).do(messages=MSGS)
    assert resp["result"] == "echo[deepseek-v3]: 你好"


def test_an_unknown_id_goes_as_given_and_the_platform_error_is_shown(cloud_v2: FakeQianfanV2) -> None:
    with pytest.raises(QfnbError) as err:
        qfnb.ChatCompletion(model="ernie-9.9-ultra", config=key_only(cloud_v2)).do(messages=MSGS)
    assert "model does not exist" in str(err.value)
    assert cloud_v2.calls("/v2/chat/completions")[0].json["model"] == "ernie-9.9-ultra"


def test_the_env_var_names_the_key_and_version_1_still_wins(cloud_v2: FakeQianfanV2,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"QIANFAN_API_KEY": cloud_v2.key}
    assert Config.from_env(env).bearer_token == cloud_v2.key and Config.from_env(env).api_version == 2
    assert Config.from_env({**env, "QIANFAN_BEARER_TOKEN": "other"}).bearer_token == "other"
    assert Config.from_env({"QIANFAN_AK": "a", "QIANFAN_SK": "b"}).api_version == 1
    assert Config.from_env({"QIANFAN_ACCESS_KEY": "a", "QIANFAN_SECRET_KEY": "b"}).api_version == 2
    assert "bce-v3" not in repr(Config.from_env(env))
    with pytest.raises(AuthError) as err:  # a v1 route with the key alone: each kind named, nothing sent
        qfnb.ChatCompletion(version=1, config=key_only(cloud_v2)).do(messages=MSGS)
    text = str(err.value)
    report = text[text.index("Credentials:"):]
    assert report.index("a v2 API key") < report.index("IAM keys") < report.index("v1 app keys")
    assert "a v2 API key (QIANFAN_API_KEY or QIANFAN_BEARER_TOKEN; api_key=): set" in text
    assert "v1 app keys (QIANFAN_AK and QIANFAN_SK; ak=, sk=) or QIANFAN_ACCESS_TOKEN: missing" in text
    assert cloud_v2.key not in text and cloud_v2.requests == []


def test_iam_keys_alone_mint_a_bearer_for_v2(cloud_v2: FakeQianfanV2) -> None:
    cfg = Config.from_env({}, access_key=cloud_v2.access_key, secret_key=cloud_v2.secret_key,
                          **{k: v for k, v in key_only_config(cloud_v2).items() if k != "api_key"})
    assert qfnb.ChatCompletion(config=cfg).do(messages=MSGS)["result"].endswith("你好")
    assert [r.path for r in cloud_v2.requests] == ["/v1/BCE-BEARER/token", "/v2/chat/completions"]


def test_v1_keys_keep_v1_and_a_refused_oauth_says_to_use_the_v2_key(cloud_v2: FakeQianfanV2) -> None:
    cfg = Config.from_env({}, ak="old_ak", sk="old_sk", **{k: v for k, v in key_only_config(cloud_v2).items()
                                                           if k != "api_key"})
    with pytest.raises(AuthError) as err:
        qfnb.ChatCompletion(config=cfg).do(messages=MSGS)
    assert "QIANFAN_API_KEY" in str(err.value) and "old_sk" not in str(err.value)
    assert [r.path for r in cloud_v2.requests] == ["/oauth/2.0/token"]


def test_a_resource_without_a_v2_route_refuses_version_2() -> None:
    with pytest.raises(ValueError, match="no v2 route"):
        qfnb.Plugin(version=2)


def test_forecast_of_a_v2_model_estimates_its_input_with_a_range_and_sends_nothing(
        cloud_v2: FakeQianfanV2) -> None:
    from qfnb._core.runtime import sync
    from qfnb.resources.forecasting import ESTIMATE_HIGH, aforecast

    cast = sync.run(aforecast(["hello there", "你好世界"], model="ernie-4.5-turbo-128k", max_tokens=50,
                              config=key_only(cloud_v2)))
    assert cast.platform == "cloud" and cast.input_source.startswith("estimated")
    assert "the v2 API has no tokenizer route" in cast.input_source
    assert cast.input_high == -(-cast.input_tokens * int(ESTIMATE_HIGH) // 1) and cast.input_high > cast.input_tokens
    assert cast.total_high == cast.input_high + cast.output_high
    assert cast.yuan_high is not None and cast.yuan_high > 0  # a 2026 price, at the upper bound
    assert "up to" in dict((k, v) for k, v, _ in cast.rows())["input tokens"]
    assert cloud_v2.requests == []  # nothing sent: no v1 tokenizer route, no call


def test_the_v2_client_routes_answer_typed_and_by_key(cloud_v2: FakeQianfanV2) -> None:
    client = qfnb.Qianfan(config=key_only(cloud_v2))
    emb = client.embedding.create(input=["你好", "LoRA"])
    assert emb["data"][1]["embedding"] == emb.parsed.data[1].embedding and len(emb.parsed.data) == 2
    ranked = client.reranker.create(query="上海天气", documents=["北京美食", "上海天气预报"], top_n=1)
    assert ranked.parsed.results[0].index == ranked["results"][0]["index"] == 1
