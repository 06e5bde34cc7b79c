"""The model that answers an OpenAI chat or Responses request that offers tools and names no model
(``model`` left out, empty or ``"default"``): the tool model when it is served, else the default chat
model; a named model is that model; the answer's ``X-Qfnb-Notice`` says why the tool model answered,
or that the model asked calls tools unreliably. Unit checks on a listing double, then the two routes
in front of an engine double standing in for the tool model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai_engine import FakeEngine
from fakes.cloud import serve
from platform_doubles import FakeServed
from platform_helpers import bearer, make_settings
from starlette.testclient import TestClient

from qfnb.local.engines.registry import EngineOptions, EngineRegistry, parse_external
from qfnb.local.server.app import create_app
from qfnb.local.server.serving import model_choice
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL, LOCAL_TOOL_MODEL, TOOL_MODEL_INSTALL
from qfnb.protocol.platform.daemon import MODEL_HEADER, NOTICE_HEADER

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
MSG = [{"role": "user", "content": "Weather in Oslo?"}]


class Listing:
    """A platform double: only what the choice reads (the served chat models)."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def served(self, api_type: str | None = None) -> list[FakeServed]:
        return [FakeServed(n, n.lower(), ("chat",), "llama.cpp") for n in self.names]


def notice(choice: model_choice.ModelChoice, served: str) -> str | None:
    return choice.headers(served).get(NOTICE_HEADER)


@pytest.mark.parametrize("model", [None, "", "default", "DEFAULT"])
def test_no_model_named_with_tools_is_the_tool_model_when_served(model: str | None) -> None:
    body = {"messages": MSG, "tools": [WEATHER], **({} if model is None else {"model": model})}
    choice = model_choice.choose(Listing(LOCAL_CHAT_MODEL, LOCAL_TOOL_MODEL), body)  # type: ignore[arg-type]
    assert choice.body["model"] == LOCAL_TOOL_MODEL and choice.body["tools"] == [WEATHER]
    said = notice(choice, LOCAL_TOOL_MODEL)
    assert said is not None and f"the tool model {LOCAL_TOOL_MODEL}" in said and "name a model" in said


def test_no_model_named_without_tools_or_with_tool_choice_none_is_the_chat_model() -> None:
    listing = Listing(LOCAL_CHAT_MODEL, LOCAL_TOOL_MODEL)
    for body in ({"messages": MSG}, {"messages": MSG, "tools": [WEATHER], "tool_choice": "none"}):
        choice = model_choice.choose(listing, body)  # type: ignore[arg-type]
        assert choice.body["model"] == LOCAL_CHAT_MODEL and notice(choice, LOCAL_CHAT_MODEL) is None, body


def test_without_the_tool_model_the_chat_model_answers_and_the_notice_says_how_to_install_it() -> None:
    choice = model_choice.choose(Listing(LOCAL_CHAT_MODEL), {"messages": MSG, "tools": [WEATHER]})  # type: ignore[arg-type]
    assert choice.body["model"] == LOCAL_CHAT_MODEL
    said = notice(choice, LOCAL_CHAT_MODEL)
    assert said is not None and "calls tools unreliably" in said and TOOL_MODEL_INSTALL in said, said


def test_a_named_model_is_that_model_and_an_unreliable_one_is_said() -> None:
    listing = Listing(LOCAL_CHAT_MODEL, LOCAL_TOOL_MODEL)
    choice = model_choice.choose(listing, {"model": LOCAL_CHAT_MODEL, "messages": MSG, "tools": [WEATHER]})  # type: ignore[arg-type]
    assert choice.body["model"] == LOCAL_CHAT_MODEL, "the default chat model's own name is a choice"
    said = notice(choice, LOCAL_CHAT_MODEL)
    assert said is not None and said.startswith(f"{LOCAL_CHAT_MODEL} calls tools unreliably")
    assert f"name {LOCAL_TOOL_MODEL} for tool calls" in said, said
    choice = model_choice.choose(listing, {"model": "my-model", "messages": MSG, "tools": [WEATHER]})  # type: ignore[arg-type]
    assert choice.body["model"] == "my-model" and notice(choice, "my-model") is None, "not measured: no word"
    said.encode("latin-1")  # a header value


@pytest.fixture(params=["prompt", "slow"])
def tool_platform(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, FakeEngine]]:
    """The platform with an engine double served as ``Tool-Double``, standing in for the tool model:
    prompt, or slow enough that a heartbeat starts the answer before the route does (a loaded machine)."""
    monkeypatch.setattr(model_choice, "LOCAL_TOOL_MODEL", "Tool-Double")
    slow = request.param == "slow"
    fake = FakeEngine(tokens=3, delay=0.3 if slow else 0.0)
    with serve(fake.app) as url:
        external = parse_external({"Tool-Double": {"base_url": url + "/v1", "model": "remote-tools"}})
        registry = EngineRegistry(tmp_path, options=EngineOptions(slots=2, queue=2, external=external))
        settings = make_settings(tmp_path, heartbeat=0.1 if slow else 10.0)
        with TestClient(create_app(settings, registry), base_url="http://127.0.0.1:8123") as client:
            yield client, fake
        registry.close()


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"messages": MSG, "tools": [WEATHER]}),
    ("/v1/chat/completions", {"model": "default", "messages": MSG, "tools": [WEATHER], "stream": True}),
    ("/v1/responses", {"model": "default", "input": "Weather in Oslo?", "tools": [
        {"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}]}),
])
def test_the_routes_send_a_request_naming_no_model_to_the_tool_model_and_say_so(
        tool_platform: tuple[TestClient, FakeEngine], path: str, body: dict[str, Any]) -> None:
    client, fake = tool_platform
    resp = client.post(path, headers={"Authorization": "Bearer " + bearer(client)}, json=body)
    assert resp.status_code == 200, resp.text
    assert fake.bodies[-1]["model"] == "remote-tools" and fake.bodies[-1]["tools"]
    assert resp.headers[MODEL_HEADER] == "Tool-Double"
    assert "no model named: the tool model Tool-Double answers" in resp.headers[NOTICE_HEADER]


def test_the_daemon_publishes_the_tool_model_exactly_when_it_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.local.server import daemon

    monkeypatch.setattr(daemon, "BUILTIN_SPECS", {LOCAL_CHAT_MODEL: None})
    assert "tools" not in daemon.published_defaults() and daemon.published_defaults()["chat"] == LOCAL_CHAT_MODEL
    monkeypatch.setattr(daemon, "BUILTIN_SPECS", {LOCAL_CHAT_MODEL: None, LOCAL_TOOL_MODEL: None})
    assert daemon.published_defaults()["tools"] == LOCAL_TOOL_MODEL
