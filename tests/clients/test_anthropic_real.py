"""Anthropic's Messages API with the real ``anthropic`` SDK, unmodified, against the suite's shared daemon
(``default_models_daemon``) on the default local chat model (issue 42, part 3): a message (system, stop sequences,
temperature), its stream of events, a tool_use / tool_result round trip, count_tokens, and errors
in Anthropic's shape; the key goes as ``x-api-key`` (``api_key=``) or as a bearer (``auth_token=``,
what Claude Code's ``ANTHROPIC_AUTH_TOKEN`` sends)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qfnb.local.engines.llama.process.command import find_binary
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]
anthropic = pytest.importorskip("anthropic")

MODEL = LOCAL_CHAT_MODEL
#: greedy decoding, so a run is repeatable: today's SDK has no ``temperature`` parameter (older ones
#: had), and the platform still honours the field
GREEDY = {"extra_body": {"temperature": 0}}
WEATHER = {"name": "get_weather", "description": "Get the current weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def root(default_models_daemon: Path) -> Any:
    """The suite's shared daemon on the default local models: its root URL and a minted key."""
    import qfnb

    openai_sdk = qfnb.openai_client(data_dir=default_models_daemon)  # mints a key
    return str(openai_sdk.base_url).rstrip("/").removesuffix("/v1"), openai_sdk.api_key


def test_messages_stream_and_count_tokens(root: tuple[str, str]) -> None:
    url, key = root
    client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=600)
    message = client.messages.create(model=MODEL, max_tokens=30, **GREEDY, system="You answer tersely.",
                                     messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert message.type == "message" and message.role == "assistant" and message.stop_reason == "end_turn"
    assert "paris" in message.content[0].text.lower() and message.usage.output_tokens > 0
    stopped = client.messages.create(model=MODEL, max_tokens=40, **GREEDY, stop_sequences=["3"],
                                     messages=[{"role": "user", "content": "Count from 1 to 5, comma separated."}])
    # the stop sequence ended the answer (llama-server's OpenAI endpoint does not say a stop sequence
    # rather than the end of the turn did it, so stop_reason may read end_turn)
    assert "2" in stopped.content[0].text and not {"3", "4", "5"} & set(stopped.content[0].text)
    assert stopped.stop_reason in ("stop_sequence", "end_turn")
    with client.messages.stream(model=MODEL, max_tokens=30, **GREEDY,
                                messages=[{"role": "user", "content": "Say hello."}]) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed and final.content[0].text == streamed and final.usage.output_tokens > 0
    counted = client.messages.count_tokens(model=MODEL, system="You answer tersely.",
                                           messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert counted.input_tokens == message.usage.input_tokens + message.usage.cache_read_input_tokens


def test_a_tool_round_trip_with_a_bearer_key(root: tuple[str, str]) -> None:
    url, key = root
    client = anthropic.Anthropic(base_url=url, auth_token=key, max_retries=0, timeout=600)
    ask = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = client.messages.create(model=MODEL, max_tokens=60, **GREEDY, tools=[WEATHER],
                                   tool_choice={"type": "any"}, messages=ask)
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and "oslo" in use.input["city"].lower()
    answer = client.messages.create(model=MODEL, max_tokens=60, **GREEDY, tools=[WEATHER], messages=[
        *ask, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                      "content": "47 degrees and light rain"}]}])
    assert "47" in answer.content[0].text


def test_errors_in_anthropics_shape(root: tuple[str, str]) -> None:
    url, key = root
    client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=60)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="claude-no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["type"] == "error" and missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}])
    assert "text only" in bad.value.body["error"]["message"]
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
