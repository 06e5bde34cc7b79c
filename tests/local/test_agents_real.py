"""Tools and structured output on the real engine (marked ``real_model``): Qwen2.5-Coder-0.5B
behind the platform, driven by the unmodified ``openai`` SDK and the official ``qianfan`` SDK's
v1 function calling; answers are kept short (small ``max_tokens``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
from platform_helpers import CREDS, bearer, token
from pydantic import BaseModel
from starlette.testclient import TestClient

from qfnb.local.engines.llama.process.command import find_binary
from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.server.app import create_app
from qfnb.local.settings import Settings
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]
openai = pytest.importorskip("openai")

QWEN, GEMMA = "Qwen2.5-Coder-0.5B-Instruct", "Gemma-3-270M"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "What's the weather in Paris? Use the tool."}]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("agents")
    registry = EngineRegistry(data, options=EngineOptions(slots=2))
    with TestClient(create_app(Settings(data_dir=data, credentials=CREDS), registry),
                    base_url="http://127.0.0.1:8123") as c:
        yield c
    registry.close()


@pytest.fixture(scope="module")
def sdk(client: TestClient) -> Any:
    """The ``openai`` SDK, unmodified, on the platform's one OpenAI base URL."""
    return openai.OpenAI(base_url="http://127.0.0.1:8123/v1", api_key=bearer(client), http_client=client)


def test_weather_tool_call_then_an_answer_from_its_result(sdk: Any) -> None:
    first = sdk.chat.completions.create(model=QWEN, messages=ASK, tools=[WEATHER], temperature=0, max_tokens=48)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"].lower() == "paris"
    history = [{"role": "system", "content": "You are a weather assistant. After a tool result, answer the user "
                "in one plain sentence."}, *ASK,
               {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
               {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 17, "sky": "light rain"})}]
    final = sdk.chat.completions.create(model=QWEN, messages=history, temperature=0, max_tokens=48)
    text = final.choices[0].message.content
    assert "17" in text or "light rain" in text.lower(), text  # facts only the tool result holds


def test_streamed_tool_deltas_assemble_into_the_same_call(sdk: Any) -> None:
    whole = sdk.chat.completions.create(model=QWEN, messages=ASK, tools=[WEATHER], tool_choice="required",
                                        temperature=0, max_tokens=48).choices[0].message.tool_calls[0]
    name, args, finish = "", "", None
    for chunk in sdk.chat.completions.create(model=QWEN, messages=ASK, tools=[WEATHER], tool_choice="required",
                                             temperature=0, max_tokens=48, stream=True):
        for piece in chunk.choices[0].delta.tool_calls or ():
            name += piece.function.name or ""
            args += piece.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert (name, json.loads(args)) == (whole.function.name, json.loads(whole.function.arguments))


def test_named_tool_choice_forces_that_call(sdk: Any) -> None:
    other = {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}
    answer = sdk.chat.completions.create(model=QWEN, messages=ASK, tools=[WEATHER, other], temperature=0,
                                         tool_choice={"type": "function", "function": {"name": "get_time"}},
                                         max_tokens=32)
    call = answer.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time" and "zone" in json.loads(call.function.arguments)


PEOPLE = [("Ada", 36, "London"), ("Bo", 29, "Oslo"), ("Chen", 41, "Xi'an"), ("Dara", 23, "Cork"),
          ("Eli", 52, "Haifa"), ("Femi", 31, "Lagos"), ("Gus", 64, "Malmo"), ("Hana", 27, "Kyoto"),
          ("Ivo", 45, "Split"), ("Jia", 33, "Wuhan"), ("Kai", 19, "Kiel"), ("Lea", 38, "Lyon"),
          ("Mo", 58, "Cairo"), ("Nia", 26, "Accra"), ("Oz", 47, "Perth"), ("Pia", 30, "Turin"),
          ("Quin", 22, "Derry"), ("Raj", 49, "Pune"), ("Sol", 35, "Quito"), ("Tom", 61, "Leeds")]
PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "city"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"}}}


@pytest.mark.parametrize("count", [5, pytest.param(20, marks=pytest.mark.slow)])
def test_extractions_under_a_strict_schema_all_validate(sdk: Any, count: int) -> None:
    """Every extraction under a strict ``json_schema`` validates: five in the default run, all twenty
    with ``-m slow`` (the same path, 15 s more; test_schemas_real.py's ``test_what_is_enforced_validates``
    checks the enforced keywords by default too)."""
    valid = 0
    for name, age, city in PEOPLE[:count]:
        answer = sdk.chat.completions.create(
            model=QWEN, temperature=0, max_tokens=48,
            messages=[{"role": "user", "content": f"Extract the person: {name} is {age} and lives in {city}."}],
            response_format={"type": "json_schema", "json_schema": {"name": "person", "strict": True,
                                                                    "schema": PERSON}})
        obj = json.loads(answer.choices[0].message.content)
        jsonschema.validate(obj, PERSON)
        valid += 1
    assert valid == count


class Ticket(BaseModel):
    label: Literal["bug", "feature", "question"]
    summary: str


def test_beta_parse_with_a_pydantic_model(sdk: Any) -> None:
    parsed = sdk.beta.chat.completions.parse(
        model=QWEN, temperature=0, max_tokens=48, response_format=Ticket,
        messages=[{"role": "user", "content": "Classify this ticket: 'The app crashes when I press save.'"}])
    ticket = parsed.choices[0].message.parsed
    assert isinstance(ticket, Ticket) and ticket.label in ("bug", "feature", "question")


def test_a_base_model_is_refused_tools_with_a_400(sdk: Any) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model=GEMMA, messages=ASK, tools=[WEATHER], max_tokens=8)
    assert "cannot call tools" in str(refused.value) and "base model" in str(refused.value)


def test_v1_functions_give_function_call_as_ernie_does(client: TestClient) -> None:
    body = client.post(MODEL_API_PREFIX + "/chat/qwen2_5_coder_0_5b_instruct", params={"access_token": token(client)},
                       json={"messages": ASK, "functions": [WEATHER["function"]], "max_output_tokens": 48,
                             "temperature": 0.01}).json()
    assert body["finish_reason"] == "function_call" and body["result"] == "", body
    assert body["function_call"]["name"] == "get_weather"
    assert json.loads(body["function_call"]["arguments"])["city"].lower() == "paris"


def test_openai_parameters_take_effect(sdk: Any) -> None:
    two = sdk.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": "Say hi"}], n=2, seed=5,
                                      temperature=0.9, max_tokens=6, logprobs=True, top_logprobs=2)
    assert [c.index for c in two.choices] == [0, 1]
    entries = two.choices[0].logprobs.content
    assert entries and len(entries[0].top_logprobs) == 2 and entries[0].logprob <= 0
    greedy = [sdk.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": "Name a colour."}],
                                          temperature=0, max_tokens=8).choices[0].message.content for _ in range(2)]
    assert greedy[0] == greedy[1]
    stopped = sdk.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": "Count: 1, 2, 3, 4, 5"}],
                                          temperature=0, max_tokens=24, stop=["3"]).choices[0].message.content
    assert "3" not in stopped and "4" not in stopped


@pytest.mark.parametrize("tool_choice", ["auto", "required"])
def test_logprobs_with_tools_cover_the_calls_tokens(sdk: Any, tool_choice: str) -> None:
    answer = sdk.chat.completions.create(model=QWEN, messages=ASK, tools=[WEATHER], tool_choice=tool_choice,
                                         temperature=0, max_tokens=48, logprobs=True, top_logprobs=2)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls[0].function.name == "get_weather"
    entries = choice.logprobs.content
    assert len(entries) == answer.usage.completion_tokens  # one per generated token, the call's included
    assert all(e.logprob <= 0 and len(e.top_logprobs) == 2 for e in entries)
    text = "".join(e.token for e in entries)
    assert "get_weather" in text and "Paris" in text, text


def test_json_object_mode_and_a_schema_keyword_the_grammar_cannot_enforce(sdk: Any, tmp_path: Path) -> None:
    obj = sdk.chat.completions.create(model=QWEN, temperature=0, max_tokens=32, response_format={"type": "json_object"},
                                      messages=[{"role": "user", "content": "Give the colour of the sky as JSON."}])
    assert isinstance(json.loads(obj.choices[0].message.content), dict)
    # a keyword the grammar cannot enforce is accepted and checked on the answer: valid, or a refusal naming it
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "not": {"required": ["a"]}}
    got = sdk.chat.completions.create(model=QWEN, messages=ASK, max_tokens=24, temperature=0, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}}).choices[0].message
    if got.refusal is None:
        answer = json.loads(got.content)
        assert isinstance(answer, dict) and "a" not in answer, got
    else:
        assert "not" in got.refusal, got


def test_langchain_bind_tools_and_structured_output(client: TestClient) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    chat = langchain_openai.ChatOpenAI(model=QWEN, base_url="http://127.0.0.1:8123/v1", api_key=bearer(client),
                                       http_client=client, temperature=0, max_tokens=48)
    message = chat.bind_tools([WEATHER], tool_choice="required").invoke(ASK[0]["content"])
    assert message.tool_calls[0]["name"] == "get_weather"
    assert message.tool_calls[0]["args"]["city"].lower() == "paris"
    ticket = chat.with_structured_output(Ticket).invoke("Classify this ticket: 'The app crashes when I press save.'")
    assert isinstance(ticket, Ticket)
