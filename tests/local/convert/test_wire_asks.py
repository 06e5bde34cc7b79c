"""The Responses and Messages bodies straight to the engine's ask (qfnb.local.convert): each wire's
model read into a ChatAsk with no OpenAI chat body between, the shared pieces (tools, answer
format, the stored conversation) alike on both, and decided as OpenAI chat's are (convert.asks)."""

from __future__ import annotations

import json

import pytest

from qfnb.local.convert.anthropic import messages_ask
from qfnb.local.convert.openai_chat import chat_ask
from qfnb.local.convert.responses import responses_ask
from qfnb.local.engines.ask import Sampling
from qfnb.protocol.wires.anthropic.messages import CountRequest, MessagesRequest
from qfnb.protocol.wires.openai.requests import OpenAIChatRequest
from qfnb.protocol.wires.qianfan.inference import parse_request
from qfnb.protocol.wires.responses.request import ResponsesRequest

TOOL = {"type": "function", "name": "get_weather", "description": "the weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_a_responses_request_becomes_its_ask() -> None:
    req = parse_request(ResponsesRequest, {
        "model": "m", "input": "hi", "instructions": "be brief", "temperature": None, "max_output_tokens": 20,
        "top_p": 0.5, "tools": [TOOL], "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}}})
    history = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "earlier"}]},
               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "sure"}]},
               {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"x"}'},
               {"type": "function_call_output", "call_id": "c1", "output": "sunny"}]
    ask = responses_ask(req, history, "interactive", "key-1")
    assert list(ask.messages) == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "sure", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"x"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}, {"role": "user", "content": "hi"}]
    assert ask.sampling == Sampling(max_tokens=20, top_p=0.5) and ask.cache_key == "key-1"
    assert ask.tools == ({"type": "function", "function": {  # strict: the Responses API's default
        **{k: TOOL[k] for k in ("name", "description", "parameters")}, "strict": True}},)
    assert ask.tool_choice == "required" and ask.schema == {"type": "object"} and ask.schema_name == "w"


def test_a_messages_request_becomes_its_ask() -> None:
    req = parse_request(MessagesRequest, {
        "model": "m", "max_tokens": 50, "system": [{"type": "text", "text": "be brief"}], "stop_sequences": ["END"],
        "temperature": 0.2, "top_k": 0, "tools": [{"name": "get_weather", "input_schema": {"type": "object"},
                                                    "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True}, "cache_control": {"type": "ephemeral"},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        "messages": [{"role": "user", "content": "weather?"},
                     {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                                       {"type": "text", "text": "Let me look."},
                                                       {"type": "tool_use", "id": "t1", "name": "get_weather",
                                                        "input": {"city": "Oslo"}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                                                   "content": [{"type": "text", "text": "rain"}]},
                                                  {"type": "text", "text": "so?"}]}]})
    ask = messages_ask(req, "batch")
    assert list(ask.messages) == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [{"id": "t1", "type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps({"city": "Oslo"})}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "Error: rain"}, {"role": "user", "content": "so?"}]
    assert ask.sampling == Sampling(max_tokens=50, stop=("END",), temperature=0.2, top_k=0)
    assert ask.tools == ({"type": "function", "function": {"name": "get_weather",
                                                           "parameters": {"type": "object"}}},)
    assert ask.tool_choice == "required" and ask.parallel_tool_calls is False and ask.lane == "batch"
    assert ask.schema == {"type": "object"} and ask.schema_name == "output" and ask.n == 1


def test_a_count_asks_one_token_of_the_same_prompt() -> None:
    body = {"model": "m", "system": "s", "messages": [{"role": "user", "content": "x"}]}
    ask = messages_ask(parse_request(CountRequest, body), "interactive")
    assert ask.sampling == Sampling(max_tokens=1)
    assert list(ask.messages) == [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}]


FUNCTION = {k: TOOL[k] for k in ("name", "description", "parameters")}
ANSWER = {"type": "object", "properties": {"a": {"type": "string"}}}


def _three_wires(choice: tuple[object, object, object], fmt: tuple[object, object, object]) -> list[tuple[object, ...]]:
    """One request on OpenAI chat, Responses and Messages (``choice``/``fmt``: each wire's spelling,
    None: left out), as (tools' names, tool choice, schema, schema name) of its ask."""
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {**FUNCTION, "strict": True}}]}
    responses = {"model": "m", "input": "hi", "tools": [TOOL]}
    messages = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"name": "get_weather", "description": "the weather", "input_schema": TOOL["parameters"],
                           "strict": True}]}
    for body, key, value in ((chat, "tool_choice", choice[0]), (responses, "tool_choice", choice[1]),
                             (messages, "tool_choice", choice[2]), (chat, "response_format", fmt[0]),
                             (responses, "text", fmt[1]), (messages, "output_config", fmt[2])):
        if value is not None:
            body[key] = value
    asks = [chat_ask(parse_request(OpenAIChatRequest, chat), "interactive"),
            responses_ask(parse_request(ResponsesRequest, responses), [], "interactive"),
            messages_ask(parse_request(MessagesRequest, messages), "interactive")]
    return [(tuple(t["function"]["name"] for t in a.tools), a.tool_choice, a.schema, a.schema_name) for a in asks]


@pytest.mark.parametrize(("choice", "decided"), [
    ((None, None, None), "auto"),
    (("none", "none", {"type": "none"}), "none"),
    (("required", "required", {"type": "any"}), "required"),
    (({"type": "function", "function": {"name": "get_weather"}}, {"type": "function", "name": "get_weather"},
      {"type": "tool", "name": "get_weather"}), "required"),
])
def test_the_three_wires_decide_the_tool_choice_alike(choice: tuple[object, object, object], decided: str) -> None:
    got = _three_wires(choice, (None, None, None))
    assert got == [(("get_weather",), decided, None, None)] * 3


def test_the_three_wires_name_the_answer_schema_in_one_place() -> None:
    """A named schema keeps its name (Messages' has none: ``output``); ``json_object`` is any object, unnamed."""
    named = _three_wires((None, None, None), (
        {"type": "json_schema", "json_schema": {"name": "reply", "schema": ANSWER}},
        {"format": {"type": "json_schema", "name": "reply", "schema": ANSWER}},
        {"format": {"type": "json_schema", "schema": ANSWER}}))
    assert [n[2:] for n in named] == [(ANSWER, "reply"), (ANSWER, "reply"), (ANSWER, "output")]
    unnamed = _three_wires((None, None, None), ({"type": "json_schema", "json_schema": {"schema": ANSWER}},
                                                {"format": {"type": "json_schema", "schema": ANSWER}}, None))
    assert [n[2:] for n in unnamed] == [(ANSWER, "answer"), (ANSWER, "answer"), (None, None)]
    objects = _three_wires((None, None, None), ({"type": "json_object"}, {"format": {"type": "json_object"}}, None))
    assert [n[2:] for n in objects[:2]] == [({"type": "object"}, None)] * 2


def test_a_schema_miss_is_refused_saying_whether_the_resamples_ran_out_or_max_tokens_cut_the_answer() -> None:
    from qfnb.local.convert.answer import Tally
    from qfnb.local.convert.openai_chat import refusal
    from qfnb.local.engines.base import Delta

    for finish, when in (("stop", "(after 2 resamples)"), ("length", "(cut by max_tokens)")):
        tally = Tally()
        tally.add(Delta('{"a": 3}', finish_reason=finish, schema_miss="not at the answer: 'a' is there"))
        assert refusal(tally) == f"the answer does not fit the JSON schema {when}: not at the answer: 'a' is there"
