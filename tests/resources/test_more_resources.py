"""Reranker, Tokenizer and IAM: the wire format against the cloud double (Image2Text's:
tests/resources/inference/images), and a clear platform error (never fake output) from the local platform
where it has no such model."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import qfnb
from qfnb._core.config import Config
from qfnb.errors import APIError, ValidationError
from qfnb.resources import IAM, FineTune, Image2Text, QfResponse, Reranker, Service, Tokenizer
from tests.fakes.cloud import FakeQianfan
from tests.fakes.fixtures import fake, fake_server, make_config  # noqa: F401
from tests.fakes.inference_extra import install

DOCS = ["Shanghai weather today is sunny", "Beijing food guide", "weather in Shanghai tomorrow rain"]


@pytest.fixture
def cfg(fake: FakeQianfan, make_config: Callable[..., Config]) -> Config:  # noqa: F811
    install(fake)
    return make_config("both")


def test_reranker_wire_positional_args_and_batch(fake: FakeQianfan, cfg: Config) -> None:  # noqa: F811
    rr = Reranker(config=cfg)
    resp = rr.do("Shanghai weather", DOCS, 2)
    assert [r["index"] for r in resp["results"]] == [0, 2] and resp["results"][0]["document"] == DOCS[0]
    call = fake.calls("/reranker/")[-1]
    assert call.path.endswith("/reranker/bce_reranker_base")  # the catalogue's default model
    assert call.json["query"] == "Shanghai weather" and call.json["documents"] == DOCS and call.json["top_n"] == 2
    assert call.json["stream"] is False  # sent as the official SDK sends it
    got = rr.batch_do([("Beijing food", DOCS), ("rain", DOCS[:1])], worker_num=2).results()
    assert got[0]["results"][0]["index"] == 1 and len(got[1]["results"]) == 1
    with pytest.raises(ValidationError, match="documents"):
        rr.do(query="q", documents=[])
    with pytest.raises(ValidationError, match="top_n"):
        rr.do("q", ["d"], top_n=0)
    with pytest.raises(ValidationError, match=r"query_document_pairs\[0\]"):
        rr.batch_do(["not a pair"])


def test_tokenizer_local_estimate_and_remote_count(fake: FakeQianfan, cfg: Config) -> None:  # noqa: F811
    assert Tokenizer.count_tokens("你好 world, hello!") == int(2 * 0.625 + 2)  # 0.625 per CJK char + 1 per word
    assert Tokenizer.count_tokens("") == 0
    assert Tokenizer.count_tokens("abcdef", mode="remote", config=cfg) == 6
    call = fake.calls("/tokenizer/")[-1]
    assert call.path.endswith("/tokenizer/erniebot") and call.json == {"prompt": "abcdef", "model": "ERNIE-Bot"}
    with pytest.raises(ValidationError, match="mode"):
        Tokenizer.count_tokens("x", mode="cloud")


def test_iam_mints_a_bearer_token_with_a_signed_get(fake: FakeQianfan, cfg: Config) -> None:  # noqa: F811
    resp = IAM.create_bearer_token(expire_in_seconds=3600, config=cfg)
    assert isinstance(resp, QfResponse) and resp["token"] in fake.bearer_tokens
    call = fake.calls("/v1/BCE-BEARER/token")[-1]
    assert call.method == "GET" and call.params["expireInSeconds"] == "3600"
    assert call.headers["authorization"].startswith("bce-auth-v1/")
    with pytest.raises(ValidationError, match="expire_in_seconds"):
        IAM.create_bearer_token(expire_in_seconds=0, config=cfg)


def test_console_signatures_show_the_real_parameters() -> None:
    sig = inspect.signature(Service.create)
    assert list(sig.parameters)[:4] == ["model_id", "model_version_id", "name", "uri"]
    assert sig.return_annotation == QfResponse["ServiceV1CreatedAnswer"] and "config" in sig.parameters
    assert inspect.signature(Service.list).return_annotation is QfResponse  # a call with no answer model
    assert next(iter(inspect.signature(FineTune.acreate_task).parameters)) == "name"
    assert next(iter(inspect.signature(IAM.create_bearer_token).parameters)) == "expire_in_seconds"


def test_top_level_names() -> None:
    assert qfnb.Reranker is Reranker and qfnb.Image2Text is Image2Text and qfnb.Tokenizer is Tokenizer
    assert qfnb.IAM is IAM


# ---- the local platform: a clear error, never fake output -----------------------------------

@pytest.fixture(scope="module")
def local_cfg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))
    from platform_doubles import FakeRegistry
    from platform_helpers import CREDS, make_settings

    from qfnb.local.server.app import create_app
    from tests.fakes.cloud import serve

    tmp = tmp_path_factory.mktemp("local")
    with serve(create_app(make_settings(tmp), FakeRegistry()), lifespan="on") as url:
        yield Config.from_env({}, base_url=url, console_api_base_url=url, iam_base_url=url,
                              ak=CREDS.api_key, sk=CREDS.secret_key, access_key=CREDS.access_key,
                              secret_key=CREDS.iam_secret_key)


def test_reranker_answers_locally_with_the_embedding_model(local_cfg: Config) -> None:
    ranked = Reranker(config=local_cfg).do("q", ["d", "e"], top_n=1)
    assert ranked["object"] == "reranker_list" and len(ranked["results"]) == 1
    assert ranked["results"][0]["index"] in (0, 1) and ranked["usage"]["total_tokens"] > 0


@pytest.mark.parametrize(("call", "what"), [
    (lambda c: Image2Text(model="Fuyu-8B", config=c).do(prompt="p", image=b"x"), "image2text"),
])
def test_local_platform_answers_a_clear_error(local_cfg: Config, call: Any, what: str) -> None:
    with pytest.raises(APIError, match=f"no {what} model.*cloud") as info:
        call(local_cfg)
    assert info.value.error_code == 336005


def test_local_tokenizer_names_what_it_cannot_count(local_cfg: Config) -> None:
    """The local platform counts with a llama.cpp model's tokenizer (tests/local/engines/test_forecast_real.py);
    an in-process model, an unknown model or a malformed body is refused by name."""
    with pytest.raises(APIError, match=r"model: .*counts tokens only for llama\.cpp models"):
        Tokenizer.count_tokens("x", mode="remote", model="Tiny-Chat", config=local_cfg)
    with pytest.raises(APIError, match="not served") as info:
        Tokenizer.count_tokens("x", mode="remote", model="no-such-model", config=local_cfg)
    assert info.value.error_code == 336005


def test_local_platform_mints_bearer_tokens(local_cfg: Config) -> None:
    resp = IAM.create_bearer_token(expire_in_seconds=120, config=local_cfg)
    assert resp["token"] and resp.body.get("expireTime")


def test_v2_client_embedding_and_reranker_answer_locally(local_cfg: Config) -> None:
    from qfnb.client import Qianfan

    client = Qianfan(config=local_cfg)
    vectors = client.embedding.create(model="tiny-embed", input=["alpha", "beta gamma"])
    assert [d["index"] for d in vectors["data"]] == [0, 1] and len(vectors["data"][0]["embedding"]) == 3
    ranked = client.reranker.create(model="tiny-embed", query="q", documents=["a", "bb", "ccc"], top_n=2)
    assert len(ranked["results"]) == 2 and ranked["results"][0]["relevance_score"] >= ranked["results"][1][
        "relevance_score"]
