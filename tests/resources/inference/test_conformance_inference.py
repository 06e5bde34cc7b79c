"""Issue 21's inference behaviours on the generated call surface, against the fake cloud:
ERNIE-Functions' instruction-driven function calls, ``Embedding(texts="one")`` and the
endpoint-over-model routing (``Image2Text``'s ``(prompt, image)`` batch items: inference/images)."""

from __future__ import annotations

from collections.abc import Callable

from qfnb import ChatCompletion, Embedding
from qfnb._core.config import Config
from qfnb.resources.inference import Function
from tests.fakes.cloud import FakeQianfan
from tests.fakes.fixtures import fake, fake_server, make_config

__all__ = ["fake", "fake_server", "make_config"]

MakeConfig = Callable[..., Config]
WEATHER = {"name": "get_weather", "description": "the weather", "parameters": {"type": "object"}}


def test_function_model_answers_a_function_call(fake: FakeQianfan, make_config: MakeConfig) -> None:
    # the fake echoes the last turn: a function result that reads as an Action comes back as function_call
    action = 'Action: get_weather\nAction Input: {"city": "北京"}'
    turns = [{"role": "user", "content": "北京天气？"},
             {"role": "assistant", "content": "", "function_call": {"name": "get_weather", "arguments": "{}"}},
             {"role": "function", "name": "get_weather", "content": action}]
    resp = Function(config=make_config("oauth")).do(turns, functions=[WEATHER])
    assert resp["function_call"] == {"name": "get_weather", "arguments": '{"city": "北京"}'}
    assert resp["result"] == ""
    sent = fake.calls("/chat/")[0]
    assert sent.path.endswith("/chat/ernie-func-8k") and "functions" not in sent.json
    first, replayed, result = sent.json["messages"]
    assert "get_weather" in first["content"] and "北京天气？" in first["content"]  # functions described in the turn
    assert replayed == {"role": "assistant", "content": "Action: get_weather\nAction Input: {}"}
    assert result == {"role": "user", "content": action}


def test_embedding_takes_one_string_as_a_list_of_one(fake: FakeQianfan, make_config: MakeConfig) -> None:
    resp = Embedding(config=make_config("oauth")).do("one text")
    assert len(resp["data"]) == 1
    assert fake.calls("/embeddings/")[0].json["input"] == ["one text"]


def test_a_call_endpoint_wins_over_the_instance_model(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(model="ernie-4.0-8k", config=make_config("oauth"))
    chat.do([{"role": "user", "content": "hi"}], endpoint="my_ep")
    assert fake.calls("/chat/")[0].path.endswith("/chat/my_ep")
