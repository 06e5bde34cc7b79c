"""A tool loop's turn on the platform's own engine (issue 58): decoded greedily when the request sets
no temperature, and each run of tool results followed by :data:`RESULT_HINT` while the model may
still call a tool (not when a call is required, nor when no tools are offered). The engine is an
in-process llama-server double (httpx's MockTransport) that records what it was asked."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from qfnb.local.engines.ask import TOOL_TEMPERATURE, ChatAsk, GenParams, Sampling
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.transport import Endpoint
from qfnb.local.engines.llama.tool_calls import RESULT_HINT, with_result_hints

TOOL = {"type": "function", "function": {"name": "find_station", "description": "Look up a train station",
                                         "parameters": {"type": "object", "properties": {
                                             "name": {"type": "string"}}, "required": ["name"]}}}


def _call(call_id: str, name: str) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {
        "name": "find_station", "arguments": json.dumps({"name": name})}}]}


TURNS = ({"role": "user", "content": "Which platforms do the Bern and Basel trains leave from?"},
         {"role": "assistant", "content": None, "tool_calls": [
             {"id": "a", "type": "function", "function": {"name": "find_station", "arguments": '{"name": "Bern"}'}},
             {"id": "b", "type": "function", "function": {"name": "find_station", "arguments": '{"name": "Basel"}'}}]},
         {"role": "tool", "tool_call_id": "a", "content": "Bern: platform 7"},
         {"role": "tool", "tool_call_id": "b", "content": "Basel: platform 12"})


def test_each_run_of_results_ends_with_the_hint_and_the_history_is_left_as_it_was() -> None:
    later = (*TURNS, _call("c", "Zug"), {"role": "tool", "tool_call_id": "c", "content": "Zug: platform 2"})
    framed = with_result_hints(later)
    assert [m.get("content") for m in framed if m["role"] == "tool"] == [
        "Bern: platform 7", f"Basel: platform 12\n\n{RESULT_HINT}", f"Zug: platform 2\n\n{RESULT_HINT}"]
    # the earlier run reads the same in the later request: the engine's cached prefix holds
    assert framed[:4] == with_result_hints(TURNS)
    assert later[3]["content"] == "Basel: platform 12"  # the request's own turns are not changed
    parts = with_result_hints([{"role": "tool", "tool_call_id": "x", "content": [{"type": "text", "text": "7"}]}])
    assert parts[0]["content"] == [{"type": "text", "text": "7"}, {"type": "text", "text": RESULT_HINT}]


def _tokens(prompt: list[int] | str) -> int:
    """The double's count of a prompt sent as token ids or as text (a token a word, as its ``/tokenize``)."""
    return len(prompt) if isinstance(prompt, list) else len(prompt.split())


def _engine(monkeypatch: pytest.MonkeyPatch, answer: str) -> tuple[LlamaEngine, dict[str, list[dict[str, Any]]]]:
    """Our own engine over a llama-server double whose answer is ``answer``."""
    seen: dict[str, list[dict[str, Any]]] = {"/apply-template": [], "/v1/completions": []}

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/apply-template":
            seen["/apply-template"].append(body)
            return httpx.Response(200, json={"prompt": " ".join(str(m.get("content")) for m in body["messages"])})
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"tokens": list(range(len(body["content"].split())))})
        seen["/v1/completions"].append(body)
        events = [{"choices": [{"index": 0, "text": answer, "finish_reason": None}]},
                  {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": _tokens(body["prompt"]), "completion_tokens": 5}}]
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, stream=httpx.ByteStream(sse.encode()), headers={"Content-Type": "text/event-stream"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    monkeypatch.setattr(transport, "client", lambda: client)
    target = Endpoint("http://127.0.0.1:1/v1", "k")
    return LlamaEngine("tiny", lambda: target, gate=LaneGate("tiny", 2, 4), n_ctx=4096), seen


def _answer(chat: LlamaEngine, ask: ChatAsk) -> str:
    async def run() -> str:
        return "".join([d.text async for d in chat.generate(ask)])

    return asyncio.run(run())


def test_a_turn_after_results_reads_the_hint_and_is_greedy(monkeypatch: pytest.MonkeyPatch) -> None:
    chat, seen = _engine(monkeypatch, "Bern: 7, Basel: 12.")
    assert _answer(chat, ChatAsk(model="tiny", messages=TURNS, tools=(TOOL,))) == "Bern: 7, Basel: 12."
    (rendered,) = seen["/apply-template"]
    assert rendered["tools"] == [TOOL]
    assert [m["content"] for m in rendered["messages"][2:]] == ["Bern: platform 7",
                                                                 f"Basel: platform 12\n\n{RESULT_HINT}"]
    (body,) = seen["/v1/completions"]
    assert body["temperature"] == TOOL_TEMPERATURE == 0.0
    # what generate sent (a short text, which the engine tokenizes as /tokenize does) is what count_tokens counts
    assert asyncio.run(chat.count_tokens(ChatAsk(model="tiny", messages=TURNS, tools=(TOOL,)))) == \
        _tokens(body["prompt"])


@pytest.mark.parametrize(("ask", "temperature"), [
    # a call required: the model must call, the hint would say otherwise
    (ChatAsk(model="tiny", messages=TURNS, tools=(TOOL,), tool_choice="required"), TOOL_TEMPERATURE),
    # no tools offered (a loop's closing request): the results as they are, still greedy
    (ChatAsk(model="tiny", messages=TURNS), TOOL_TEMPERATURE),
    # the client's own temperature is kept
    (ChatAsk(model="tiny", messages=TURNS, tools=(TOOL,), tool_choice="none", sampling=Sampling(temperature=0.7)),
     0.7),
])
def test_no_hint_where_no_call_is_free_and_a_temperature_given_is_kept(
        monkeypatch: pytest.MonkeyPatch, ask: ChatAsk, temperature: float) -> None:
    chat, seen = _engine(monkeypatch, '{"name": "find_station", "arguments": {"name": "Zug"}}')
    _answer(chat, ask)
    assert all(RESULT_HINT not in json.dumps(b["messages"]) for b in seen["/apply-template"])
    assert {b["temperature"] for b in seen["/v1/completions"]} == {temperature}


def test_a_chat_with_no_tools_keeps_the_engines_default_temperature() -> None:
    plain = ChatAsk(model="tiny", messages=({"role": "user", "content": "hi"},))
    assert plain.engine_params().temperature == GenParams.temperature
    offered = ChatAsk(model="tiny", messages=plain.messages, tools=(TOOL,))
    assert offered.engine_params().temperature == TOOL_TEMPERATURE
    assert ChatAsk(model="tiny", messages=plain.messages, tools=(TOOL,),
                   tool_choice="none").engine_params().temperature == GenParams.temperature


def test_a_loops_requests_take_the_slot_that_holds_its_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second request of a loop is long (a long result): without the loop's own key it went to
    the highest free slot, which holds nothing of its prompt."""
    chat, seen = _engine(monkeypatch, "Platform 7.")
    opening = ({"role": "user", "content": "Which platform for Bern?"},)
    long_result = {"role": "tool", "tool_call_id": "a", "content": "Bern: platform 7. " + "timetable " * 300}
    first = ChatAsk(model="tiny", messages=opening, tools=(TOOL,))
    second = ChatAsk(model="tiny", messages=(*opening, _call("a", "Bern"), long_result), tools=(TOOL,))
    _answer(chat, first)
    _answer(chat, second)
    slots = [b["id_slot"] for b in seen["/v1/completions"]]
    assert len(seen["/v1/completions"][1]["prompt"]) > 256 and slots[0] == slots[1]
    assert first.slot_key == second.slot_key is not None
    other = ChatAsk(model="tiny", messages=({"role": "user", "content": "Which platform for Zug?"},), tools=(TOOL,))
    assert other.slot_key != first.slot_key
    assert ChatAsk(model="tiny", messages=opening).slot_key is None  # a plain chat: any slot
    assert ChatAsk(model="tiny", messages=opening, tools=(TOOL,), cache_key="mine").slot_key == "mine"
