"""A pydantic class or a JSON-schema dict as ``response_format`` on every client-side chat call
(do, batch_do, the v2 client) and in a Dataset's inference, whose answers become one column per
field and an ``error`` column; against the cloud double, answering each prompt as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from qfnb._core.config import Config
from qfnb._core.errors import ValidationError
from qfnb.client import Qianfan
from qfnb.dataset import Dataset
from qfnb.model import Service
from qfnb.resources import ChatCompletion
from tests.fakes.cloud import PREFIX, Captured, FakeQianfan, Reply
from tests.fakes.fixtures import fake, make_config

__all__ = ["fake", "make_config"]


class Ticket(BaseModel):
    label: Literal["bug", "feature", "question"]
    summary: str


TICKET_SCHEMA = {"type": "object", "properties": {"label": {"enum": ["bug", "feature"]}, "summary": {"type": "string"}},
                 "required": ["label", "summary"]}


def _answer(prompt: str) -> str:
    """The double's answer: a ticket as JSON, one that misses ``summary`` for 'broken', prose for 'prose'."""
    if "prose" in prompt:
        return "This is a bug."
    if "broken" in prompt:
        return '{"label": "bug"}'
    return json.dumps({"label": "bug" if "crash" in prompt else "feature", "summary": prompt})


@pytest.fixture
def json_cloud(fake: FakeQianfan) -> FakeQianfan:
    def v1(req: Captured) -> Reply:
        text = str((req.json or {})["messages"][-1]["content"])
        return Reply({"id": "as-1", "object": "chat.completion", "created": 1, "result": _answer(text),
                      "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    def v2(req: Captured) -> Reply:
        body = req.json or {}
        return Reply({"id": "as-2", "object": "chat.completion", "created": 1, "model": body["model"],
                      "choices": [{"index": 0, "finish_reason": "stop", "message": {
                          "role": "assistant", "content": _answer(str(body["messages"][-1]["content"]))}}],
                      "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    fake.route("POST", f"{PREFIX}/chat/*")(v1)
    fake.route("POST", "/v2/chat/completions")(v2)
    return fake


def _sent_format(fake: FakeQianfan, path: str) -> list[Any]:
    return [(c.json or {}).get("response_format") for c in fake.calls(path)]


def test_do_and_the_v2_client_take_a_pydantic_class_and_a_schema_dict(
        json_cloud: FakeQianfan, make_config: Callable[..., Config]) -> None:
    chat = ChatCompletion(endpoint="my_ep", config=make_config("oauth"))
    answer = chat.do(messages=[{"role": "user", "content": "crash on save"}], response_format=Ticket)
    assert Ticket.model_validate_json(answer["result"]).label == "bug"
    chat.do(messages=[{"role": "user", "content": "dark mode"}], response_format=TICKET_SCHEMA)
    ticket, plain = _sent_format(json_cloud, "/chat/my_ep")
    assert ticket["type"] == "json_schema" and ticket["json_schema"]["name"] == "Ticket"
    assert ticket["json_schema"]["strict"] is True and ticket["json_schema"]["schema"] == Ticket.model_json_schema()
    assert plain["json_schema"]["schema"] == TICKET_SCHEMA
    client = Qianfan(config=make_config("oauth", bearer_token="bce-v3/ALTAK-test/secret"))
    v2 = client.chat.completions.create(model="ernie-4.0-8k", messages=[{"role": "user", "content": "crash"}],
                                        response_format=Ticket)
    assert Ticket.model_validate_json(v2.choices[0].message.content).label == "bug"
    assert _sent_format(json_cloud, "/v2/chat/completions")[0]["json_schema"]["name"] == "Ticket"


@pytest.mark.parametrize(("value", "message"), [
    (5, "response_format is a int, not a pydantic model class"),
    ("xml", "'xml' is not 'text' or 'json_object'"),
    (str, "the class str, not a pydantic model class"),
    ({"type": "array", "items": {}}, "must describe an object"),
])
def test_anything_else_is_refused_before_sending(json_cloud: FakeQianfan, make_config: Callable[..., Config],
                                                 value: Any, message: str) -> None:
    chat = ChatCompletion(endpoint="my_ep", config=make_config("oauth"))
    with pytest.raises(ValidationError, match=message) as refused:
        chat.do(messages=[{"role": "user", "content": "hi"}], response_format=value)
    assert refused.value.field == "response_format"
    with pytest.raises(ValidationError, match=message):
        chat.batch_do([[{"role": "user", "content": "hi"}]], response_format=value)
    assert json_cloud.calls("/chat/my_ep") == []


def test_batch_do_with_a_bare_class_lands_in_a_dataframe(json_cloud: FakeQianfan,
                                                         make_config: Callable[..., Config]) -> None:
    chat = ChatCompletion(endpoint="my_ep", config=make_config("oauth"))
    prompts = [[{"role": "user", "content": p}] for p in ("crash on save", "add dark mode", "broken row", "prose")]
    df = chat.batch_do(prompts, response_format=Ticket, worker_num=2).to_dataframe()  # the batch's schema
    assert list(df.columns) == ["label", "summary", "error"]
    assert df["label"][:2].tolist() == ["bug", "feature"] and df["error"][:2].isna().all()
    assert "does not match Ticket" in df["error"][2] and "summary" in df["error"][2]
    assert "not JSON" in df["error"][3] and df["label"][2:].isna().all()
    assert all(f["json_schema"]["name"] == "Ticket" for f in _sent_format(json_cloud, "/chat/my_ep"))
    with pytest.raises(ValueError, match="needs a schema"):
        chat.batch_do(prompts[:1]).to_dataframe()


def test_dataset_inference_with_a_schema_gives_one_column_per_field(json_cloud: FakeQianfan,
                                                                    make_config: Callable[..., Config]) -> None:
    ds = Dataset.create_from_pyobj([{"prompt": p, "id": i} for i, p in enumerate(
        ["fails for good", "crash on save", "add dark mode", "broken row", "prose"])])
    json_cloud.fail_next(1, "code:336003", path="/chat/my_ep")  # the first row's call fails (not retryable)
    svc = Service(endpoint="my_ep", config=make_config("oauth"))
    out = ds.test_using_llm(svc, concurrency=1, response_format=Ticket).to_pandas()
    assert list(out.columns) == ["prompt", "id", "llm_output", "request_latency", "label", "summary", "error"]
    assert out["id"].tolist() == list(range(5))
    assert "336003" in out["error"][0] and out["llm_output"].isna()[0] and out["label"].isna()[0]
    assert out["label"][1:3].tolist() == ["bug", "feature"] and out["error"][1:3].isna().all()
    assert out["summary"][1:3].tolist() == ["crash on save", "add dark mode"]
    assert "does not match Ticket" in out["error"][3] and "not JSON" in out["error"][4]
    assert out["label"][3:].isna().all() and out["llm_output"][4] == "This is a bug."
    assert all(f["json_schema"]["name"] == "Ticket" for f in _sent_format(json_cloud, "/chat/my_ep"))


def test_dataset_schema_clashing_with_a_column_is_refused_before_sending(
        json_cloud: FakeQianfan, make_config: Callable[..., Config]) -> None:
    ds = Dataset.create_from_pyobj([{"prompt": "crash", "label": "gold"}])
    svc = Service(endpoint="my_ep", config=make_config("oauth"))
    with pytest.raises(ValidationError, match="'label' would overwrite"):
        ds.test_using_llm(svc, response_format=Ticket)
    with pytest.raises(ValidationError, match="not a pydantic model class"):
        ds.test_using_llm(svc, response_format=3)
    assert json_cloud.calls("/chat/") == []


class Contact(BaseModel):  # the probe's pattern: a nested nullable quantifier
    email: str = Field(pattern="^([a-z]{0,40}){0,40}$")


@pytest.mark.parametrize("version", [1, 2])
def test_an_unsafe_schema_is_refused_by_name_before_sending(
        json_cloud: FakeQianfan, make_config: Callable[..., Config], version: int) -> None:
    chat = ChatCompletion(endpoint="my_ep", config=make_config("oauth"), version=version)
    with pytest.raises(ValidationError, match="nested nullable") as refused:
        chat.do(messages=[{"role": "user", "content": "hi"}], response_format=Contact)
    assert getattr(refused.value, "field", "") == "response_format.json_schema.schema.properties.email.pattern"
    assert json_cloud.calls("/chat/my_ep") == [] and json_cloud.calls("/v2/chat/completions") == []


def test_the_v2_responses_client_refuses_an_unsafe_schema_before_sending(
        fake: FakeQianfan, make_config: Callable[..., Config]) -> None:
    client = Qianfan(config=make_config("oauth", bearer_token="bce-v3/ALTAK-test/secret"))
    schema = Contact.model_json_schema()
    with pytest.raises(ValidationError, match="nested nullable") as refused:
        client.responses.create(model="m", input="hi", text={"format": {"type": "json_schema", "name": "c",
                                                                        "schema": schema}})
    assert refused.value.field == "text.format.schema.properties.email.pattern"
    with pytest.raises(ValidationError) as refused:
        client.responses.create(model="m", input="hi", tools=[{"type": "function", "name": "f", "parameters": schema}])
    assert refused.value.field == "tools[0].parameters.properties.email.pattern"
    assert fake.calls("/v2/responses") == []
