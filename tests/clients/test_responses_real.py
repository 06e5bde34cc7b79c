"""The Responses API with the real ``openai`` SDK, unmodified, against the suite's shared daemon
(``default_models_daemon``) on the default local chat model (issue 42, part 2): create (a string,
instructions), retrieve, a chain by ``previous_response_id`` whose follow-up sends only its new
input (and is answered from the stored turns, with cached prompt tokens), streaming with the
semantic events, a function tool round trip, ``text.format`` json_schema enforced by the grammar,
input_items and delete; and qfnb's own v2 client (``Qianfan().responses``) on ``/v2/responses``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qfnb.local.engines.llama.process.command import find_binary
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]
openai = pytest.importorskip("openai")

MODEL = LOCAL_CHAT_MODEL
SHORT = {"max_output_tokens": 24, "temperature": 0}


@pytest.fixture(scope="module")
def client(default_models_daemon: Path) -> Any:
    """The openai SDK on the suite's shared daemon on the default local models."""
    import qfnb

    return qfnb.openai_client(data_dir=default_models_daemon, timeout=600, max_retries=0)


def test_create_retrieve_and_a_chain_that_sends_only_new_input(client: Any) -> None:
    first = client.responses.create(model=MODEL, instructions="You are terse.", **SHORT,
                                    input="My favourite fruit is papaya. Just say OK.")
    assert first.status == "completed" and first.output_text and first.id.startswith("resp_")
    assert first.usage.input_tokens > 10 and first.usage.output_tokens > 0
    again = client.responses.retrieve(first.id)
    assert again.output_text == first.output_text and again.instructions == "You are terse."
    # instructions are not carried over (as OpenAI does): a follow-up gives them again, so the prompt's
    # prefix is the one the engine slot still holds
    second = client.responses.create(model=MODEL, previous_response_id=first.id, instructions="You are terse.",
                                     input="What is my favourite fruit? Answer in one word.", **SHORT)
    assert "papaya" in second.output_text.lower()
    assert second.previous_response_id == first.id
    # the follow-up's prompt holds the first turn (more tokens than its own input) and most of it
    # was not prefilled again: the engine slot kept the conversation's prefix
    assert second.usage.input_tokens > first.usage.input_tokens
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens // 2
    items = client.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["message"] and "favourite fruit" in items.data[0].content[0].text
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, previous_response_id=second.id, input="and now?")
    assert caught.value.body["param"] == "previous_response_id"


def test_stream_sends_the_semantic_events(client: Any) -> None:
    events = list(client.responses.create(model=MODEL, input="Say hello in three words.", stream=True, **SHORT))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_item.added" in kinds and "response.output_text.done" in kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text and final.output_text == text and final.usage.output_tokens > 0
    assert client.responses.retrieve(final.id).output_text == text  # stored once the stream ended
    with client.responses.stream(model=MODEL, input="Say hi.", **SHORT) as stream:  # the SDK's own helper
        assert stream.get_final_response().output_text


def test_a_function_tool_round_trip(client: Any) -> None:
    tool = {"type": "function", "name": "get_weather", "description": "Get the current weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                           "additionalProperties": False}, "strict": True}
    asked = client.responses.create(model=MODEL, input="What is the weather in Oslo?", tools=[tool],
                                    tool_choice="required", temperature=0)
    calls = [o for o in asked.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and "oslo" in json.loads(calls[0].arguments)["city"].lower()
    answered = client.responses.create(model=MODEL, previous_response_id=asked.id, tools=[tool], temperature=0,
                                       max_output_tokens=60, input=[{"type": "function_call_output",
                                                                     "call_id": calls[0].call_id,
                                                                     "output": "47 degrees and light rain"}])
    assert "47" in answered.output_text


def test_text_format_json_schema_is_enforced(client: Any) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    answer = client.responses.create(model=MODEL, input="Give the capital of France and its population.",
                                     text={"format": {"type": "json_schema", "name": "city", "schema": schema,
                                                      "strict": True}}, temperature=0, max_output_tokens=60)
    data = json.loads(answer.output_text)
    assert set(data) == {"city", "population"} and isinstance(data["population"], int)


def test_qfnb_v2_client_speaks_v2_responses(client: Any) -> None:
    import qfnb

    url = str(client.base_url).rstrip("/").removesuffix("/v1")
    v2 = qfnb.Qianfan(api_key=client.api_key, console_api_base_url=url)
    first = v2.responses.create(model=MODEL, input="Remember: my name is Ada. Reply OK.", **SHORT)
    events = list(v2.responses.create(model=MODEL, input="What is my name? One word.", stream=True,
                                      previous_response_id=first["id"], **SHORT))
    assert events[-1]["type"] == "response.completed"
    final = events[-1]["response"]
    assert "ada" in "".join(e.get("delta", "") for e in events).lower()
    assert v2.responses.retrieve(final["id"])["previous_response_id"] == first["id"]
    assert v2.responses.delete(first["id"])["deleted"] is True
